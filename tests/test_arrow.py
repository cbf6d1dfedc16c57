"""Tables as Arrow IPC streams: pyarrow, pandas and polars values arrive as the kind they left as."""

from __future__ import annotations

import os
import pickle
import subprocess
import sys
import time
import tracemalloc
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dataserve import HTTPDataClient, HTTPDataHandler, PayloadError, RemoteError, RunningServer, serve
from dataserve._arrow import KIND_KEY
from dataserve._codec import ARROW, decode, encode
from tests.conftest import die_with_test, run_in_fresh_python

pa = pytest.importorskip("pyarrow")
pd = pytest.importorskip("pandas")
np = pytest.importorskip("numpy")
hpd = pytest.importorskip("hypothesis.extra.pandas")
try:
    import polars as pl
except ImportError:  # pragma: no cover - the test extra installs polars
    pl = None  # type: ignore[assignment]

needs_polars = pytest.mark.skipif(pl is None, reason="needs polars: pip install polars")
ROOT = Path(__file__).parent.parent
NEEDS_PYARROW_415 = r"needs pyarrow.*pip install pyarrow"


def round_trip(value: Any) -> Any:
    body, content_type = encode(value)
    assert content_type == ARROW
    return decode(body, content_type)


def assert_same_frame(received: Any, sent: Any) -> None:
    """The same class, columns, dtypes, index (its class and freq too) and values, NaN and NaT included."""
    assert type(received) is type(sent)
    assert_equal = (
        pd.testing.assert_series_equal if isinstance(sent, pd.Series) else pd.testing.assert_frame_equal
    )
    options: dict[str, Any] = {} if isinstance(sent, pd.Series) else {"check_column_type": True}
    assert_equal(received, sent, check_exact=True, check_index_type=True, check_freq=True, **options)


def mixed_frame(rows: int, seed: int = 0) -> Any:
    """A DataFrame of ``rows`` rows with a column of each dtype people hold, some with missing values."""
    rng = np.random.default_rng(seed)
    ints = pd.array(rng.integers(-1000, 1000, rows), dtype="Int64")
    ints[::7] = pd.NA
    when = pd.Series(pd.to_datetime(rng.integers(0, 2**40, rows), unit="ms", utc=True)).dt.tz_convert(
        "Europe/Paris"
    )
    when[::11] = pd.NaT
    words = np.array(["alpha", "beta", "gamma", "delta", "épsilon", "名前"])
    return pd.DataFrame(
        {
            "id": np.arange(rows, dtype=np.int64),
            "value": rng.standard_normal(rows),
            "count": ints,
            "label": pd.Series(words[rng.integers(0, len(words), rows)], dtype="string"),
            "kind": pd.Categorical.from_codes(rng.integers(0, 3, rows), ["low", "mid", "high"]),
            "when": when,
            "flag": rng.random(rows) > 0.5,
        },
        index=pd.RangeIndex(rows, name="row"),
    )


# pyarrow values


def test_table_arrives_as_a_table_with_its_schema_and_metadata() -> None:
    table = pa.table({"a": [1, 2, None], "b": ["x", None, "z"]}).replace_schema_metadata({"source": "test"})
    received = round_trip(table)
    assert type(received) is pa.Table
    assert received.equals(table, check_metadata=True), "the user's metadata stays; dataserve's goes"


def test_record_batch_arrives_as_a_record_batch() -> None:
    batch = pa.record_batch({"a": pa.array([1.5, 2.5], pa.float32()), "b": [True, False]})
    received = round_trip(batch)
    assert type(received) is pa.RecordBatch
    assert received.equals(batch)


def test_table_of_several_chunks_arrives_whole() -> None:
    table = pa.concat_tables([pa.table({"a": [1, 2]}), pa.table({"a": [3]})])
    assert round_trip(table).equals(table)


def _arrow_arrays() -> list[Any]:
    return [
        pa.array([1, None], pa.int8()),
        pa.array([2**64 - 1], pa.uint64()),
        pa.array([1.5, None], pa.float16()),
        pa.array(["a", None, "é"], pa.large_string()),
        pa.array([b"\x00", None], pa.binary()),
        pa.array([0, None], pa.timestamp("ns", tz="America/New_York")),
        pa.array([1], pa.duration("s")),
        pa.array([1], pa.date32()),
        pa.array([Decimal("1.25"), None], pa.decimal128(5, 2)),
        pa.array([[1, 2], None, []], pa.list_(pa.int32())),
        pa.array([{"x": 1, "y": "a"}]),
        pa.array(["a", "b", "a"]).dictionary_encode(),
        pa.array([None, None], pa.null()),
    ]


@pytest.mark.parametrize("array", _arrow_arrays(), ids=lambda array: str(array.type))
def test_table_keeps_each_arrow_type(array: Any) -> None:
    table = pa.table({"column": array})
    received = round_trip(table)
    assert received.schema == table.schema
    assert received.equals(table)


def test_table_read_from_the_body_views_it_without_a_copy() -> None:
    body, content_type = encode(pa.table({"x": np.arange(100_000, dtype=np.float64)}))
    table = decode(body, content_type)
    start = pa.py_buffer(body).address
    data = table.column("x").chunk(0).buffers()[1]
    assert start <= data.address
    assert data.address + data.size <= start + len(body)


def test_table_is_written_straight_into_the_body() -> None:
    table = pa.table({"x": np.ones(2**20)})  # 8 MiB
    tracemalloc.start()
    try:
        body, _ = encode(table)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert isinstance(body, bytes)
    assert peak < 1.1 * len(body), f"encoding allocated {peak / len(body):.2f} times the body"


def test_body_is_the_stream_any_arrow_reader_reads() -> None:
    table = pa.table({"a": [1, 2, 3]})
    body, _ = encode(table)
    read = pa.ipc.open_stream(body).read_all()
    assert read.column("a").to_pylist() == [1, 2, 3]
    assert read.schema.metadata == {KIND_KEY: b"pyarrow.Table"}


def test_stream_from_another_writer_arrives_as_a_table() -> None:
    sink = pa.BufferOutputStream()
    table = pa.table({"a": ["x", "y"]})
    with pa.ipc.new_stream(sink, table.schema) as writer:
        writer.write_table(table)
    received = decode(sink.getvalue().to_pybytes(), "Application/Vnd.Apache.Arrow.Stream")
    assert type(received) is pa.Table
    assert received.equals(table)


# pandas values


def _frames() -> list[Any]:
    dates = pd.date_range("2024-03-30", periods=3, freq="D", tz="Europe/Paris", name="day")
    return [
        mixed_frame(20),
        pd.DataFrame(
            {"i": pd.array([1, None, 3], dtype="Int64"), "u": pd.array([1, None, 2], dtype="UInt8")}
        ),
        pd.DataFrame(
            {"f": pd.array([1.5, None], dtype="Float64"), "b": pd.array([True, None], dtype="boolean")}
        ),
        pd.DataFrame({"s": pd.array(["a", None], dtype="string[python]"), "o": ["x", "y"]}),
        pd.DataFrame({"c": pd.Categorical(["b", None, "a"], categories=["c", "b", "a"], ordered=True)}),
        pd.DataFrame({"t": pd.to_datetime(["2024-01-01", None]).tz_localize("Asia/Kolkata").as_unit("ns")}),
        pd.DataFrame({"t": pd.to_datetime(["2024-01-01 12:00", None]).as_unit("s")}),
        pd.DataFrame({"d": pd.to_timedelta([1, None], unit="s")}),
        pd.DataFrame({"v": [1, 2, 3]}, index=dates),
        pd.DataFrame({"v": [1, 2]}, index=pd.Index(["p", "q"], name="key")),
        pd.DataFrame({"v": [1, 2]}, index=pd.RangeIndex(10, 14, 2)),
        pd.DataFrame({"v": [1, 2]}, index=pd.MultiIndex.from_tuples([(1, "x"), (2, "y")], names=["n", "s"])),
        pd.DataFrame({0: [1, 2], 1: [3.5, 4.5]}),
        pd.DataFrame([[1, 2]], columns=pd.RangeIndex(3, 7, 2)),
    ]


@pytest.mark.parametrize("frame", _frames(), ids=lambda f: ",".join(map(str, f.dtypes)) or "no columns")
def test_dataframe_arrives_with_its_columns_dtypes_index_and_values(frame: Any) -> None:
    assert_same_frame(round_trip(frame), frame)


@pytest.mark.parametrize(
    "frame",
    [
        pd.DataFrame(),
        pd.DataFrame(index=pd.Index([1, 2], name="k")),
        pd.DataFrame({"a": pd.Series([], dtype="Int64"), "s": pd.Series([], dtype="string")}),
        mixed_frame(0),
    ],
    ids=["nothing", "index only", "columns only", "mixed, 0 rows"],
)
def test_empty_dataframe_arrives_as_it_left(frame: Any) -> None:
    assert_same_frame(round_trip(frame), frame)


@pytest.mark.parametrize(
    "series",
    [
        pd.Series([1, 2, 3]),
        pd.Series([1.5, None], name="x"),
        pd.Series(pd.array([1, None], dtype="Int64"), name=0, index=pd.Index(["a", "b"])),
        pd.Series(pd.Categorical(["u", "v"]), name="cat"),
        pd.Series([0, 1], index=pd.date_range("2024", periods=2, freq="h", tz="UTC")),
        pd.Series([], dtype="string", name="empty"),
    ],
    ids=["unnamed", "named", "named 0", "categorical", "dated", "empty"],
)
def test_series_arrives_as_a_series(series: Any) -> None:
    assert_same_frame(round_trip(series), series)


_TEXT = st.text(st.characters(exclude_categories=["Cs"]), max_size=8)  # Arrow strings are UTF-8
_ZONES = st.sampled_from(["UTC", "Europe/Paris", "America/New_York", "Asia/Kolkata"])


@st.composite
def columns(draw: st.DrawFn, rows: int) -> Any:
    """A column of ``rows`` values of one of the dtypes people hold, missing values included."""
    kind = draw(
        st.sampled_from(
            [
                "int64",
                "float64",
                "bool",
                "Int64",
                "boolean",
                "string",
                "str",
                "category",
                "datetime",
                "timedelta",
            ]
        )
    )

    def values(elements: st.SearchStrategy[Any], missing: bool = True) -> list[Any]:
        return draw(st.lists(st.none() | elements if missing else elements, min_size=rows, max_size=rows))

    if kind == "int64":
        return pd.Series(values(st.integers(-(2**63), 2**63 - 1), missing=False), dtype="int64")
    if kind == "float64":
        return pd.Series(values(st.floats(), missing=False), dtype="float64")
    if kind == "bool":
        return pd.Series(values(st.booleans(), missing=False), dtype=bool)
    if kind == "Int64":
        return pd.Series(values(st.integers(-(2**63), 2**63 - 1)), dtype="Int64")
    if kind == "boolean":
        return pd.Series(values(st.booleans()), dtype="boolean")
    if kind == "string":
        return pd.Series(values(_TEXT), dtype=draw(st.sampled_from(["string[python]", "string[pyarrow]"])))
    if kind == "str":
        return pd.Series(values(_TEXT, missing=False))  # pandas' default for text: str (pandas 3), object
    if kind == "category":
        categories = draw(st.lists(_TEXT, min_size=1, max_size=4, unique=True))
        picked = values(st.sampled_from(categories))
        return pd.Series(pd.Categorical(picked, categories=categories, ordered=draw(st.booleans())))
    unit = draw(st.sampled_from(["s", "ms", "us", "ns"]))
    ticks = values(st.integers(-(2**61), 2**61))
    if kind == "timedelta":
        return pd.Series(pd.to_timedelta(ticks, unit="ns")).dt.as_unit(unit)
    when = pd.Series(pd.to_datetime(ticks, unit="ns", utc=True)).dt.as_unit(unit)
    return when.dt.tz_convert(draw(_ZONES)) if draw(st.booleans()) else when.dt.tz_localize(None)


@st.composite
def indexes(draw: st.DrawFn, rows: int) -> Any:
    kind = draw(st.sampled_from(["range", "named range", "int", "str", "dates", "multi"]))
    if kind == "range":
        return pd.RangeIndex(rows)
    if kind == "named range":
        start, step = draw(st.integers(-5, 5)), draw(st.integers(1, 3))
        return pd.RangeIndex(start, start + step * rows, step, name=draw(_TEXT))
    if kind == "int":
        return pd.Index(
            draw(st.lists(st.integers(-(2**63), 2**63 - 1), min_size=rows, max_size=rows)), dtype="int64"
        )
    if kind == "str":
        return pd.Index(draw(st.lists(_TEXT, min_size=rows, max_size=rows)), name="key")
    if kind == "dates":
        return pd.date_range(
            "2024-01-01", periods=rows, freq=draw(st.sampled_from(["D", "h", "15min"])), tz=draw(_ZONES)
        )
    numbers = draw(st.lists(st.integers(0, 3), min_size=rows, max_size=rows))
    return pd.MultiIndex.from_arrays([numbers, [str(n) for n in numbers]], names=["n", "s"])


@st.composite
def frames(draw: st.DrawFn) -> Any:
    """DataFrames of up to 6 columns of any of those dtypes, up to 12 rows, with any of those indexes."""
    rows = draw(st.integers(0, 12))
    names = draw(st.lists(_TEXT.filter(lambda name: not name.startswith("__")), max_size=6, unique=True))
    frame = pd.DataFrame({name: draw(columns(rows)) for name in names}, index=pd.RangeIndex(rows))
    frame.index = draw(indexes(rows))
    return frame


@given(frames())
@settings(max_examples=150)
def test_any_dataframe_round_trips(frame: Any) -> None:
    assert_same_frame(round_trip(frame), frame)


@given(
    hpd.data_frames(
        [
            hpd.column("i32", dtype=np.int32),
            hpd.column("u16", dtype=np.uint16),
            hpd.column("f32", dtype=np.float32),
            hpd.column("when", dtype="datetime64[ns]"),
            hpd.column("took", dtype="timedelta64[ns]"),
            hpd.column("flag", dtype=bool),
            hpd.column("text", elements=_TEXT),
        ],
        index=hpd.indexes(dtype=np.int64, max_size=10) | hpd.range_indexes(max_size=10),
    )
)
@settings(max_examples=50)
def test_any_frame_of_numpy_dtypes_round_trips(frame: Any) -> None:
    assert_same_frame(round_trip(frame), frame)


@given(st.integers(0, 12).flatmap(columns), st.none() | _TEXT)
@settings(max_examples=50)
def test_any_series_round_trips(series: Any, name: str | None) -> None:
    series = series.rename(name)
    assert_same_frame(round_trip(series), series)


def test_million_row_mixed_dtype_frame_round_trips_in_a_moment() -> None:
    frame = mixed_frame(1_000_000)
    began = time.perf_counter()
    body, content_type = encode(frame)
    received = decode(body, content_type)
    elapsed = time.perf_counter() - began
    assert_same_frame(received, frame)
    assert elapsed < 5, f"a 1e6-row frame took {elapsed:.1f} s to encode and decode"


def test_numeric_columns_of_a_received_frame_view_the_body_read_only() -> None:
    body, content_type = encode(pd.DataFrame({"x": np.arange(100_000, dtype=np.float64)}))
    frame = decode(body, content_type)
    column = frame["x"].to_numpy()
    start = pa.py_buffer(body).address
    assert start <= column.ctypes.data < start + len(body), "no copy: the column views the body"
    assert not column.flags.writeable
    with pytest.raises(ValueError, match="read-only"):
        frame.loc[0, "x"] = 1.0
    writable = frame.copy()
    writable.loc[0, "x"] = 1.0
    assert writable["x"].iloc[0] == 1.0


def test_object_column_of_strings_arrives_as_the_text_dtype() -> None:
    received = round_trip(pd.DataFrame({"o": pd.Series(["a", "b"], dtype=object)}))
    assert received["o"].tolist() == ["a", "b"]
    assert received["o"].dtype == pd.Series(["a"]).dtype, "pandas' own dtype for text"


@pytest.mark.parametrize(
    ("frame", "reason"),
    [
        ("pd.DataFrame({'a': [1, 'x']})", "Could not convert 'x'"),
        ("pd.DataFrame({'a': [object()]})", "Could not convert|did not recognize"),
        ("pd.DataFrame([[1, 2]], columns=['a', 'a'])", "Duplicate column names"),
        ("pd.DataFrame({'z': [1j]})", "complex"),
    ],
)
def test_frame_arrow_cannot_hold_is_refused_with_what_to_do(frame: str, reason: str) -> None:
    with pytest.raises(
        PayloadError, match=f"cannot send this pandas.DataFrame as an Arrow table: .*({reason})"
    ) as info:
        encode(eval(frame))
    assert "astype" in str(info.value)
    assert info.value.status is None


def test_frame_inside_a_list_is_refused_with_a_hint() -> None:
    with pytest.raises(PayloadError, match=r"pandas\.DataFrame travels only as the whole payload"):
        encode([pd.DataFrame({"a": [1]})])


# polars values


@needs_polars
@pytest.mark.parametrize(
    "frame",
    [
        "pl.DataFrame({'a': [1, None], 's': ['x', None], 'f': [0.5, float('nan')]})",
        "pl.DataFrame({'c': pl.Series(['u', 'v', 'u'], dtype=pl.Categorical)})",
        "pl.DataFrame({'t': pl.Series([0, None]).cast(pl.Datetime('us', 'Asia/Tokyo'))})",
        "pl.DataFrame({'d': pl.Series([1, 2]).cast(pl.Date), 'l': [[1], []]})",
        "pl.DataFrame({'a': pl.Series([], dtype=pl.Int32)})",
        "pl.DataFrame()",
    ],
)
def test_polars_frame_arrives_as_a_polars_frame(frame: str) -> None:
    sent = eval(frame)
    received = round_trip(sent)
    assert type(received) is pl.DataFrame
    assert received.schema == sent.schema
    assert received.equals(sent)


@needs_polars
def test_polars_series_arrives_as_a_polars_series() -> None:
    sent = pl.Series("n", [1, None, 3], dtype=pl.Int16)
    received = round_trip(sent)
    assert type(received) is pl.Series
    assert received.name == "n"
    assert received.dtype == pl.Int16
    assert received.equals(sent)


# Malformed bodies


def _malformed() -> dict[str, bytes]:
    good, _ = encode(pa.table({"s": ["ab", "cd"], "n": [1, 2]}))
    table = decode(good, ARROW)
    offsets = table.column("s").chunk(0).buffers()[1]
    at = offsets.address - pa.py_buffer(good).address  # where the string offsets lie in the body
    bad_offsets = good[:at] + np.array([0, 2, 2**30], dtype=np.int32).tobytes() + good[at + 12 :]
    return {
        "empty": b"",
        "not Arrow": b"[1, 2, 3]",
        "truncated": good[: len(good) // 2],
        "offsets past the data": bad_offsets,
        "schema only, cut": good[:16],
    }


@pytest.mark.parametrize("body", _malformed().values(), ids=_malformed().keys())
def test_malformed_arrow_is_400(body: bytes) -> None:
    with pytest.raises(PayloadError, match="not a valid Arrow IPC stream") as info:
        decode(body, ARROW)
    assert info.value.status == 400


@pytest.mark.parametrize("compression", ["lz4", "zstd"])
def test_compressed_arrow_is_400_before_it_is_decompressed(compression: str) -> None:
    table = pa.table({"x": np.zeros(10_000)})
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(
        sink, table.schema, options=pa.ipc.IpcWriteOptions(compression=compression)
    ) as writer:
        writer.write_table(table)
    body = sink.getvalue().to_pybytes()
    assert len(body) < table.nbytes / 10, "a small body that unpacks into much more"
    with pytest.raises(PayloadError, match="compressed, which dataserve does not take") as info:
        decode(body, ARROW)
    assert info.value.status == 400


def test_arrow_saying_it_is_a_frame_it_is_not_is_400() -> None:
    table = pa.table({"a": [1]}).replace_schema_metadata({b"pandas": b'{"columns": "not a list"}'})
    with pytest.raises(PayloadError) as info:
        decode(_claiming(table, "pandas.DataFrame"), ARROW)
    assert info.value.status == 400
    assert "says it holds a pandas.DataFrame" in str(info.value)


def _claiming(table: Any, kind: str) -> bytes:
    """A stream of ``table`` whose metadata claims ``kind``, as a foreign or hostile writer makes it."""
    sink = pa.BufferOutputStream()
    schema = table.schema.with_metadata({**(table.schema.metadata or {}), KIND_KEY: kind.encode()})
    with pa.ipc.new_stream(sink, schema) as writer:
        writer.write_table(table.replace_schema_metadata(schema.metadata))
    return bytes(sink.getvalue().to_pybytes())


def test_unknown_kind_arrives_as_a_table() -> None:
    table = pa.table({"a": [1]})
    received = decode(_claiming(table, "someone.Else"), ARROW)
    assert type(received) is pa.Table
    assert received.equals(table)


def test_arrow_is_never_unpickled(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("dataserve unpickled a payload")

    monkeypatch.setattr(pickle, "load", refuse)
    monkeypatch.setattr(pickle, "loads", refuse)
    assert_same_frame(round_trip(mixed_frame(10)), mixed_frame(10))


# Without pyarrow, pandas or polars


def test_frame_sent_without_pyarrow_is_refused_naming_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    frame = pd.DataFrame({"a": [1]})
    monkeypatch.setitem(sys.modules, "pyarrow", None)
    with pytest.raises(PayloadError, match=r"without pyarrow.*pip install pyarrow"):
        encode(frame)


def test_arrow_without_pyarrow_is_415_naming_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    body, _ = encode(pa.table({"a": [1]}))
    monkeypatch.setitem(sys.modules, "pyarrow", None)
    with pytest.raises(PayloadError, match=NEEDS_PYARROW_415) as info:
        decode(body, ARROW)
    assert info.value.status == 415


def test_frame_arrives_as_a_table_where_pandas_is_missing(monkeypatch: pytest.MonkeyPatch) -> None:
    frame = pd.DataFrame({"a": pd.array([1, None], dtype="Int64"), "s": ["x", "y"]}, index=pd.Index([5, 6]))
    body, content_type = encode(frame)
    monkeypatch.setitem(sys.modules, "pandas", None)
    received = decode(body, content_type)
    assert type(received) is pa.Table
    assert received.column("a").to_pylist() == [1, None]
    assert received.column("s").to_pylist() == ["x", "y"]
    assert received.column("__index_level_0__").to_pylist() == [5, 6]
    assert received.schema.pandas_metadata is not None, "pandas can make the frame of it later"


@needs_polars
def test_polars_frame_arrives_as_a_table_where_polars_is_missing(monkeypatch: pytest.MonkeyPatch) -> None:
    body, content_type = encode(pl.DataFrame({"a": [1, 2]}))
    monkeypatch.setitem(sys.modules, "polars", None)
    received = decode(body, content_type)
    assert type(received) is pa.Table
    assert received.to_pydict() == {"a": [1, 2]}


def test_dataserve_imports_no_table_library() -> None:
    code = (
        "import sys, dataserve\n"
        "from dataserve._codec import decode, encode\n"
        "assert decode(*encode([1, 'a'])) == [1, 'a']\n"
        "try:\n"
        "    encode({1})\n"
        "except dataserve.PayloadError:\n"
        "    pass\n"
        "loaded = {'pyarrow', 'pandas', 'polars'} & set(sys.modules)\n"
        "assert not loaded, f'dataserve imported {loaded}'\n"
    )
    run_in_fresh_python(code)


# Tables through a real server


class TableHandler(HTTPDataHandler):
    """Echoes tables, makes them, and tells what it was sent."""

    def handle_request(self, resource: str, payload: Any) -> Any:
        if resource == "/echo":
            return payload
        if resource == "/frame":
            return mixed_frame(int(payload))
        if resource == "/describe":
            return {
                "type": f"{type(payload).__module__.partition('.')[0]}.{type(payload).__name__}",
                "dtypes": [str(dtype) for dtype in payload.dtypes],
                "index": type(payload.index).__name__,
            }
        if resource == "/frames":
            return [pd.DataFrame({"a": [1]})]
        return None


@pytest.fixture(scope="module")
def table_server(server_lane: str) -> Iterator[RunningServer]:
    with serve(TableHandler, port=0) as running:
        yield running


@pytest.fixture
def table_client(table_server: RunningServer) -> Iterator[HTTPDataClient]:
    with HTTPDataClient(table_server.port, "http://127.0.0.1:", timeout=30) as http_client:
        yield http_client


@pytest.mark.parametrize("frame", _frames()[:9], ids=lambda f: ",".join(map(str, f.dtypes)))
def test_dataframe_round_trips_through_server(table_client: HTTPDataClient, frame: Any) -> None:
    assert_same_frame(table_client.send("/echo", frame), frame)


def test_handler_gets_the_dataframe_sent(table_client: HTTPDataClient) -> None:
    frame = mixed_frame(3)
    assert table_client.send("/describe", frame) == {
        "type": "pandas.DataFrame",
        "dtypes": [str(dtype) for dtype in frame.dtypes],
        "index": "RangeIndex",
    }


def test_tables_of_every_kind_round_trip_through_server(table_client: HTTPDataClient) -> None:
    table = pa.table({"a": [1, None]})
    assert table_client.send("/echo", table).equals(table)
    batch = table.to_batches()[0]
    received = table_client.send("/echo", batch)
    assert type(received) is pa.RecordBatch
    assert received.equals(batch)
    series = pd.Series([1.5, 2.5], name="x")
    assert_same_frame(table_client.send("/echo", series), series)
    if pl is not None:
        polars_frame = pl.DataFrame({"a": [1, 2], "s": ["x", None]})
        assert table_client.send("/echo", polars_frame).equals(polars_frame)


@given(frames())
@settings(max_examples=15, suppress_health_check=[HealthCheck.function_scoped_fixture])
def test_any_dataframe_round_trips_through_server(table_client: HTTPDataClient, frame: Any) -> None:
    assert_same_frame(table_client.send("/echo", frame), frame)


def test_frames_the_handler_makes_arrive(table_client: HTTPDataClient) -> None:
    assert_same_frame(table_client.send("/frame", 5), mixed_frame(5))
    assert_same_frame(table_client.send("/frame", 0), mixed_frame(0))


def test_million_row_frame_goes_and_comes_back(table_client: HTTPDataClient) -> None:
    frame = mixed_frame(1_000_000)
    assert_same_frame(table_client.send("/echo", frame), frame)


def test_frame_in_a_reply_list_is_a_500_naming_it(table_client: HTTPDataClient) -> None:
    with pytest.raises(RemoteError, match="travels only as the whole payload") as info:
        table_client.send("/frames")
    assert info.value.remote_type == "PayloadError"


def test_arrow_over_plain_http(table_server: RunningServer) -> None:
    table = pa.table({"n": [1, 2, 3]})
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, table.schema) as writer:
        writer.write_table(table)
    with httpx.Client(base_url=table_server.url) as http:
        response = http.put("/echo", content=sink.getvalue().to_pybytes(), headers={"Content-Type": ARROW})
        assert response.status_code == 200
        assert response.headers["content-type"] == ARROW
        assert pa.ipc.open_stream(response.content).read_all().equals(table)

        response = http.put("/echo", content=b"garbage", headers={"Content-Type": ARROW})
        assert response.status_code == 400
        assert response.json()["error"] == "bad_payload"


_SERVER_WITHOUT = """
import sys
sys.modules[sys.argv[1]] = None  # import raises ImportError, as if it were not installed
from dataserve import HTTPDataHandler, serve


class Describe(HTTPDataHandler):
    def handle_request(self, resource, payload):
        return f"{type(payload).__module__.partition('.')[0]}.{type(payload).__name__}"

with serve(Describe, port=0) as server:
    print(server.port, flush=True)
    sys.stdin.read()
"""


@pytest.fixture
def server_without(request: pytest.FixtureRequest) -> Iterator[HTTPDataClient]:
    """A client of a server in a process of its own where the module ``request.param`` is missing."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    with subprocess.Popen(
        [sys.executable, "-c", _SERVER_WITHOUT, request.param],
        env=env,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        preexec_fn=die_with_test,
    ) as process:
        assert process.stdin is not None
        assert process.stdout is not None
        try:
            port = int(process.stdout.readline())
            with HTTPDataClient(port, "http://127.0.0.1:", timeout=30) as http_client:
                yield http_client
        finally:
            process.stdin.close()
            assert process.wait(timeout=30) == 0


@pytest.mark.parametrize("server_without", ["pyarrow"], indirect=True)
def test_server_without_pyarrow_answers_415_naming_the_extra(server_without: HTTPDataClient) -> None:
    with pytest.raises(PayloadError, match=NEEDS_PYARROW_415) as info:
        server_without.send("/describe", pd.DataFrame({"a": [1]}))
    assert info.value.status == 415
    assert server_without.send("/describe", [1]) == "builtins.list", "the rest works without pyarrow"


@pytest.mark.parametrize("server_without", ["pandas"], indirect=True)
def test_server_without_pandas_gets_a_pyarrow_table(server_without: HTTPDataClient) -> None:
    assert server_without.send("/describe", pd.DataFrame({"a": [1]})) == "pyarrow.Table"

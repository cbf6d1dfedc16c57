"""Tables as ``application/vnd.apache.arrow.stream`` bodies: the Arrow IPC stream format, never pickle.

A ``pyarrow.Table`` or ``RecordBatch``, a pandas ``DataFrame`` or ``Series`` and a polars
``DataFrame`` or ``Series`` travel as one Arrow IPC stream. The kind of object the sender had
rides in the stream's schema metadata (``dataserve.kind``), and the receiving side makes that
kind again if it can import its library, or hands a ``pyarrow.Table`` if not. pandas keeps its
index and dtypes through the ``pandas`` metadata pyarrow writes; dataserve adds what that
metadata leaves out (a Series, and the storage of ``string`` columns) under ``dataserve.pandas``.

None of pyarrow, pandas or polars is imported here unless such a value is sent (it can only be
one if its library is imported already: ``table_kind`` looks in ``sys.modules``) or such a body
arrives.

Copies: a stream is written once, straight into the ``bytes`` object that is sent (its size
is measured first by a dry run that copies nothing). A stream read is a table whose buffers
are views of the body, checked in full before anything reads them (a hostile body's offsets
must not make pyarrow read out of bounds); pandas columns that need no conversion view them
too, read-only, as arrays arriving as ``.npy`` do.
"""

from __future__ import annotations

import importlib
import json
from types import ModuleType
from typing import Any

from ._buffers import BodyBuffer
from ._errors import PayloadError
from ._ipccheck import compressed
from ._npy import imported

__all__ = ["ARROW", "ARROW_EXTRA", "KINDS", "decode_arrow", "encode_arrow", "stream_of", "table_kind"]

ARROW = "application/vnd.apache.arrow.stream"

ARROW_EXTRA = "pip install pyarrow"

KIND_KEY = b"dataserve.kind"
"""The schema metadata key that names the kind of object the sender had."""

PANDAS_KEY = b"dataserve.pandas"
"""The schema metadata key of what pandas' own metadata leaves out: JSON, see ``_pandas_extra``."""

KINDS = {
    "pyarrow.Table": ("pyarrow", "Table"),
    "pyarrow.RecordBatch": ("pyarrow", "RecordBatch"),
    "pandas.DataFrame": ("pandas", "DataFrame"),
    "pandas.Series": ("pandas", "Series"),
    "polars.DataFrame": ("polars", "DataFrame"),
    "polars.Series": ("polars", "Series"),
}
"""Each kind of table that travels as Arrow, by its name in ``dataserve.kind``: its module and class."""


def table_kind(value: object) -> str | None:
    """The kind of table ``value`` is (a key of KINDS), or None; only imported libraries are looked at."""
    for kind, (module_name, class_name) in KINDS.items():
        module = imported(module_name)
        if module is not None and isinstance(value, getattr(module, class_name)):
            return kind
    return None


def encode_arrow(value: Any, kind: str) -> bytes:
    """The Arrow IPC stream of ``value``, a table of ``kind``, with the kind in its schema metadata."""
    try:
        pa = importlib.import_module("pyarrow")
    except ImportError:
        raise PayloadError(
            f"cannot send a {kind} without pyarrow, which carries tables as Arrow: {ARROW_EXTRA}"
        ) from None
    try:
        table = _to_arrow(pa, value, kind)
    except PayloadError:
        raise
    except Exception as exc:  # whatever the library raises for a value Arrow cannot hold
        raise PayloadError(
            f"cannot send this {kind} as an Arrow table: {_first_line(exc)}. Give each column values "
            "of one type (df[column].astype(...)) and each column a name of its own; dataserve does "
            "not pickle, so columns of Python objects Arrow has no type for cannot travel"
        ) from None
    return _write_stream(pa, table)


def _to_arrow(pa: Any, value: Any, kind: str) -> Any:
    """``value`` as a pyarrow Table or RecordBatch, its kind (and pandas' extras) in its metadata."""
    extra: dict[bytes, bytes] = {}
    if kind.startswith("pyarrow."):
        table = value
    elif kind.startswith("pandas."):
        frame = value.to_frame() if kind == "pandas.Series" else value
        table = pa.Table.from_pandas(frame, preserve_index=None)
        extra[PANDAS_KEY] = json.dumps(_pandas_extra(value, frame, kind)).encode()
    else:
        frame = value.to_frame() if kind == "polars.Series" else value
        table = _polars_to_arrow(frame)
    metadata = {**(table.schema.metadata or {}), KIND_KEY: kind.encode(), **extra}
    return table.replace_schema_metadata(metadata)


def _pandas_extra(value: Any, frame: Any, kind: str) -> dict[str, Any]:
    """What pandas' metadata does not say: that the value was a Series without a name; the
    storage of each ``string`` column by position (the metadata says only ``string``, which
    pandas reads as its default storage); columns labelled by a RangeIndex (read back as
    integers); the RangeIndex of a frame of no columns (an Arrow table of no columns has no
    rows); and the ``freq`` of a DatetimeIndex or TimedeltaIndex."""
    pd = imported("pandas")
    assert pd is not None
    strings = {
        str(position): dtype.storage
        for position, dtype in enumerate(frame.dtypes)
        if isinstance(dtype, pd.StringDtype)
    }
    extra: dict[str, Any] = {"unnamed": kind == "pandas.Series" and value.name is None, "strings": strings}
    columns = frame.columns
    if kind == "pandas.DataFrame" and isinstance(columns, pd.RangeIndex):
        extra["range_columns"] = [columns.start, columns.stop, columns.step]
    index = frame.index
    if frame.shape[1] == 0 and isinstance(index, pd.RangeIndex):  # a table of no columns has no rows
        name = index.name if isinstance(index.name, (str, int, float, type(None))) else str(index.name)
        extra["range_index"] = [index.start, index.stop, index.step, name]
    freq = getattr(frame.index, "freqstr", None)
    if freq is not None and isinstance(frame.index, (pd.DatetimeIndex, pd.TimedeltaIndex)):
        extra["freq"] = freq
    return extra


def _polars_to_arrow(frame: Any) -> Any:
    """A polars DataFrame as a pyarrow Table of the types every Arrow reader knows (large_string,
    not the string views older readers lack)."""
    pl = imported("polars")
    assert pl is not None
    compat = getattr(pl, "CompatLevel", None)
    if compat is None:  # polars before 1.0
        return frame.to_arrow()
    return frame.to_arrow(compat_level=compat.oldest())


def _write_stream(pa: Any, table: Any) -> bytes:
    """The IPC stream of ``table``, written straight into the ``bytes`` object returned."""
    counter = pa.MockOutputStream()  # counts what a write would take, copying nothing
    _write(pa, counter, table)
    size = counter.size()
    buffer = BodyBuffer(size)
    view = buffer.space()
    sink = pa.FixedSizeBufferWriter(pa.py_buffer(view))
    _write(pa, sink, table)
    written = sink.tell()
    sink.close()
    del sink  # drops pyarrow's hold on ``view``, so that the bytes are handed over without a copy
    view.release()
    if written != size:  # pragma: no cover - pyarrow writes a table the same way twice
        raise RuntimeError(f"pyarrow wrote {written} bytes of an Arrow stream it had measured at {size}")
    buffer.advance(size)
    return buffer.value()


def _write(pa: Any, sink: Any, table: Any) -> None:
    with pa.ipc.new_stream(sink, table.schema) as writer:
        if isinstance(table, pa.Table) and table.num_rows == 0:
            # A table of no rows writes no batch, and so none of its dictionaries: a categorical
            # column would arrive without its categories. One batch of no rows carries them.
            arrays = [
                column.chunk(0) if column.num_chunks else pa.array([], column.type)
                for column in table.columns
            ]
            writer.write_batch(pa.RecordBatch.from_arrays(arrays, schema=table.schema))
        else:
            writer.write(table)


def stream_of(data: bytes) -> bytes:
    """The Arrow IPC stream of ``data``, a stream or an IPC file (Feather v2), checked as a server
    checks one: a stream as it is, a file rewritten as a stream with its schema metadata.

    Raises PayloadError (415 without pyarrow, 400 for data that is neither).
    """
    pa = _pyarrow()
    try:
        if data[:6] == b"ARROW1":
            table = pa.ipc.open_file(pa.py_buffer(data)).read_all()
            table.validate(full=True)
            return _write_stream(pa, table)
        _refuse_compressed(pa, pa.py_buffer(data))
        pa.ipc.open_stream(pa.py_buffer(data)).read_all().validate(full=True)
    except (pa.ArrowException, ValueError, OSError, TypeError, IndexError) as exc:
        raise PayloadError(f"not an Arrow IPC stream or file: {_first_line(exc)}", status=400) from None
    return data


def _refuse_compressed(pa: Any, buffer: Any) -> None:
    """PayloadError (400) for a stream with a compressed batch, before pyarrow decompresses it."""
    if compressed(pa, buffer):
        raise PayloadError(
            "the Arrow IPC stream is compressed, which dataserve does not take (a small body could "
            "unpack into more memory than the server's limits allow): write it uncompressed, as "
            "pyarrow does by default",
            status=400,
        )


def _pyarrow() -> Any:
    """pyarrow, or the PayloadError (415) that says how to install it."""
    try:
        return importlib.import_module("pyarrow")
    except ImportError:
        raise PayloadError(
            f"{ARROW} (an Arrow table) needs pyarrow, which is not installed here: {ARROW_EXTRA} "
            "(with pandas or polars as well, to get their tables as they were sent)",
            status=415,
        ) from None


def decode_arrow(body: bytes | bytearray) -> Any:
    """The table an Arrow IPC stream body carries, as the kind the sender had where this side can
    make it (a ``pyarrow.Table`` where it cannot): a view of ``body``, never unpickled."""
    pa = _pyarrow()
    try:
        _refuse_compressed(pa, pa.py_buffer(body))
        reader = pa.ipc.open_stream(pa.py_buffer(body))
        metadata = dict(reader.schema.metadata or {})
        kind = metadata.pop(KIND_KEY, b"pyarrow.Table").decode("utf-8", "replace")
        extra = metadata.pop(PANDAS_KEY, None)
        if kind == "pyarrow.RecordBatch":
            batches = list(reader)
            table = batches[0] if len(batches) == 1 else pa.Table.from_batches(batches, reader.schema)
        else:
            table = reader.read_all()
        table.validate(full=True)
    except (pa.ArrowException, ValueError, OSError, TypeError, IndexError) as exc:
        raise PayloadError(
            f"the body is not a valid Arrow IPC stream: {_first_line(exc)}", status=400
        ) from None
    table = table.replace_schema_metadata(metadata or None)
    if kind not in KINDS or kind.startswith("pyarrow."):
        return table
    library = _importable(KINDS[kind][0])
    if library is None:
        return table  # pandas or polars is not installed here: the table as pyarrow has it
    try:
        if kind.startswith("pandas."):
            return _to_pandas(library, table, kind, extra)
        frame = library.from_arrow(table, rechunk=False)
        return frame.to_series(0) if kind == "polars.Series" else frame
    except Exception as exc:  # metadata a hostile or foreign writer made
        raise PayloadError(
            f"the Arrow body says it holds a {kind}, but it does not make one: {_first_line(exc)}",
            status=400,
        ) from None


def _to_pandas(pd: ModuleType, table: Any, kind: str, extra: bytes | None) -> Any:
    """The pandas DataFrame or Series ``table`` holds: columns that need no conversion view the
    body, read-only (``split_blocks`` keeps them from being joined into one new block)."""
    frame = table.to_pandas(split_blocks=True)
    details = json.loads(extra) if extra else {}
    for position, storage in details.get("strings", {}).items():
        column = int(position)
        dtype = frame.dtypes.iloc[column]
        if isinstance(dtype, pd.StringDtype) and dtype.storage != storage:
            frame.isetitem(column, frame.iloc[:, column].astype(_string_dtype(pd, storage, dtype)))
    if "range_index" in details:
        start, stop, step, name = details["range_index"]
        frame = pd.DataFrame(index=pd.RangeIndex(start, stop, step, name=name))
    if "range_columns" in details:
        frame.columns = pd.RangeIndex(*details["range_columns"])
    if "freq" in details:
        frame.index = type(frame.index)(frame.index, freq=details["freq"])
    if kind == "pandas.DataFrame":
        return frame
    series = frame.iloc[:, 0]
    if details.get("unnamed"):
        series.name = None
    return series


def _string_dtype(pd: ModuleType, storage: str, like: Any) -> Any:
    """pandas' string dtype of ``storage`` with the missing value of ``like`` (pandas 2.3 on)."""
    try:
        return pd.StringDtype(storage, na_value=like.na_value)
    except TypeError:  # pandas before 2.3 has one missing value for strings, pd.NA
        return pd.StringDtype(storage)


def _importable(name: str) -> ModuleType | None:
    """The module ``name``, imported now if need be, or None if it is not installed (or blocked)."""
    try:
        return importlib.import_module(name)
    except ImportError:
        return None


def _first_line(exc: BaseException) -> str:
    return str(exc).strip().split("\n", 1)[0] or type(exc).__name__

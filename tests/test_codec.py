from __future__ import annotations

import io
import math
import os
import pickle
import struct
import subprocess
import sys
import threading
import time
import tracemalloc
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dataserve import HTTPDataClient, HTTPDataHandler, PayloadError, RemoteError, RunningServer, serve
from dataserve._codec import BYTES, JSON, NPY, TEXT, decode, encode
from tests.conftest import die_with_test, run_in_fresh_python

try:
    import numpy as np
    from hypothesis.extra import numpy as hnp
except ImportError:  # pragma: no cover - the test extra installs numpy; without it the array tests skip
    np = None  # type: ignore[assignment]


def same(a: Any, b: Any) -> bool:
    """Equal, with NaN equal to NaN, -0.0 told from 0.0, and bool told from int."""
    if type(a) is not type(b):
        return False
    if isinstance(a, float):
        return (math.isnan(a) and math.isnan(b)) or (a == b and math.copysign(1, a) == math.copysign(1, b))
    if isinstance(a, list):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(same(a[k], b[k]) for k in a)
    return bool(a == b)


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(),
    lambda children: st.lists(children) | st.dictionaries(st.text(), children),
    max_leaves=30,
)


def test_str_travels_as_utf8_text() -> None:
    assert encode("héllo") == ("héllo".encode(), TEXT)


def test_none_travels_as_json_null() -> None:
    assert encode(None) == (b"null", JSON)


@pytest.mark.parametrize("value", [b"ab", bytearray(b"ab"), memoryview(b"ab")])
def test_bytes_like_values_travel_as_octet_stream(value: Any) -> None:
    assert encode(value) == (b"ab", BYTES)


def test_tuple_comes_back_as_list() -> None:
    assert decode(*encode((1, "a"))) == [1, "a"]


def test_int_dict_keys_come_back_as_strings() -> None:
    assert decode(*encode({1: "a"})) == {"1": "a"}


def test_nan_and_infinities_round_trip() -> None:
    value = decode(*encode([math.nan, math.inf, -math.inf]))
    assert math.isnan(value[0])
    assert value[1:] == [math.inf, -math.inf]


@pytest.mark.parametrize("value", [{1, 2}, object(), [1, {2}], {(1, 2): "tuple key"}, 1j])
def test_values_json_cannot_carry_are_refused(value: Any) -> None:
    with pytest.raises(PayloadError, match="cannot send"):
        encode(value)


def test_refusal_names_the_type_and_what_is_allowed() -> None:
    with pytest.raises(PayloadError, match=r"type set: dataserve sends str, a JSON-able value"):
        encode({1})


def test_lone_surrogate_in_str_is_refused() -> None:
    with pytest.raises(PayloadError, match="UTF-8"):
        encode("\ud800")


def test_self_referencing_list_is_refused() -> None:
    loop: list[Any] = []
    loop.append(loop)
    with pytest.raises(PayloadError, match="Circular reference"):
        encode(loop)


def test_empty_body_without_content_type_is_none() -> None:
    assert decode(b"", None) is None


def test_empty_text_is_empty_str() -> None:
    assert decode(b"", TEXT) == ""


def test_body_without_content_type_is_415() -> None:
    with pytest.raises(PayloadError) as info:
        decode(b"x", None)
    assert info.value.status == 415


def test_unknown_content_type_is_415() -> None:
    with pytest.raises(PayloadError, match="unsupported Content-Type") as info:
        decode(b"x", "image/png")
    assert info.value.status == 415


def test_bad_json_is_400() -> None:
    with pytest.raises(PayloadError, match="not valid JSON") as info:
        decode(b"[1,", JSON)
    assert info.value.status == 400


def test_deeply_nested_json_is_400() -> None:
    with pytest.raises(PayloadError, match="not valid JSON") as info:
        decode(b"[" * 100_000 + b"]" * 100_000, JSON)
    assert info.value.status == 400


def test_bad_utf8_text_is_400() -> None:
    with pytest.raises(PayloadError, match="not valid utf-8") as info:
        decode(b"\xff", TEXT)
    assert info.value.status == 400


def test_text_charset_is_honoured() -> None:
    assert decode("é".encode("latin-1"), "text/plain; charset=latin-1") == "é"


def test_unknown_charset_is_415() -> None:
    with pytest.raises(PayloadError) as info:
        decode(b"x", "text/plain; charset=nope")
    assert info.value.status == 415


def test_content_type_is_case_insensitive() -> None:
    assert decode(b"[1]", "Application/JSON; charset=utf-8") == [1]


@given(st.text())
def test_any_str_round_trips(value: str) -> None:
    assert decode(*encode(value)) == value


@given(json_values)
def test_any_json_value_round_trips(value: Any) -> None:
    assert same(decode(*encode(value)), value)


@given(st.binary())
def test_any_bytes_round_trip(value: bytes) -> None:
    assert decode(*encode(value)) == value


# NumPy arrays as application/x-npy.

needs_numpy = pytest.mark.skipif(np is None, reason="needs numpy: pip install numpy")
has_string_dtype = pytest.mark.skipif(
    not hasattr(getattr(np, "dtypes", None), "StringDType"), reason="StringDType is new in NumPy 2"
)
NEEDS_NUMPY_415 = r"needs NumPy.*pip install numpy"
ROOT = Path(__file__).parent.parent


def _dtypes() -> st.SearchStrategy[Any]:
    """Every dtype .npy carries without pickle, in both byte orders, and structured ones of them."""
    simple = (
        hnp.boolean_dtypes()
        | hnp.integer_dtypes(endianness="?")
        | hnp.unsigned_integer_dtypes(endianness="?")
        | hnp.floating_dtypes(endianness="?")
        | hnp.complex_number_dtypes(endianness="?")
        | hnp.datetime64_dtypes(endianness="?")
        | hnp.timedelta64_dtypes(endianness="?")
        | hnp.byte_string_dtypes(endianness="?", min_len=1, max_len=6)
        | hnp.unicode_string_dtypes(endianness="?", min_len=1, max_len=6)
    )
    # Structured dtypes nest these, with subarray fields and any field names (some not
    # Latin-1, which takes .npy format 3.0).
    return hnp.nested_dtypes(simple, max_leaves=5)


@st.composite
def any_arrays(draw: st.DrawFn) -> Any:
    """Arrays of any dtype and shape (0-d and empty included), C-, Fortran- or not contiguous."""
    dtype = draw(st.deferred(_dtypes))
    array = draw(hnp.arrays(dtype, hnp.array_shapes(min_dims=0, max_dims=4, min_side=0, max_side=4)))
    layout = draw(st.sampled_from(["C", "F", "transposed", "strided"]))
    if layout == "F":
        return np.asfortranarray(array)
    if layout == "transposed":
        return array.T
    if layout == "strided" and array.ndim:
        return array[::-2]
    return array


def assert_same_array(received: Any, sent: Any) -> None:
    """Same dtype, shape and contents (bit for bit, so NaN and NaT count), and the layout kept."""
    assert type(received) is np.ndarray
    assert received.dtype == sent.dtype
    assert received.dtype.descr == sent.dtype.descr
    assert received.shape == sent.shape
    assert received.tobytes() == sent.tobytes()
    if sent.flags.f_contiguous and not sent.flags.c_contiguous:
        assert received.flags.f_contiguous, "a Fortran-ordered array arrives Fortran-ordered"
    else:
        assert received.flags.c_contiguous


def numpy_load(body: bytes) -> Any:
    return np.load(io.BytesIO(body), allow_pickle=False)


def numpy_save(array: Any, **options: Any) -> bytes:
    out = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # "Stored array in format 3.0"
        np.lib.format.write_array(out, array, **options)
    return out.getvalue()


@needs_numpy
@given(any_arrays())
@settings(max_examples=200)
def test_any_array_round_trips(array: Any) -> None:
    body, content_type = encode(array)
    assert content_type == NPY
    assert_same_array(decode(body, content_type), array)


@needs_numpy
@given(any_arrays())
@settings(max_examples=100)
def test_body_is_the_npy_file_numpy_reads_and_writes(array: Any) -> None:
    body, _ = encode(array)
    assert_same_array(numpy_load(body), array)
    assert_same_array(decode(numpy_save(array, allow_pickle=False), NPY), array)


def _examples() -> list[Any]:
    if np is None:
        return []
    grid = np.arange(12.0).reshape(3, 4)
    return [
        grid,
        np.asfortranarray(grid),
        grid.T,
        grid[:, ::2],
        np.array(2.5),
        np.array(7, dtype=">i2"),
        np.zeros((0,)),
        np.zeros((3, 0, 2), order="F"),
        np.arange(6, dtype=">f8").reshape(2, 3),
        np.array([True, False]),
        np.array([1 + 2j, np.nan * 1j], dtype=np.complex64),
        np.array([1, 2], dtype=np.longdouble) / 3,
        np.array(["2024-01-01", "NaT"], dtype="datetime64[D]"),
        np.array([1, -1], dtype="timedelta64[ns]"),
        np.array([b"ab", b""], dtype="S3"),
        np.array(["é", "名前"], dtype="<U2"),
        np.array(["big"], dtype=">U3"),
        np.zeros(3, dtype=[("id", "<i4"), ("xy", ">f8", (2,)), ("tag", "S2")]),
        np.zeros(2, dtype=[("名", "i4"), ("pt", [("x", "f4"), ("y", "f4")])]),
        np.zeros(4, dtype=np.dtype([])),
        np.zeros((2, 3), dtype=np.uint8)[:, 1],
    ]


@needs_numpy
@pytest.mark.parametrize("array", _examples(), ids=lambda a: f"{a.dtype}-{a.shape}")
def test_array_arrives_with_its_dtype_shape_order_and_contents(array: Any) -> None:
    body, content_type = encode(array)
    assert_same_array(decode(body, content_type), array)
    assert_same_array(numpy_load(body), array)


@needs_numpy
def test_fortran_array_is_sent_as_is_with_fortran_order() -> None:
    array = np.asfortranarray(np.arange(6, dtype="<i4").reshape(2, 3))
    body, _ = encode(array)
    assert b"'fortran_order': True" in body[:128]
    assert body.endswith(array.tobytes(order="F")), "the data is the array's memory, not reordered"


@needs_numpy
@pytest.mark.parametrize(
    ("layout", "copies"),
    [("C", 1), ("F", 1), ("strided", 2)],
)
def test_encoding_copies_the_data_once_and_decoding_not_at_all(layout: str, copies: int) -> None:
    size = 8 * 2**20
    flat = np.ones(2 * size // 8)
    array = {"C": flat[: size // 8], "F": flat[: size // 8].reshape(1024, -1).T, "strided": flat[::2]}[layout]
    assert array.nbytes == size
    tracemalloc.start()
    try:
        body, content_type = encode(array)
        _, peak = tracemalloc.get_traced_memory()
        assert peak < (copies + 0.1) * size, f"encoding allocated {peak / size:.2f} times the data"
        tracemalloc.reset_peak()
        before, _ = tracemalloc.get_traced_memory()
        decode(body, content_type)
        _, peak = tracemalloc.get_traced_memory()
        assert peak - before < 0.1 * size, f"decoding allocated {(peak - before) / size:.2f} times the data"
    finally:
        tracemalloc.stop()


@needs_numpy
def test_header_is_aligned_and_version_1_0_unless_field_names_need_3_0() -> None:
    body, _ = encode(np.arange(3))
    assert body[:8] == b"\x93NUMPY\x01\x00"
    assert (len(body) - 24) % 64 == 0
    assert encode(np.zeros(1, dtype=[("名", "i4")]))[0][:8] == b"\x93NUMPY\x03\x00"


@needs_numpy
def test_array_subclass_arrives_as_plain_ndarray() -> None:
    class Tagged(np.ndarray[Any, Any]):
        pass

    value = decode(*encode(np.arange(4).reshape(2, 2).view(Tagged)))
    assert type(value) is np.ndarray
    assert value.tolist() == [[0, 1], [2, 3]]


@needs_numpy
def test_arriving_array_is_a_read_only_view_of_the_body() -> None:
    body, content_type = encode(np.arange(1000.0))
    array = decode(body, content_type)
    assert array.base is body, "no copy: the array views the body"
    assert not array.flags.writeable
    with pytest.raises(ValueError, match="read-only"):
        array += 1
    writable = array.copy()
    writable += 1
    assert writable[-1] == 1000.0


@needs_numpy
def test_versions_2_0_and_3_0_from_other_writers_are_read() -> None:
    array = np.arange(5, dtype=">i8")
    for version in [(1, 0), (2, 0), (3, 0)]:
        assert_same_array(decode(numpy_save(array, version=version), NPY), array)


@needs_numpy
@pytest.mark.parametrize(
    ("scalar", "body"),
    [
        ("np.int64(3)", b"3"),
        ("np.uint8(255)", b"255"),
        ("np.bool_(True)", b"true"),
        ("np.float32(0.5)", b"0.5"),
        ("np.float64(-0.0)", b"-0.0"),
        ("np.float16(np.inf)", b"Infinity"),
        ("[np.int8(1), {'mean': np.float32(2.5)}]", b'[1,{"mean":2.5}]'),
    ],
)
def test_numpy_bool_int_and_float_scalars_travel_as_json(scalar: str, body: bytes) -> None:
    assert encode(eval(scalar)) == (body, JSON)


@needs_numpy
@pytest.mark.parametrize("scalar", ["np.complex128(1j)", "np.datetime64('2024-01-01')", "np.longdouble(1)"])
def test_other_numpy_scalars_are_refused_with_the_0d_array_hint(scalar: str) -> None:
    with pytest.raises(PayloadError, match=r"no JSON value; send numpy.asarray\(value\)"):
        encode(eval(scalar))
    zero_d = np.asarray(eval(scalar))
    assert_same_array(decode(*encode(zero_d)), zero_d)


@needs_numpy
@pytest.mark.parametrize(
    "array",
    [
        "np.array([1, 'a', None], dtype=object)",
        "np.array(None, dtype=object)",
        "np.zeros(2, dtype=[('a', 'i4'), ('b', 'O')])",
    ],
)
def test_arrays_holding_objects_are_refused(array: str) -> None:
    with pytest.raises(PayloadError, match="would need pickle, which dataserve does not use") as info:
        encode(eval(array))
    assert "astype" in str(info.value)
    assert info.value.status is None


@has_string_dtype
def test_string_dtype_array_is_refused_with_the_astype_hint() -> None:
    with pytest.raises(PayloadError, match=r"only by pickling .* array.astype\(str\)"):
        encode(np.array(["a", "bc"], dtype=np.dtypes.StringDType()))


@needs_numpy
def test_masked_array_is_refused_rather_than_losing_its_mask() -> None:
    with pytest.raises(PayloadError, match="drop its mask"):
        encode(np.ma.masked_array([1, 2], mask=[False, True]))


@needs_numpy
def test_array_inside_a_list_is_refused_with_a_hint() -> None:
    with pytest.raises(PayloadError, match="travels only as the whole payload"):
        encode([np.arange(3)])


@needs_numpy
def test_dtype_too_big_for_the_header_numpy_reads_is_refused() -> None:
    wide = np.zeros(1, dtype=[(f"field{i}", "f8") for i in range(1000)])
    with pytest.raises(PayloadError, match="header would be longer than the 10000"):
        encode(wide)


def _header(fields: str | bytes, version: tuple[int, int] = (1, 0)) -> bytes:
    """An .npy header with any text for its dictionary, as a broken or hostile writer makes it."""
    text = (fields.encode("latin-1") if isinstance(fields, str) else fields) + b"\n"
    size = struct.pack("<H" if version == (1, 0) else "<I", len(text))
    return b"\x93NUMPY" + bytes(version) + size + text


def _malformed() -> dict[str, bytes]:
    if np is None:
        return {}
    good = encode(np.arange(4, dtype="<i8"))[0]
    data = np.arange(4, dtype="<i8").tobytes()
    i8 = "'descr': '<i8', 'fortran_order': False"
    return {
        "empty body": b"",
        "JSON, not .npy": b"[1, 2, 3]",
        "bad magic": b"\x93NUMPX" + good[6:],
        "unknown version": good[:6] + b"\x04\x00" + good[8:],
        "truncated header": good[:30],
        "truncated data": good[:-1],
        "data after the array": good + b"\x00",
        "header says more data": _header(f"{{{i8}, 'shape': (5,)}}") + data,
        "header says less data": _header(f"{{{i8}, 'shape': (3,)}}") + data,
        "negative dimension": _header(f"{{{i8}, 'shape': (-1,)}}") + data,
        "shape not a tuple": _header(f"{{{i8}, 'shape': 4}}") + data,
        "unknown dtype": _header("{'descr': '<z8', 'fortran_order': False, 'shape': (4,)}") + data,
        "header not a dict": _header("[1, 2]") + data,
        "header not a literal": _header("__import__('os').system('true')") + data,
        "missing key": _header("{'descr': '<i8', 'shape': (4,)}") + data,
        "too many dimensions": _header(f"{{{i8}, 'shape': {(1,) * 70}}}") + data[:8],
        "zero-size dtype, huge shape": _header(
            "{'descr': [], 'fortran_order': False, 'shape': (9223372036854775808,)}"
        ),
        "header over 10000 characters": numpy_save(np.zeros(1, dtype=[(f"f{i}", "u1") for i in range(1000)])),
        "3.0 header not UTF-8": _header(
            b"{'descr': [('\xff', '<i8')], 'fortran_order': False, 'shape': (4,)}", (3, 0)
        )
        + data,
    }


@needs_numpy
@pytest.mark.parametrize("body", _malformed().values(), ids=_malformed().keys())
def test_malformed_npy_is_400(body: bytes) -> None:
    with pytest.raises(PayloadError, match=r"the \.npy|not a valid \.npy") as info:
        decode(body, NPY)
    assert info.value.status == 400


@needs_numpy
@pytest.mark.parametrize(
    "array",
    ["np.array([1, None], dtype=object)", "np.zeros(2, dtype=[('a', 'i4'), ('b', 'O')])"],
)
def test_npy_holding_objects_is_400_and_never_unpickled(array: str, monkeypatch: pytest.MonkeyPatch) -> None:
    body = numpy_save(eval(array), allow_pickle=True)

    def refuse(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("dataserve unpickled a payload")

    monkeypatch.setattr(pickle, "load", refuse)
    monkeypatch.setattr(pickle, "loads", refuse)
    with pytest.raises(PayloadError, match=r"holds objects.*never unpickles") as info:
        decode(body, NPY)
    assert info.value.status == 400


@needs_numpy
def test_npy_content_type_is_case_insensitive() -> None:
    assert decode(*encode(np.arange(3))[:1], "Application/X-NPY").tolist() == [0, 1, 2]


def test_npy_without_numpy_is_415_naming_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    body = b"\x93NUMPY\x01\x00" + b"\x00" * 100  # what arrives; never parsed without numpy
    monkeypatch.setitem(sys.modules, "numpy", None)  # import numpy raises ImportError
    with pytest.raises(PayloadError, match=NEEDS_NUMPY_415) as info:
        decode(body, NPY)
    assert info.value.status == 415


def test_without_numpy_the_other_types_still_travel(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "numpy", None)
    for value in ["a", [1, 2.5, None], b"\x00"]:
        assert decode(*encode(value)) == value
    with pytest.raises(PayloadError, match="type set"):
        encode({1})


def test_dataserve_does_not_import_numpy() -> None:
    code = (
        "import sys, dataserve\n"
        "from dataserve._codec import decode, encode\n"
        "assert decode(*encode([1, 'a'])) == [1, 'a']\n"
        "assert 'numpy' not in sys.modules, 'dataserve imported numpy'\n"
    )
    run_in_fresh_python(code)


# Arrays through a real server.


class ArrayHandler(HTTPDataHandler):
    """Echoes arrays, makes new ones, and tells what it was sent."""

    def handle_request(self, resource: str, payload: Any) -> Any:
        if resource == "/echo":
            return payload
        if resource == "/arange":
            return np.arange(payload, dtype=np.float32)
        if resource == "/fortran":
            return np.asfortranarray(np.arange(6).reshape(2, 3))
        if resource == "/zero-d":
            return np.array(2.5)
        if resource == "/describe":
            return {
                "type": type(payload).__name__,
                "dtype": payload.dtype.str,
                "shape": payload.shape,
                "fortran": bool(payload.flags.f_contiguous and not payload.flags.c_contiguous),
                "writeable": bool(payload.flags.writeable),
            }
        if resource == "/sum":
            return payload.sum()
        if resource == "/increment":
            payload += 1
            return payload
        if resource == "/objects":
            return np.array([1, None], dtype=object)
        return None


@pytest.fixture(scope="module")
def array_server(server_lane: str) -> Iterator[RunningServer]:
    with serve(ArrayHandler, port=0) as running:
        yield running


@pytest.fixture
def array_client(array_server: RunningServer) -> Iterator[HTTPDataClient]:
    with HTTPDataClient(array_server.port, "http://127.0.0.1:", timeout=30) as http_client:
        yield http_client


@needs_numpy
@pytest.mark.parametrize("array", _examples(), ids=lambda a: f"{a.dtype}-{a.shape}")
def test_array_round_trips_through_server(array_client: HTTPDataClient, array: Any) -> None:
    assert_same_array(array_client.send("/echo", array), array)


@needs_numpy
@given(any_arrays())
@settings(max_examples=15, suppress_health_check=[HealthCheck.function_scoped_fixture])
def test_any_array_round_trips_through_server(array_client: HTTPDataClient, array: Any) -> None:
    assert_same_array(array_client.send("/echo", array), array)


@needs_numpy
def test_handler_gets_read_only_array_of_dtype_shape_and_order_sent(array_client: HTTPDataClient) -> None:
    sent = np.asfortranarray(np.ones((3, 2), dtype=">f4"))
    assert array_client.send("/describe", sent) == {
        "type": "ndarray",
        "dtype": ">f4",
        "shape": [3, 2],
        "fortran": True,
        "writeable": False,
    }


@needs_numpy
def test_arrays_the_handler_makes_arrive(array_client: HTTPDataClient) -> None:
    assert_same_array(array_client.send("/arange", 5), np.arange(5, dtype=np.float32))
    assert_same_array(array_client.send("/fortran"), np.asfortranarray(np.arange(6).reshape(2, 3)))
    assert_same_array(array_client.send("/zero-d"), np.array(2.5))


@needs_numpy
def test_large_array_round_trips_through_server(array_client: HTTPDataClient) -> None:
    array = np.random.default_rng(0).random((1024, 4096))  # 32 MiB
    assert_same_array(array_client.send("/echo", array), array)


@needs_numpy
def test_numpy_scalar_reply_arrives_as_json_number(array_client: HTTPDataClient) -> None:
    reply = array_client.send("/sum", np.arange(5, dtype=np.uint16))
    assert reply == 10
    assert type(reply) is int


@needs_numpy
def test_handler_writing_to_its_payload_fails_with_read_only(array_client: HTTPDataClient) -> None:
    with pytest.raises(RemoteError, match="read-only") as info:
        array_client.send("/increment", np.arange(3))
    assert info.value.remote_type == "ValueError"


@needs_numpy
def test_object_array_is_refused_before_sending_and_as_a_reply(array_client: HTTPDataClient) -> None:
    with pytest.raises(PayloadError, match="pickle") as info:
        array_client.send("/echo", np.array([1, None], dtype=object))
    assert info.value.status is None
    with pytest.raises(RemoteError, match="object array") as remote:
        array_client.send("/objects")
    assert remote.value.remote_type == "PayloadError"


@needs_numpy
def test_npy_over_plain_http(array_server: RunningServer) -> None:
    array = np.arange(6, dtype="<i2").reshape(2, 3)
    with httpx.Client(base_url=array_server.url) as http:
        response = http.put("/echo", content=numpy_save(array), headers={"Content-Type": NPY})
        assert response.status_code == 200
        assert response.headers["content-type"] == NPY
        assert_same_array(numpy_load(response.content), array)

        response = http.put("/echo", content=b"\x93NUMPY\x01\x00garbage", headers={"Content-Type": NPY})
        assert response.status_code == 400
        assert response.json()["error"] == "bad_payload"

        objects = numpy_save(np.array([1, None], dtype=object), allow_pickle=True)
        response = http.put("/echo", content=objects, headers={"Content-Type": NPY})
        assert response.status_code == 400
        assert "never unpickles" in response.json()["message"]


_SERVER_WITHOUT_NUMPY = """
import sys
sys.modules["numpy"] = None  # import numpy raises ImportError, as if it were not installed
from dataserve import HTTPDataHandler, serve


class Echo(HTTPDataHandler):
    def handle_request(self, resource, payload):
        return payload

with serve(Echo, port=0) as server:
    print(server.port, flush=True)
    sys.stdin.read()
"""


@needs_numpy
def test_server_without_numpy_answers_415_naming_the_extra() -> None:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    with subprocess.Popen(
        [sys.executable, "-c", _SERVER_WITHOUT_NUMPY],
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
                with pytest.raises(PayloadError, match=NEEDS_NUMPY_415) as info:
                    http_client.send("/echo", np.arange(3))
                assert info.value.status == 415
                assert http_client.send("/echo", [1, "a"]) == [1, "a"], "the rest works without numpy"
        finally:
            process.stdin.close()
            assert process.wait(timeout=30) == 0


def test_a_module_another_thread_is_importing_is_handed_over_whole(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from dataserve._npy import imported

    (tmp_path / "halfmade.py").write_text("import time\ntime.sleep(0.5)\nready = True\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, "halfmade", raising=False)
    assert imported("halfmade") is None  # not imported: dataserve does not import it either
    importer = threading.Thread(target=__import__, args=("halfmade",))
    importer.start()
    while "halfmade" not in sys.modules:
        time.sleep(0.001)
    module = imported("halfmade")  # the import is under way: this waits for it
    importer.join()
    assert module is not None
    assert module.ready


def test_a_module_blocked_with_none_counts_as_not_imported(monkeypatch: pytest.MonkeyPatch) -> None:
    from dataserve._npy import imported

    monkeypatch.setitem(sys.modules, "numpy", None)
    assert imported("numpy") is None


@needs_numpy
def test_npy_headers_are_parsed_one_thread_at_a_time(monkeypatch: pytest.MonkeyPatch) -> None:
    # CPython 3.11's AST converter keeps its recursion depth in one global, so two threads in
    # ast.literal_eval at once can fail ("AST constructor recursion depth mismatch").
    import ast

    real = ast.literal_eval
    inside = 0
    most = 0

    def slow_literal_eval(source: Any) -> Any:
        nonlocal inside, most
        inside += 1
        most = max(most, inside)
        time.sleep(0.01)  # lets the other threads run, as a garbage collection can
        inside -= 1
        return real(source)

    monkeypatch.setattr(ast, "literal_eval", slow_literal_eval)
    body, content_type = encode(np.arange(4.0))
    errors: list[BaseException] = []

    def decode_some() -> None:
        try:
            for _ in range(5):
                assert decode(body, content_type).tolist() == [0.0, 1.0, 2.0, 3.0]
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=decode_some) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert errors == []
    assert most == 1

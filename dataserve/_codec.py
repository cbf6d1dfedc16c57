"""Values to typed HTTP bodies and back, the same in both directions and on both sides.

| Python value                          | Content-Type                  | decoded as |
|---------------------------------------|-------------------------------|------------|
| ``str``                               | ``text/plain; charset=utf-8`` | ``str``    |
| ``None``, ``bool``, ``int``, ``float``, ``list``, ``tuple``, ``dict`` | ``application/json`` | JSON value |
| ``bytes``, ``bytearray``, ``memoryview`` | ``application/octet-stream`` | ``bytes``  |
| ``numpy.ndarray``                     | ``application/x-npy``         | read-only ``numpy.ndarray`` |

An empty body without a Content-Type decodes as ``None``.

NumPy is optional and never imported here unless an ``application/x-npy`` body comes in:
a value can only be an ndarray (or a NumPy scalar) if NumPy is already imported, so
``encode`` looks for it in ``sys.modules``. An array travels in the ``.npy`` format,
without pickle: object arrays are refused. It is copied once on the way out (the header
and the data joined into one body; a non-contiguous array is gathered first) and not at
all on the way in: the array that arrives is a read-only view of the body.

NumPy scalars of bool, integer and floating types travel as the JSON value they stand
for (``numpy.int64(3)`` arrives as ``3``), alone or inside lists and dicts. Other NumPy
scalars (complex, datetime64, longdouble, ...) are refused: ``numpy.asarray(x)`` sends one
as a 0-d array, which keeps its dtype.
"""

from __future__ import annotations

import io
import json
import re
import sys
from typing import Any

from ._errors import PayloadError

__all__ = ["BYTES", "JSON", "NPY", "TEXT", "decode", "encode"]

TEXT = "text/plain; charset=utf-8"
JSON = "application/json"
BYTES = "application/octet-stream"
NPY = "application/x-npy"

NUMPY_EXTRA = "pip install 'dataserve[numpy]'"

_ALLOWED = (
    "str, a JSON-able value (None, bool, int, float, list, tuple, "
    "dict with str, int, float, bool or None keys), bytes-like (bytes, bytearray, memoryview) "
    "or a numpy.ndarray"
)

# NumPy reads a .npy header of at most this many characters without allow_pickle (its
# literal_eval is not safe on larger input); the encoder refuses to write a longer one.
_MAX_HEADER = 10_000
# The magic string, the header length (2 or 4 bytes) and a header of up to _MAX_HEADER
# characters, at most 4 bytes each in UTF-8: the decoder hands NumPy no more of the body.
_MAX_HEADER_BYTES = 8 + 4 + 4 * _MAX_HEADER
# dtype kinds the .npy header describes without pickle; others (NumPy 2's StringDType,
# "T", and dtypes from other packages) only by pickling their values.
_NPY_KINDS = frozenset("biufcmMSUV")


def encode(value: object) -> tuple[bytes, str]:
    """Return the body and Content-Type that carry ``value``.

    Raises PayloadError, naming the type, for a value dataserve cannot carry.
    """
    if isinstance(value, str):
        try:
            return value.encode("utf-8"), TEXT
        except UnicodeEncodeError as exc:
            raise PayloadError(f"cannot send this str as UTF-8 text: {exc}") from None
    if isinstance(value, bytes):
        return value, BYTES
    if isinstance(value, (bytearray, memoryview)):
        return bytes(value), BYTES
    numpy = sys.modules.get("numpy")
    if numpy is not None and isinstance(value, numpy.ndarray):
        return _encode_npy(numpy, value), NPY
    if isinstance(value, _JSON_TYPES) or (numpy is not None and isinstance(value, numpy.generic)):
        try:
            return _encode_json(value).encode("utf-8"), JSON
        except (TypeError, ValueError, RecursionError) as exc:
            detail = "too deeply nested" if isinstance(exc, RecursionError) else str(exc)
            raise PayloadError(
                f"cannot send this {type(value).__name__}: {detail}. "
                f"dataserve sends {_ALLOWED}; pickle other objects yourself and send the bytes"
            ) from None
    raise PayloadError(
        f"cannot send a value of type {type(value).__name__}: dataserve sends {_ALLOWED}; "
        "pickle other objects yourself and send the bytes"
    )


def decode(body: bytes | bytearray, content_type: str | None) -> Any:
    """Return the value that ``body`` carries, typed by its ``content_type``.

    Raises PayloadError with status 400 for a body that does not decode as its type
    says, and with status 415 for a Content-Type dataserve does not know (or an .npy
    body where NumPy is not installed).
    """
    if not content_type:
        if not body:
            return None
        raise PayloadError(
            f"a body without a Content-Type cannot be decoded; send it as {TEXT}, {JSON} or {BYTES}",
            status=415,
        )
    media_type, _, params = content_type.partition(";")
    media_type = media_type.strip().lower()
    if media_type == "application/json" or media_type.endswith("+json"):
        return _decode_json(body)
    if media_type == "application/octet-stream":
        return bytes(body)  # The same object for bytes; a copy only of a bytearray.
    if media_type == "text/plain":
        return _decode_text(body, _charset(params))
    if media_type == NPY:
        return _decode_npy(body)
    raise PayloadError(
        f"unsupported Content-Type {content_type!r}; dataserve takes {TEXT}, {JSON}, {BYTES} or {NPY}",
        status=415,
    )


def _decode_text(body: bytes | bytearray, charset: str) -> str:
    try:
        text = body.decode(charset)
        if charset.lower() not in ("utf-8", "utf8"):
            text.encode("utf-8")  # Some codecs (utf-7, unicode_escape) can make lone surrogates.
    except UnicodeError as exc:
        raise PayloadError(f"the body is not valid {charset} text: {exc}", status=400) from None
    except LookupError:
        raise PayloadError(f"unknown charset {charset!r}; send text as utf-8", status=415) from None
    return text


def _charset(params: str) -> str:
    for param in params.split(";"):
        name, _, value = param.partition("=")
        if name.strip().lower() == "charset":
            return value.strip().strip('"') or "utf-8"
    return "utf-8"


# JSON


_JSON_TYPES = (dict, list, tuple, int, float, type(None))


def _json_default(value: object) -> object:
    """The JSON value of a NumPy bool, integer or floating scalar; TypeError for the rest."""
    numpy = sys.modules.get("numpy")
    if numpy is not None:
        if isinstance(value, numpy.ndarray):
            raise TypeError(
                "a numpy.ndarray travels only as the whole payload, not inside a list, tuple or dict; "
                "send one array per call, or convert it with .tolist()"
            )
        if isinstance(value, numpy.generic):
            item = value.item() if value.dtype.kind in "biuf" else None
            if type(item) in (bool, int, float):
                return item
            raise TypeError(
                f"a numpy.{type(value).__name__} scalar has no JSON value; "
                "send numpy.asarray(value) to send it as a 0-d array"
            )
    raise TypeError(f"Object of type {type(value).__name__} is not JSON serializable")


# Written as UTF-8, so that a str with lone surrogates (not valid Unicode) is refused here
# at any depth, as the decoder refuses it, rather than escaped as \\ud800.
_encode_json = json.JSONEncoder(
    allow_nan=True, ensure_ascii=False, separators=(",", ":"), default=_json_default
).encode

# A \\uD800-\\uDFFF escape not in a surrogate pair; its match only prompts the full check.
_LONE_SURROGATE = re.compile(
    rb"\\u[dD][89abAB][0-9a-fA-F]{2}(?!\\u[dD][c-fC-F])|(?<![0-9a-fA-F]{4})\\u[dD][c-fC-F][0-9a-fA-F]{2}"
)


def _decode_json(body: bytes | bytearray) -> Any:
    try:
        value = json.loads(body)
    except (ValueError, RecursionError) as exc:
        detail = "too deeply nested" if isinstance(exc, RecursionError) else str(exc)
        raise PayloadError(f"the body is not valid JSON: {detail}", status=400) from None
    if _LONE_SURROGATE.search(body):
        try:
            _encode_json(value).encode("utf-8")
        except UnicodeEncodeError:
            raise PayloadError(
                "the JSON holds a string with a lone surrogate escape such as \\ud800, which is not "
                "valid Unicode; send such data as bytes",
                status=400,
            ) from None
    return value


# NumPy arrays as .npy


def _encode_npy(numpy: Any, array: Any) -> bytes:
    """The .npy file of ``array``: its header, then its data in one copy."""
    dtype = array.dtype
    if dtype.kind not in _NPY_KINDS and dtype.kind != "O":
        raise PayloadError(
            f"cannot send an array of dtype {dtype}: the .npy format describes it only by pickling "
            "its values, which dataserve does not use. Convert it to a fixed dtype first "
            "(for example array.astype(str) for a StringDType array)"
        )
    if dtype.hasobject:
        what = "an object array" if dtype.kind == "O" else f"an array of dtype {dtype} (it holds objects)"
        raise PayloadError(
            f"cannot send {what}: its values would need pickle, which dataserve does not use. "
            "Convert it to a fixed dtype first (for example array.astype(float) or "
            "array.astype(str)), send it as a list (array.tolist()), or pickle it yourself and "
            "send the bytes"
        )
    ma = sys.modules.get("numpy.ma")
    if ma is not None and isinstance(array, ma.MaskedArray):
        raise PayloadError(
            "cannot send a masked array: the .npy format would drop its mask. Send "
            "array.filled(fill_value), or the data and numpy.ma.getmaskarray(array) in two calls"
        )
    array = numpy.asarray(array)  # a subclass (numpy.matrix, numpy.memmap) as the plain array it views
    if not (array.flags.c_contiguous or array.flags.f_contiguous):
        array = numpy.ascontiguousarray(array)
    header = _npy_header(array)
    if array.nbytes == 0:
        return header
    # A flat byte view, so that dtypes the buffer protocol does not export (datetime64,
    # some structured ones) join as well: no copy but the join's own.
    order = "F" if array.flags.f_contiguous and not array.flags.c_contiguous else "C"
    data = array.reshape(-1, order=order).view(numpy.uint8)
    return b"".join([header, memoryview(data)])


def _npy_header(array: Any) -> bytes:
    """The .npy header of a contiguous ``array``, format 1.0, or 3.0 for non-Latin-1 field names."""
    from numpy.lib import format as npy_format

    fields = npy_format.header_data_from_array_1_0(array)
    out = io.BytesIO()
    try:
        npy_format.write_array_header_1_0(out, fields)
        size = len(out.getvalue()) - 10
    except UnicodeEncodeError:
        # Field names outside Latin-1 need format 3.0 (UTF-8), whose header NumPy's public
        # API writes only together with the data.
        out = io.BytesIO()
        _npy_private("_write_array_header")(out, fields, (3, 0))
        size = len(out.getvalue()[12:].decode("utf-8"))
    except ValueError:  # longer than format 1.0's 65535 bytes
        size = _MAX_HEADER + 1
    if size > _MAX_HEADER:
        raise PayloadError(
            f"cannot send an array of dtype {array.dtype}: its .npy header would be longer than the "
            f"{_MAX_HEADER} characters NumPy reads without pickle. Split its fields over several arrays"
        )
    return out.getvalue()


def _decode_npy(body: bytes | bytearray) -> Any:
    """The array an .npy body carries: a read-only view of ``body``, never unpickled."""
    try:
        import numpy
    except ImportError:
        raise PayloadError(
            f"{NPY} (a NumPy array) needs NumPy, which is not installed here: {NUMPY_EXTRA}",
            status=415,
        ) from None
    from numpy.lib import format as npy_format

    # NumPy parses the header off a small copy of its first bytes, never the whole body.
    head = io.BytesIO(body[:_MAX_HEADER_BYTES])
    try:
        version = npy_format.read_magic(head)
        if version == (1, 0):
            shape, fortran_order, dtype = npy_format.read_array_header_1_0(head, _MAX_HEADER)
        elif version == (2, 0):
            shape, fortran_order, dtype = npy_format.read_array_header_2_0(head, _MAX_HEADER)
        elif version == (3, 0):
            # NumPy's public API reads a format 3.0 header only together with the data.
            shape, fortran_order, dtype = _npy_private("_read_array_header")(head, (3, 0), _MAX_HEADER)
        else:
            raise ValueError(f"unknown .npy format version {version[0]}.{version[1]}")
    except Exception as exc:  # whatever a malformed header makes NumPy raise
        raise PayloadError(f"the body is not a valid .npy array: {_first_line(exc)}", status=400) from None
    if dtype.hasobject:
        raise PayloadError(
            f"the .npy body holds objects (dtype {dtype}), which only pickle could read; "
            "dataserve never unpickles",
            status=400,
        )
    if any(size < 0 for size in shape):
        raise PayloadError(f"the .npy header has a negative dimension in shape {shape}", status=400)
    offset = head.tell()
    count = 1
    for size in shape:
        count *= size
    if len(body) - offset != count * dtype.itemsize:
        raise PayloadError(
            f"the .npy body has {len(body) - offset} bytes of data, but its header says "
            f"shape {shape} of dtype {dtype}, which is {count * dtype.itemsize} bytes",
            status=400,
        )
    try:
        array = numpy.ndarray(
            shape, dtype=dtype, buffer=body, offset=offset, order="F" if fortran_order else "C"
        )
        array.flags.writeable = False  # Whatever the body was read into, as documented.
        return array
    except (TypeError, ValueError) as exc:  # such as too many dimensions
        raise PayloadError(f"the body is not a valid .npy array: {_first_line(exc)}", status=400) from None


def _npy_private(name: str) -> Any:
    """The function of numpy.lib.format's that numpy.save and numpy.load use for format 3.0.

    NumPy 1 keeps it in numpy.lib.format, NumPy 2 in numpy.lib._format_impl.
    """
    from numpy.lib import format as npy_format

    function = getattr(npy_format, name, None)
    if function is None:
        from numpy.lib import _format_impl

        function = getattr(_format_impl, name)
    return function


def _first_line(exc: BaseException) -> str:
    return str(exc).strip().split("\n", 1)[0] or type(exc).__name__

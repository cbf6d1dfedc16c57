"""NumPy arrays as ``application/x-npy`` bodies: the .npy format, never pickle.

An array is copied once on the way out (the header and the data joined into one body; a
non-contiguous array is gathered first) and not at all on the way in: the array that
arrives is a read-only view of the body. Object arrays, and dtypes the .npy header can
describe only by pickling, are refused.
"""

from __future__ import annotations

import importlib
import io
import sys
import threading
from types import ModuleType
from typing import Any

from ._buffers import HUGE_PAGES_FROM, BodyBuffer
from ._errors import PayloadError


def imported(name: str) -> ModuleType | None:
    """The module ``name`` if this process has imported it, else None (dataserve imports no NumPy).

    A module another thread is importing still is in ``sys.modules``, half made: the import
    statement waits for it to be whole, where ``sys.modules`` alone would hand it over as it is.
    """
    if sys.modules.get(name) is None:  # never imported, or blocked (a None entry)
        return None
    try:
        return importlib.import_module(name)
    except ImportError:
        return None


__all__ = ["NPY", "NUMPY_EXTRA", "decode_npy", "encode_npy"]

NPY = "application/x-npy"

NUMPY_EXTRA = "pip install numpy"

# NumPy reads a .npy header of at most this many characters without allow_pickle (its
# literal_eval is not safe on larger input); the encoder refuses to write a longer one.
_MAX_HEADER = 10_000
# The magic string, the header length (2 or 4 bytes) and a header of up to _MAX_HEADER
# characters, at most 4 bytes each in UTF-8: the decoder hands NumPy no more of the body.
_MAX_HEADER_BYTES = 8 + 4 + 4 * _MAX_HEADER
# dtype kinds the .npy header describes without pickle; others (NumPy 2's StringDType,
# "T", and dtypes from other packages) only by pickling their values.
_NPY_KINDS = frozenset("biufcmMSUV")
# NumPy reads a header with ast.literal_eval, and CPython 3.11 keeps the AST
# converter's recursion depth in one global: two threads parsing at once can fail with
# "AST constructor recursion depth mismatch" (CPython issue 106905). One header at a time.
_HEADER_LOCK = threading.Lock()


def encode_npy(numpy: Any, array: Any) -> bytes:
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
    ma = imported("numpy.ma")
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
    size = len(header) + array.nbytes
    if size < HUGE_PAGES_FROM:
        return b"".join([header, memoryview(data)])
    out = BodyBuffer(size)  # a large file's memory in huge pages: far fewer page faults than join's
    out.write(header)
    out.write(memoryview(data))
    return out.value()


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


def decode_npy(body: bytes | bytearray) -> Any:
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
        with _HEADER_LOCK:
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

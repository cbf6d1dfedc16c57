"""What ``dataserve send`` reads as a typed payload, and what it makes of a reply.

An ``.npy`` file (``--npy``) or an Arrow IPC stream or file (``--arrow``) is sent as the array
or table it holds, checked first as a server checks one. A reply prints as text, as JSON
pretty-printed, or as its repr; bytes, an array or a table print as a one-line summary (a
table's schema after it) and are saved as they came with ``--output``: the ``.npy`` file or
the Arrow IPC stream, which is the reply's own body.
"""

from __future__ import annotations

import importlib
import json
import sys
from pathlib import Path
from typing import Any

from ._arrow import ARROW, ARROW_EXTRA, KIND_KEY, stream_of
from ._codec import NPY, decode
from ._errors import DataServeError, PayloadError
from ._npy import NUMPY_EXTRA, decode_npy
from ._wire import Reply

__all__ = ["arrow_body", "npy_body", "read", "show", "show_reply"]


def read(path: str) -> bytes:
    """The bytes of the file ``path``, or of stdin for ``-``."""
    if path == "-":
        return sys.stdin.buffer.read()
    try:
        return Path(path).read_bytes()
    except OSError as exc:
        raise DataServeError(f"cannot read {path}: {exc.strerror or exc}") from None


def npy_body(path: str) -> tuple[bytes, str]:
    """The body of ``--npy PATH``: the file as it is, once NumPy has read its header without pickle
    and its data is as long as the header says."""
    data = read(path)
    try:
        decode_npy(data)
    except PayloadError as exc:
        if exc.status == 415:
            raise DataServeError(f"--npy needs NumPy to read {path}: {NUMPY_EXTRA}") from None
        raise DataServeError(f"{path} is not a .npy array dataserve can send: {exc}") from None
    return data, NPY


def arrow_body(path: str) -> tuple[bytes, str]:
    """The body of ``--arrow PATH``: the file as it is if it is an Arrow IPC stream, or its table
    as a stream if it is an IPC file (``.arrow``, ``.feather``); checked as a server checks one."""
    data = read(path)
    try:
        return stream_of(data), ARROW
    except PayloadError as exc:
        if exc.status == 415:
            raise DataServeError(f"--arrow needs pyarrow to read {path}: {ARROW_EXTRA}") from None
        raise DataServeError(f"{path} is {exc}") from None


def show_reply(reply: Reply, output: str | None) -> None:
    """Print the value ``reply`` carries, or write it to the file ``output`` (``-``: stdout).

    An array or a table is written as its body came, the ``.npy`` file or the Arrow IPC stream,
    and printed as a summary; other values as ``show`` does.
    """
    content_type = reply.headers.get("content-type")
    media_type = (content_type or "").partition(";")[0].strip().lower()
    if media_type not in (NPY, ARROW):
        show(decode(reply.body, content_type), output)
    elif output is None:
        print(_npy_summary(reply.body) if media_type == NPY else _arrow_summary(reply.body))
    else:
        _write(reply.body, output)


def show(reply: Any, output: str | None) -> None:
    """Print ``reply``, or write it to the file ``output`` (``-``: stdout).

    Text prints as it is, JSON values pretty-printed, and anything else as its repr.
    Bytes print only as a one-line summary, unless written to ``output``.
    """
    if isinstance(reply, (bytes, bytearray, memoryview)):
        data = bytes(reply)
        if output is None:
            print(f"<{count(len(data))}; use --output PATH to save them>")
            return
    else:
        text = reply if isinstance(reply, str) else _format(reply)
        if output in (None, "-"):
            print(text)
            return
        data = (text + "\n").encode("utf-8")
    _write(data, output)


def _write(data: bytes, output: str) -> None:
    if output == "-":
        sys.stdout.flush()
        sys.stdout.buffer.write(data)
        sys.stdout.buffer.flush()
        return
    try:
        Path(output).write_bytes(data)
    except OSError as exc:
        raise DataServeError(f"cannot write {output}: {exc.strerror or exc}") from None
    print(f"wrote {count(len(data))} to {output}", file=sys.stderr)


def _npy_summary(body: bytes) -> str:
    """``<numpy.ndarray, shape (2, 3), dtype float64, 48 bytes; use --output PATH to save it as .npy>``."""
    try:
        array = decode_npy(body)
    except PayloadError as exc:
        if exc.status != 415:
            raise
        return (
            f"<a NumPy array of {count(len(body))}; install NumPy to see its shape and dtype "
            f"({NUMPY_EXTRA}), or use --output PATH to save it as .npy>"
        )
    return (
        f"<numpy.ndarray, shape {array.shape}, dtype {array.dtype}, {count(array.nbytes)}; "
        "use --output PATH to save it as .npy>"
    )


def _arrow_summary(body: bytes) -> str:
    """The kind, rows and columns of an Arrow reply on one line, then its schema, a column a line;
    read with pyarrow alone (the table's own library need not be here, nor is it imported)."""
    try:
        pa = importlib.import_module("pyarrow")
    except ImportError:
        return (
            f"<an Arrow table of {count(len(body))}; install pyarrow to see its rows and schema "
            f"({ARROW_EXTRA}), or use --output PATH to save it as an Arrow stream>"
        )
    try:
        table = pa.ipc.open_stream(pa.py_buffer(body)).read_all()
    except (pa.ArrowException, ValueError, OSError) as exc:
        raise PayloadError(f"the reply is not a valid Arrow IPC stream: {exc}", status=400) from None
    metadata = table.schema.metadata or {}
    kind = metadata.get(KIND_KEY, b"pyarrow.Table").decode("utf-8", "replace")
    index = _pandas_index_columns(metadata)
    columns = len(table.schema) - len(index)
    lines = [
        f"<{kind}, {table.num_rows:,} row{'' if table.num_rows == 1 else 's'}, "
        f"{columns} column{'' if columns == 1 else 's'}; use --output PATH to save it as an Arrow stream>"
    ]
    for field in table.schema:
        lines.append(f"{field.name}: {field.type}{' (index)' if field.name in index else ''}")
    return "\n".join(lines)


def _pandas_index_columns(metadata: dict[bytes, bytes]) -> set[str]:
    """The columns that hold a pandas frame's index, by pandas' metadata."""
    try:
        pandas = json.loads(metadata.get(b"pandas", b"{}"))
        return {name for name in pandas.get("index_columns", []) if isinstance(name, str)}
    except (ValueError, AttributeError, TypeError):
        return set()


def _format(value: Any) -> str:
    try:
        return json.dumps(value, indent=2, ensure_ascii=False)
    except (TypeError, ValueError):
        return repr(value)


def count(size: int) -> str:
    """``size`` bytes, in words: ``1 byte``, ``2,560 bytes``."""
    return f"{size:,} byte" if size == 1 else f"{size:,} bytes"

"""What an Arrow IPC stream's messages say of themselves before any of them is read: whether a
batch is compressed.

A compressed batch (LZ4 or ZSTD) is decompressed as pyarrow reads it, into memory that no
limit of the server's counts: a small body could unpack into gigabytes. So dataserve takes
streams written uncompressed, as pyarrow writes them by default, and tells a compressed one
from its message metadata (a flatbuffer: a Message whose header, a RecordBatch or the
RecordBatch of a DictionaryBatch, has its ``compression`` field set).
"""

from __future__ import annotations

import struct
from typing import Any

__all__ = ["compressed"]

_HEADER = 2
"""The field of Message that holds its header table."""
_DICTIONARY_DATA = 1
"""The field of DictionaryBatch that holds its RecordBatch."""
_COMPRESSION = 3
"""The field of RecordBatch that holds its BodyCompression, present only when compressed."""


def compressed(pa: Any, buffer: Any) -> bool:
    """Whether any batch of the IPC stream in the pyarrow ``buffer`` is compressed.

    Raises what pyarrow raises for a stream whose messages do not parse, and ValueError for
    metadata that is not a flatbuffer Message.
    """
    for message in pa.ipc.MessageReader.open_stream(buffer):
        kind = message.type
        if kind not in ("record batch", "dictionary"):
            continue
        try:
            if _batch_compressed(memoryview(message.metadata), dictionary=kind == "dictionary"):
                return True
        except struct.error as exc:
            raise ValueError(f"a {kind} message's metadata is not a flatbuffer Message ({exc})") from None
    return False


def _batch_compressed(data: memoryview, *, dictionary: bool) -> bool:
    root = _offset(data, 0)
    header = _child(data, root, _HEADER)
    if header is not None and dictionary:
        header = _child(data, header, _DICTIONARY_DATA)
    if header is None:
        return False
    fields = _fields(data, header)
    return len(fields) > _COMPRESSION and fields[_COMPRESSION] != 0


def _offset(data: memoryview, at: int) -> int:
    (offset,) = struct.unpack_from("<I", data, at)
    return int(at + offset)


def _fields(data: memoryview, table: int) -> list[int]:
    """The offsets of ``table``'s fields, from its vtable (0 for a field left out)."""
    (back,) = struct.unpack_from("<i", data, table)
    vtable = table - back
    (size,) = struct.unpack_from("<H", data, vtable)
    count = max(0, (size - 4) // 2)
    return list(struct.unpack_from(f"<{count}H", data, vtable + 4))


def _child(data: memoryview, table: int, index: int) -> int | None:
    """The position of the table that field ``index`` of ``table`` refers to, or None if it is absent."""
    fields = _fields(data, table)
    if index >= len(fields) or not fields[index]:
        return None
    return _offset(data, table + fields[index])

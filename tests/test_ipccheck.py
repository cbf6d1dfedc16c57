"""An Arrow stream's compressed batches are told from their metadata, before anything is decompressed."""

from __future__ import annotations

from typing import Any

import pytest

from dataserve._ipccheck import compressed

pa = pytest.importorskip("pyarrow")


def stream(table: Any, compression: str | None = None) -> Any:
    sink = pa.BufferOutputStream()
    options = pa.ipc.IpcWriteOptions(compression=compression)
    with pa.ipc.new_stream(sink, table.schema, options=options) as writer:
        writer.write_table(table)
    return sink.getvalue()


TABLE = pa.table({"tag": pa.array(["x", "y", "x"]).dictionary_encode(), "n": [1, 2, 3]})


def test_an_uncompressed_stream_is_not_compressed() -> None:
    assert not compressed(pa, stream(TABLE))


@pytest.mark.parametrize("codec", ["lz4", "zstd"])
def test_a_compressed_stream_is_told(codec: str) -> None:
    assert compressed(pa, stream(TABLE, codec))


def test_a_compressed_dictionary_batch_is_told() -> None:
    body = stream(pa.table({"tag": pa.array(["x"]).dictionary_encode()}), "zstd")
    kinds = [message.type for message in pa.ipc.MessageReader.open_stream(body)]
    assert kinds[:2] == ["schema", "dictionary"]
    assert compressed(pa, body)


def test_a_stream_of_no_batches_is_not_compressed() -> None:
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, TABLE.schema):
        pass
    assert not compressed(pa, sink.getvalue())


def test_metadata_that_is_not_a_flatbuffer_raises_what_the_codec_answers_with_400() -> None:
    body = stream(pa.table({"n": [1]})).to_pybytes()
    messages = list(pa.ipc.MessageReader.open_stream(body))
    at = body.index(messages[1].metadata.to_pybytes())
    broken = body[:at] + b"\xff\xff\xff\x7f" + body[at + 4 :]  # the root offset points past the end
    with pytest.raises((OSError, ValueError), match=r"[Ff]latbuffer"):  # pyarrow checks it first
        compressed(pa, pa.py_buffer(broken))

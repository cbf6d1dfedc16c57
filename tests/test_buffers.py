"""A body buffer: filled in place, handed over as the very ``bytes`` it filled, and, when large,
in memory that Linux is asked to back with huge pages."""

from __future__ import annotations

import ctypes
import io
import sys
from pathlib import Path

import numpy as np
import pytest

import dataserve._buffers
from dataserve._buffers import HUGE_PAGES_FROM, BodyBuffer
from dataserve._npy import decode_npy, encode_npy

THP = Path("/sys/kernel/mm/transparent_hugepage")


def _vm_flags(address: int) -> list[str]:
    """The VmFlags of the mapping of this process that holds ``address``, from /proc/self/smaps."""
    inside = False
    for line in Path("/proc/self/smaps").read_text().splitlines():
        first = line.split()[0]
        if "-" in first and not first.endswith(":"):
            start, end = (int(part, 16) for part in first.split("-"))
            inside = start <= address < end
        elif inside and first == "VmFlags:":
            return line.split()[1:]
    raise AssertionError(f"no mapping holds {address:#x}")


def test_a_filled_buffer_becomes_its_bytes_without_a_copy() -> None:
    buffer = BodyBuffer(HUGE_PAGES_FROM)
    buffer.write(b"head")
    space = buffer.space()
    pointer = ctypes.c_char.from_buffer(space)
    filled_at = ctypes.addressof(pointer) - 4
    del pointer
    space[: len(space)] = b"\x07" * len(space)
    space.release()
    buffer.advance(HUGE_PAGES_FROM - 4)
    value = buffer.value()
    assert buffer.full
    assert value[:4] == b"head"
    assert value[4:] == b"\x07" * (HUGE_PAGES_FROM - 4)
    assert ctypes.cast(ctypes.c_char_p(value), ctypes.c_void_p).value == filled_at  # the same memory


@pytest.mark.skipif(
    sys.platform != "linux" or not THP.exists(), reason="transparent huge pages are Linux's, when enabled"
)
def test_a_large_buffer_asks_for_huge_pages() -> None:
    buffer = BodyBuffer(4 * HUGE_PAGES_FROM)
    view = buffer.space()
    pointer = ctypes.c_char.from_buffer(view)
    middle = ctypes.addressof(pointer) + len(view) // 2
    del pointer
    view.release()
    assert "hg" in _vm_flags(middle)
    assert not buffer.full  # held until here: its memory is still mapped


def test_a_small_buffer_takes_the_memory_it_is_given(monkeypatch: pytest.MonkeyPatch) -> None:
    advised: list[int] = []
    monkeypatch.setattr(dataserve._buffers, "_advise_huge_pages", lambda view: advised.append(len(view)))
    BodyBuffer(HUGE_PAGES_FROM - 1)
    BodyBuffer(HUGE_PAGES_FROM)
    assert advised == ([HUGE_PAGES_FROM] if sys.platform == "linux" else [])


def test_a_large_array_encodes_as_numpy_saves_it_and_decodes_back() -> None:
    array = np.arange(HUGE_PAGES_FROM // 8 + 3, dtype=np.float64).reshape(-1, 1)
    saved = io.BytesIO()
    np.save(saved, array)
    body = encode_npy(np, array)
    assert body == saved.getvalue()
    assert np.array_equal(decode_npy(body), array)

"""A body of known size, filled in place and handed over as ``bytes`` without a copy.

A ``bytes`` object cannot be written once made, and ``bytes(bytearray)`` copies: received
into a bytearray, a 100 MiB body would be held twice. ``io.BytesIO`` keeps its data in a
``bytes`` object, exposes it writable through ``getbuffer()`` while no one else holds it,
and ``getvalue()`` then returns that very object. The buffer starts as ``bytes(size)``,
which is allocated zeroed by the system, so that memory is taken page by page as the body
arrives, not all at once.
"""

from __future__ import annotations

import io

__all__ = ["BodyBuffer"]


class BodyBuffer:
    """``size`` bytes, filled from the front, that become a ``bytes`` object once full."""

    __slots__ = ("_file", "_view", "filled", "size")

    def __init__(self, size: int) -> None:
        self.size = size
        self.filled = 0
        self._file = io.BytesIO(bytes(size))
        self._view = self._file.getbuffer()

    @property
    def full(self) -> bool:
        return self.filled >= self.size

    def space(self, most: int | None = None) -> memoryview:
        """The unfilled part (at most ``most`` bytes of it), to receive into; then call ``advance``."""
        end = self.size if most is None else min(self.size, self.filled + most)
        return self._view[self.filled : end]

    def advance(self, count: int) -> None:
        """Count ``count`` more bytes as filled, written into ``space()``."""
        self.filled += count

    def write(self, data: bytes | bytearray | memoryview) -> int:
        """Copy as much of ``data`` as fits; return how many bytes were taken."""
        count = min(len(data), self.size - self.filled)
        self._view[self.filled : self.filled + count] = data[:count]
        self.filled += count
        return count

    def value(self) -> bytes:
        """The filled body as ``bytes``: the buffer itself when nothing else still views it."""
        self._view.release()
        value = self._file.getvalue()
        self._file = io.BytesIO()
        return value if self.filled == self.size else value[: self.filled]

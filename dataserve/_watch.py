"""Watching a connection for a client that is too slow, and warning about it without flooding the log."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable

__all__ = ["WINDOW", "RateWatch", "warn"]

WINDOW = 5.0
"""Seconds over which a rate is averaged: a client must move at least ``rate * WINDOW`` bytes in each."""

logger = logging.getLogger("dataserve")

_last_warned: dict[str, float] = {}
_WARN_EVERY = 10.0
"""Seconds between two warnings of one kind: an attack or a flood logs once in a while, not per connection."""


def warn(kind: str, message: str, *args: object) -> None:
    """Log ``message`` at WARNING, unless a warning of ``kind`` was logged in the last 10 s."""
    now = time.monotonic()
    if now - _last_warned.get(kind, -_WARN_EVERY) < _WARN_EVERY:
        return
    _last_warned[kind] = now
    logger.warning(message, *args)


class RateWatch:
    """Checks every ``WINDOW`` seconds that ``progress()`` has grown by ``rate * WINDOW`` bytes.

    ``progress`` counts bytes moved so far; ``paused`` says whether the server itself is
    holding the client back (then the window does not count); ``too_slow`` is called once
    a window falls short, and the watch stops.
    """

    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        rate: int,
        progress: Callable[[], int],
        paused: Callable[[], bool],
        too_slow: Callable[[int], None],
    ) -> None:
        self._loop = loop
        self._rate = rate
        self._progress = progress
        self._paused = paused
        self._too_slow = too_slow
        self._last = progress()
        self._timer: asyncio.TimerHandle | None = loop.call_later(WINDOW, self._check)

    def stop(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _check(self) -> None:
        now = self._progress()
        moved, self._last = now - self._last, now
        if moved < self._rate * WINDOW and not self._paused():
            self._timer = None
            self._too_slow(moved)
            return
        self._timer = self._loop.call_later(WINDOW, self._check)

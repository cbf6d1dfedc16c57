"""A drain before the stop: behind a load balancer, a server told to stop first says it is going.

With a ``drain_timeout``, the first SIGTERM or Ctrl-C does not stop the server at once: its
health check answers 503 ``{"status": "stopping"}``, so that a balancer that checks it takes the
server out of its rotation, while calls keep being accepted and served, for that many seconds.
Then the server stops as it would have without a drain. A second signal stops it at once.

The app sets the drain up as its lifespan starts, in the main thread of the serving process,
around the signal handler the HTTP server (uvicorn) installed: so it holds under
``run_http_server``, ``dataserve serve``, each worker of ``--workers`` and the uvicorn command
alike. ``serve()``, whose server runs in a thread, drains as its ``with`` block ends.
"""

from __future__ import annotations

import asyncio
import logging
import signal
import threading
from collections.abc import Callable
from types import FrameType
from typing import Any

__all__ = ["Drain"]

logger = logging.getLogger("dataserve")

_SIGNALS = (signal.SIGINT, signal.SIGTERM)

Handler = Callable[[int, FrameType | None], Any] | int | None


class Drain:
    """Holds a stop signal back for ``timeout`` seconds, after calling ``begin`` (the health check
    says stopping); then hands the signal on to the handler it replaced."""

    def __init__(self, timeout: float, begin: Callable[[], None]) -> None:
        self.timeout = timeout
        self.begin = begin
        self._previous: dict[int, Handler] = {}
        self._loop: asyncio.AbstractEventLoop | None = None
        self._timer: asyncio.TimerHandle | None = None
        self.draining = False

    def install(self) -> None:
        """Take SIGINT and SIGTERM over, if there is a drain and this is the main thread."""
        if self.timeout <= 0 or threading.current_thread() is not threading.main_thread():
            return
        self._loop = asyncio.get_running_loop()
        for sig in _SIGNALS:
            previous = signal.getsignal(sig)
            if callable(previous):  # a handler to hand the signal to: the server's
                self._previous[sig] = previous
                signal.signal(sig, self._caught)

    def uninstall(self) -> None:
        """Give the signals back to the handlers they had."""
        if self._timer is not None:
            self._timer.cancel()
        for sig, previous in self._previous.items():
            if signal.getsignal(sig) == self._caught:
                signal.signal(sig, previous)
        self._previous.clear()

    def _caught(self, sig: int, frame: FrameType | None) -> None:
        if self.draining:  # a second signal: stop now
            self._hand_on(sig)
            return
        self.draining = True
        self.begin()
        logger.warning(
            "dataserve: stopping in %g s (drain_timeout): the health check says stopping; calls are "
            "still served meanwhile (send the signal again to stop now)",
            self.timeout,
        )
        assert self._loop is not None
        self._loop.call_soon_threadsafe(self._start_timer, sig)

    def _start_timer(self, sig: int) -> None:
        assert self._loop is not None
        self._timer = self._loop.call_later(self.timeout, self._hand_on, sig)

    def _hand_on(self, sig: int) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        previous = self._previous.get(sig)
        if callable(previous):
            previous(sig, None)

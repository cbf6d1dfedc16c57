"""How a server in the foreground stops: on SIGTERM as on Ctrl-C, whenever the signal comes."""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Iterator
from types import FrameType
from typing import Protocol

__all__ = ["signals_interrupt", "signals_stop"]


class _Stoppable(Protocol):
    should_exit: bool


@contextlib.contextmanager
def signals_interrupt() -> Iterator[None]:
    """Make SIGTERM stop the server like Ctrl-C: uvicorn re-raises it once it has shut down."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGTERM, signal.default_int_handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


@contextlib.contextmanager
def signals_stop(server: _Stoppable) -> Iterator[None]:
    """Make SIGINT and SIGTERM stop ``server`` (uvicorn's), from before it runs to after it returns.

    uvicorn takes both signals over once its event loop runs. Before that, while it imports and
    makes its loop, Ctrl-C would raise KeyboardInterrupt wherever the main thread is, and
    Python drops one raised in a weakref callback of the import system: the server would then
    serve on. Here a signal asks the server to stop instead, which it does once it has started.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def stop(sig: int, frame: FrameType | None) -> None:
        server.should_exit = True

    previous = {sig: signal.signal(sig, stop) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)

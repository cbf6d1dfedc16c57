"""How a server in the foreground stops: SIGTERM as Ctrl-C does."""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Iterator

__all__ = ["signals_interrupt"]


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

"""What a server holds at once, and the refusals beyond its limits.

A call is *admitted* once its head is read, before its body is: it takes a place in the queue
(``max_queue``) and the size of its body in memory (``max_memory``), or it is refused with 503
and ``Retry-After`` at once, so that a flood of calls holds neither the handler nor memory.
Its place is given back when the handler takes it (or when it is dropped, its caller gone) and
its memory when it ends; a reply's bytes count too while they wait to be sent. The calls the
handler runs are followed, so that a stop knows what it cuts and ``teardown()`` never runs
beside one of them.
"""

from __future__ import annotations

import itertools
import threading
import time
from collections.abc import Callable

from ._errors import error_reply
from ._wire import Reply

__all__ = ["RETRY_AFTER", "Admission", "Running"]

RETRY_AFTER = "1"
"""Seconds a refused caller is told to wait before it tries again."""


class Running:
    """A call the handler is running: its resource and since when."""

    __slots__ = ("resource", "started")

    def __init__(self, resource: str) -> None:
        self.resource = resource
        self.started = time.monotonic()


class Admission:
    """The calls admitted, waiting and running, and the bytes held, for one handler's server.

    Safe to use from the event loop and the handler threads.
    """

    def __init__(self, name: str, max_queue: int, max_memory: int | None) -> None:
        self.name = name
        self.max_queue = max_queue
        self.max_memory = max_memory
        self.waiting = 0
        """Calls admitted that the handler has not taken yet."""
        self.held = 0
        """Bytes of bodies and replies held."""
        self.running: dict[int, Running] = {}
        self._cuts: dict[int, Callable[[Reply], bool]] = {}
        self._ids = itertools.count()
        self._lock = threading.Lock()

    def admit(self, size: int) -> Reply | None:
        """Admit a call whose body takes ``size`` bytes; the refusal if the server is full, else None."""

        with self._lock:
            if self.waiting >= self.max_queue:
                message = (
                    f"{self.waiting} calls are waiting for {self.name} (max_queue {self.max_queue}); "
                    "try again shortly, or start the server with a larger max_queue"
                )
            elif self.max_memory is not None and size and self.held + size > self.max_memory:
                message = (
                    f"the server holds {self.held:,} bytes of calls, and this one's {size:,} would take it "
                    f"past max_memory ({self.max_memory:,}); try again shortly"
                )
            else:
                self.waiting += 1
                self.held += size
                return None
        reply = error_reply(503, "overloaded", message)
        reply.headers["retry-after"] = RETRY_AFTER
        return reply

    def begin(self, resource: str, *, leave_queue: bool = True) -> int:
        """The handler takes an admitted call, which gives its place in the queue back unless it
        keeps it while it runs. Returns the call's number, for ``end``."""
        number = next(self._ids)
        with self._lock:
            if leave_queue:
                self.waiting -= 1
            self.running[number] = Running(resource)
        return number

    def end(self, number: int, *, leave_queue: bool = False) -> None:
        """The handler is done with the call ``begin`` numbered, which gives back its place if it kept it."""
        with self._lock:
            del self.running[number]
            if leave_queue:
                self.waiting -= 1

    def drop(self) -> None:
        """An admitted call will not reach the handler (its caller has gone): give its place back."""
        with self._lock:
            self.waiting -= 1

    def hold(self, size: int) -> None:
        """Count ``size`` more bytes as held, whatever the limit: a reply made must be sent."""
        with self._lock:
            self.held += size

    def release(self, size: int) -> None:
        """``size`` bytes held are let go."""
        if size:
            with self._lock:
                self.held -= size

    def follow(self, cut: Callable[[Reply], bool]) -> int:
        """Keep ``cut``, which answers a call still open when the server stops; the key is to ``unfollow``."""
        key = next(self._ids)
        self._cuts[key] = cut
        return key

    def unfollow(self, key: int) -> None:
        self._cuts.pop(key, None)

    def cut_all(self, reply: Reply) -> int:
        """Answer every call still followed with ``reply``; return how many callers heard it."""
        cuts, self._cuts = self._cuts, {}
        return sum(cut(reply) for cut in cuts.values())

"""The direct lane's calls: one plain call from its head to its reply, and the runner of a connection's calls.

A ``DirectCall`` stands where uvicorn's protocol keeps a request's cycle, so that uvicorn's
pipelining, shutdown and lost connections treat it as one. Its body is gathered from the
parser or received straight from the socket (``BodyBuffer``); it runs once its body is in,
in its connection's ``Runner`` for a plain handler (before its turn, behind other direct
calls), and its reply is written at its turn. From its admission to its end it holds a place
in the call core's queue and the size of its body in memory.
"""

from __future__ import annotations

import asyncio
import collections
import threading
from typing import TYPE_CHECKING

from ._buffers import BodyBuffer
from ._core import GONE, CallCore
from ._observe import GONE_STATUS, Observer
from ._wire import Reply

if TYPE_CHECKING:
    from ._protocol import HTTPProtocol

__all__ = ["DirectCall", "Runner"]

RUN_AT_ONCE = 16
"""Calls of one connection a handler thread runs before it lets other connections' calls in."""


class _NoEvent:
    """What uvicorn's protocol sets on a call when its connection is lost: nothing waits on a direct call."""

    def set(self) -> None:
        pass


_NO_EVENT = _NoEvent()


class DirectCall:
    """One plain call on the direct lane: its body, its run, its turn on the connection, its reply."""

    __slots__ = (
        "admitted",
        "began",
        "body",
        "buffer",
        "content_type",
        "core",
        "cut_key",
        "disconnected",
        "keep_alive",
        "length",
        "message_event",
        "method",
        "observer",
        "path",
        "peer",
        "pieces",
        "protocol",
        "received",
        "refused",
        "response_complete",
        "result_reply",
        "started",
        "submitted",
        "via_runner",
    )

    def __init__(
        self, protocol: HTTPProtocol, core: CallCore, path: str, content_type: str | None, keep_alive: bool
    ) -> None:
        self.protocol = protocol
        self.core = core
        self.path = path
        self.content_type = content_type
        self.keep_alive = keep_alive
        self.buffer: BodyBuffer | None = None
        self.pieces: list[bytes] = []
        self.body = b""
        self.refused: Reply | None = None
        self.admitted: int | None = None
        """The body size the call was admitted with, until it ends; None if it was refused."""
        self.result_reply: Reply | None = None
        self.cut_key: int | None = None
        self.received = False
        self.submitted = False
        self.via_runner = False
        self.started = False
        self.response_complete = False
        self.disconnected = False
        self.message_event = _NO_EVENT
        self.observer: Observer | None = None
        self.began = 0.0
        self.method = ""
        self.length = 0
        self.peer = ""

    def observe(self, observer: Observer, method: str, length: int, peer: str) -> None:
        """Tell ``observer`` of this call, now that its head is read, and of its end."""
        self.observer = observer
        self.began = observer.begin()
        self.method = method
        self.length = length
        self.peer = peer

    def _observed(self, status: int, bytes_out: int) -> None:
        observer = self.observer
        if observer is not None:
            self.observer = None  # told once
            observer.end(self.began, self.peer, self.method, self.path, status, self.length, bytes_out)

    def lost(self) -> None:
        """The connection is gone before the call was answered: it gives back what it holds now,
        or, if the handler is at it, once its reply is made."""
        if self.response_complete:
            return
        if not self.submitted:  # a refused call never is
            self.response_complete = True
            self.end()
            self._observed(GONE_STATUS, 0)

    def gone(self) -> bool:
        """Whether the caller has gone, so that the handler need not take the call."""
        return self.protocol.lost

    def body_received(self) -> None:
        if self.received:
            return
        self.received = True
        if self.buffer is not None:
            self.body = self.buffer.value()
            self.buffer = None
        elif self.pieces:
            self.body = self.pieces[0] if len(self.pieces) == 1 else b"".join(self.pieces)
            self.pieces = []
        if self.refused is not None or self.response_complete:
            return
        if self.started or self.protocol.may_run_ahead(self):
            self._submit()

    def turn(self) -> None:
        """The call's turn on its connection has come: answer it once its reply is made."""
        self.started = True
        if self.refused is not None:
            self._write(self.refused)  # at once: its body, if any, is read only to be dropped
        elif self.result_reply is not None:
            self._write(self.result_reply)
        elif self.received and not self.submitted:
            self._submit()

    def result(self, reply: Reply) -> None:
        """The call's reply is made: write it now if it is the call's turn, else at its turn."""
        if self.started or reply is GONE or self.protocol.lost:
            self._write(reply)
        else:
            self.result_reply = reply

    def cut(self, reply: Reply) -> bool:
        """The server stops before the call is answered: answer it with ``reply``, close, and say
        whether the caller was still there to hear it."""
        heard = not (self.response_complete or self.protocol.lost or self.protocol.transport.is_closing())
        self.keep_alive = False
        self.started = True
        self._write(reply)
        return heard

    def _submit(self) -> None:
        self.submitted = True
        self.cut_key = self.core.admission.follow(self.cut)
        if self.core.takes_threads:  # one runner keeps a connection's calls in their order
            self.via_runner = True
            self.protocol.runner().add(self)
            return
        protocol = self.protocol
        task = self.core.start(protocol.loop, self.path, self.body, self.content_type, self.gone, self.result)
        self.body = b""
        if task is not None:
            tasks = protocol.tasks
            tasks.add(task)  # as uvicorn follows its ASGI tasks, to cancel them past the grace period
            task.add_done_callback(tasks.discard)

    def end(self) -> None:
        """Give back what the call holds: its place in the queue (if it never ran) and its memory."""
        if self.cut_key is not None:
            self.core.admission.unfollow(self.cut_key)
            self.cut_key = None
        if self.admitted is not None:
            if not self.submitted:
                self.core.admission.drop()
            self.core.admission.release(self.admitted)
            self.admitted = None
        self.body = b""
        self.buffer = None

    def _write(self, reply: Reply) -> None:
        if self.response_complete:
            return
        self.response_complete = True
        self.result_reply = None
        self.end()
        protocol = self.protocol
        if reply is GONE or self.disconnected or protocol.transport.is_closing():
            self._observed(GONE_STATUS, 0)
            return
        if self.core.closing and not protocol.pipeline:  # the last call read closes the connection
            self.keep_alive = False
        self._observed(reply.status, len(reply.body))  # before it leaves, as _observe says
        protocol.write_reply(reply, self.keep_alive)
        if not self.keep_alive:
            protocol.transport.close()
        protocol.response_done()


class Runner:
    """Runs the calls of one connection in a handler thread, one after another, in their order.

    Calls join as their bodies come in; the runner takes them in one job of the handler
    threads (another job after ``RUN_AT_ONCE``, so that other connections get their turn),
    and hands each reply back to the event loop as it is made. A call whose caller has gone
    is dropped before the handler sees it.
    """

    def __init__(self, core: CallCore, loop: asyncio.AbstractEventLoop) -> None:
        self.core = core
        self.loop = loop
        self.pending = 0
        """Calls added and not yet run to their end."""
        self._calls: collections.deque[DirectCall] = collections.deque()
        self._lock = threading.Lock()
        self._active = False

    async def finished(self) -> None:
        """Return once every call added has run: uvicorn waits for this, within its grace period,
        for the calls of a connection whose client has gone."""
        while self.pending:
            await asyncio.sleep(0.05)

    def add(self, call: DirectCall) -> None:
        with self._lock:
            self.pending += 1
            self._calls.append(call)
            if self._active:
                return
            self._active = True
        self.core.threads.submit(self.loop, self._run, (), None)

    def _run(self) -> None:
        for _ in range(RUN_AT_ONCE):
            with self._lock:
                if not self._calls:
                    self._active = False
                    return
                call = self._calls.popleft()
            try:
                reply = self.core.respond(call.path, call.body, call.content_type, call.gone)
            except Exception as exc:  # never a call left unanswered, nor a runner stuck active
                reply = self.core.broken(call.path, exc)
            call.body = b""
            with self._lock:
                self.pending -= 1
            self.loop.call_soon_threadsafe(call.result, reply)
        self.core.threads.submit(self.loop, self._run, (), None)  # still active: the rest, behind others

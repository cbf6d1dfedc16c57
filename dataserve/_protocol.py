"""dataserve's own uvicorn protocol: plain calls answered without an ASGI task, all else as uvicorn does.

``DataProtocol`` is uvicorn's httptools protocol, given to uvicorn through its public
``Config(http=...)`` hook, with one lane added. A plain call (a PUT with a Content-Length,
no ``Expect: 100-continue``, no upgrade) to a ``DataApp`` served on its own goes straight to
the call core (``_core``), the same core the Starlette route adapts: its body is received
into one buffer, a large one straight from the socket, and its reply's head and body are
written together. Every other request (HEAD, GET /healthz, chunked bodies, other methods,
an app that is not a DataApp or is mounted in another) goes through uvicorn's own code and
the ASGI app, unchanged. The protocol also serves
``uvicorn module:app --http dataserve._protocol:DataProtocol``.

Pipelined calls are answered in order. Those of a plain handler run one after another in one
handler thread as soon as their bodies are in (``_Runner``), rather than each waiting for the
reply before it to be written, and the replies that are ready together go out in one write.
"""

from __future__ import annotations

import asyncio
import collections
import threading
import weakref
from typing import Any
from urllib.parse import unquote

import httptools
from uvicorn.config import Config
from uvicorn.middleware.proxy_headers import ProxyHeadersMiddleware
from uvicorn.protocols.http.httptools_impl import STATUS_LINE, HttpToolsProtocol, RequestResponseCycle
from uvicorn.server import ServerState

from ._app import DataApp
from ._buffers import BodyBuffer
from ._core import CallCore
from ._wire import Reply

__all__ = ["DataProtocol"]

_READ = 64 * 1024
"""Bytes of the buffer every read goes into, but those that go straight into a body."""

_SMALL = 64 * 1024
"""Bodies up to this size are gathered from the parser; larger ones into a buffer of their own, which
the socket fills directly. Replies up to this size are joined to their head."""

_PIPELINE_DEPTH = 32
"""Pipelined calls waiting their turn on one connection before it stops reading more."""

_RUN_AT_ONCE = 16
"""Calls of one connection a handler thread runs before it lets other connections' calls in."""


class DataProtocol(HttpToolsProtocol, asyncio.BufferedProtocol):
    """uvicorn's httptools protocol, with a direct lane for the plain calls of a DataApp."""

    def __init__(
        self,
        config: Config,
        server_state: ServerState,
        app_state: dict[str, Any],
        _loop: asyncio.AbstractEventLoop | None = None,
    ) -> None:
        super().__init__(config, server_state, app_state, _loop)
        self.core = _core_of(self.app) if config.limit_concurrency is None else None
        self._read = _read_buffer(self.loop)
        self._into: _DirectCall | None = None
        """The direct call whose body is being received straight from the socket."""
        self._current: _DirectCall | RequestResponseCycle | None = None
        """The request whose turn it is: the one answered now, or last."""
        self._runner: _Runner | None = None
        self._outgoing: list[bytes] = []
        self._flush_scheduled = False

    # Reading: into the shared buffer and on to the parser, or straight into a body.

    def get_buffer(self, sizehint: int) -> memoryview:
        if self._into is not None:
            return self._into.buffer.space()  # type: ignore[union-attr]
        return self._read

    def buffer_updated(self, nbytes: int) -> None:
        call = self._into
        if call is None:
            self.data_received(self._read[:nbytes])  # type: ignore[arg-type]
            return
        assert call.buffer is not None
        call.buffer.advance(nbytes)
        if call.buffer.full:
            # The parser never saw these bytes: a new one reads the next request. The body is
            # handed over once the transport has let go of the part it received into.
            self._into = None
            self.parser = httptools.HttpRequestParser(self)
            self.parser.set_dangerous_leniencies(lenient_data_after_close=True)
            self.loop.call_soon(call.body_received)

    def connection_lost(self, exc: Exception | None) -> None:
        self._outgoing.clear()
        super().connection_lost(exc)

    # Parser callbacks

    def on_headers_complete(self) -> None:
        call = self._direct_call()
        if call is None:
            self._flush()  # uvicorn writes its replies itself: what is queued goes first
            super().on_headers_complete()
            return
        existing = self.cycle
        self.cycle = call  # type: ignore[assignment]
        if existing is None or existing.response_complete:
            self._current = call
            call.turn()
        else:
            self.pipeline.appendleft((call, None))  # type: ignore[arg-type]
            if len(self.pipeline) >= _PIPELINE_DEPTH:
                self.flow.pause_reading()

    def on_body(self, body: bytes) -> None:
        call = self.cycle
        if not isinstance(call, _DirectCall):
            super().on_body(body)
            return
        if call.refused is not None:
            return  # a refused call's body, read only to get to the next request
        buffer = call.buffer
        if buffer is None:
            call.pieces.append(body)
            return
        buffer.write(body)
        if not buffer.full:
            self._into = call  # the rest comes straight from the socket

    def on_message_complete(self) -> None:
        call = self.cycle
        if not isinstance(call, _DirectCall):
            super().on_message_complete()
            return
        call.body_received()

    def _start_asgi_task(self, cycle: Any, app: Any) -> None:
        self._current = cycle
        if isinstance(cycle, _DirectCall):
            cycle.turn()  # a pipelined direct call's turn has come
        else:
            self._flush()
            super()._start_asgi_task(cycle, app)

    # The direct lane

    def _direct_call(self) -> _DirectCall | None:
        """The direct call of the request whose headers were just parsed, or None for uvicorn to take it."""
        core = self.core
        parser = self.parser
        if (
            core is None
            or self.expect_100_continue
            or parser.get_method() != b"PUT"
            or parser.should_upgrade()
        ):
            return None
        length = 0
        content_type = None
        for name, value in self.headers:
            if name == b"content-length":
                length = int(value)
            elif name == b"transfer-encoding":
                return None
            elif name == b"content-type" and content_type is None:
                content_type = value.decode("latin-1")
        path = httptools.parse_url(self.url).path.decode("ascii")
        if "%" in path:
            path = unquote(path)
        keep_alive = parser.get_http_version() != "1.0" and parser.should_keep_alive()
        call = _DirectCall(self, core, path, content_type, keep_alive)
        refused = core.refusal(path, self.headers, length)
        if refused is not None:
            call.refused = refused
        elif length > _SMALL:
            call.buffer = BodyBuffer(length)
        return call

    def may_run_ahead(self, call: _DirectCall) -> bool:
        """Whether ``call`` may go to this connection's runner before its turn.

        Only behind calls that went to the runner too (or need no handler): a request that
        uvicorn answers through the app may reach the handler as well, and goes first.
        """
        assert self.core is not None
        if not self.core.takes_threads:
            return False
        queued: collections.deque[tuple[Any, Any]] = self.pipeline
        ahead = [cycle for cycle, _ in queued if cycle is not call]
        if self._current is not None and not self._current.response_complete:
            ahead.append(self._current)
        return all(isinstance(cycle, _DirectCall) and (cycle.via_runner or cycle.refused) for cycle in ahead)

    def runner(self) -> _Runner:
        if self._runner is None:
            assert self.core is not None
            self._runner = _Runner(self.core, self.loop)
        return self._runner

    def write_reply(self, reply: Reply, keep_alive: bool) -> None:
        """Write ``reply`` as an HTTP/1.1 response; replies ready together leave in one write."""
        head = [STATUS_LINE[reply.status]]
        for default, given in self.server_state.default_headers:
            head += [default, b": ", given, b"\r\n"]
        for name, value in reply.headers.items():
            head.append(f"{name}: {value}\r\n".encode("latin-1"))
        head.append(b"content-length: %d\r\n" % len(reply.body))
        if not keep_alive:
            head.append(b"connection: close\r\n")
        head.append(b"\r\n")
        if len(reply.body) <= _SMALL:
            head.append(reply.body)
            self._outgoing.append(b"".join(head))
        else:
            self._outgoing += [b"".join(head), reply.body]
        if not keep_alive or not self.pipeline:
            self._flush()  # nothing is waiting to follow it
        elif not self._flush_scheduled:
            self._flush_scheduled = True
            self.loop.call_soon(self._flush)

    def _flush(self) -> None:
        self._flush_scheduled = False
        if not self._outgoing:
            return
        outgoing, self._outgoing = self._outgoing, []
        if not self.transport.is_closing():
            if len(outgoing) == 1:
                self.transport.write(outgoing[0])
            else:
                self.transport.writelines(outgoing)


class _Runner:
    """Runs the calls of one connection in a handler thread, one after another, in their order.

    Calls join as their bodies come in; the runner takes them in one job of the handler
    threads (another job after ``_RUN_AT_ONCE``, so that other connections get their turn),
    and hands each reply back to the event loop as it is made.
    """

    def __init__(self, core: CallCore, loop: asyncio.AbstractEventLoop) -> None:
        self.core = core
        self.loop = loop
        self._calls: collections.deque[_DirectCall] = collections.deque()
        self._lock = threading.Lock()
        self._active = False

    def add(self, call: _DirectCall) -> None:
        with self._lock:
            self._calls.append(call)
            if self._active:
                return
            self._active = True
        self.core.threads.submit(self.loop, self._run, (), None)

    def _run(self) -> None:
        for _ in range(_RUN_AT_ONCE):
            with self._lock:
                if not self._calls:
                    self._active = False
                    return
                call = self._calls.popleft()
            reply = self.core.respond(call.path, call.body, call.content_type)
            call.body = b""
            self.loop.call_soon_threadsafe(call.result, reply)
        self.core.threads.submit(self.loop, self._run, (), None)  # still active: the rest, behind others


class _NoEvent:
    """What uvicorn's protocol sets on a call when its connection is lost: nothing waits on a direct call."""

    def set(self) -> None:
        pass


_NO_EVENT = _NoEvent()


class _DirectCall:
    """One plain call on the direct lane: its body arriving, its run, its turn on the connection, its reply.

    It stands where uvicorn's protocol keeps a request's cycle, so that uvicorn's pipelining,
    shutdown and lost connections treat it as one.
    """

    __slots__ = (
        "body",
        "buffer",
        "content_type",
        "core",
        "disconnected",
        "keep_alive",
        "message_event",
        "path",
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
        self, protocol: DataProtocol, core: CallCore, path: str, content_type: str | None, keep_alive: bool
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
        self.result_reply: Reply | None = None
        self.received = False
        self.submitted = False
        self.via_runner = False
        self.started = False
        self.response_complete = False
        self.disconnected = False
        self.message_event = _NO_EVENT

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
        if self.started:
            self._write(reply)
        else:
            self.result_reply = reply

    def _submit(self) -> None:
        self.submitted = True
        if self.core.takes_threads:  # one runner keeps a connection's calls in their order
            self.via_runner = True
            self.protocol.runner().add(self)
            return
        task = self.core.start(self.protocol.loop, self.path, self.body, self.content_type, self.result)
        self.body = b""
        if task is not None:
            tasks = self.protocol.tasks
            tasks.add(task)  # as uvicorn follows its ASGI tasks, to cancel them past the grace period
            task.add_done_callback(tasks.discard)

    def _write(self, reply: Reply) -> None:
        if self.response_complete:
            return
        self.response_complete = True
        self.result_reply = None
        protocol = self.protocol
        if self.disconnected or protocol.transport.is_closing():
            return
        protocol.write_reply(reply, self.keep_alive)
        if not self.keep_alive:
            protocol.transport.close()
        protocol.on_response_complete()


_READ_BUFFERS: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, memoryview] = weakref.WeakKeyDictionary()


def _read_buffer(loop: asyncio.AbstractEventLoop) -> memoryview:
    """The buffer the connections of ``loop`` read into: one for them all, as each read is parsed
    (and what the parser keeps, copied) before the loop reads again."""
    buffer = _READ_BUFFERS.get(loop)
    if buffer is None:
        buffer = _READ_BUFFERS[loop] = memoryview(bytearray(_READ))
    return buffer


def _core_of(app: Any) -> CallCore | None:
    """The call core of the DataApp that ``app`` is, or wraps in uvicorn's proxy-headers middleware."""
    while isinstance(app, ProxyHeadersMiddleware):
        app = app.app
    return app.core if isinstance(app, DataApp) else None

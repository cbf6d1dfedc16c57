"""dataserve's own uvicorn protocol: plain calls answered without an ASGI task, all else as uvicorn does.

``DataProtocol`` is uvicorn's httptools protocol, given to uvicorn through its public
``Config(http=...)`` hook, with one lane added. A plain call (a PUT with a Content-Length,
no ``Expect: 100-continue``, no upgrade) to a ``DataApp`` served on its own goes straight to
the call core (``_core``), the same core the Starlette route adapts: its body is received
into one buffer, a large one straight from the socket, and its reply's head and body are
written together. Pipelined calls are answered in order without pausing the connection for
each. Every other request (HEAD, GET /healthz, chunked bodies, other methods, an app that is
not a DataApp or is mounted in another) goes through uvicorn's own code and the ASGI app,
unchanged. The protocol also serves ``uvicorn module:app --http dataserve._protocol:DataProtocol``.
"""

from __future__ import annotations

import asyncio
import weakref
from typing import Any
from urllib.parse import unquote

import httptools
from uvicorn.config import Config
from uvicorn.middleware.proxy_headers import ProxyHeadersMiddleware
from uvicorn.protocols.http.httptools_impl import STATUS_LINE, HttpToolsProtocol
from uvicorn.server import ServerState

from ._app import DataApp
from ._buffers import BodyBuffer
from ._core import CallCore
from ._wire import Reply

__all__ = ["DataProtocol"]

_READ = 64 * 1024
"""Bytes of the buffer every read goes into, but those that go straight into a body."""

_SMALL = 64 * 1024
"""Replies up to this size are written as one piece, head and body joined; larger ones without joining."""

_PIPELINE_DEPTH = 32
"""Pipelined calls waiting their turn on one connection before it stops reading more."""


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

    # Reading: into the connection's buffer and on to the parser, or straight into a body.

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

    # Parser callbacks

    def on_headers_complete(self) -> None:
        call = self._direct_call()
        if call is None:
            super().on_headers_complete()
            return
        existing = self.cycle
        self.cycle = call  # type: ignore[assignment]
        if existing is None or existing.response_complete:
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
        buffer = call.buffer
        if buffer is None:
            return  # a refused call's body, read only to get to the next request
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
        if isinstance(cycle, _DirectCall):
            cycle.turn()  # a pipelined direct call's turn has come
        else:
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
        elif length:
            call.buffer = BodyBuffer(length)
        return call

    def write_reply(self, reply: Reply, keep_alive: bool) -> None:
        """Write ``reply`` as an HTTP/1.1 response, head and body together."""
        head = [STATUS_LINE[reply.status]]
        for default, given in self.server_state.default_headers:
            head += [default, b": ", given, b"\r\n"]
        for name, value in reply.headers.items():
            head.append(f"{name}: {value}\r\n".encode("latin-1"))
        head.append(b"content-length: %d\r\n" % len(reply.body))
        if not keep_alive:
            head.append(b"connection: close\r\n")
        head.append(b"\r\n")
        if len(reply.body) < _SMALL:
            head.append(reply.body)
            self.transport.write(b"".join(head))
        else:
            self.transport.writelines([b"".join(head), reply.body])


class _NoEvent:
    """What uvicorn's protocol sets on a call when its connection is lost: nothing waits on a direct call."""

    def set(self) -> None:
        pass


_NO_EVENT = _NoEvent()


class _DirectCall:
    """One plain call on the direct lane: its body arriving, its turn on the connection, its reply.

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
        "protocol",
        "received",
        "refused",
        "response_complete",
        "started",
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
        self.body = b""
        self.refused: Reply | None = None
        self.received = False
        self.started = False
        self.response_complete = False
        self.disconnected = False
        self.message_event = _NO_EVENT

    def turn(self) -> None:
        """The call's turn on its connection has come: answer it once its body is in."""
        self.started = True
        if self.refused is not None:
            self.reply(self.refused)  # at once: its body, if any, is read only to be dropped
        elif self.received:
            self._run()

    def body_received(self) -> None:
        if self.received:
            return
        self.received = True
        if self.buffer is not None:
            self.body = self.buffer.value()
            self.buffer = None
        if self.started and self.refused is None and not self.response_complete:
            self._run()

    def _run(self) -> None:
        task = self.core.start(self.path, self.body, self.content_type, self.reply)
        self.body = b""
        if task is not None:
            tasks = self.protocol.tasks
            tasks.add(task)  # as uvicorn follows its ASGI tasks, to cancel them past the grace period
            task.add_done_callback(tasks.discard)

    def reply(self, reply: Reply) -> None:
        if self.response_complete:
            return
        self.response_complete = True
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

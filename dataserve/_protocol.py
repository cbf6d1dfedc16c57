"""dataserve's own uvicorn protocol: plain calls answered without an ASGI task, and every connection guarded.

``DataProtocol`` is uvicorn's httptools protocol, given to uvicorn through its public
``Config(http=...)`` hook, with two things added.

The direct lane: a plain call (a PUT or POST with a Content-Length, no ``Expect: 100-continue``, no
upgrade) to a ``DataApp`` served on its own goes straight to the call core (``_core``), the
same core the Starlette route adapts, as a ``DirectCall`` (``_direct``): its body is received
into one buffer, a large one straight from the socket, and its reply's head and body are
written together; pipelined calls run ahead in one handler thread, and replies ready together
leave in one write. Every other request (HEAD, GET /healthz, chunked bodies, other methods, an
app that is not a DataApp served alone) goes through uvicorn's own code and the ASGI app.

The guards, on every request either way (``Limits``): a request's head must come whole within
``head_timeout`` and stay under ``max_head_size`` (its target under ``max_target_size``) as
its bytes arrive; a body must keep coming at ``min_body_rate``, a reply be taken at
``min_send_rate``; at most ``max_connections`` are open; and a connection whose replies pile
up unread stops reading more requests. The protocol also serves
``uvicorn module:app --http dataserve._protocol:DataProtocol``.
"""

from __future__ import annotations

import asyncio
import collections
import os
import weakref
from typing import Any
from urllib.parse import unquote

import httptools
from uvicorn.config import Config
from uvicorn.middleware.proxy_headers import ProxyHeadersMiddleware
from uvicorn.protocols.http.httptools_impl import STATUS_LINE, HttpToolsProtocol, RequestResponseCycle
from uvicorn.server import ServerState

from ._access import peer
from ._app import DataApp
from ._buffers import BodyBuffer
from ._core import CallCore
from ._direct import DirectCall, Runner
from ._errors import error_body
from ._graceful import StoppingState
from ._limits import Limits
from ._watch import WINDOW, RateWatch, warn
from ._wire import Reply

__all__ = ["DIRECT_LANE_ENV", "DataProtocol", "HTTPProtocol"]

_CALL_METHODS = (b"PUT", b"POST")
"""The methods of a call: the seed's PUT, and POST, which proxies never send twice."""

DIRECT_LANE_ENV = "DATASERVE_DIRECT_LANE"
"""Set to 0 to answer every call through uvicorn's own code and the ASGI app; the guards stay."""

_READ = 64 * 1024
"""Bytes of the buffer every read goes into, but those that go straight into a body."""

_SMALL = 64 * 1024
"""Bodies up to this size are gathered from the parser; larger ones into a buffer of their own, which
the socket fills directly. Replies up to this size are joined to their head."""

_PIPELINE_DEPTH = 32
"""Pipelined calls waiting their turn on one connection before it stops reading more."""

_LINGER = 1 << 20
_LINGER_TIME = 2.0
"""Bytes, and seconds, that a refused connection is read and dropped for before it is closed."""

_FIRST_REQUEST_WAIT = 1.0
"""How long a connection that has sent nothing yet is kept open once the server stops, for the
request that is on its way: a balancer sends a call as soon as its connection is accepted."""


class DataProtocol(asyncio.BufferedProtocol):
    """The protocol uvicorn is given: ``HTTPProtocol``, on reads into buffers of its own.

    uvloop reads into a protocol's buffers (``get_buffer``) only for a protocol that is not an
    ``asyncio.Protocol``, and uvicorn's httptools protocol, which ``HTTPProtocol`` extends, is
    one; this one passes each event of the transport on to it.
    """

    def __init__(
        self,
        config: Config,
        server_state: ServerState,
        app_state: dict[str, Any],
        _loop: asyncio.AbstractEventLoop | None = None,
    ) -> None:
        self.http = HTTPProtocol(config, server_state, app_state, _loop)

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.http.connection_made(transport)  # type: ignore[arg-type]

    def connection_lost(self, exc: Exception | None) -> None:
        self.http.connection_lost(exc)

    def get_buffer(self, sizehint: int) -> memoryview:
        return self.http.get_buffer(sizehint)

    def buffer_updated(self, nbytes: int) -> None:
        self.http.buffer_updated(nbytes)

    def eof_received(self) -> None:
        self.http.eof_received()

    def pause_writing(self) -> None:
        self.http.pause_writing()

    def resume_writing(self) -> None:
        self.http.resume_writing()


class HTTPProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol, with a direct lane for the plain calls of a DataApp, and guards."""

    def __init__(
        self,
        config: Config,
        server_state: ServerState,
        app_state: dict[str, Any],
        _loop: asyncio.AbstractEventLoop | None = None,
    ) -> None:
        super().__init__(config, server_state, app_state, _loop)
        core = self._app_core = _core_of(self.app)
        self.limits = core.limits if core is not None else Limits()
        direct = config.limit_concurrency is None and os.environ.get(DIRECT_LANE_ENV, "1") != "0"
        self.core = core if direct else None
        """The call core the direct lane takes plain calls to; None when it takes none."""
        self.lost = False
        """Whether the connection is gone: a call still waiting for the handler is dropped."""
        self._admission = None if core is None else core.admission
        self._read = _read_buffer(self.loop)
        self._into: DirectCall | None = None
        """The direct call whose body is being received straight from the socket."""
        self._current: DirectCall | RequestResponseCycle | None = None
        """The request whose turn it is: the one answered now, or last."""
        self._runner: Runner | None = None
        self._outgoing: list[bytes] = []
        self._flush_scheduled = False
        self._held = 0
        """Bytes of replies written that the transport may still hold, counted as held by the core."""
        self._answered_later = False
        """Whether the next request waits for the replies written to drain."""
        self._idle_since: float | None = None
        """Since when the connection waits for a request after its last reply (``loop.time()``)."""
        self._defaults: list[tuple[bytes, bytes]] | None = None
        self._default_lines = b""
        """uvicorn's default headers (the date, the server), as the lines of a reply's head."""
        # The guards' state
        self._in_head = True
        self._head_size = 0
        self._url_parts: list[bytes] = []
        self._target_size = 0
        self._refusal: tuple[int, str, str] | None = None
        self._head_timer: asyncio.TimerHandle | None = None
        self._head_began = 0.0
        """When the head under way began to come (``loop.time()``): the connection, or its first byte."""
        self._body_bytes = 0
        self._body_watch: RateWatch | None = None
        self._send_watch: RateWatch | None = None
        self._dropping: int | None = None
        """Bytes dropped since the connection was refused and closed for writing; None until then."""
        # The stop's state
        self._requests = 0
        """Requests begun on this connection."""
        self._receiving = False
        """Whether a request has begun to come and is not yet read whole."""
        self._stopping = False
        self._first_request_timer: asyncio.TimerHandle | None = None

    # The connection

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        limit = self.limits.max_connections
        if len(self.connections) > limit:
            warn(
                "connections",
                "refused a connection from %s: %d connections are open (max_connections %d)",
                _peer(self.client),
                len(self.connections) - 1,
                limit,
            )
            message = f"the server has {limit} connections open (max_connections); try again shortly"
            self._send_error(503, "overloaded", message, {"retry-after": "1"})
            return
        self._head_began = self.loop.time()
        self._arm_head_timer(self.limits.head_timeout)
        if isinstance(self.server_state, StoppingState) and self.server_state.stopping:
            self.shutdown()  # accepted from the queue as the server stops: one call, then closed

    def connection_lost(self, exc: Exception | None) -> None:
        self.lost = True
        if self.timeout_keep_alive_task is not None:
            self.timeout_keep_alive_task.cancel()
            self.timeout_keep_alive_task = None
        if self._first_request_timer is not None:
            self._first_request_timer.cancel()
        self._outgoing.clear()
        self._stop_watches()
        self._release_held()
        if self._into is not None:
            self._into.end()
            self._into = None
        for cycle in [self.cycle, *(cycle for cycle, _ in self.pipeline)]:
            if isinstance(cycle, DirectCall):
                cycle.lost()
        if self._runner is not None and self._runner.pending:
            # The handler is still at the calls of a client that has gone: a stop waits for them too.
            task = self.loop.create_task(self._runner.finished())
            self.tasks.add(task)
            task.add_done_callback(self.tasks.discard)
        super().connection_lost(exc)

    def shutdown(self) -> None:
        """uvicorn's server begins to stop: the health check says so from now on, and the
        connection closes as soon as it is between requests.

        A request that has begun to come is read and answered first, and so is the first one
        of a connection that has sent nothing yet, for ``_FIRST_REQUEST_WAIT``: a balancer
        sends its call the moment it connects, and closing before it comes would lose it.
        """
        if self._app_core is not None:
            self._app_core.stopping()
        self._stopping = True
        if self._receiving:
            return  # its reply closes the connection
        if self._requests == 0 and self.cycle is None:
            self._first_request_timer = self.loop.call_later(_FIRST_REQUEST_WAIT, self._close_if_silent)
            return
        super().shutdown()

    def _close_if_silent(self) -> None:
        self._first_request_timer = None
        if self._requests == 0:
            self.transport.close()

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
        self._body_bytes += nbytes
        if call.buffer.full:
            # The parser never saw these bytes: a new one reads the next request. The body is
            # handed over once the transport has let go of the part it received into.
            self._into = None
            self.parser = httptools.HttpRequestParser(self)
            self.parser.set_dangerous_leniencies(lenient_data_after_close=True)
            self._message_done()
            self.loop.call_soon(call.body_received)

    def data_received(self, data: bytes) -> None:
        if self._dropping is not None:  # refused: read only so as not to reset the connection
            self._dropping += len(data)
            if self._dropping > _LINGER:
                self.transport.close()
            return
        if self._in_head:
            self._head_size += len(data)
            if self._head_size > self.limits.max_head_size:
                self._refuse_head()
                return
        super().data_received(data)
        if self._refusal is not None:
            self._refuse(*self._refusal)
        elif not self._in_head and self._body_watch is None and self.limits.min_body_rate is not None:
            self._body_watch = RateWatch(
                self.loop,
                self.limits.min_body_rate,
                self._body_progress,
                self._reading_paused,
                self._body_too_slow,
            )

    def pause_writing(self) -> None:
        super().pause_writing()
        if self._send_watch is None and self.limits.min_send_rate is not None:
            self._send_watch = RateWatch(
                self.loop, self.limits.min_send_rate, self._sent, lambda: False, self._send_too_slow
            )

    def resume_writing(self) -> None:
        super().resume_writing()
        if self._send_watch is not None:
            self._send_watch.stop()
            self._send_watch = None
        self._release_held()
        if self._answered_later:
            self._answered_later = False
            self.on_response_complete()

    # Parser callbacks

    def on_message_begin(self) -> None:
        self._requests += 1
        self._receiving = True
        if self._first_request_timer is not None:
            self._first_request_timer.cancel()
            self._first_request_timer = None
        # What uvicorn's on_message_begin sets, but its ASGI scope: a direct call needs none, and
        # one is made (``_begin_asgi_request``) once a request turns out to be uvicorn's to answer.
        self.url = b""
        self.expect_100_continue = False
        self.headers = []
        self._url_parts = []
        self._target_size = 0
        self._head_began = self.loop.time()
        if self._head_timer is None:
            self._arm_head_timer(self.limits.head_timeout)

    def on_url(self, url: bytes) -> None:
        # Gathered in parts and joined once: uvicorn's own concatenation takes time in proportion
        # to the square of a target that comes in many pieces.
        self._target_size += len(url)
        if self._target_size > self.limits.max_target_size:
            self._refusal = (414, "uri_too_long", self._head_message("target"))
            return
        self._url_parts.append(url)

    def on_headers_complete(self) -> None:
        self._in_head = False
        if self._refusal is not None:
            return
        self.url = b"".join(self._url_parts)
        call = self._direct_call()
        if call is None:
            self._begin_asgi_request()
            self._flush()  # uvicorn writes its replies itself: what is queued goes first
            super().on_headers_complete()
            if self._stopping and self.cycle is not None:
                self.cycle.keep_alive = False
            return
        if self._stopping:
            call.keep_alive = False
        existing = self.cycle
        self.cycle = call  # type: ignore[assignment]
        if existing is None or existing.response_complete:
            self._current = call
            call.turn()
        else:
            self.pipeline.appendleft((call, None))  # type: ignore[arg-type]
            if len(self.pipeline) >= _PIPELINE_DEPTH:
                self.flow.pause_reading()

    def _begin_asgi_request(self) -> None:
        """Begin the request whose head was just read as uvicorn does (its ASGI scope), keeping its head."""
        headers, url, expect_100_continue = self.headers, self.url, self.expect_100_continue
        super().on_message_begin()
        self.headers.extend(headers)  # the list the scope holds
        self.url = url
        self.expect_100_continue = expect_100_continue

    def on_body(self, body: bytes) -> None:
        self._body_bytes += len(body)
        call = self.cycle
        if not isinstance(call, DirectCall):
            super().on_body(body)
            return
        if call.refused is not None or call.response_complete:
            return  # a refused call's body, read only to get to the next request
        buffer = call.buffer
        if buffer is None:
            call.pieces.append(body)
            return
        buffer.write(body)
        if not buffer.full:
            self._into = call  # the rest comes straight from the socket

    def on_message_complete(self) -> None:
        self._message_done()
        call = self.cycle
        if not isinstance(call, DirectCall):
            super().on_message_complete()
            return
        call.body_received()

    def on_response_complete(self) -> None:
        """uvicorn's, but for its keep-alive timer: one per connection, looked at again as it fires
        (``_keep_alive_due``), instead of one armed after each reply and cancelled by the next request."""
        self.server_state.total_requests += 1
        if self.transport.is_closing():
            return
        self._idle_since = None
        self.flow.resume_reading()
        if self.pipeline:
            cycle, app = self.pipeline.pop()
            self._start_asgi_task(cycle, app)
            return
        self._idle_since = self.loop.time()
        if self.timeout_keep_alive_task is None:
            self.timeout_keep_alive_task = self.loop.call_later(self.timeout_keep_alive, self._keep_alive_due)

    def _unset_keepalive_if_required(self) -> None:
        """What uvicorn calls as a request's bytes come: the connection is no longer idle."""
        self._idle_since = None

    def _keep_alive_due(self) -> None:
        self.timeout_keep_alive_task = None
        if self._idle_since is None:
            return  # a request came: its reply arms the timer again
        left = self._idle_since + self.timeout_keep_alive - self.loop.time()
        if left > 0:
            self.timeout_keep_alive_task = self.loop.call_later(left, self._keep_alive_due)
            return
        self.timeout_keep_alive_handler()

    def _start_asgi_task(self, cycle: Any, app: Any) -> None:
        self._current = cycle
        if isinstance(cycle, DirectCall):
            cycle.turn()  # a pipelined direct call's turn has come
        else:
            self._flush()
            super()._start_asgi_task(cycle, app)

    # The direct lane

    def _direct_call(self) -> DirectCall | None:
        """The direct call of the request whose headers were just parsed, or None for uvicorn to take it."""
        core = self.core
        parser = self.parser
        method = parser.get_method()
        if core is None or self.expect_100_continue or method not in _CALL_METHODS or parser.should_upgrade():
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
            elif name == b"origin" and core.cors:
                return None  # a browser's call: the app's CORS middleware answers it
        url = self.url
        if url[:1] == b"/" and url[1:2] != b"/" and b"?" not in url and b"#" not in url:
            path = url.decode("ascii")  # a plain path, as a client sends a call's
        else:
            path = httptools.parse_url(url).path.decode("ascii")
        if "%" in path:
            path = unquote(path)
        keep_alive = parser.get_http_version() != "1.0" and parser.should_keep_alive()
        call = DirectCall(self, core, path, content_type, keep_alive)
        if core.observer is not None:
            call.observe(core.observer, method.decode("ascii"), length, peer(self.client))
        refused = core.refusal(path, self.headers, length) or core.admit(length)
        if refused is not None:
            call.refused = refused
            return call
        call.admitted = length
        if length > _SMALL:
            call.buffer = BodyBuffer(length)
        return call

    def may_run_ahead(self, call: DirectCall) -> bool:
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
        return all(isinstance(cycle, DirectCall) and (cycle.via_runner or cycle.refused) for cycle in ahead)

    def runner(self) -> Runner:
        if self._runner is None:
            assert self.core is not None
            self._runner = Runner(self.core, self.loop)
        return self._runner

    def write_reply(self, reply: Reply, keep_alive: bool) -> None:
        """Write ``reply`` as an HTTP/1.1 response; replies ready together leave in one write."""
        defaults = self.server_state.default_headers  # a new list each second, for the date
        if defaults is not self._defaults:
            self._defaults = defaults
            self._default_lines = b"".join(b"%s: %s\r\n" % (name, value) for name, value in defaults)
        head = [STATUS_LINE[reply.status], self._default_lines]
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
            if self._admission is not None:
                self._admission.hold(len(reply.body))  # until the transport has sent it
                self._held += len(reply.body)
        if not keep_alive or not self.pipeline:
            self._flush()  # nothing is waiting to follow it
        elif not self._flush_scheduled:
            self._flush_scheduled = True
            self.loop.call_soon(self._flush)

    def response_done(self) -> None:
        """A direct call's reply is written: on to the next request, once the replies written have drained
        below the transport's limit, so that a client that reads none makes the server read no more."""
        if self.flow.write_paused:
            self._answered_later = True
            return
        self.on_response_complete()

    def _flush(self) -> None:
        self._flush_scheduled = False
        if not self._outgoing:
            return
        outgoing, self._outgoing = self._outgoing, []
        if self.transport.is_closing():
            return
        if len(outgoing) == 1:
            self.transport.write(outgoing[0])
        else:
            self.transport.writelines(outgoing)
        if not self.transport.get_write_buffer_size():
            self._release_held()

    def _release_held(self) -> None:
        if self._held and self._admission is not None:
            self._admission.release(self._held)
        self._held = 0

    # The guards

    def _arm_head_timer(self, delay: float) -> None:
        """Look at the head under way in ``delay`` seconds. One timer serves a connection's requests,
        looked at and armed again as it fires, rather than one armed and cancelled for each."""
        self._head_timer = self.loop.call_later(delay, self._head_timed_out)

    def _cancel_head_timer(self) -> None:
        if self._head_timer is not None:
            self._head_timer.cancel()
            self._head_timer = None

    def _head_timed_out(self) -> None:
        self._head_timer = None
        if self.transport.is_closing():
            return
        if not (self._in_head and (self._receiving or self._requests == 0)):
            return  # no head under way: the next request's first byte arms the timer again
        now = self.loop.time()
        if self.flow.read_paused:  # the server holds the client back: its time does not count
            self._head_began = now
        left = self._head_began + self.limits.head_timeout - now
        if left > 0:
            self._arm_head_timer(left)
            return
        warn(
            "head_timeout",
            "closed a connection from %s: no whole request head in %g s (head_timeout)",
            _peer(self.client),
            self.limits.head_timeout,
        )
        message = f"no whole request head came in {self.limits.head_timeout:g} s (head_timeout)"
        self._send_error(408, "request_timeout", message)

    def _refuse_head(self) -> None:
        """Refuse a head that grew past ``max_head_size``: 431, or 414 while no header has come yet."""
        if self.headers:  # uvicorn's, of the request under way: a header has come whole
            self._refuse(431, "headers_too_large", self._head_message("head"))
        else:
            self._refuse(414, "uri_too_long", self._head_message("request line"))

    def _head_message(self, what: str) -> str:
        if what == "target":
            return (
                f"the request's target is over the {self.limits.max_target_size:,} bytes taken "
                "(max_target_size); name resources shortly and send data in the body"
            )
        return (
            f"the request's {what} is over the {self.limits.max_head_size:,} bytes taken (max_head_size); "
            "send fewer or smaller headers"
        )

    def _refuse(self, status: int, error: str, message: str) -> None:
        warn(
            f"refused {status}", "refused a request from %s with %d: %s", _peer(self.client), status, message
        )
        self._send_error(status, error, message)

    def _send_error(
        self, status: int, error: str, message: str, headers: dict[str, str] | None = None
    ) -> None:
        """Answer with ``status`` and dataserve's error body, then close the connection."""
        body = error_body(error, message)
        head = STATUS_LINE[status] + b"content-type: application/json\r\n"
        for name, value in (headers or {}).items():
            head += f"{name}: {value}\r\n".encode("latin-1")
        self._answer_and_close(head + b"content-length: %d\r\nconnection: close\r\n\r\n" % len(body) + body)

    def send_400_response(self, msg: str) -> None:
        """uvicorn's answer to a request it cannot parse, and a close that lets the client read it."""
        content = [STATUS_LINE[400]]
        for name, value in self.server_state.default_headers:
            content += [name, b": ", value, b"\r\n"]
        content += [b"content-type: text/plain; charset=utf-8\r\n", b"content-length: %d\r\n" % len(msg)]
        content += [b"connection: close\r\n", b"\r\n", msg.encode("ascii")]
        self._answer_and_close(b"".join(content), even_mid_reply=True)  # as uvicorn does

    def _answer_and_close(self, response: bytes, *, even_mid_reply: bool = False) -> None:
        """Write ``response`` if nothing is being answered on the connection (or ``even_mid_reply``),
        then close it.

        The client may still be sending: the connection is closed for writing, and what still
        comes is read and dropped for a moment (at most ``_LINGER`` bytes, ``_LINGER_TIME``
        seconds), so that the system does not reset the connection before the client reads
        the answer.
        """
        self._stop_watches()
        transport = self.transport
        if transport.is_closing():
            return
        idle = self.cycle is None or self.cycle.response_complete
        if idle or even_mid_reply:
            self._flush()
            transport.write(response)
        if not idle or not transport.can_write_eof():
            transport.close()  # a reply under way would write after the half-close
            return
        transport.write_eof()
        self._dropping = 0
        self.loop.call_later(_LINGER_TIME, transport.close)

    def _message_done(self) -> None:
        """A request is read whole: the next one's head starts."""
        self._receiving = False
        self._in_head = True
        self._head_size = 0
        self._body_bytes = 0
        if self._body_watch is not None:
            self._body_watch.stop()
            self._body_watch = None

    def _body_progress(self) -> int:
        return self._body_bytes

    def _reading_paused(self) -> bool:
        return self.flow.read_paused or self._in_head

    def _body_too_slow(self, moved: int) -> None:
        self._body_watch = None
        rate = self.limits.min_body_rate
        warn(
            "min_body_rate",
            "closed a connection from %s: %d bytes of its body in %g s, under min_body_rate (%s bytes/s)",
            _peer(self.client),
            moved,
            WINDOW,
            rate,
        )
        message = f"the body came slower than {rate} bytes a second (min_body_rate)"
        if isinstance(self.cycle, DirectCall):
            self.cycle.end()
        self._send_error(408, "request_timeout", message)

    def _sent(self) -> int:
        return -self.transport.get_write_buffer_size()

    def _send_too_slow(self, moved: int) -> None:
        self._send_watch = None
        warn(
            "min_send_rate",
            "closed a connection from %s: it took %d bytes in %g s, under min_send_rate (%s bytes/s)",
            _peer(self.client),
            max(moved, 0),
            WINDOW,
            self.limits.min_send_rate,
        )
        self.transport.abort()

    def _stop_watches(self) -> None:
        for watch in (self._body_watch, self._send_watch):
            if watch is not None:
                watch.stop()
        self._body_watch = self._send_watch = None
        self._cancel_head_timer()


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


def _peer(client: tuple[str, int] | None) -> str:
    return f"{client[0]}:{client[1]}" if client else "a Unix socket"

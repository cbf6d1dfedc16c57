"""The Starlette app that puts a handler on the web: one catch-all route for its calls.

The route's endpoint is a plain ASGI app over the call core (``_core``): Starlette routes a
call to it, and it reads the body, asks the core for the reply and sends it, without a
Request or Response object of its own. The app mounts into any Starlette or FastAPI app, and
runs under any ASGI server; dataserve's own server also answers plain calls without it
(``_protocol``), through the same core.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import time
from collections.abc import AsyncIterator, Callable, Iterable, Sequence
from contextlib import AbstractAsyncContextManager
from typing import Any

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.middleware.cors import CORSMiddleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from starlette.types import Receive, Scope, Send

from . import _descriptors as descriptors
from ._access import AccessLog
from ._buffers import BodyBuffer
from ._core import DEFAULT_MAX_BODY_SIZE, GONE, CallCore
from ._drain import Drain
from ._errors import error_reply
from ._handler import HTTPDataHandler
from ._lifecycle import State
from ._limits import Limits
from ._metrics import METRICS_PATH, Metrics
from ._observe import ObserveMiddleware, Observer
from ._token import refusal
from ._usercodecs import Codec
from ._wire import HEALTH_PATH, Reply

__all__ = ["DEFAULT_MAX_BODY_SIZE", "HEALTH_PATH", "DataApp", "create_app"]

_LARGE = 1 << 20
"""A declared body from this size on is gathered into one buffer as it arrives, not joined at the end."""


def create_app(
    data_handler: type[HTTPDataHandler] | HTTPDataHandler,
    *,
    debug: bool = False,
    max_concurrency: int = 1,
    token: str | None = None,
    max_body_size: int | None = DEFAULT_MAX_BODY_SIZE,
    limits: Limits | None = None,
    drain_timeout: float = 0,
    refuse_while_loading: bool = False,
    wait_for_setup: bool = False,
    codecs: Iterable[Codec] | None = None,
    access_log: bool = False,
    metrics: bool = False,
    open_metrics: bool = False,
    cors_origins: Sequence[str] = (),
) -> DataApp:
    """Return the ASGI app that serves ``data_handler`` at every PUT (or POST) path.

    ``data_handler`` is a subclass of HTTPDataHandler, made once with no arguments, or
    an instance of one. With ``debug`` a failing handler's traceback goes back to the
    caller. A plain ``handle_request`` runs in a handler thread, at most
    ``max_concurrency`` calls at once (one by default, as in the original server); an
    ``async def`` one runs on the event loop. With a ``token`` (or ``$DATASERVE_TOKEN``)
    only calls that carry it are answered. Bodies over ``max_body_size`` bytes are
    refused (None takes any size); ``limits`` holds the server's other limits (see
    ``Limits``). The app can be mounted into any Starlette or FastAPI app.

    Behind a load balancer: with ``drain_timeout`` seconds, a SIGTERM or Ctrl-C first makes
    the health check say "stopping" while calls are still served for that long, then stops;
    with ``refuse_while_loading`` a call that comes while ``setup()`` runs gets 503 at once,
    never having reached the handler, instead of waiting; with ``wait_for_setup`` the app's
    lifespan startup finishes only once ``setup()`` has, for hosts that take a finished
    startup as ready (Ray Serve). ``codecs`` carry types of one's own, in payloads and
    replies (see ``dataserve.Codec``), before those the process registered. The app pickles as
    the call that made it, so that such a host can make it again in each of its replicas.

    To see what the server does: with ``access_log`` each call is logged in one line to the
    ``dataserve.access`` logger, at INFO; with ``metrics`` (prometheus-client installed),
    ``GET /metrics`` serves Prometheus metrics of the calls, behind the token if there is one
    unless ``open_metrics``. ``cors_origins`` lists the web origins (such as
    ``"https://app.example.com"``, or ``"*"``) whose pages may call the server from a browser.
    """
    return DataApp(
        _as_handler(data_handler),
        debug=debug,
        max_concurrency=max_concurrency,
        token=token,
        max_body_size=max_body_size,
        limits=limits,
        drain_timeout=drain_timeout,
        refuse_while_loading=refuse_while_loading,
        wait_for_setup=wait_for_setup,
        codecs=codecs,
        access_log=access_log,
        metrics=metrics,
        open_metrics=open_metrics,
        cors_origins=cors_origins,
        made_from=data_handler,
    )


class DataApp(Starlette):
    """The Starlette app of one handler, which runs its ``setup()`` and ``teardown()``.

    Served on its own, its lifespan runs them. Mounted in a host app, pass its lifespan
    on (``Starlette(routes=[Mount("/data", app)], lifespan=app.lifespan)``) to run
    ``setup()`` as the server starts; otherwise it runs with the first request, and
    ``teardown()`` as the server's event loop ends.
    """

    def __init__(
        self,
        handler: HTTPDataHandler,
        *,
        debug: bool = False,
        max_concurrency: int = 1,
        token: str | None = None,
        max_body_size: int | None = DEFAULT_MAX_BODY_SIZE,
        limits: Limits | None = None,
        drain_timeout: float = 0,
        refuse_while_loading: bool = False,
        wait_for_setup: bool = False,
        codecs: Iterable[Codec] | None = None,
        access_log: bool = False,
        metrics: bool = False,
        open_metrics: bool = False,
        cors_origins: Sequence[str] = (),
        made_from: type[HTTPDataHandler] | HTTPDataHandler | None = None,
    ) -> None:
        if drain_timeout < 0:
            raise ValueError(f"drain_timeout must be 0 or more seconds, not {drain_timeout}")
        self.core = CallCore(
            handler,
            debug=debug,
            max_concurrency=max_concurrency,
            token=token,
            max_body_size=max_body_size,
            limits=limits,
            refuse_while_loading=refuse_while_loading,
            codecs=codecs,
        )
        self.handler = handler
        self.lifecycle = self.core.lifecycle
        self.token = self.core.token
        self.drain_timeout = drain_timeout
        self.wait_for_setup = wait_for_setup
        self._made: tuple[type[HTTPDataHandler] | HTTPDataHandler, dict[str, Any]] = (
            handler if made_from is None else made_from,
            {
                "debug": debug,
                "max_concurrency": max_concurrency,
                "token": token,
                "max_body_size": max_body_size,
                "limits": limits,
                "drain_timeout": drain_timeout,
                "refuse_while_loading": refuse_while_loading,
                "wait_for_setup": wait_for_setup,
                "codecs": self.core.codecs.own,
                "access_log": access_log,
                "metrics": metrics,
                "open_metrics": open_metrics,
                "cors_origins": tuple(cors_origins),
            },
        )
        self.metrics = Metrics(self.lifecycle) if metrics else None
        self.open_metrics = open_metrics
        self.cors_origins = tuple(cors_origins)
        if access_log or metrics:
            self.core.observer = Observer(AccessLog() if access_log else None, self.metrics)
        self.core.cors = bool(self.cors_origins)
        routes = [Route(HEALTH_PATH, self._health, methods=["GET"])]
        if self.metrics is not None:
            routes.append(Route(METRICS_PATH, self._metrics, methods=["GET"]))
        routes.append(Route("/{resource:path}", _CallEndpoint(self.core), methods=["PUT", "POST", "HEAD"]))
        super().__init__(
            routes=routes,
            middleware=self._middleware(),
            exception_handlers={HTTPException: _http_error},
            lifespan=self._lifespan,
        )

    def _middleware(self) -> list[Middleware]:
        """What wraps the routes: the call log and metrics outermost, then CORS."""
        middleware = []
        if self.core.observer is not None:
            quiet = frozenset({HEALTH_PATH, METRICS_PATH})
            middleware.append(Middleware(ObserveMiddleware, observer=self.core.observer, quiet=quiet))
        if self.cors_origins:
            middleware.append(
                Middleware(
                    CORSMiddleware,
                    allow_origins=self.cors_origins,
                    allow_methods=["PUT", "POST", "GET", "HEAD"],
                    allow_headers=["authorization", "content-type", "accept"],
                    expose_headers=["content-type", "content-length", "retry-after"],
                    max_age=600,
                )
            )
        return middleware

    @property
    def lifespan(self) -> Callable[[Any], AbstractAsyncContextManager[None]]:
        """The lifespan to give a host app this one is mounted in, so ``setup()`` runs at its start."""
        return self._lifespan

    def __reduce__(self) -> tuple[Any, ...]:
        """Pickle as the call that made this app: unpickled, it is a new app with a new handler
        made as this one was (a handler class is pickled by name, an instance by value)."""
        handler, options = self._made
        return (functools.partial(create_app, handler, **options), ())

    @contextlib.asynccontextmanager
    async def _lifespan(self, app: object = None) -> AsyncIterator[None]:
        self.lifecycle.start()
        if self.wait_for_setup:
            await self.lifecycle.ready()
        watch = asyncio.ensure_future(descriptors.watch())
        drain = Drain(self.drain_timeout, self.core.stopping)
        drain.install()
        try:
            yield
        finally:
            drain.uninstall()
            watch.cancel()
            self.core.stopping()
            tear_down = await self.core.wind_down()  # calls still open are answered first
            await self.lifecycle.stop(tear_down=tear_down)
            self.core.threads.stop()

    async def _metrics(self, request: Request) -> Response:
        token = self.core.token
        if token is not None and not self.open_metrics:
            refused = refusal(request.headers.get("authorization"), token)
            if refused is not None:
                reply = error_reply(401, "unauthorized", refused + " (or start the server with open_metrics)")
                reply.headers["www-authenticate"] = "Bearer"
                return _response(reply)
        assert self.metrics is not None
        body, content_type = self.metrics.text()
        return Response(body, headers={"content-type": content_type})

    async def _health(self, request: Request) -> Response:
        self.lifecycle.start()
        state = self.lifecycle.state
        if state is State.READY:
            return JSONResponse({"status": "ok"})
        return JSONResponse({"status": state.value}, status_code=503)


def _as_handler(data_handler: type[HTTPDataHandler] | HTTPDataHandler) -> HTTPDataHandler:
    handler = data_handler() if isinstance(data_handler, type) else data_handler
    if not isinstance(handler, HTTPDataHandler):
        raise TypeError(
            f"{data_handler!r} is not an HTTPDataHandler: derive your class from "
            "dataserve.HTTPDataHandler and override handle_request(self, resource, payload)"
        )
    if type(handler).handle_request is HTTPDataHandler.handle_request:
        raise TypeError(f"{type(handler).__name__} must override handle_request(self, resource, payload)")
    return handler


class _CallEndpoint:
    """The ASGI endpoint of the catch-all route: one call, from its request to its reply."""

    def __init__(self, core: CallCore) -> None:
        self.core = core

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        core = self.core
        core.lifecycle.start()  # a mounted app whose lifespan was not passed on starts here
        path = "/" + scope["path_params"]["resource"]
        headers: list[tuple[bytes, bytes]] = scope["headers"]
        length = _content_length(headers)
        refused = core.refusal(path, headers, length)
        if refused is None and scope["method"] == "HEAD":
            refused = Reply(200, {}, b"")
        if refused is None:
            refused = core.admit(length or 0)
        if refused is not None:
            await send_reply(send, refused, close=core.closing)
            return
        held = length or 0
        try:
            try:
                body = await _read_body(receive, length, core.max_body_size)
            except _Disconnected:
                body = None
                reply: Reply | None = None  # nobody is left to answer
            else:
                reply = core.too_large() if body is None else None
            if body is None:
                core.admission.drop()
                if reply is not None:
                    await send_reply(send, reply)
                return
            if length is None:  # a chunked body counts once it is in
                core.admission.hold(len(body))
                held = len(body)
            await self._answer(scope, receive, send, path, body)
        finally:
            core.admission.release(held)

    async def _answer(self, scope: Scope, receive: Receive, send: Send, path: str, body: bytes) -> None:
        """Run the call, while watching for its caller to go, and send its reply."""
        headers: list[tuple[bytes, bytes]] = scope["headers"]
        content_type = next(
            (value.decode("latin-1") for name, value in headers if name == b"content-type"), None
        )
        gone = asyncio.Event()
        watch = asyncio.ensure_future(_wait_for_disconnect(receive, gone))
        started = time.monotonic()
        try:
            reply = await self.core.call(path, body, content_type, gone.is_set)
        except asyncio.CancelledError:
            # The server cuts calls still running past its grace period: the caller hears so,
            # and the call ends here, answered, rather than as an error of the application.
            self.core.log_cut(1, [(path, started)])
            await send_reply(send, self.core.cut_reply())
            return
        finally:
            watch.cancel()
        if reply is not GONE:
            await send_reply(send, reply, close=self.core.closing)


async def _wait_for_disconnect(receive: Receive, gone: asyncio.Event) -> None:
    """Set ``gone`` once the server says the client has disconnected (the body is all read by now)."""
    while (await receive())["type"] != "http.disconnect":
        pass
    gone.set()


class _Disconnected(Exception):
    """The client went away before its body was all read."""


async def _read_body(receive: Receive, length: int | None, limit: int | None) -> bytes | None:
    """The request body, or None once it is over ``limit`` (the rest is never read)."""
    message = await receive()
    if message["type"] == "http.disconnect":
        raise _Disconnected
    first: bytes = message.get("body", b"")
    if not message.get("more_body", False):
        return None if limit is not None and len(first) > limit else first
    if length is not None and length >= _LARGE:
        buffer = BodyBuffer(length)  # the server reads no more than the declared length
        buffer.write(first)
        while message.get("more_body", False):
            message = await receive()
            if message["type"] == "http.disconnect":
                raise _Disconnected
            buffer.write(message.get("body", b""))
        return buffer.value()
    chunks, size = [first], len(first)
    while message.get("more_body", False):
        message = await receive()
        if message["type"] == "http.disconnect":
            raise _Disconnected
        chunk = message.get("body", b"")
        size += len(chunk)
        if limit is not None and size > limit:
            return None
        chunks.append(chunk)
    return b"".join(chunks)


def _content_length(headers: list[tuple[bytes, bytes]]) -> int | None:
    for name, value in headers:
        if name == b"content-length":
            return int(value) if value.isdigit() else None
    return None


async def send_reply(send: Send, reply: Reply, *, close: bool = False) -> None:
    """Send ``reply`` as an ASGI response, its Content-Length set; with ``close``, the server
    closes the connection after it."""
    headers = [(name.encode("latin-1"), value.encode("latin-1")) for name, value in reply.headers.items()]
    headers.append((b"content-length", b"%d" % len(reply.body)))
    if close:
        headers.append((b"connection", b"close"))
    await send({"type": "http.response.start", "status": reply.status, "headers": headers})
    await send({"type": "http.response.body", "body": reply.body})


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    if exc.status_code != 405:
        return _response(error_reply(exc.status_code, "http_error", exc.detail))
    allowed = (exc.headers or {}).get("Allow", "").split(",")
    allow = ", ".join(sorted(method.strip() for method in allowed))
    reply = error_reply(
        405, "method_not_allowed", f"{request.method} is not allowed on {request.url.path}: send {allow}"
    )
    reply.headers["allow"] = allow
    return _response(reply)


def _response(reply: Reply) -> Response:
    return Response(reply.body, status_code=reply.status, headers=reply.headers)

"""The Starlette app that puts a handler on the web: one catch-all PUT route."""

from __future__ import annotations

import inspect
import logging
import traceback
from collections.abc import Callable
from contextlib import AbstractAsyncContextManager
from typing import Any

import anyio
import anyio.to_thread
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from ._codec import decode, encode
from ._errors import PayloadError
from ._handler import HTTPDataHandler
from ._lifecycle import Lifecycle, State
from ._token import refusal, resolve_token

__all__ = ["DEFAULT_MAX_BODY_SIZE", "HEALTH_PATH", "DataApp", "create_app"]

MAX_HEADER_BYTES = 64 * 1024
"""The most bytes of request headers a call may carry; more are refused with 431."""

DEFAULT_MAX_BODY_SIZE = 1 << 30
"""The largest request body a server takes by default (1 GiB): larger ones are refused with 413."""

HEALTH_PATH = "/healthz"
"""GET here answers 200 while the server is ready: for load balancers and ``ping()``."""

logger = logging.getLogger("dataserve")


def create_app(
    data_handler: type[HTTPDataHandler] | HTTPDataHandler,
    *,
    debug: bool = False,
    max_concurrency: int = 1,
    token: str | None = None,
    max_body_size: int | None = DEFAULT_MAX_BODY_SIZE,
) -> DataApp:
    """Return the ASGI app that serves ``data_handler`` at every PUT path.

    ``data_handler`` is a subclass of HTTPDataHandler, made once with no arguments, or
    an instance of one. With ``debug`` a failing handler's traceback goes back to the
    caller. A plain ``handle_request`` runs in a worker thread, at most
    ``max_concurrency`` calls at once (one by default, as in the original server); an
    ``async def`` one runs on the event loop. With a ``token`` (or ``$DATASERVE_TOKEN``)
    only calls that carry it are answered. Bodies over ``max_body_size`` bytes are
    refused (None takes any size). The app can be mounted into any Starlette or FastAPI app.
    """
    return DataApp(
        _as_handler(data_handler),
        debug=debug,
        max_concurrency=max_concurrency,
        token=token,
        max_body_size=max_body_size,
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
    ) -> None:
        if max_concurrency < 1:
            raise ValueError(f"max_concurrency must be 1 or more, not {max_concurrency}")
        if max_body_size is not None and max_body_size < 0:
            raise ValueError(f"max_body_size must be 0 or more, or None, not {max_body_size}")
        self.handler = handler
        self.lifecycle = Lifecycle(handler)
        self.token = resolve_token(token)
        endpoint = _Endpoint(
            handler,
            self.lifecycle,
            debug=debug,
            max_concurrency=max_concurrency,
            token=self.token,
            max_body_size=max_body_size,
        )
        routes = [
            Route(HEALTH_PATH, endpoint.health, methods=["GET"]),
            Route("/{resource:path}", endpoint.handle, methods=["PUT", "HEAD"]),
        ]
        super().__init__(
            routes=routes,
            exception_handlers={HTTPException: _http_error},
            lifespan=self.lifecycle.lifespan,
        )

    @property
    def lifespan(self) -> Callable[[Any], AbstractAsyncContextManager[None]]:
        """The lifespan to give a host app this one is mounted in, so ``setup()`` runs at its start."""
        return self.lifecycle.lifespan


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


class _Endpoint:
    """Decodes a call, runs the handler on it and encodes its reply or its failure."""

    def __init__(
        self,
        handler: HTTPDataHandler,
        lifecycle: Lifecycle,
        *,
        debug: bool,
        max_concurrency: int,
        token: str | None,
        max_body_size: int | None,
    ) -> None:
        self.token = token
        self.max_body_size = max_body_size
        self.handler = handler
        self.lifecycle = lifecycle
        self.name = type(handler).__name__
        self.debug = debug
        self.is_async = inspect.iscoroutinefunction(handler.handle_request)
        self.limiter = anyio.CapacityLimiter(max_concurrency)

    async def health(self, request: Request) -> Response:
        self.lifecycle.start()
        state = self.lifecycle.state
        if state is State.READY:
            return JSONResponse({"status": "ok"})
        return JSONResponse({"status": state.value}, status_code=503)

    async def handle(self, request: Request) -> Response:
        refused = self._refused_request(request)
        if refused is not None:
            return refused
        if request.method == "HEAD":
            return Response()
        resource = "/" + request.path_params["resource"]
        try:
            body = await self._body(request)
        except ClientDisconnect:
            return Response(status_code=400)  # Nobody is left to read it.
        if body is None:
            return self._too_large()
        content_type = request.headers.get("content-type")
        if await self.lifecycle.ready() is not State.READY:
            return self._not_ready()
        if self.is_async:
            return await self._respond_async(resource, body, content_type)
        # Decoding, the handler and encoding all run in one worker thread, so that neither
        # a slow handler nor a large body holds up the event loop.
        return await anyio.to_thread.run_sync(
            self._respond, resource, body, content_type, limiter=self.limiter
        )

    def _refused_request(self, request: Request) -> Response | None:
        """The reply to a request refused before its body is read, or None to go on."""
        header_bytes = sum(len(name) + len(value) for name, value in request.scope["headers"])
        if header_bytes > MAX_HEADER_BYTES:
            message = (
                f"the request's headers take {header_bytes:,} bytes, over the {MAX_HEADER_BYTES:,} allowed"
            )
            return error_response(431, "headers_too_large", message)
        if self.token is not None:
            refused = refusal(request.headers.get("authorization"), self.token)
            if refused is not None:
                response = error_response(401, "unauthorized", refused)
                response.headers["WWW-Authenticate"] = "Bearer"
                return response
        segments = request.path_params["resource"].split("/")
        if "\x00" in request.path_params["resource"] or "." in segments or ".." in segments:
            message = (
                f"the resource {request.url.path!r} has a '.' or '..' segment or a NUL character; "
                "name resources plainly, such as /data/xdata"
            )
            return error_response(400, "bad_resource", message)
        return None

    async def _body(self, request: Request) -> bytes | None:
        """The request body, or None once it is over the limit (the rest is never read)."""
        limit = self.max_body_size
        declared = request.headers.get("content-length", "")
        if limit is None or (declared.isdigit() and int(declared) <= limit):
            return await request.body()  # uvicorn reads no more than the declared length.
        if declared.isdigit():
            return None
        chunks, size = [], 0
        async for chunk in request.stream():
            size += len(chunk)
            if size > limit:
                return None
            chunks.append(chunk)
        return b"".join(chunks)

    def _too_large(self) -> Response:
        message = (
            f"the body is larger than this server takes ({self.max_body_size:,} bytes): send less, "
            "or start the server with a larger max_body_size"
        )
        return error_response(413, "payload_too_large", message)

    def _not_ready(self) -> Response:
        error = self.lifecycle.error
        if error is not None:
            message = f"{self.name}.setup() failed ({type(error).__name__}: {error}); the server is stopping"
        else:
            message = f"the server of {self.name} is stopping"
        return error_response(503, "unavailable", message)

    def _respond(self, resource: str, body: bytes, content_type: str | None) -> Response:
        try:
            payload = decode(body, content_type)
        except PayloadError as exc:
            return self._refused(exc)
        try:
            reply = self.handler.handle_request(resource, payload)
        except Exception as exc:
            return self._failed(resource, exc)
        return self._reply(resource, reply)

    async def _respond_async(self, resource: str, body: bytes, content_type: str | None) -> Response:
        try:
            payload = decode(body, content_type)
        except PayloadError as exc:
            return self._refused(exc)
        try:
            reply = await self.handler.handle_request(resource, payload)
        except Exception as exc:
            return self._failed(resource, exc)
        return self._reply(resource, reply)

    def _refused(self, exc: PayloadError) -> Response:
        if exc.status == 415:
            return error_response(415, "unsupported_media_type", str(exc))
        return error_response(400, "bad_payload", str(exc))

    def _failed(self, resource: str, exc: Exception) -> Response:
        logger.error("%s.handle_request failed on %s", self.name, resource, exc_info=exc)
        extra = {"exception": type(exc).__name__}
        if self.debug:
            extra["traceback"] = "".join(traceback.format_exception(exc))
        return error_response(500, "handler_error", str(exc), **extra)

    def _reply(self, resource: str, reply: Any) -> Response:
        if reply is None:
            return error_response(404, "not_found", f"{self.name} does not handle the resource {resource!r}")
        try:
            body, content_type = encode(reply)
        except PayloadError as exc:
            message = f"{self.name}.handle_request returned a value that cannot be sent: {exc}"
            logger.error("%s", message)
            return error_response(500, "handler_error", message, exception="PayloadError")
        return Response(body, headers={"content-type": content_type})


def error_response(status: int, error: str, message: str, **extra: str) -> JSONResponse:
    """The JSON body ``{"error": ..., "message": ...}`` that every failure carries."""
    return JSONResponse({"error": error, "message": message, **extra}, status_code=status)


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    if exc.status_code != 405:
        return error_response(exc.status_code, "http_error", exc.detail)
    allowed = (exc.headers or {}).get("Allow", "").split(",")
    allow = ", ".join(sorted(method.strip() for method in allowed))
    message = f"{request.method} is not allowed on {request.url.path}: send {allow}"
    response = error_response(405, "method_not_allowed", message)
    response.headers["Allow"] = allow
    return response

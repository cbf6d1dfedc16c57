"""What one call means, whichever server lane carries it.

A lane reads a request and hands its parts here: its path and headers to ``refusal`` before
the body is read, then the body to ``call`` (or ``start``), which decodes it, runs the
handler (a plain one in a handler thread, an ``async def`` one on the event loop) and
encodes its reply or its failure. Every reply, a refusal included, is a ``Reply`` that the
lane writes as it is. The two lanes are the Starlette route (``_app``) and dataserve's own
uvicorn protocol (``_protocol``).
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import traceback
from collections.abc import Callable, Sequence
from typing import Any

from ._codec import decode, encode
from ._errors import PayloadError, error_body
from ._handler import HTTPDataHandler
from ._lifecycle import Lifecycle, State
from ._threads import HandlerThreads
from ._token import refusal, resolve_token
from ._wire import Reply

__all__ = ["DEFAULT_MAX_BODY_SIZE", "MAX_HEADER_BYTES", "CallCore", "json_error"]

MAX_HEADER_BYTES = 64 * 1024
"""The most bytes of request headers a call may carry; more are refused with 431."""

DEFAULT_MAX_BODY_SIZE = 1 << 30
"""The largest request body a server takes by default (1 GiB): larger ones are refused with 413."""

logger = logging.getLogger("dataserve")

_JSON = {"content-type": "application/json"}


class CallCore:
    """A handler's calls: the checks on a request, the handler's run, and every reply."""

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
        self.name = type(handler).__name__
        self.lifecycle = Lifecycle(handler)
        self.debug = debug
        self.token = resolve_token(token)
        self.max_body_size = max_body_size
        self.is_async = inspect.iscoroutinefunction(handler.handle_request)
        self.threads = HandlerThreads(max_concurrency, f"dataserve {self.name}")

    def refusal(self, path: str, headers: Sequence[tuple[bytes, bytes]], length: int | None) -> Reply | None:
        """The reply to a call refused from its head alone, or None to read its body and go on.

        ``path`` is the decoded request path relative to the app, ``headers`` the request's
        headers with lower-case names, and ``length`` its declared Content-Length, if any.
        """
        header_bytes = sum(len(name) + len(value) for name, value in headers)
        if header_bytes > MAX_HEADER_BYTES:
            message = (
                f"the request's headers take {header_bytes:,} bytes, over the {MAX_HEADER_BYTES:,} allowed"
            )
            return json_error(431, "headers_too_large", message)
        if self.token is not None:
            given = next((value for name, value in headers if name == b"authorization"), None)
            refused = refusal(None if given is None else given.decode("latin-1"), self.token)
            if refused is not None:
                reply = json_error(401, "unauthorized", refused)
                reply.headers["www-authenticate"] = "Bearer"
                return reply
        segments = path.split("/")
        if "\x00" in path or "." in segments or ".." in segments:
            message = (
                f"the resource {path!r} has a '.' or '..' segment or a NUL character; "
                "name resources plainly, such as /data/xdata"
            )
            return json_error(400, "bad_resource", message)
        if length is not None and self.max_body_size is not None and length > self.max_body_size:
            return self.too_large()
        return None

    def too_large(self) -> Reply:
        """The reply to a body over ``max_body_size``."""
        message = (
            f"the body is larger than this server takes ({self.max_body_size:,} bytes): send less, "
            "or start the server with a larger max_body_size"
        )
        return json_error(413, "payload_too_large", message)

    async def call(self, resource: str, body: bytes, content_type: str | None) -> Reply:
        """The reply to a call of ``resource`` with ``body``, once the handler is ready."""
        if await self.lifecycle.ready() is not State.READY:
            return self._not_ready()
        if self.is_async:
            return await self._respond_async(resource, body, content_type)
        return await self.threads.run(self.respond, resource, body, content_type)

    @property
    def takes_threads(self) -> bool:
        """Whether calls can go to the handler threads at once: a plain handler, and ready."""
        return not self.is_async and self.lifecycle.state is State.READY

    def start(
        self,
        loop: asyncio.AbstractEventLoop,
        resource: str,
        body: bytes,
        content_type: str | None,
        done: Callable[[Reply], None],
    ) -> asyncio.Task[None] | None:
        """Start a call as ``call`` does and hand its reply to ``done`` on ``loop``, the running loop.

        A plain handler that is ready takes the call from here without a task; otherwise the
        task that runs it is returned, which the lane must keep until it is done (the event
        loop keeps only a weak reference to a task).
        """
        if self.takes_threads:
            self.threads.submit(loop, self.respond, (resource, body, content_type), done)
            return None
        if self.lifecycle.state is State.READY:
            return loop.create_task(self._answer_async(resource, body, content_type, done))

        async def run() -> None:
            done(await self.call(resource, body, content_type))

        return loop.create_task(run())

    def _not_ready(self) -> Reply:
        error = self.lifecycle.error
        if error is not None:
            message = f"{self.name}.setup() failed ({type(error).__name__}: {error}); the server is stopping"
        else:
            message = f"the server of {self.name} is stopping"
        return json_error(503, "unavailable", message)

    def respond(self, resource: str, body: bytes, content_type: str | None) -> Reply:
        """The reply of a plain handler to one call: run it in a handler thread."""
        try:
            payload = decode(body, content_type)
        except PayloadError as exc:
            return _refused(exc)
        try:
            reply = self.handler.handle_request(resource, payload)
        except Exception as exc:
            return self._failed(resource, exc)
        return self._reply(resource, reply)

    async def _answer_async(
        self, resource: str, body: bytes, content_type: str | None, done: Callable[[Reply], None]
    ) -> None:
        done(await self._respond_async(resource, body, content_type))

    async def _respond_async(self, resource: str, body: bytes, content_type: str | None) -> Reply:
        try:
            payload = decode(body, content_type)
        except PayloadError as exc:
            return _refused(exc)
        try:
            reply = await self.handler.handle_request(resource, payload)
        except Exception as exc:
            return self._failed(resource, exc)
        return self._reply(resource, reply)

    def _failed(self, resource: str, exc: Exception) -> Reply:
        logger.error("%s.handle_request failed on %s", self.name, resource, exc_info=exc)
        extra = {"exception": type(exc).__name__}
        if self.debug:
            extra["traceback"] = "".join(traceback.format_exception(exc))
        return json_error(500, "handler_error", str(exc), **extra)

    def _reply(self, resource: str, reply: Any) -> Reply:
        if reply is None:
            return json_error(404, "not_found", f"{self.name} does not handle the resource {resource!r}")
        try:
            body, content_type = encode(reply)
        except PayloadError as exc:
            message = f"{self.name}.handle_request returned a value that cannot be sent: {exc}"
            logger.error("%s", message)
            return json_error(500, "handler_error", message, exception="PayloadError")
        return Reply(200, {"content-type": content_type}, body)


def json_error(status: int, error: str, message: str, **extra: str) -> Reply:
    """A reply whose JSON body ``{"error": ..., "message": ...}`` says why the call failed."""
    return Reply(status, dict(_JSON), error_body(error, message, **extra))


def _refused(exc: PayloadError) -> Reply:
    if exc.status == 415:
        return json_error(415, "unsupported_media_type", str(exc))
    return json_error(400, "bad_payload", str(exc))

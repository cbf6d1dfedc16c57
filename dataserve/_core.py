"""What one call means, whichever server lane carries it.

A lane reads a request and hands its parts here: its path and headers to ``refusal`` and
``admit`` before the body is read, then the body to ``call`` (or ``start``), which decodes
it, runs the handler (a plain one in a handler thread, an ``async def`` one on the event
loop) and encodes its reply or its failure. Every reply, a refusal included, is a ``Reply``
that the lane writes as it is. The two lanes are the Starlette route (``_app``) and
dataserve's own uvicorn protocol (``_protocol``).
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import time
import traceback
from collections.abc import Callable, Iterable, Sequence
from typing import Any

from ._admission import Admission
from ._codec import NO_CODECS, decode, encode, is_json
from ._errors import PayloadError, error_reply
from ._handler import HTTPDataHandler
from ._lifecycle import Lifecycle, State
from ._limits import Limits
from ._observe import Observer
from ._threads import HandlerThreads
from ._token import refusal, resolve_token
from ._usercodecs import Codec, Codecs
from ._wire import Reply

__all__ = ["DEFAULT_MAX_BODY_SIZE", "GONE", "CallCore"]


DEFAULT_MAX_BODY_SIZE = 1 << 30
"""The largest request body a server takes by default (1 GiB): larger ones are refused with 413."""

GONE = Reply(499, {}, b"")
"""The "reply" to a call whose caller went away before the handler took it: it is never sent."""

_OFF_LOOP = 1 << 20
"""Bodies from this size on are decoded in a thread for an ``async def`` handler, off the event loop."""

_TEARDOWN_WAIT = 1.0
"""Seconds ``wind_down`` waits for calls the handler is still running before it skips ``teardown()``."""

logger = logging.getLogger("dataserve")


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
        limits: Limits | None = None,
        refuse_while_loading: bool = False,
        codecs: Iterable[Codec] | None = None,
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
        self.limits = limits or Limits()
        self.refuse_while_loading = refuse_while_loading
        self.codecs = Codecs(codecs) if codecs else NO_CODECS
        self.is_async = inspect.iscoroutinefunction(handler.handle_request)
        self.threads = HandlerThreads(max_concurrency, f"dataserve {self.name}")
        self.admission = Admission(self.name, self.limits.max_queue, self.limits.max_memory)
        self.observer: Observer | None = None
        """What each call is told to, the call log and the metrics; None when both are off."""
        self.cors = False
        """Whether browser pages may call (CORS): a call from one, with an Origin, goes through the app."""

    # Before the body

    def refusal(self, path: str, headers: Sequence[tuple[bytes, bytes]], length: int | None) -> Reply | None:
        """The reply to a call refused from its head alone, or None to go on and ``admit`` it.

        ``path`` is the decoded request path relative to the app, ``headers`` the request's
        headers with lower-case names, and ``length`` its declared Content-Length, if any.
        """
        too_large = self._headers_refusal(headers)  # on any server: dataserve's own refuses most sooner
        if too_large is not None:
            return too_large
        if self.token is not None:
            given = next((value for name, value in headers if name == b"authorization"), None)
            refused = refusal(None if given is None else given.decode("latin-1"), self.token)
            if refused is not None:
                reply = error_reply(401, "unauthorized", refused)
                reply.headers["www-authenticate"] = "Bearer"
                return reply
        segments = path.split("/")
        if "\x00" in path or "." in segments or ".." in segments:
            message = (
                f"the resource {path!r} has a '.' or '..' segment or a NUL character; "
                "name resources plainly, such as /data/xdata"
            )
            return error_reply(400, "bad_resource", message)
        if length is not None:
            if self.max_body_size is not None and length > self.max_body_size:
                return self.too_large()
            max_json = self.limits.max_json_size
            if max_json is not None and length > max_json:
                content_type = next((value for name, value in headers if name == b"content-type"), None)
                if is_json(None if content_type is None else content_type.decode("latin-1")):
                    return self._json_too_large()
        if self.refuse_while_loading and self.lifecycle.state in (State.IDLE, State.STARTING):
            return self._loading()
        return None

    def _headers_refusal(self, headers: Sequence[tuple[bytes, bytes]]) -> Reply | None:
        """The 431 to headers over ``max_head_size``: dataserve's protocol counts a head's bytes as they
        come, but not those that came in one read with the request before, so this check stays."""
        header_bytes = sum(len(name) + len(value) for name, value in headers)
        if header_bytes <= self.limits.max_head_size:
            return None
        message = (
            f"the request's headers take {header_bytes:,} bytes, over the "
            f"{self.limits.max_head_size:,} taken (max_head_size); send fewer or smaller headers"
        )
        return error_reply(431, "headers_too_large", message)

    def _loading(self) -> Reply:
        """The reply to a call refused while ``setup()`` runs: it never reached the handler."""
        message = (
            f"{self.name}.setup() is still running, and the server refuses calls meanwhile "
            "(refuse_while_loading): the call did not run; send it again shortly, or to another replica"
        )
        reply = error_reply(503, "loading", message)
        reply.headers["retry-after"] = "1"
        return reply

    def admit(self, size: int) -> Reply | None:
        """Admit a call whose body takes ``size`` bytes, or refuse it with 503 (max_queue, max_memory).

        An admitted call must end with ``call``, ``respond`` or ``admission.drop()``, and its
        ``size`` be released once its lane is done with the body.
        """
        return self.admission.admit(size)

    def too_large(self) -> Reply:
        """The reply to a body over ``max_body_size``."""
        message = (
            f"the body is larger than this server takes ({self.max_body_size:,} bytes): send less, "
            "or start the server with a larger max_body_size"
        )
        return error_reply(413, "payload_too_large", message)

    def _json_too_large(self) -> Reply:
        return error_reply(413, "payload_too_large", self._json_limit())

    def _json_limit(self) -> str:
        return (
            f"a JSON body is taken up to {self.limits.max_json_size:,} bytes (max_json_size): send large "
            "data as bytes or a NumPy array, or start the server with a larger max_json_size"
        )

    # The call

    @property
    def takes_threads(self) -> bool:
        """Whether calls can go to the handler threads at once: a plain handler, and ready."""
        return not self.is_async and self.lifecycle.serves

    async def call(
        self, resource: str, body: bytes, content_type: str | None, gone: Callable[[], bool] | None = None
    ) -> Reply:
        """The reply to an admitted call of ``resource`` with ``body``, once the handler is ready.

        ``gone`` says whether the caller has gone: then the handler does not take the call,
        and the reply is GONE.
        """
        if not (await self.lifecycle.ready()).serves:
            self.admission.drop()
            return self._not_ready()
        if self.is_async:
            return await self._respond_async(resource, body, content_type, gone)
        return await self.threads.run(self.respond, resource, body, content_type, gone)

    def start(
        self,
        loop: asyncio.AbstractEventLoop,
        resource: str,
        body: bytes,
        content_type: str | None,
        gone: Callable[[], bool],
        done: Callable[[Reply], None],
    ) -> asyncio.Task[None] | None:
        """Start an admitted call as ``call`` does; its reply goes to ``done`` on ``loop``, the running loop.

        A plain handler that is ready takes the call from here without a task; otherwise the
        task that runs it is returned, which the lane must keep until it is done (the event
        loop keeps only a weak reference to a task).
        """
        if self.lifecycle.serves:
            if not self.is_async:
                self.threads.submit(loop, self.respond, (resource, body, content_type, gone), done)
                return None
            return loop.create_task(self._answer_async(resource, body, content_type, gone, done))

        async def run() -> None:
            done(await self.call(resource, body, content_type, gone))

        return loop.create_task(run())

    def respond(
        self, resource: str, body: bytes, content_type: str | None, gone: Callable[[], bool] | None = None
    ) -> Reply:
        """The reply of a plain handler to one admitted call: run it in a handler thread.

        A call whose caller is ``gone`` by now is dropped before the handler sees it (GONE).
        """
        if gone is not None and gone():
            self.admission.drop()
            return GONE
        number = self.admission.begin(resource)
        try:
            try:
                payload = self._decode(body, content_type)
            except PayloadError as exc:
                return _refused(exc)
            try:
                reply = self.handler.handle_request(resource, payload)
            except Exception as exc:
                return self._failed(resource, exc)
            return self._reply(resource, reply)
        finally:
            self.admission.end(number)

    async def _answer_async(
        self,
        resource: str,
        body: bytes,
        content_type: str | None,
        gone: Callable[[], bool] | None,
        done: Callable[[Reply], None],
    ) -> None:
        done(await self._respond_async(resource, body, content_type, gone))

    async def _respond_async(
        self, resource: str, body: bytes, content_type: str | None, gone: Callable[[], bool] | None
    ) -> Reply:
        if gone is not None and gone():
            self.admission.drop()
            return GONE
        # An async handler's calls keep their place in the queue while they run: they do not wait.
        number = self.admission.begin(resource, leave_queue=False)
        try:
            try:
                if len(body) >= _OFF_LOOP:  # decoding holds the GIL, but not the event loop's turn
                    payload = await asyncio.get_running_loop().run_in_executor(
                        None, self._decode, body, content_type
                    )
                else:
                    payload = self._decode(body, content_type)
            except PayloadError as exc:
                return _refused(exc)
            try:
                reply = await self.handler.handle_request(resource, payload)
            except Exception as exc:
                return self._failed(resource, exc)
            return self._reply(resource, reply)
        finally:
            self.admission.end(number, leave_queue=True)

    def _decode(self, body: bytes, content_type: str | None) -> Any:
        max_json = self.limits.max_json_size
        if max_json is not None and len(body) > max_json and is_json(content_type):
            raise PayloadError(self._json_limit(), status=413)
        return decode(body, content_type, self.codecs)

    def _not_ready(self) -> Reply:
        error = self.lifecycle.error
        if error is not None:
            message = f"{self.name}.setup() failed ({type(error).__name__}: {error}); the server is stopping"
        else:
            message = f"the server of {self.name} is stopping"
        return error_reply(503, "unavailable", message)

    def _failed(self, resource: str, exc: Exception) -> Reply:
        logger.error("%s.handle_request failed on %s", self.name, resource, exc_info=exc)
        extra = {"exception": type(exc).__name__}
        if self.debug:
            extra["traceback"] = "".join(traceback.format_exception(exc))
        return error_reply(500, "handler_error", str(exc), **extra)

    def _reply(self, resource: str, reply: Any) -> Reply:
        if reply is None:
            return error_reply(404, "not_found", not_handled(self.name, resource))
        try:
            body, content_type = encode(reply, self.codecs)
        except PayloadError as exc:
            message = f"{self.name}.handle_request returned a value that cannot be sent: {exc}"
            logger.error("%s", message)
            return error_reply(500, "handler_error", message, exception="PayloadError")
        except Exception as exc:  # the value's own code failed (a __len__, a buffer): still an answer
            return self.broken(resource, exc)
        return Reply(200, {"content-type": content_type}, body)

    def broken(self, resource: str, exc: BaseException) -> Reply:
        """The 500 reply to a call that failed in dataserve rather than in the handler, logged
        with its traceback: whatever fails, the caller gets an answer."""
        logger.error("dataserve failed answering %s.handle_request on %s", self.name, resource, exc_info=exc)
        message = f"dataserve failed answering the call ({type(exc).__name__}: {exc}); see the server's log"
        return error_reply(500, "handler_error", message, exception=type(exc).__name__)

    # The end

    def stopping(self) -> None:
        """The server has begun to stop: the health check says so; calls under way go on."""
        self.lifecycle.stopping()

    @property
    def closing(self) -> bool:
        """Whether each reply closes its connection: the server drains or stops. A balancer's
        kept-alive connection then ends with the call it carries, instead of being closed idle
        as the server stops, in a race with the next call the balancer sends on it."""
        return self.lifecycle.state is State.STOPPING

    def cut_reply(self) -> Reply:
        """The reply to a call the server stopped before it was answered: it may have run."""
        message = (
            f"the server stopped before {self.name} answered the call (past its shutdown grace period); "
            "the call may have run"
        )
        reply = error_reply(503, "stopped", message)
        reply.headers["retry-after"] = "1"
        return reply

    def log_cut(self, count: int, running: list[tuple[str, float]]) -> None:
        """Say in the log that ``count`` calls were cut, and which ``(resource, started)`` were running."""
        now = time.monotonic()
        calls = ", ".join(f"{resource} ({now - started:.1f} s)" for resource, started in running)
        logger.warning(
            "the server stopped past its grace period with %d call(s) unanswered, cut with 503; "
            "in %s.handle_request: %s",
            count,
            self.name,
            calls or "none",
        )

    async def wind_down(self) -> bool:
        """Answer every call still open with 503, and say whether ``teardown()`` may run.

        It may once no call is in the handler: a handler stuck in ``handle_request`` keeps
        ``teardown()`` from running under it.
        """
        running = list(self.admission.running.values())
        cut = self.admission.cut_all(self.cut_reply())
        if cut:
            self.log_cut(cut, [(call.resource, call.started) for call in running])
        deadline = time.monotonic() + _TEARDOWN_WAIT
        while self.admission.running and time.monotonic() < deadline:
            await asyncio.sleep(0.02)
        if self.admission.running:
            resources = ", ".join(call.resource for call in self.admission.running.values())
            logger.warning(
                "%s.teardown() is not run: handle_request is still running on %s", self.name, resources
            )
            return False
        return True


def not_handled(name: str, resource: str) -> str:
    """The message of the 404 a handler's None makes: what happened, what None means, and what
    to return instead for an empty result (a ``dict.get`` that found nothing returns None too)."""
    return (
        f"{name}.handle_request returned None for {resource!r}, which means 'not handled'; "
        "return an empty value such as [] or {} for an empty result"
    )


def _refused(exc: PayloadError) -> Reply:
    if exc.status == 413:
        return error_reply(413, "payload_too_large", str(exc))
    if exc.status == 415:
        return error_reply(415, "unsupported_media_type", str(exc))
    return error_reply(400, "bad_payload", str(exc))

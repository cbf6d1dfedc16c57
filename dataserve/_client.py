"""The clients that call a dataserve server and hand back its replies as Python values.

HTTPDataClient and AsyncHTTPDataClient share everything but the I/O (``_DataClient``): the
address, the payload's encoding, the closed check, and the mapping of a reply to a value or
an exception. A lane moves the bytes: the socket lane (``_fastpath``) for plain HTTP over TCP
or a Unix socket, httpx (``_httpx``) for HTTPS, proxies and the async client. httpx is
imported only once a call needs it.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterable, Sequence
from types import TracebackType
from typing import TYPE_CHECKING, Any

from ._codec import NO_CODECS, decode, encode
from ._errors import DataServeError, PayloadError, refused_reply, status_error, unavailable
from ._fastpath import FastPath, NotSent, Request, Waits, eligible
from ._http1 import DeadlinePassed, ReplyTooLarge
from ._token import authorization, resolve_token
from ._url import Address, base_url, request_target, resource_path
from ._usercodecs import Codec, Codecs
from ._wire import HEALTH_PATH, Reply

if TYPE_CHECKING:
    import ssl

    import httpx

    from ._httpx import Verify

__all__ = [
    "DEFAULT_CONNECT_TIMEOUT",
    "DEFAULT_TIMEOUT",
    "AsyncHTTPDataClient",
    "HTTPDataClient",
    "load_verify",
    "reply_value",
]

DEFAULT_TIMEOUT = 60.0
"""Seconds a call waits to send its payload, and then for the reply."""

DEFAULT_CONNECT_TIMEOUT = 10.0
"""Seconds a call waits for the server to accept its connection."""

DEFAULT_MAX_REPLY_SIZE = 4 << 30
"""The largest reply a client takes by default (4 GiB): a larger one is refused before it is read."""

KEEPALIVE_EXPIRY = 4.0
"""Seconds an idle pooled connection is kept: less than uvicorn's 5 s idle timeout, so the
server never closes a connection the client is about to use."""

_METHODS = ("PUT", "POST")
"""The methods a call can travel as: the seed's PUT, or POST, which proxies never send twice."""
"""The method every call travels as, as the seed has it."""


class _DataClient:
    """What the sync and the async client share: all but the requests and the closing."""

    def __init__(
        self,
        port: int | None = None,
        address: str = "http://localhost:",
        *,
        uds: str | os.PathLike[str] | None = None,
        timeout: float | None = DEFAULT_TIMEOUT,
        connect_timeout: float | None = DEFAULT_CONNECT_TIMEOUT,
        deadline: float | None = None,
        max_reply_size: int | None = DEFAULT_MAX_REPLY_SIZE,
        token: str | None = None,
        verify: Verify = True,
        method: str = "PUT",
        codecs: Iterable[Codec] | None = None,
    ) -> None:
        if method.upper() not in _METHODS:
            raise ValueError(f"method must be 'PUT' (the default) or 'POST', not {method!r}")
        self.method = method.upper()
        if uds is not None and port is None and address.endswith(":"):
            address = "http://localhost"
        self.base_url = base_url(port, address)
        self.uds = None if uds is None else os.fspath(uds)
        self.timeout = timeout
        self.connect_timeout = connect_timeout
        self.deadline = deadline
        self.max_reply_size = max_reply_size
        self._address = Address(self.base_url)
        self._origin = self.base_url[: len(self.base_url) - len(self._address.path)]
        self._server = self.base_url if self.uds is None else f"the Unix socket {self.uds}"
        token = resolve_token(token)
        self._headers = {"authorization": authorization(token)} if token else {}
        self._verify = load_verify(verify)
        self._targets: dict[str, bytes] = {}
        self._codecs = Codecs(codecs) if codecs else NO_CODECS
        self._closed = False

    @property
    def is_closed(self) -> bool:
        """Whether the client is closed, and so can send no more."""
        return self._closed

    def _waits(self, timeout: float | None, connect_timeout: float | None, deadline: float | None) -> Waits:
        """How long one call waits: its own ``timeout``, ``connect_timeout`` and ``deadline`` (in
        seconds from now) where given, else the client's."""
        deadline = self.deadline if deadline is None else deadline
        return Waits(
            self.timeout if timeout is None else timeout,
            self.connect_timeout if connect_timeout is None else connect_timeout,
            None if deadline is None else time.monotonic() + deadline,
        )

    def _target(self, resource: str) -> bytes:
        """The request target of ``resource``, as httpx would send it, remembered for the next call."""
        target = self._targets.get(resource)
        if target is None:
            target = request_target(self._address.path, resource)
            if len(self._targets) < 1024:
                self._targets[resource] = target
        return target

    def _where(self, method: str, target: bytes) -> str:
        """The call, as messages name it: ``PUT http://127.0.0.1:5001/xdata``."""
        where = f"{method} {self._origin}{target.decode('ascii')}"
        return where if self.uds is None else f"{where} on {self._server}"

    def _value(self, reply: Reply, method: str, target: bytes, resource: str) -> Any:
        """The value a reply carries, or the exception its status stands for."""
        if reply.status == 200:
            return decode(reply.body, reply.headers.get("content-type"), self._codecs)
        raise status_error(reply, self._where(method, target), resource_path(resource))

    def _result(self, outcome: Reply | DataServeError, call: tuple[str, bytes, bytes, str]) -> Any:
        """The value of one of ``send_many``'s calls, or the exception that stands in its place."""
        if isinstance(outcome, DataServeError):
            return outcome
        try:
            return self._value(outcome, self.method, call[1], call[0])
        except DataServeError as exc:
            return exc

    def _check_open(self) -> None:
        if self._closed:
            raise DataServeError(f"{self!r} is closed; make a new client to call the server again")

    def __repr__(self) -> str:
        if self.uds is not None:
            return f"{type(self).__name__}(uds={self.uds!r})"
        return f"{type(self).__name__}({self.base_url!r})"


class HTTPDataClient(_DataClient):
    """Calls the handler of a dataserve server over pooled keep-alive connections.

    ``HTTPDataClient(5001)`` reaches ``http://localhost:5001``. ``address`` may end in a
    colon (``"http://10.0.0.2:"``), name a host (``"http://10.0.0.2"``), or be a full base
    URL (``"http://10.0.0.2:8000/data"``), whose port wins over ``port``. ``uds`` reaches a
    server on a Unix socket instead (``HTTPDataClient(uds="/run/app.sock")``). ``timeout``
    is how many seconds a call waits to send and for the reply, each (None waits for ever);
    ``connect_timeout``, for the server to accept the connection; ``deadline``, if given,
    for the whole call. A reply over ``max_reply_size`` bytes is refused. ``token`` (else
    ``$DATASERVE_TOKEN``) goes with every call; ``verify`` says how to check an HTTPS
    server. Calls travel as PUT, as the original's did; ``method="POST"`` sends them as POST,
    which proxies and HTTP libraries do not send again once sent (see docs/scale-out.md).
    ``codecs`` carry types of one's own (see ``dataserve.Codec``), before those the process
    registered. Close the client when done, or use it as a context manager. It can be shared
    between threads.
    """

    def __init__(
        self,
        port: int | None = None,
        address: str = "http://localhost:",
        *,
        uds: str | os.PathLike[str] | None = None,
        timeout: float | None = DEFAULT_TIMEOUT,
        connect_timeout: float | None = DEFAULT_CONNECT_TIMEOUT,
        deadline: float | None = None,
        max_reply_size: int | None = DEFAULT_MAX_REPLY_SIZE,
        token: str | None = None,
        verify: Verify = True,
        method: str = "PUT",
        codecs: Iterable[Codec] | None = None,
    ) -> None:
        super().__init__(
            port,
            address,
            uds=uds,
            timeout=timeout,
            connect_timeout=connect_timeout,
            deadline=deadline,
            max_reply_size=max_reply_size,
            token=token,
            verify=verify,
            method=method,
            codecs=codecs,
        )
        self._http: httpx.Client | None = None
        self._fast = None
        if eligible(self._address.scheme, self._address.host, uds=self.uds is not None):
            self._fast = FastPath(
                self.uds or (self._address.host, self._address.port),
                self._headers,
                keepalive_expiry=KEEPALIVE_EXPIRY,
                max_reply_size=max_reply_size,
            )

    def send(
        self,
        resource: str,
        payload: Any = None,
        *,
        timeout: float | None = None,
        connect_timeout: float | None = None,
        deadline: float | None = None,
    ) -> Any:
        """Send ``payload`` to ``resource`` and return the handler's reply.

        ``payload`` is a str, a JSON-able value, bytes-like, a NumPy array, a table (pyarrow,
        pandas or polars), None, or a value of one of the client's codecs.
        ``timeout``, ``connect_timeout`` and ``deadline`` replace the client's for this call.
        Raises ResourceNotFound, RemoteError, PayloadError, AuthenticationError or ServerUnavailable.
        """
        body, content_type = encode(payload, self._codecs)
        target = self._target(resource)
        reply = self._request(
            self.method, target, body, content_type, self._waits(timeout, connect_timeout, deadline)
        )
        return self._value(reply, self.method, target, resource)

    def send_many(
        self,
        calls: Iterable[tuple[str, Any]],
        *,
        return_exceptions: bool = False,
        timeout: float | None = None,
        connect_timeout: float | None = None,
        deadline: float | None = None,
    ) -> list[Any]:
        """Send each ``(resource, payload)`` of ``calls`` and return the replies, in order.

        On plain HTTP the calls are pipelined on one connection, and the handler runs each
        once, in order. If any call fails, every reply is still read and the first failure
        is raised; with ``return_exceptions`` the list holds the exception in its place.
        """
        encoded = _encode_all(calls, self._target, return_exceptions, self._codecs)
        self._check_open()
        requests = [
            (self.method, item[1], item[2], item[3])
            for item in encoded
            if not isinstance(item, DataServeError)
        ]
        outcomes = iter(self._pipeline(requests, self._waits(timeout, connect_timeout, deadline)))
        results = [
            item if isinstance(item, DataServeError) else self._result(next(outcomes), item)
            for item in encoded
        ]
        return _outcome(results, return_exceptions)

    def _pipeline(self, requests: Sequence[Request], waits: Waits) -> list[Reply | DataServeError]:
        """A reply or a failure for each request: pipelined on the socket lane, one by one on httpx."""
        if self._fast is not None:
            outcomes: list[Reply | DataServeError] = []
            for outcome in self._fast.pipeline(requests, waits):
                if isinstance(outcome, OSError):
                    error = self._failure(outcome)
                    error.__cause__ = outcome
                    outcomes.append(error)
                else:
                    outcomes.append(outcome)
            return outcomes
        replies: list[Reply | DataServeError] = []
        for method, target, body, content_type in requests:
            try:
                replies.append(self._request(method, target, body, content_type, waits))
            except DataServeError as exc:
                replies.append(exc)
        return replies

    def ping(self) -> bool:
        """Return True if the server is up and ready, False if it is up but not ready yet.

        Raises ServerUnavailable if nothing answers.
        """
        return (
            self._request("GET", self._target(HEALTH_PATH), b"", None, self._waits(None, None, None)).status
            == 200
        )

    def _request(
        self, method: str, target: bytes, body: bytes, content_type: str | None, waits: Waits
    ) -> Reply:
        self._check_open()
        if self._fast is not None:
            try:
                return self._fast.request(method, target, body, content_type, waits)
            except OSError as exc:
                raise self._failure(exc) from exc
        from . import _httpx

        url = self._origin + target.decode("ascii")
        return _httpx.request(
            self._httpx(), self._server, method, url, body, content_type, waits, self.max_reply_size
        )

    def _failure(self, exc: OSError) -> DataServeError:
        """The exception for the socket lane's failure ``exc``."""
        if isinstance(exc, ReplyTooLarge | DeadlinePassed):
            return refused_reply(self._server, exc)
        if isinstance(exc, NotSent) and isinstance(exc.__cause__, OSError):
            return unavailable(self._server, exc.__cause__, sent=False)
        return unavailable(self._server, exc, sent=True)

    def _httpx(self) -> httpx.Client:
        """The pooled httpx client, made on the first call that needs it."""
        if self._http is None:
            from . import _httpx

            self._http = _httpx.make_client(
                self.timeout, self.connect_timeout, self._headers, self._verify, self.uds
            )
        return self._http

    def close(self) -> None:
        """Close the pooled connections; the client cannot send afterwards."""
        self._closed = True
        if self._http is not None:
            self._http.close()
        if self._fast is not None:
            self._fast.close()

    def __enter__(self) -> HTTPDataClient:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


class AsyncHTTPDataClient(_DataClient):
    """HTTPDataClient for ``async`` code: ``await client.send(resource, payload)``.

    It takes the same arguments and raises the same exceptions as HTTPDataClient. Its calls
    go over one pool of keep-alive connections (httpx), and calls made at the same time
    (with ``asyncio.gather`` or tasks) each get their own reply. Close it with ``await
    client.aclose()``, or use it with ``async with``. Use a client in one event loop only.
    """

    def __init__(
        self,
        port: int | None = None,
        address: str = "http://localhost:",
        *,
        uds: str | os.PathLike[str] | None = None,
        timeout: float | None = DEFAULT_TIMEOUT,
        connect_timeout: float | None = DEFAULT_CONNECT_TIMEOUT,
        deadline: float | None = None,
        max_reply_size: int | None = DEFAULT_MAX_REPLY_SIZE,
        token: str | None = None,
        verify: Verify = True,
        method: str = "PUT",
        codecs: Iterable[Codec] | None = None,
    ) -> None:
        super().__init__(
            port,
            address,
            uds=uds,
            timeout=timeout,
            connect_timeout=connect_timeout,
            deadline=deadline,
            max_reply_size=max_reply_size,
            token=token,
            verify=verify,
            method=method,
            codecs=codecs,
        )
        from . import _httpx

        self._http: httpx.AsyncClient = _httpx.make_async_client(
            timeout, connect_timeout, self._headers, self._verify, self.uds
        )

    async def send(
        self,
        resource: str,
        payload: Any = None,
        *,
        timeout: float | None = None,
        connect_timeout: float | None = None,
        deadline: float | None = None,
    ) -> Any:
        """Send ``payload`` to ``resource`` and return the handler's reply.

        ``payload`` is a str, a JSON-able value, bytes-like, a NumPy array, a table (pyarrow,
        pandas or polars), None, or a value of one of the client's codecs.
        ``timeout``, ``connect_timeout`` and ``deadline`` replace the client's for this call.
        Raises ResourceNotFound, RemoteError, PayloadError, AuthenticationError or ServerUnavailable.
        """
        body, content_type = encode(payload, self._codecs)
        target = self._target(resource)
        waits = self._waits(timeout, connect_timeout, deadline)
        reply = await self._request(self.method, target, body, content_type, waits)
        return self._value(reply, self.method, target, resource)

    async def send_many(
        self,
        calls: Iterable[tuple[str, Any]],
        *,
        return_exceptions: bool = False,
        timeout: float | None = None,
        connect_timeout: float | None = None,
        deadline: float | None = None,
    ) -> list[Any]:
        """Send each ``(resource, payload)`` of ``calls`` at once and return the replies, in order.

        The calls travel concurrently over the client's pool, so the handler may take them in
        any order (HTTPDataClient.send_many keeps it). If any call fails, every other still
        completes and the first failure, in the order of ``calls``, is raised; with
        ``return_exceptions`` the list holds the exception in its place.
        """
        encoded = _encode_all(calls, self._target, return_exceptions, self._codecs)
        waits = self._waits(timeout, connect_timeout, deadline)

        async def call(item: tuple[str, bytes, bytes, str] | DataServeError) -> Any:
            if isinstance(item, DataServeError):
                return item
            _, target, body, content_type = item
            try:
                reply = await self._request(self.method, target, body, content_type, waits)
            except DataServeError as exc:
                return exc
            return self._result(reply, item)

        import asyncio

        results = await asyncio.gather(*(call(item) for item in encoded))
        return _outcome(list(results), return_exceptions)

    async def ping(self) -> bool:
        """Return True if the server is up and ready, False if it is up but not ready yet.

        Raises ServerUnavailable if nothing answers.
        """
        waits = self._waits(None, None, None)
        return (await self._request("GET", self._target(HEALTH_PATH), b"", None, waits)).status == 200

    async def _request(
        self, method: str, target: bytes, body: bytes, content_type: str | None, waits: Waits
    ) -> Reply:
        self._check_open()
        from . import _httpx

        url = self._origin + target.decode("ascii")
        return await _httpx.async_request(
            self._http, self._server, method, url, body, content_type, waits, self.max_reply_size
        )

    async def aclose(self) -> None:
        """Close the pooled connections; the client cannot send afterwards."""
        self._closed = True
        await self._http.aclose()

    async def __aenter__(self) -> AsyncHTTPDataClient:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()


def reply_value(reply: Reply, where: str, resource: str) -> Any:
    """The value ``reply`` carries, or the exception its status stands for; ``where`` names the call."""
    if reply.status == 200:
        return decode(reply.body, reply.headers.get("content-type"))
    raise status_error(reply, where, resource_path(resource))


def _encode_all(
    calls: Iterable[tuple[str, Any]], target: Callable[[str], bytes], return_exceptions: bool, codecs: Codecs
) -> list[tuple[str, bytes, bytes, str] | DataServeError]:
    """Each call's resource, target, body and Content-Type; a payload that cannot be sent is refused
    before anything is sent, or kept as its PayloadError with ``return_exceptions``."""
    encoded: list[tuple[str, bytes, bytes, str] | DataServeError] = []
    for resource, payload in calls:
        try:
            body, content_type = encode(payload, codecs)
        except PayloadError as exc:
            if not return_exceptions:
                raise
            encoded.append(exc)
            continue
        encoded.append((resource, target(resource), body, content_type))
    return encoded


def _outcome(results: list[Any], return_exceptions: bool) -> list[Any]:
    if not return_exceptions:
        for result in results:
            if isinstance(result, DataServeError):
                raise result
    return results


def load_verify(verify: Verify) -> bool | ssl.SSLContext:
    """``verify`` as httpx takes it; a CA bundle's path is loaded now, to fail here if it cannot be."""
    if isinstance(verify, str | os.PathLike):
        import ssl

        cafile = os.fspath(verify)
        try:
            return ssl.create_default_context(cafile=cafile)
        except (OSError, ssl.SSLError) as exc:
            raise DataServeError(f"cannot use {cafile!r} as a CA bundle: {exc}") from None
    return verify

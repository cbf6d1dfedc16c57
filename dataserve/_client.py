"""The clients that call a dataserve server and hand back its replies as Python values.

HTTPDataClient and AsyncHTTPDataClient share everything but the I/O: the address, the
payload's encoding, the closed check, and the mapping of replies and transport failures to
dataserve's exceptions live in ``_DataClient`` and the module-level helpers.
"""

from __future__ import annotations

import contextlib
import json
import os
import ssl
from collections.abc import Iterator
from types import TracebackType
from typing import Any, Generic, TypeAlias, TypeVar

import httpx

from ._app import HEALTH_PATH
from ._codec import decode, encode
from ._errors import (
    AuthenticationError,
    DataServeError,
    PayloadError,
    RemoteError,
    ResourceNotFound,
    ServerUnavailable,
)
from ._fastpath import FastPath, Reply, eligible
from ._token import authorization, resolve_token

__all__ = ["AsyncHTTPDataClient", "HTTPDataClient"]

DEFAULT_TIMEOUT = 60.0
"""Seconds a call waits to send its payload, and then for the reply."""

DEFAULT_CONNECT_TIMEOUT = 10.0
"""Seconds a call waits for the server to accept its connection."""

KEEPALIVE_EXPIRY = 4.0
"""Seconds an idle pooled connection is kept: less than uvicorn's 5 s idle timeout, so the
server never closes a connection the client is about to use."""

Verify: TypeAlias = bool | str | os.PathLike[str] | ssl.SSLContext
"""How a client checks an HTTPS server's certificate: True against the authorities httpx trusts
(certifi's bundle, or ``$SSL_CERT_FILE``), a CA bundle's path, an SSL context, or False not at all."""

_HTTP = TypeVar("_HTTP", httpx.Client, httpx.AsyncClient)


class _DataClient(Generic[_HTTP]):
    """What the sync and the async client share: all but the request and the closing."""

    def __init__(
        self,
        port: int | None = None,
        address: str = "http://localhost:",
        *,
        timeout: float | None = DEFAULT_TIMEOUT,
        connect_timeout: float | None = DEFAULT_CONNECT_TIMEOUT,
        token: str | None = None,
        verify: Verify = True,
    ) -> None:
        self.base_url = base_url(port, address)
        self.connect_timeout = connect_timeout
        self._http: _HTTP = self._pool(**pool_options(self.base_url, timeout, connect_timeout, token, verify))

    def _pool(self, **options: Any) -> _HTTP:
        """The pooled httpx client that carries this client's calls."""
        raise NotImplementedError

    def _call_timeout(self, timeout: float | None, connect_timeout: float | None) -> httpx.Timeout | None:
        """The timeouts of one call that has its own, in place of the client's; None if it has none."""
        if timeout is None and connect_timeout is None:
            return None
        return httpx.Timeout(
            self._http.timeout.read if timeout is None else timeout,
            connect=self._http.timeout.connect if connect_timeout is None else connect_timeout,
        )

    def _options(self, timeout: httpx.Timeout | None, sent: _Sent) -> dict[str, Any]:
        """The httpx options of one request: its timeouts if it has its own, and the trace of its sending."""
        options: dict[str, Any] = {"extensions": {"trace": sent.trace(self._is_async)}}
        if timeout is not None:
            options["timeout"] = timeout
        return options

    def _check_open(self) -> None:
        if self._http.is_closed:
            raise DataServeError(f"{self!r} is closed; make a new client to call the server again")

    @contextlib.contextmanager
    def _calling(self) -> Iterator[_HTTP]:
        """The httpx client to make one request with, its transport failures as ServerUnavailable."""
        self._check_open()
        try:
            yield self._http
        except httpx.TransportError as exc:
            raise unavailable(self.base_url, exc) from exc

    _is_async = False

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.base_url!r})"


class HTTPDataClient(_DataClient[httpx.Client]):
    """Calls the handler of a dataserve server over one pooled keep-alive connection.

    ``HTTPDataClient(5001)`` reaches ``http://localhost:5001``. ``address`` may end in a
    colon (``"http://10.0.0.2:"``), name a host (``"http://10.0.0.2"``), or be a full base
    URL (``"http://10.0.0.2:8000/data"``), whose port wins over ``port``. ``timeout`` is
    how many seconds a call waits to send and for the reply, each (None waits for ever);
    ``connect_timeout``, for the server to accept the connection. ``token`` (else
    ``$DATASERVE_TOKEN``) goes with every call; ``verify`` says how to check an HTTPS
    server. Close the client when done, or use it as a context manager.
    """

    def _pool(self, **options: Any) -> httpx.Client:
        http = httpx.Client(**options)
        self._targets: dict[str, bytes] = {}
        url = http.base_url
        self._fast = (
            FastPath(
                url.host,
                url.port or 80,
                {name: value for name, value in http.headers.items() if name.lower() == "authorization"},
                timeout=http.timeout.read,
                connect_timeout=http.timeout.connect,
                keepalive_expiry=KEEPALIVE_EXPIRY,
            )
            if eligible(url.scheme, url.host)
            else None
        )
        return http

    def send(
        self,
        resource: str,
        payload: Any = None,
        *,
        timeout: float | None = None,
        connect_timeout: float | None = None,
    ) -> Any:
        """Send ``payload`` to ``resource`` and return the handler's reply.

        ``payload`` is a str, a JSON-able value, bytes-like, a NumPy array, or None.
        ``timeout`` and ``connect_timeout`` replace the client's for this call. Raises
        ResourceNotFound, RemoteError, PayloadError, AuthenticationError or ServerUnavailable.
        """
        body, content_type = encode(payload)
        path = resource_path(resource)
        call_timeout = self._call_timeout(timeout, connect_timeout)
        if self._fast is None:
            options = {"content": body, "headers": {"content-type": content_type}}
            return reply_value(self._request("PUT", path, call_timeout, **options), path)
        reply = self._fast_request("PUT", path, body, content_type, call_timeout)
        if reply.status == 200:
            return decode(reply.body, reply.headers.get("content-type"))
        raise status_error(self._as_response("PUT", path, reply), path)

    def ping(self) -> bool:
        """Return True if the server is up and ready, False if it is up but not ready yet.

        Raises ServerUnavailable if nothing answers.
        """
        if self._fast is None:
            return self._request("GET", HEALTH_PATH, None).status_code == 200
        return self._fast_request("GET", HEALTH_PATH, b"", None, None).status == 200

    def _fast_request(
        self, method: str, path: str, body: bytes, content_type: str | None, timeout: httpx.Timeout | None
    ) -> Reply:
        assert self._fast is not None
        self._check_open()
        target = self._targets.get(path)
        if target is None:  # The request target httpx would send: dot segments resolved, escaped.
            target = self._http.build_request(method, path).url.raw_path
            if len(self._targets) < 1024:
                self._targets[path] = target
        try:
            if timeout is None:
                return self._fast.request(method, target, body, content_type)
            return self._fast.request(method, target, body, content_type, timeout.read, timeout.connect)
        except OSError as exc:
            raise unavailable(self.base_url, exc) from exc

    def _as_response(self, method: str, path: str, reply: Reply) -> httpx.Response:
        """The httpx response a fast-path reply stands for, to read a refusal from."""
        request = httpx.Request(method, self.base_url + path)
        return httpx.Response(reply.status, headers=reply.headers, content=bytes(reply.body), request=request)

    def _request(
        self, method: str, path: str, timeout: httpx.Timeout | None, **options: Any
    ) -> httpx.Response:
        with self._calling() as http:
            sent = _Sent()
            try:
                return http.request(method, path, **options, **self._options(timeout, sent))
            except httpx.TransportError as exc:
                if not sent.may_retry(exc):
                    raise
            return http.request(method, path, **options, **self._options(timeout, _Sent()))

    def close(self) -> None:
        """Close the pooled connections; the client cannot send afterwards."""
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


class AsyncHTTPDataClient(_DataClient[httpx.AsyncClient]):
    """HTTPDataClient for ``async`` code: ``await client.send(resource, payload)``.

    It takes the same arguments and raises the same exceptions as HTTPDataClient. Its calls
    go over one pool of keep-alive connections, and calls made at the same time (with
    ``asyncio.gather`` or tasks) each get their own reply. Close it with ``await
    client.aclose()``, or use it with ``async with``. Use a client in one event loop only.
    """

    _is_async = True

    def _pool(self, **options: Any) -> httpx.AsyncClient:
        return httpx.AsyncClient(**options)

    async def send(
        self,
        resource: str,
        payload: Any = None,
        *,
        timeout: float | None = None,
        connect_timeout: float | None = None,
    ) -> Any:
        """Send ``payload`` to ``resource`` and return the handler's reply.

        ``payload`` is a str, a JSON-able value, bytes-like, a NumPy array, or None.
        ``timeout`` and ``connect_timeout`` replace the client's for this call. Raises
        ResourceNotFound, RemoteError, PayloadError, AuthenticationError or ServerUnavailable.
        """
        path, options = put_request(resource, payload)
        call_timeout = self._call_timeout(timeout, connect_timeout)
        return reply_value(await self._request("PUT", path, call_timeout, **options), path)

    async def ping(self) -> bool:
        """Return True if the server is up and ready, False if it is up but not ready yet.

        Raises ServerUnavailable if nothing answers.
        """
        return (await self._request("GET", HEALTH_PATH, None)).status_code == 200

    async def _request(
        self, method: str, path: str, timeout: httpx.Timeout | None, **options: Any
    ) -> httpx.Response:
        with self._calling() as http:
            sent = _Sent()
            try:
                return await http.request(method, path, **options, **self._options(timeout, sent))
            except httpx.TransportError as exc:
                if not sent.may_retry(exc):
                    raise
            return await http.request(method, path, **options, **self._options(timeout, _Sent()))

    async def aclose(self) -> None:
        """Close the pooled connections; the client cannot send afterwards."""
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


class _Sent:
    """Follows how far a request got on the wire, to tell whether retrying it is safe.

    A request whose body was not all sent cannot have reached the handler, so it is sent
    again once, on a fresh connection: that is a pooled connection the server closed just
    as it was reused. Once the whole request is sent the handler may have run, and a
    failure is reported, never retried.
    """

    def __init__(self) -> None:
        self.complete = False

    def may_retry(self, exc: httpx.TransportError) -> bool:
        return not self.complete and not isinstance(exc, httpx.TimeoutException)

    def trace(self, is_async: bool) -> Any:
        """httpcore's trace callback, a coroutine function for the async client."""
        if is_async:

            async def atrace(event: str, info: dict[str, Any]) -> None:
                self.see(event)

            return atrace

        def trace(event: str, info: dict[str, Any]) -> None:
            self.see(event)

        return trace

    def see(self, event: str) -> None:
        if event in ("http11.send_request_body.complete", "http2.send_request_body.complete"):
            self.complete = True


def pool_options(
    url: str, timeout: float | None, connect_timeout: float | None, token: str | None, verify: Verify
) -> dict[str, Any]:
    """The options of the pooled httpx client behind a dataserve client."""
    token = resolve_token(token)
    if isinstance(verify, str | os.PathLike):
        cafile = os.fspath(verify)
        try:
            verify = ssl.create_default_context(cafile=cafile)
        except (OSError, ssl.SSLError) as exc:
            raise DataServeError(f"cannot use {cafile!r} as a CA bundle: {exc}") from None
    return {
        "base_url": url,
        "timeout": httpx.Timeout(timeout, connect=connect_timeout),
        "headers": {"authorization": authorization(token)} if token else None,
        "verify": verify,
        "limits": httpx.Limits(
            max_connections=100, max_keepalive_connections=20, keepalive_expiry=KEEPALIVE_EXPIRY
        ),
    }


def base_url(port: int | None, address: str) -> str:
    """The server's base URL from the seed's ``(port, address)`` pair."""
    if "://" not in address:
        address = "http://" + address
    if address.endswith(":"):
        if port is None:
            raise ValueError(f"address {address!r} ends in a colon: pass the port too")
        return f"{address}{port}"
    url = httpx.URL(address)
    if url.port is None and port is not None:
        url = url.copy_with(port=port)
    return str(url).rstrip("/")


def resource_path(resource: str) -> str:
    """The request path for ``resource``, which gets a leading ``/`` if it has none."""
    return resource if resource.startswith("/") else "/" + resource


def put_request(resource: str, payload: Any) -> tuple[str, dict[str, Any]]:
    """The path and the httpx request options of a ``send``; PayloadError for a value it cannot carry."""
    body, content_type = encode(payload)
    return resource_path(resource), {"content": body, "headers": {"content-type": content_type}}


def reply_value(response: httpx.Response, resource: str) -> Any:
    """The value a reply carries, or the typed exception its status code stands for."""
    if response.status_code == 200:
        return decode(response.content, response.headers.get("content-type"))
    raise status_error(response, resource)


def status_error(response: httpx.Response, resource: str) -> DataServeError:
    """The exception for a reply that is not 200, with the server's message."""
    status = response.status_code
    try:
        error = json.loads(response.content)
        message = str(error["message"])
    except (ValueError, KeyError, TypeError):
        error, message = {}, response.text[:200] or response.reason_phrase
    where = f"{response.request.method} {response.request.url}"
    if status == 404:
        return ResourceNotFound(f"{message} (404 from {where})", resource=resource)
    if status == 500:
        remote_type = str(error.get("exception", "Exception"))
        return RemoteError(
            f"the handler failed on {where}: {remote_type}: {message}",
            remote_type=remote_type,
            remote_message=message,
            remote_traceback=error.get("traceback"),
        )
    if status in (400, 413, 415):
        refused = "the call" if error.get("error") == "bad_resource" else "the payload"
        return PayloadError(f"the server refused {refused}: {message} ({status} from {where})", status=status)
    if status == 401:
        return AuthenticationError(f"{message} (401 from {where})")
    if status == 503:
        return ServerUnavailable(f"the server cannot serve now: {message} (503 from {where})")
    return DataServeError(f"unexpected {status} {response.reason_phrase} from {where}: {message}")


def unavailable(url: str, exc: httpx.TransportError | OSError) -> ServerUnavailable:
    """The ServerUnavailable for a transport failure, saying what to check."""
    if "CERTIFICATE_VERIFY_FAILED" in str(exc):
        return ServerUnavailable(
            f"cannot verify the certificate of {url} ({exc}); give the client the CA that signed it "
            "(verify='ca.pem', or --cafile), or check that this is the server you mean"
        )
    if isinstance(exc, httpx.TimeoutException | TimeoutError):
        return ServerUnavailable(
            f"no reply from {url} in time ({type(exc).__name__}); check that the server at {url} "
            "is running and not overloaded, or raise the client's timeout"
        )
    return ServerUnavailable(
        f"cannot reach a dataserve server at {url} ({type(exc).__name__}: {exc}); "
        f"check that the server is running and listening at {url}"
    )

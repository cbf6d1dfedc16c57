"""The clients that call a dataserve server and hand back its replies as Python values.

HTTPDataClient and AsyncHTTPDataClient share everything but the I/O: the address, the
payload's encoding, the closed check, and the mapping of replies and transport failures to
dataserve's exceptions live in ``_DataClient`` and the module-level helpers.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator
from types import TracebackType
from typing import Any, Generic, TypeVar

import httpx

from ._app import HEALTH_PATH
from ._codec import decode, encode
from ._errors import DataServeError, PayloadError, RemoteError, ResourceNotFound, ServerUnavailable

__all__ = ["AsyncHTTPDataClient", "HTTPDataClient"]

DEFAULT_TIMEOUT = 60.0
"""Seconds a call waits for the server to accept, take the payload, and reply."""

_HTTP = TypeVar("_HTTP", httpx.Client, httpx.AsyncClient)


class _DataClient(Generic[_HTTP]):
    """What the sync and the async client share: all but the request and the closing."""

    def __init__(
        self,
        port: int | None = None,
        address: str = "http://localhost:",
        *,
        timeout: float | None = DEFAULT_TIMEOUT,
    ) -> None:
        self.base_url = base_url(port, address)
        self._http: _HTTP = self._pool(timeout)

    def _pool(self, timeout: float | None) -> _HTTP:
        """The pooled httpx client that carries this client's calls."""
        raise NotImplementedError

    @contextlib.contextmanager
    def _calling(self) -> Iterator[_HTTP]:
        """The httpx client to make one request with, its transport failures as ServerUnavailable."""
        if self._http.is_closed:
            raise DataServeError(f"{self!r} is closed; make a new client to call the server again")
        try:
            yield self._http
        except httpx.TransportError as exc:
            raise unavailable(self.base_url, exc) from exc

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.base_url!r})"


class HTTPDataClient(_DataClient[httpx.Client]):
    """Calls the handler of a dataserve server over one pooled keep-alive connection.

    ``HTTPDataClient(5001)`` reaches ``http://localhost:5001``. ``address`` may end in a
    colon (``"http://10.0.0.2:"``), name a host (``"http://10.0.0.2"``), or be a full base
    URL (``"http://10.0.0.2:8000/data"``), whose port wins over ``port``. ``timeout`` is
    how many seconds a call waits to connect, to send, and for the reply, each (None
    waits for ever). Close the client when done, or use it as a context manager.
    """

    def _pool(self, timeout: float | None) -> httpx.Client:
        return httpx.Client(base_url=self.base_url, timeout=timeout)

    def send(self, resource: str, payload: Any = None) -> Any:
        """Send ``payload`` to ``resource`` and return the handler's reply.

        ``payload`` is a str, a JSON-able value, bytes-like, or None. Raises
        ResourceNotFound, RemoteError, PayloadError or ServerUnavailable.
        """
        path, options = put_request(resource, payload)
        return reply_value(self._request("PUT", path, **options), path)

    def ping(self) -> bool:
        """Return True if the server is up and ready, False if it is up but not ready yet.

        Raises ServerUnavailable if nothing answers.
        """
        return self._request("GET", HEALTH_PATH).status_code == 200

    def _request(self, method: str, path: str, **options: Any) -> httpx.Response:
        with self._calling() as http:
            return http.request(method, path, **options)

    def close(self) -> None:
        """Close the pooled connection; the client cannot send afterwards."""
        self._http.close()

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

    def _pool(self, timeout: float | None) -> httpx.AsyncClient:
        return httpx.AsyncClient(base_url=self.base_url, timeout=timeout)

    async def send(self, resource: str, payload: Any = None) -> Any:
        """Send ``payload`` to ``resource`` and return the handler's reply.

        ``payload`` is a str, a JSON-able value, bytes-like, or None. Raises
        ResourceNotFound, RemoteError, PayloadError or ServerUnavailable.
        """
        path, options = put_request(resource, payload)
        return reply_value(await self._request("PUT", path, **options), path)

    async def ping(self) -> bool:
        """Return True if the server is up and ready, False if it is up but not ready yet.

        Raises ServerUnavailable if nothing answers.
        """
        return (await self._request("GET", HEALTH_PATH)).status_code == 200

    async def _request(self, method: str, path: str, **options: Any) -> httpx.Response:
        with self._calling() as http:
            return await http.request(method, path, **options)

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
        return PayloadError(
            f"the server refused the payload: {message} ({status} from {where})", status=status
        )
    return DataServeError(f"unexpected {status} {response.reason_phrase} from {where}: {message}")


def unavailable(url: str, exc: httpx.TransportError) -> ServerUnavailable:
    """The ServerUnavailable for a transport failure, saying what to check."""
    if isinstance(exc, httpx.TimeoutException):
        return ServerUnavailable(
            f"no reply from {url} in time ({type(exc).__name__}); check that the server at {url} "
            "is running and not overloaded, or raise the client's timeout"
        )
    return ServerUnavailable(
        f"cannot reach a dataserve server at {url} ({type(exc).__name__}: {exc}); "
        f"check that the server is running and listening at {url}"
    )

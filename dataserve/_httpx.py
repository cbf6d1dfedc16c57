"""The client's httpx lane: HTTPS, proxies, and every call of the async client.

Imported only when a call needs it, so that a client on the socket lane never loads httpx.
It moves bytes and nothing more: the caller turns the Reply into a value or an exception.
A transport failure becomes ServerUnavailable here, as on the socket lane.
"""

from __future__ import annotations

import os
import ssl
from typing import Any

import httpx

from ._errors import ServerUnavailable, unavailable
from ._wire import Reply

__all__ = ["KEEPALIVE_EXPIRY", "Verify", "async_request", "make_async_client", "make_client", "request"]

KEEPALIVE_EXPIRY = 4.0
"""Seconds an idle pooled connection is kept: less than uvicorn's 5 s idle timeout, so the
server never closes a connection the client is about to use."""

Verify = bool | str | os.PathLike[str] | ssl.SSLContext


def options(
    timeout: float | None,
    connect_timeout: float | None,
    headers: dict[str, str],
    verify: Verify,
    uds: str | None,
) -> dict[str, Any]:
    """What the pooled httpx client behind a dataserve client is made with."""
    limits = httpx.Limits(
        max_connections=100, max_keepalive_connections=20, keepalive_expiry=KEEPALIVE_EXPIRY
    )
    return {
        "timeout": httpx.Timeout(timeout, connect=connect_timeout),
        "headers": headers,
        "verify": verify,
        "limits": limits,
        "uds": uds,
    }


def make_client(
    timeout: float | None,
    connect_timeout: float | None,
    headers: dict[str, str],
    verify: Verify,
    uds: str | None,
) -> httpx.Client:
    given = options(timeout, connect_timeout, headers, verify, uds)
    uds = given.pop("uds")
    if uds is not None:
        given["transport"] = httpx.HTTPTransport(uds=uds, verify=given["verify"], limits=given["limits"])
    return httpx.Client(**given)


def make_async_client(
    timeout: float | None,
    connect_timeout: float | None,
    headers: dict[str, str],
    verify: Verify,
    uds: str | None,
) -> httpx.AsyncClient:
    given = options(timeout, connect_timeout, headers, verify, uds)
    uds = given.pop("uds")
    if uds is not None:
        given["transport"] = httpx.AsyncHTTPTransport(uds=uds, verify=given["verify"], limits=given["limits"])
    return httpx.AsyncClient(**given)


def timeouts(
    http: httpx.Client | httpx.AsyncClient, timeout: float | None, connect: float | None
) -> httpx.Timeout:
    """The timeouts of one call: its own where given, else the client's."""
    return httpx.Timeout(
        http.timeout.read if timeout is None else timeout,
        connect=http.timeout.connect if connect is None else connect,
    )


def request(
    http: httpx.Client,
    where: str,
    method: str,
    url: str,
    body: bytes,
    content_type: str | None,
    timeout: httpx.Timeout,
) -> Reply:
    """Send one request and return the reply; ServerUnavailable if it cannot be had.

    A request whose body was not all sent is sent again, once, on a fresh connection.
    """
    headers = {"content-type": content_type} if content_type else {}
    for attempt in range(2):
        sent = _Sent()
        extensions = {"trace": sent.trace}
        try:
            response = http.request(
                method, url, content=body, headers=headers, timeout=timeout, extensions=extensions
            )
            return _reply(response)
        except httpx.TransportError as exc:
            if attempt or not sent.may_retry(exc):
                raise _unavailable(where, exc) from exc
    raise AssertionError("unreachable")  # pragma: no cover


async def async_request(
    http: httpx.AsyncClient,
    where: str,
    method: str,
    url: str,
    body: bytes,
    content_type: str | None,
    timeout: httpx.Timeout,
) -> Reply:
    """``request`` for the async client."""
    headers = {"content-type": content_type} if content_type else {}
    for attempt in range(2):
        sent = _Sent()
        extensions = {"trace": sent.atrace}
        try:
            response = await http.request(
                method, url, content=body, headers=headers, timeout=timeout, extensions=extensions
            )
            return _reply(response)
        except httpx.TransportError as exc:
            if attempt or not sent.may_retry(exc):
                raise _unavailable(where, exc) from exc
    raise AssertionError("unreachable")  # pragma: no cover


def _reply(response: httpx.Response) -> Reply:
    headers = {name.lower(): value for name, value in response.headers.items()}
    return Reply(response.status_code, headers, response.content, response.reason_phrase)


def _unavailable(where: str, exc: httpx.TransportError) -> ServerUnavailable:
    return unavailable(where, exc, timed_out=isinstance(exc, httpx.TimeoutException))


class _Sent:
    """Follows how far a request got on the wire, to tell whether sending it again is safe.

    A request whose body was not all sent cannot have reached the handler, so it is sent
    again once, on a fresh connection: that is a pooled connection the server closed just
    as it was reused. Once the whole request is sent the handler may have run, and a
    failure is reported, never retried.
    """

    def __init__(self) -> None:
        self.complete = False

    def may_retry(self, exc: httpx.TransportError) -> bool:
        return not self.complete and not isinstance(exc, httpx.TimeoutException)

    def trace(self, event: str, info: dict[str, Any]) -> None:
        if event in ("http11.send_request_body.complete", "http2.send_request_body.complete"):
            self.complete = True

    async def atrace(self, event: str, info: dict[str, Any]) -> None:
        self.trace(event, info)

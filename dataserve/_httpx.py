"""The client's httpx lane: HTTPS, proxies, and every call of the async client.

Imported only when a call needs it, so that a client on the socket lane never loads httpx.
It moves bytes and nothing more: the caller turns the Reply into a value or an exception.
A transport failure becomes ServerUnavailable here, as on the socket lane.
"""

from __future__ import annotations

import os
import ssl
import time
from typing import Any

import httpx

from ._errors import DataServeError, ServerUnavailable, refused_reply, unavailable
from ._fastpath import Waits
from ._http1 import DeadlinePassed, ReplyTooLarge
from ._wire import Reply

__all__ = [
    "KEEPALIVE_EXPIRY",
    "Sent",
    "Verify",
    "async_request",
    "make_async_client",
    "make_client",
    "request",
]

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


def timeouts(waits: Waits) -> httpx.Timeout:
    """httpx's timeouts for one call's ``waits``; the deadline is kept by ``request``."""
    return httpx.Timeout(waits.timeout, connect=waits.connect_within())


def request(
    http: httpx.Client,
    where: str,
    method: str,
    url: str,
    body: bytes,
    content_type: str | None,
    waits: Waits,
    max_size: int | None,
) -> Reply:
    """Send one request and return the reply; ServerUnavailable if it cannot be had.

    A request whose body was not all sent is sent again, once, on a fresh connection. A reply
    over ``max_size`` bytes, or past the deadline of ``waits``, is given up as it comes.
    """
    headers = {"content-type": content_type} if content_type else {}
    for attempt in range(2):
        sent = Sent()
        options: dict[str, Any] = {"timeout": timeouts(waits), "extensions": {"trace": sent.trace}}
        try:
            with http.stream(method, url, content=body, headers=headers, **options) as response:
                reading = _Reading(response, waits, max_size)
                for chunk in response.iter_bytes():
                    reading.add(chunk)
                return reading.reply()
        except httpx.TransportError as exc:
            if attempt or not sent.may_retry(exc):
                raise _unavailable(where, exc, sent.complete) from exc
        except (ReplyTooLarge, DeadlinePassed) as exc:
            raise _refused(where, exc) from exc
    raise AssertionError("unreachable")  # pragma: no cover


async def async_request(
    http: httpx.AsyncClient,
    where: str,
    method: str,
    url: str,
    body: bytes,
    content_type: str | None,
    waits: Waits,
    max_size: int | None,
) -> Reply:
    """``request`` for the async client."""
    headers = {"content-type": content_type} if content_type else {}
    for attempt in range(2):
        sent = Sent()
        options: dict[str, Any] = {"timeout": timeouts(waits), "extensions": {"trace": sent.atrace}}
        try:
            async with http.stream(method, url, content=body, headers=headers, **options) as response:
                reading = _Reading(response, waits, max_size)
                async for chunk in response.aiter_bytes():
                    reading.add(chunk)
                return reading.reply()
        except httpx.TransportError as exc:
            if attempt or not sent.may_retry(exc):
                raise _unavailable(where, exc, sent.complete) from exc
        except (ReplyTooLarge, DeadlinePassed) as exc:
            raise _refused(where, exc) from exc
    raise AssertionError("unreachable")  # pragma: no cover


class _Reading:
    """A reply's body as it comes, held to a size and a deadline."""

    def __init__(self, response: httpx.Response, waits: Waits, max_size: int | None) -> None:
        self.response = response
        self.deadline = waits.deadline
        self.max_size = max_size
        self.chunks: list[bytes] = []
        self.size = 0
        length = response.headers.get("content-length", "")
        if max_size is not None and length.isdigit() and int(length) > max_size:
            raise ReplyTooLarge(int(length), max_size)

    def add(self, chunk: bytes) -> None:
        self.size += len(chunk)
        if self.max_size is not None and self.size > self.max_size:
            raise ReplyTooLarge(self.size, self.max_size)
        if self.deadline is not None and time.monotonic() > self.deadline:
            raise DeadlinePassed("the call took longer than its deadline")
        self.chunks.append(chunk)

    def reply(self) -> Reply:
        response = self.response
        headers = {name.lower(): value for name, value in response.headers.items()}
        body = self.chunks[0] if len(self.chunks) == 1 else b"".join(self.chunks)
        return Reply(response.status_code, headers, body, response.reason_phrase)


def _refused(where: str, exc: ReplyTooLarge | DeadlinePassed) -> DataServeError:
    return refused_reply(where, exc)


def _unavailable(where: str, exc: httpx.TransportError, sent: bool) -> ServerUnavailable:
    return unavailable(where, exc, sent=sent, timed_out=isinstance(exc, httpx.TimeoutException))


class Sent:
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

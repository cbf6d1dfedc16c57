"""The client's socket lane: plain-HTTP keep-alive calls over pooled sockets, TCP or Unix.

httpx costs a small call some 300 us of its own; this lane costs a few. It carries plain
HTTP over TCP or a Unix socket and nothing else: HTTPS and proxies go through httpx, which
stays the client's foundation. It keeps httpx's rules: a pooled connection is dropped once
idle for ``keepalive_expiry`` or closed by the server, and a request is sent again, once,
only if it was not all sent, so that a handler never runs twice because of the client.
"""

from __future__ import annotations

import os
import socket
import threading
import time
from collections.abc import Sequence

from ._http1 import Connection, DeadlinePassed, request_head
from ._wire import Reply

__all__ = [
    "DISABLE_ENV",
    "PIPELINE_BYTES",
    "PIPELINE_DEPTH",
    "FastPath",
    "NotSent",
    "Request",
    "Waits",
    "eligible",
]

DISABLE_ENV = "DATASERVE_FAST_PATH"
"""Set to 0 to send every call through httpx."""

PIPELINE_DEPTH = 32
"""The most requests ``pipeline`` sends before it reads their replies."""

PIPELINE_BYTES = 64 * 1024
"""The most request bytes ``pipeline`` sends before it reads their replies: a window that the
kernel's buffers take in whole, so that sending it all first cannot wait on replies unread."""

Request = tuple[str, bytes, bytes, "str | None"]
"""One request to send: method, target (raw path and query), body and Content-Type."""


def eligible(scheme: str, host: str, *, uds: bool = False) -> bool:
    """Whether calls to ``scheme://host`` can take this lane: plain HTTP, with no proxy to go through."""
    if os.environ.get(DISABLE_ENV, "1") == "0":
        return False
    if uds:
        return True
    return scheme == "http" and not _proxied(host)


class Waits:
    """How long one call waits: for each send and receive (``timeout``), to connect, and in all
    (until ``deadline``, a ``time.monotonic()``); None waits for ever."""

    __slots__ = ("connect", "deadline", "timeout")

    def __init__(self, timeout: float | None, connect: float | None, deadline: float | None = None) -> None:
        self.timeout = timeout
        self.connect = connect
        self.deadline = deadline

    def connect_within(self) -> float | None:
        """How long connecting may take: ``connect``, or less if the deadline is nearer."""
        if self.deadline is None:
            return self.connect
        left = self.deadline - time.monotonic()
        if left <= 0:
            raise DeadlinePassed("the call took longer than its deadline")
        return left if self.connect is None else min(self.connect, left)


class NotSent(ConnectionError):
    """The connection failed, or could not be made, before a request was all sent: the server
    cannot have handled it. Its ``__cause__`` is the failure itself."""


class FastPath:
    """A pool of keep-alive connections to one server, safe to share between threads.

    ``address`` is ``(host, port)`` for TCP or the path of a Unix socket.
    """

    def __init__(
        self,
        address: tuple[str, int] | str,
        headers: dict[str, str],
        *,
        keepalive_expiry: float,
        max_reply_size: int | None,
    ) -> None:
        self.address = address
        self.keepalive_expiry = keepalive_expiry
        self.max_reply_size = max_reply_size
        if isinstance(address, str):
            host_header = "localhost"
        else:
            host, port = address
            host_header = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
        lines = [f"Host: {host_header}", *(f"{name}: {value}" for name, value in headers.items())]
        self._fixed = ("\r\n".join(lines) + "\r\n").encode("latin-1")
        self._idle: list[Connection] = []
        self._lock = threading.Lock()

    def request(
        self, method: str, target: bytes, body: bytes, content_type: str | None, waits: Waits
    ) -> Reply:
        """Send one request for ``target`` and return the reply, waiting as ``waits`` says.

        Raises OSError (TimeoutError for a timeout) if it fails, and ReplyTooLarge for a reply
        over ``max_reply_size``. A request that was not all sent when its pooled connection
        failed is sent once more on a fresh connection; one that was all sent is never sent
        again.
        """
        request = (method, target, body, content_type)
        head = request_head(method, target, self._fixed, content_type, len(body))
        connection, reused = self._connection(waits)
        reply, keep, connection = self._exchange(connection, reused, head, request, waits)
        self._release(connection, keep)
        return reply

    def pipeline(self, requests: Sequence[Request], waits: Waits) -> list[Reply | OSError]:
        """Send ``requests`` on one connection, a window of them at a time before reading their replies.

        Returns, in order, a reply for each request or the OSError that ended its connection
        before it had one. A window of one request is sent again, once, if its pooled
        connection failed before it was all sent, as ``request`` does; no other request is
        ever sent twice.
        """
        heads = [
            request_head(method, target, self._fixed, ctype, len(body))
            for method, target, body, ctype in requests
        ]
        results: list[Reply | OSError] = []
        try:
            connection, reused = self._connection(waits)
        except NotSent as exc:
            return [exc] * len(requests)
        keep = True
        while len(results) < len(requests):
            window = _window(heads, requests, len(results))
            try:
                if len(window) == 1:
                    index = window[0]
                    reply, keep, connection = self._exchange(
                        connection, reused, heads[index], requests[index], waits
                    )
                    results.append(reply)
                else:
                    connection.set_timeout(waits.timeout, waits.deadline)
                    _send_window(connection, heads, requests, window)
                    for index in window:
                        reply, keep = self._read(connection, requests[index][0])
                        results.append(reply)
                        if not keep:
                            break
            except OSError as exc:
                connection.close()
                return results + [exc] * (len(requests) - len(results))
            if not keep and len(results) < len(requests):
                connection.close()
                if len(results) <= window[-1]:  # the server closed before answering all of the window
                    gone = ConnectionResetError(
                        "the server closed the connection after the reply to an earlier call"
                    )
                    return results + [gone] * (len(requests) - len(results))
                try:
                    connection, keep = self._connect(waits), True
                except NotSent as exc:
                    return results + [exc] * (len(requests) - len(results))
            reused = True
        self._release(connection, keep)
        return results

    def _exchange(
        self, connection: Connection, reused: bool, head: bytes, request: Request, waits: Waits
    ) -> tuple[Reply, bool, Connection]:
        """One request and its reply on ``connection``, sent again on a new one if it could not be sent."""
        while True:
            try:
                _send(connection, head, request[2], waits)
                reply, keep = connection.read_reply(
                    head_request=request[0] == "HEAD", max_size=self.max_reply_size
                )
                return reply, keep, connection
            except NotSent as exc:
                connection.close()
                if not reused or isinstance(exc.__cause__, TimeoutError):
                    raise
                connection, reused = self._connect(waits), False
            except BaseException:
                connection.close()
                raise

    def close(self) -> None:
        """Close every pooled connection."""
        with self._lock:
            idle, self._idle = self._idle, []
        for connection in idle:
            connection.close()

    def _read(self, connection: Connection, method: str) -> tuple[Reply, bool]:
        return connection.read_reply(head_request=method == "HEAD", max_size=self.max_reply_size)

    def _connection(self, waits: Waits) -> tuple[Connection, bool]:
        """A pooled connection still fit for use, or a new one; and whether it was pooled."""
        while True:
            with self._lock:
                connection = self._idle.pop() if self._idle else None
            if connection is None:
                return self._connect(waits), False
            if connection.fit(self.keepalive_expiry):
                return connection, True
            connection.close()

    def _connect(self, waits: Waits) -> Connection:
        """A new connection to the server; NotSent if it cannot be made."""
        timeout = waits.connect_within()
        try:
            if isinstance(self.address, str):
                sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
                try:
                    sock.settimeout(timeout)
                    sock.connect(self.address)
                except BaseException:
                    sock.close()
                    raise
            else:
                sock = socket.create_connection(self.address, timeout=timeout)
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        except OSError as exc:
            raise NotSent(f"cannot connect: {exc}") from exc
        return Connection(sock)

    def _release(self, connection: Connection, keep: bool) -> None:
        if keep and not connection.has_unread:
            with self._lock:
                self._idle.append(connection)
        else:
            connection.close()


def _send(connection: Connection, head: bytes, body: bytes, waits: Waits) -> None:
    """Send one request; NotSent if the connection fails before all of it is sent."""
    try:
        connection.set_timeout(waits.timeout, waits.deadline)
        connection.send(head, body)
    except DeadlinePassed:
        raise
    except OSError as exc:
        raise NotSent(f"the connection failed while sending: {exc}") from exc


def _window(heads: list[bytes], requests: Sequence[Request], first: int) -> list[int]:
    """The indexes of the requests to send next, from ``first``: at least one, at most a window."""
    window = [first]
    size = len(heads[first]) + len(requests[first][2])
    for index in range(first + 1, min(len(requests), first + PIPELINE_DEPTH)):
        size += len(heads[index]) + len(requests[index][2])
        if size > PIPELINE_BYTES:
            break
        window.append(index)
    return window


def _send_window(
    connection: Connection, heads: list[bytes], requests: Sequence[Request], window: list[int]
) -> None:
    # Sent whole: a failure may come after some of the window's requests were all sent, so it is
    # never taken for NotSent.
    connection.send(b"".join(part for index in window for part in (heads[index], requests[index][2])), b"")


def _proxied(host: str) -> bool:
    """Whether the environment sends plain-HTTP requests to ``host`` through a proxy, as httpx reads it.

    On Linux that is only the environment (``http_proxy``, ``all_proxy``, ``no_proxy``, any
    case), read here without importing urllib.request; elsewhere urllib.request also reads
    the system's settings, so it is asked.
    """
    import sys

    if sys.platform in ("darwin", "win32"):
        import urllib.request

        proxies = urllib.request.getproxies()
        return bool(proxies.get("http") or proxies.get("all")) and not urllib.request.proxy_bypass(host)
    names = {name.lower(): value for name, value in os.environ.items() if name.lower().endswith("_proxy")}
    if not (names.get("http_proxy") or names.get("all_proxy")):
        return False
    return not _bypassed(host, names.get("no_proxy", ""))


def _bypassed(host: str, no_proxy: str) -> bool:
    """Whether ``no_proxy`` exempts ``host``, as urllib.request.proxy_bypass_environment decides."""
    if no_proxy == "*":
        return True
    host = host.lower()
    for name in (part.strip().lower().lstrip(".") for part in no_proxy.split(",")):
        if name and (host == name or host.endswith("." + name)):
            return True
    return False

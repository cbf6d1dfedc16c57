"""A lean HTTP/1.1 keep-alive path for HTTPDataClient's calls, on the httptools parser uvicorn installs.

httpx costs a small call some 300 us of its own; this path costs a few. It carries plain-HTTP
calls over pooled sockets and nothing else: HTTPS, proxies and anything unusual go through
httpx, which stays the client's foundation. It keeps httpx's rules: a pooled connection is
dropped once idle for KEEPALIVE_EXPIRY or closed by the server, and a request is retried
once only if it was not all sent, so that a handler never runs twice because of the client.
"""

from __future__ import annotations

import os
import select
import socket
import threading
import time
import urllib.request
from dataclasses import dataclass, field

import httptools

__all__ = ["FastPath", "Reply", "eligible"]

DISABLE_ENV = "DATASERVE_FAST_PATH"
"""Set to 0 to send every call through httpx."""

_LARGE = 64 * 1024
"""Bodies from this size on are sent after the head rather than copied onto it."""


def eligible(scheme: str, host: str) -> bool:
    """Whether calls to ``scheme://host`` can take the fast path: plain HTTP, with no proxy to go through."""
    if scheme != "http" or os.environ.get(DISABLE_ENV, "1") == "0":
        return False
    proxies = urllib.request.getproxies()
    return not (proxies.get("http") or proxies.get("all")) or urllib.request.proxy_bypass(host)


@dataclass
class Reply:
    """What a server answered: status, headers (lower-case names) and body."""

    status: int = 0
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes | bytearray = b""


class FastPath:
    """A pool of keep-alive sockets to one server, safe to share between threads."""

    def __init__(
        self,
        host: str,
        port: int,
        headers: dict[str, str],
        *,
        timeout: float | None,
        connect_timeout: float | None,
        keepalive_expiry: float,
    ) -> None:
        self.address = (host, port)
        self.timeout = timeout
        self.connect_timeout = connect_timeout
        self.keepalive_expiry = keepalive_expiry
        host_header = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
        lines = [f"Host: {host_header}", *(f"{name}: {value}" for name, value in headers.items())]
        self._fixed_headers = ("\r\n".join(lines) + "\r\n").encode("latin-1")
        self._idle: list[_Connection] = []
        self._lock = threading.Lock()

    def request(
        self,
        method: str,
        target: bytes,
        body: bytes,
        content_type: str | None,
        timeout: float | None = None,
        connect_timeout: float | None = None,
    ) -> Reply:
        """Send one request for ``target`` (the raw path and query) and return the reply.

        ``timeout`` and ``connect_timeout`` replace the pool's for this request. Raises
        OSError (TimeoutError for a timeout) if it fails. A request that was not all sent
        when its pooled connection failed is sent once more on a fresh connection; one
        that was all sent is never sent again.
        """
        head = self._head(method, target, len(body), content_type)
        timeout = self.timeout if timeout is None else timeout
        connect_timeout = self.connect_timeout if connect_timeout is None else connect_timeout
        connection, reused = self._connection(connect_timeout)
        try:
            return self._exchange(connection, head, body, timeout)
        except _NotSent:
            if not reused:
                raise
            connection = _Connection(self.address, connect_timeout)
            return self._exchange(connection, head, body, timeout)

    def close(self) -> None:
        """Close every pooled connection."""
        with self._lock:
            idle, self._idle = self._idle, []
        for connection in idle:
            connection.close()

    def _head(self, method: str, target: bytes, length: int, content_type: str | None) -> bytes:
        typed = f"Content-Type: {content_type}\r\n".encode("latin-1") if content_type else b""
        return b"%s %s HTTP/1.1\r\n%s%sContent-Length: %d\r\n\r\n" % (
            method.encode("ascii"),
            target,
            self._fixed_headers,
            typed,
            length,
        )

    def _connection(self, connect_timeout: float | None) -> tuple[_Connection, bool]:
        """A pooled connection still fit for use, or a new one; and whether it was pooled."""
        while True:
            with self._lock:
                connection = self._idle.pop() if self._idle else None
            if connection is None:
                return _Connection(self.address, connect_timeout), False
            if connection.fit(self.keepalive_expiry):
                return connection, True
            connection.close()

    def _exchange(self, connection: _Connection, head: bytes, body: bytes, timeout: float | None) -> Reply:
        try:
            reply, keep = connection.exchange(head, body, timeout)
        except BaseException:
            connection.close()
            raise
        if keep:
            with self._lock:
                self._idle.append(connection)
        else:
            connection.close()
        return reply


class _NotSent(ConnectionError):
    """The connection failed before the whole request was sent: the server cannot have handled it."""


class _Connection:
    """One keep-alive socket, and the parsing of the replies that come over it."""

    def __init__(self, address: tuple[str, int], connect_timeout: float | None) -> None:
        self.sock = socket.create_connection(address, timeout=connect_timeout)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.last_used = time.monotonic()

    def fit(self, keepalive_expiry: float) -> bool:
        """Whether the connection can carry another request: not idle too long, not closed by the server."""
        if time.monotonic() - self.last_used > keepalive_expiry:
            return False
        try:
            readable, _, _ = select.select([self.sock], [], [], 0)
        except (OSError, ValueError):
            return False
        return not readable  # Between replies, something to read means the server closed it.

    def exchange(self, head: bytes, body: bytes, timeout: float | None) -> tuple[Reply, bool]:
        """Send a request and read its reply; also whether the connection stays open."""
        try:
            self.sock.settimeout(timeout)
            if len(body) < _LARGE:
                self.sock.sendall(head + body)
            else:
                self.sock.sendall(head)
                self.sock.sendall(body)
        except TimeoutError:
            raise
        except OSError as exc:
            raise _NotSent(f"the connection failed while sending: {exc}") from exc
        reply = _ReplyReader()
        parser = reply.parser = httptools.HttpResponseParser(reply)
        while not reply.complete:
            data = self.sock.recv(1 << 20)
            if not data:
                raise ConnectionResetError("the server closed the connection before it replied")
            try:
                parser.feed_data(data)
            except httptools.HttpParserError as exc:
                raise ConnectionError(f"the server's reply is not valid HTTP: {exc}") from None
            if reply.length is not None and reply.length >= _LARGE and not reply.complete:
                self._read_rest(reply)
        self.last_used = time.monotonic()
        return reply.reply, reply.keep_alive

    def _read_rest(self, reply: _ReplyReader) -> None:
        """Read the rest of a large body straight into one buffer, past the parser and its copies."""
        assert reply.length is not None
        body = bytearray(reply.length)
        view = memoryview(body)
        done = 0
        for chunk in reply.chunks:
            view[done : done + len(chunk)] = chunk
            done += len(chunk)
        while done < reply.length:
            count = self.sock.recv_into(view[done:])
            if not count:
                raise ConnectionResetError("the server closed the connection in the middle of its reply")
            done += count
        reply.reply.body = body
        reply.complete = True

    def close(self) -> None:
        self.sock.close()


class _ReplyReader:
    """httptools' callbacks, gathering one reply."""

    def __init__(self) -> None:
        self.parser: httptools.HttpResponseParser | None = None
        self.reply = Reply()
        self.chunks: list[bytes] = []
        self.length: int | None = None
        self.keep_alive = False
        self.complete = False

    def on_header(self, name: bytes, value: bytes) -> None:
        self.reply.headers[name.decode("latin-1").lower()] = value.decode("latin-1")

    def on_headers_complete(self) -> None:
        # The parser knows these only until the message is complete.
        assert self.parser is not None
        self.reply.status = self.parser.get_status_code()
        self.keep_alive = self.parser.should_keep_alive()
        length = self.reply.headers.get("content-length", "")
        self.length = int(length) if length.isdigit() else None

    def on_body(self, body: bytes) -> None:
        self.chunks.append(body)

    def on_message_complete(self) -> None:
        self.reply.body = self.chunks[0] if len(self.chunks) == 1 else b"".join(self.chunks)
        self.complete = True

"""HTTP/1.1 over one blocking socket, for the client's socket lane: send requests, read replies.

Replies are parsed here rather than by a general parser, so that the lane knows exactly where
each one ends: a large body is received straight into the buffer it is handed over in (no
parser copies it), and pipelined replies are read one after another from the same bytes. The
parser is strict: a reply it cannot frame exactly is a ConnectionError, and the connection
is not used again.
"""

from __future__ import annotations

import re
import select
import socket
import struct
import time

from ._buffers import BodyBuffer
from ._wire import Reply

__all__ = ["MAX_HEAD", "Connection", "DeadlinePassed", "ProtocolError", "ReplyTooLarge", "request_head"]

MAX_HEAD = 64 * 1024
"""The most bytes a reply's status line and headers may take."""

_BUFFER = 64 * 1024
"""Bytes of each connection's receive buffer, reused for every reply: bodies up to this size are
read into it; larger ones into a buffer of their own."""

_STATUS_LINE = re.compile(r"HTTP/1\.([01]) ([1-9][0-9][0-9])(?: ([\t\x20-\x7e\x80-\xff]*))?")
_CHUNK_SIZE = re.compile(rb"([0-9A-Fa-f]{1,15})[\t ]*(?:;[^\r\n]*)?")


class ProtocolError(ConnectionError):
    """The server's reply is not HTTP/1.1 that this client can frame: the connection is dropped."""


class ReplyTooLarge(ProtocolError):
    """A reply larger than the client takes, or than its memory holds: the connection is dropped
    before the body is read."""

    def __init__(self, size: int, max_size: int | None) -> None:
        if max_size is None:
            message = f"the reply of {size:,} bytes does not fit in this process's memory"
        else:
            message = f"the reply of {size:,} bytes or more is larger than this client takes ({max_size:,})"
        super().__init__(message)
        self.size = size
        self.max_size = max_size


class DeadlinePassed(TimeoutError):
    """The call took longer than its deadline allows: whatever was still to come is given up."""


def request_head(method: str, target: bytes, fixed: bytes, content_type: str | None, length: int) -> bytes:
    """The head of a request: its line, the ``fixed`` header lines, its type and its length."""
    typed = b"Content-Type: %s\r\n" % content_type.encode("latin-1") if content_type else b""
    return b"%s %s HTTP/1.1\r\n%s%sContent-Length: %d\r\n\r\n" % (
        method.encode("ascii"),
        target,
        fixed,
        typed,
        length,
    )


class Connection:
    """One keep-alive socket to a server, with the buffer its replies are read through.

    The socket blocks, and its timeouts are the kernel's (``SO_RCVTIMEO``, ``SO_SNDTIMEO``):
    a Python socket timeout would cost a ``poll`` before every send and receive.
    """

    def __init__(self, sock: socket.socket) -> None:
        sock.settimeout(None)
        self.sock = sock
        self.last_used = time.monotonic()
        self.deadline: float | None = None
        """When the call under way must be over (``time.monotonic()``), if it has a deadline."""
        self._timeout: float | None = None
        self._applied: float | None = None
        self._poll = select.poll()
        self._poll.register(sock, select.POLLIN)
        self._buffer = bytearray(_BUFFER)
        self._view = memoryview(self._buffer)
        self._start = 0
        self._end = 0

    @property
    def has_unread(self) -> bool:
        """Whether bytes arrived that belong to no reply read yet."""
        return self._end > self._start

    def fit(self, keepalive_expiry: float) -> bool:
        """Whether the connection can carry another request: not idle too long, not closed by the server."""
        if time.monotonic() - self.last_used > keepalive_expiry or self.has_unread:
            return False
        try:
            ready = self._poll.poll(0)
        except (OSError, ValueError):
            return False
        return not ready  # Between replies, something to read means the server closed it.

    def set_timeout(self, timeout: float | None, deadline: float | None = None) -> None:
        """Make each send and each receive wait at most ``timeout`` seconds (None: for ever), and the
        whole call end by ``deadline`` (``time.monotonic()``; None: whenever)."""
        self._timeout = timeout
        self.deadline = deadline
        self._apply(timeout)

    def _apply(self, timeout: float | None) -> None:
        if timeout == self._applied:
            return
        seconds = 0.0 if timeout is None else max(timeout, 1e-6)
        value = struct.pack("ll", int(seconds), int(seconds % 1 * 1_000_000))
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVTIMEO, value)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDTIMEO, value)
        self._applied = timeout

    def _before_io(self) -> None:
        """Before a send or a receive: wait no longer than the deadline leaves."""
        if self.deadline is None:
            return
        left = self.deadline - time.monotonic()
        if left <= 0:
            raise DeadlinePassed("the call took longer than its deadline")
        self._apply(left if self._timeout is None or left < self._timeout else self._timeout)

    def send(self, head: bytes, body: bytes | bytearray | memoryview) -> None:
        """Send one request, its head and body in as few system calls as their sizes allow.

        Raises TimeoutError if the server takes nothing for the timeout.
        """
        self._before_io()
        try:
            if len(body) < _BUFFER:
                self.sock.sendall(head + body if body else head)
            else:
                self.sock.sendall(head)
                self.sock.sendall(body)
        except BlockingIOError:  # what the kernel's timeout raises
            raise TimeoutError("timed out sending the request") from None

    def read_reply(self, *, head_request: bool = False, max_size: int | None = None) -> tuple[Reply, bool]:
        """Read the next whole reply; also whether the connection may carry another request.

        An interim (1xx) reply is skipped. ``max_size`` bounds the body's size. Raises
        ProtocolError for a reply this client cannot frame, ConnectionResetError if the server
        closes the connection in the middle, and TimeoutError as the socket's timeout says.
        """
        while True:
            version, status, reason, headers = self._read_head()
            if status >= 200:
                break
            if status == 101:
                raise ProtocolError("the server switched protocols, which a dataserve call never asks for")
        keep_alive = _keep_alive(version, headers.get("connection", ""))
        coding = headers.get("transfer-encoding")
        length = headers.get("content-length")
        if head_request or status in (204, 304):
            body = b""
        elif coding is not None and coding.lower().endswith("chunked"):
            body = self._read_chunked(max_size)
        elif length is not None:
            if not length.isdigit():
                raise ProtocolError(f"the server's reply has a bad Content-Length: {length!r}")
            size = int(length)
            _check_size(size, max_size)
            body = self._read_exact(size)
        else:
            body = self._read_to_close(max_size)
            keep_alive = False
        self.last_used = time.monotonic()
        return Reply(status, headers, body, reason), keep_alive

    def close(self) -> None:
        self.sock.close()

    def _timed_out(self, where: str) -> TimeoutError:
        if self.deadline is not None and time.monotonic() >= self.deadline - 1e-3:
            return DeadlinePassed("the call took longer than its deadline")
        return TimeoutError(f"timed out {where}")

    def _receive(self) -> None:
        """Receive more bytes after those in the buffer, making room first if need be."""
        if self._end == _BUFFER:
            if self._start == 0:
                raise ProtocolError("a line of the server's reply is too long")
            self._compact()
        self._before_io()
        try:
            count = self.sock.recv_into(self._view[self._end :])
        except BlockingIOError:  # what the kernel's timeout raises
            raise self._timed_out("waiting for the reply") from None
        if not count:
            raise ConnectionResetError("the server closed the connection before it replied in full")
        self._end += count

    def _compact(self) -> None:
        size = self._end - self._start
        self._view[:size] = self._view[self._start : self._end]
        self._start, self._end = 0, size

    def _read_head(self) -> tuple[int, int, str, dict[str, str]]:
        if self._start == self._end:  # nothing unread: the reply's first bytes are still to come
            self._start = self._end = 0
            self._receive()
        searched = 0  # bytes after self._start already searched for the blank line
        while (end := self._buffer.find(b"\r\n\r\n", self._start + max(0, searched - 3), self._end)) < 0:
            if self._end - self._start >= MAX_HEAD:
                raise ProtocolError(f"the server's reply head is larger than {MAX_HEAD:,} bytes")
            searched = self._end - self._start
            self._receive()
        head = bytes(self._view[self._start : end])
        self._start = end + 4
        return _parse_head(head)

    def _read_exact(self, size: int) -> bytes:
        have = self._end - self._start
        if size <= have:
            body = bytes(self._view[self._start : self._start + size])
            self._start += size
            return body
        if size <= _BUFFER:
            if self._start + size > _BUFFER:
                self._compact()
            while self._end - self._start < size:
                self._receive()
            return self._read_exact(size)
        # A large body goes straight from the socket into the buffer it is handed over in.
        try:
            out = BodyBuffer(size)
        except MemoryError:
            raise ReplyTooLarge(size, None) from None
        out.write(self._view[self._start : self._end])
        self._start = self._end = 0
        recv_into = self.sock.recv_into
        while not out.full:
            self._before_io()
            try:
                count = recv_into(out.space())
            except BlockingIOError:
                raise self._timed_out("in the middle of the reply") from None
            if not count:
                raise ConnectionResetError("the server closed the connection in the middle of its reply")
            out.advance(count)
        return out.value()

    def _read_line(self) -> bytes:
        while (end := self._buffer.find(b"\r\n", self._start, self._end)) < 0:
            if self._end - self._start > MAX_HEAD:
                raise ProtocolError("a line of the server's chunked reply is too long")
            self._receive()
        line = bytes(self._view[self._start : end])
        self._start = end + 2
        return line

    def _read_chunked(self, max_size: int | None) -> bytes:
        chunks: list[bytes] = []
        total = 0
        while True:
            match = _CHUNK_SIZE.fullmatch(self._read_line())
            if match is None:
                raise ProtocolError("the server's chunked reply has a bad chunk size")
            size = int(match[1], 16)
            if size == 0:
                break
            total += size
            _check_size(total, max_size)
            chunks.append(self._read_exact(size))
            if self._read_line() != b"":
                raise ProtocolError("a chunk of the server's reply does not end where its size says")
        while self._read_line() != b"":  # trailer fields, which a call has no use for
            pass
        return b"".join(chunks)

    def _read_to_close(self, max_size: int | None) -> bytes:
        chunks = [bytes(self._view[self._start : self._end])]
        total = len(chunks[0])
        self._start = self._end = 0
        while True:
            self._before_io()
            try:
                data = self.sock.recv(_BUFFER)
            except BlockingIOError:
                raise self._timed_out("in the middle of the reply") from None
            if not data:
                break
            total += len(data)
            _check_size(total, max_size)
            chunks.append(data)
        return b"".join(chunks)


def _parse_head(head: bytes) -> tuple[int, int, str, dict[str, str]]:
    """The HTTP minor version, status, reason phrase and headers of a reply's head."""
    # Decoded once, as latin-1 maps each byte to one character: the names this client reads
    # are ASCII, and lower-casing a latin-1 character never makes one.
    status_line, *lines = head.decode("latin-1").split("\r\n")
    match = _STATUS_LINE.fullmatch(status_line)
    if match is None:
        raise ProtocolError(
            "the server's reply does not start with an HTTP/1.x status line: "
            f"{status_line[:80].encode('latin-1')!r}"
        )
    headers: dict[str, str] = {}
    for line in lines:
        name, colon, value = line.partition(":")
        # Only the names this client reads could change what a reply means: no space around any.
        if not colon or not name or name.strip(" \t") != name:
            raise ProtocolError(
                f"the server's reply has a malformed header line: {line[:80].encode('latin-1')!r}"
            )
        key = name.lower()
        text = value.strip(" \t")
        if key == "content-length" and headers.get(key, text) != text:
            raise ProtocolError("the server's reply has two different Content-Length headers")
        headers[key] = text
    return int(match[1]), int(match[2]), match[3] or "", headers


def _keep_alive(version: int, connection: str) -> bool:
    """Whether a reply of HTTP/1.``version`` with Connection: ``connection`` keeps its connection."""
    tokens = {token.strip().lower() for token in connection.split(",")}
    if "close" in tokens:
        return False
    return version == 1 or "keep-alive" in tokens


def _check_size(size: int, max_size: int | None) -> None:
    if max_size is not None and size > max_size:
        raise ReplyTooLarge(size, max_size)

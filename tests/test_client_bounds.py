"""The client bounds what a server can make it hold, on each lane: the sync client's own socket
lane, its httpx lane, and the async client.

A hostile server on 127.0.0.1 answers every request with one of three replies: a
Content-Length of 10**14, a chunked body that never ends, or a body that trickles a byte at a
time. Each refusal is a DataServeError (PayloadError past ``max_reply_size``,
ServerUnavailable past the ``deadline``), never a MemoryError or a call that goes on and on.
"""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest

from dataserve import AsyncHTTPDataClient, HTTPDataClient, PayloadError, ServerUnavailable

BOUND = 30.0
"""Seconds any call here may take on a loaded machine; the hostile replies go on for longer."""

HEAD = b"HTTP/1.1 200 OK\r\ncontent-type: application/octet-stream\r\n"


class HostileServer:
    """Answers each request on 127.0.0.1 with the reply its resource names, on a thread per connection."""

    def __init__(self) -> None:
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.stopped = threading.Event()
        self.threads: list[threading.Thread] = []
        self.acceptor = threading.Thread(target=self._accept, daemon=True)
        self.acceptor.start()

    def _accept(self) -> None:
        while not self.stopped.is_set():
            try:
                conn, _ = self.listener.accept()
            except OSError:
                return
            thread = threading.Thread(target=self._serve, args=(conn,), daemon=True)
            self.threads.append(thread)
            thread.start()

    def _serve(self, conn: socket.socket) -> None:
        conn.settimeout(5)
        with conn:
            try:
                head = b""
                while b"\r\n\r\n" not in head:
                    chunk = conn.recv(65536)
                    if not chunk:
                        return
                    head += chunk
                resource = head.split(b" ", 2)[1]
                getattr(self, "_" + resource.decode().strip("/").replace("-", "_"))(conn)
            except OSError:
                return  # the client gave up and closed: what these tests expect

    def _huge_length(self, conn: socket.socket) -> None:
        conn.sendall(HEAD + b"content-length: 100000000000000\r\n\r\n")
        conn.sendall(b"x" * 65536)
        self.stopped.wait(BOUND)

    def _endless_chunked(self, conn: socket.socket) -> None:
        conn.sendall(HEAD + b"transfer-encoding: chunked\r\n\r\n")
        chunk = b"%x\r\n%s\r\n" % (65536, b"x" * 65536)
        deadline = time.monotonic() + 2 * BOUND
        while not self.stopped.is_set() and time.monotonic() < deadline:
            conn.sendall(chunk)

    def _trickle(self, conn: socket.socket) -> None:
        conn.sendall(HEAD + b"content-length: 1000\r\n\r\n")
        for _ in range(1000):
            if self.stopped.wait(0.05):
                return
            conn.sendall(b"x")

    def stop(self) -> None:
        self.stopped.set()
        self.listener.close()
        for thread in self.threads:
            thread.join(BOUND)


@pytest.fixture(scope="module")
def hostile() -> Iterator[HostileServer]:
    server = HostileServer()
    yield server
    server.stop()


LANES = ["socket lane", "httpx lane", "async client"]


def call(lane: str, port: int, resource: str, monkeypatch: pytest.MonkeyPatch, **options: Any) -> Any:
    """``send(resource)`` to the hostile server on ``lane``, with the client ``options``."""
    monkeypatch.setenv("DATASERVE_FAST_PATH", "0" if lane == "httpx lane" else "1")
    if lane == "async client":

        async def send() -> Any:
            async with AsyncHTTPDataClient(port, "http://127.0.0.1:", **options) as client:
                return await client.send(resource)

        return asyncio.run(send())
    with HTTPDataClient(port, "http://127.0.0.1:", **options) as client:
        assert (client._fast is not None) == (lane == "socket lane")
        return client.send(resource)


@pytest.mark.parametrize("lane", LANES)
def test_a_reply_claiming_a_huge_length_is_a_payload_error(
    hostile: HostileServer, lane: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    with pytest.raises(PayloadError, match="max_reply_size"):
        call(lane, hostile.port, "/huge-length", monkeypatch, timeout=BOUND)


def test_a_huge_length_with_no_bound_set_is_still_a_payload_error_not_a_memory_error(
    hostile: HostileServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    with pytest.raises(PayloadError, match="max_reply_size"):
        call("socket lane", hostile.port, "/huge-length", monkeypatch, timeout=BOUND, max_reply_size=None)


@pytest.mark.parametrize("lane", LANES)
def test_an_endless_chunked_reply_stops_at_max_reply_size(
    hostile: HostileServer, lane: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    with pytest.raises(PayloadError, match="larger max_reply_size"):
        call(lane, hostile.port, "/endless-chunked", monkeypatch, timeout=BOUND, max_reply_size=8 << 20)


@pytest.mark.parametrize("lane", LANES)
def test_a_trickling_reply_ends_at_the_deadline_though_each_read_is_in_time(
    hostile: HostileServer, lane: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    began = time.monotonic()
    with pytest.raises(ServerUnavailable, match="deadline"):
        call(lane, hostile.port, "/trickle", monkeypatch, timeout=BOUND, deadline=1.0)
    assert time.monotonic() - began < BOUND  # the trickle alone takes 50 s; each read only 0.05 s


@pytest.mark.parametrize("lane", LANES)
def test_a_deadline_given_to_one_call_bounds_that_call(
    hostile: HostileServer, lane: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DATASERVE_FAST_PATH", "0" if lane == "httpx lane" else "1")
    if lane == "async client":

        async def send() -> None:
            async with AsyncHTTPDataClient(hostile.port, "http://127.0.0.1:", timeout=BOUND) as client:
                await client.send("/trickle", deadline=1.0)

        with pytest.raises(ServerUnavailable, match="deadline"):
            asyncio.run(send())
        return
    with (
        HTTPDataClient(hostile.port, "http://127.0.0.1:", timeout=BOUND) as client,
        pytest.raises(ServerUnavailable, match="deadline"),
    ):
        client.send("/trickle", deadline=1.0)

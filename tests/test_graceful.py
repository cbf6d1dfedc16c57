"""A stop that loses no connection: what the kernel queued as the listener closed, a request on
its way, and a connection that has not sent its first request yet are all answered, each reply
closing its connection; a connection that stays silent does not hold the stop.

Each server here is dataserve's uvicorn server on 127.0.0.1 in a thread of this process, whose
event loop a test may hold still at the moment it begins to stop, so that connections queue up
in the kernel just then, as they do under a balancer's load.
"""

from __future__ import annotations

import socket
import sys
import threading
import time
from collections.abc import Callable, Iterator

import pytest

from dataserve._app import create_app
from dataserve._graceful import DataServer, _refuse_new
from dataserve._server import _ServerOptions
from tests.conftest import EchoHandler, wait_for

pytestmark = pytest.mark.usefixtures("server_lane")

BOUND = 30.0
"""Seconds anything here may take on a loaded machine."""


def _request(text: str) -> bytes:
    body = text.encode()
    head = "POST /echo HTTP/1.1\r\nhost: x\r\ncontent-type: text/plain; charset=utf-8\r\n"
    return f"{head}content-length: {len(body)}\r\n\r\n".encode() + body


class HeldAtStop(DataServer):
    """dataserve's server, which runs ``at_stop`` on its event loop as it begins to stop: the
    loop accepts nothing meanwhile, so the connections ``at_stop`` makes wait in the kernel."""

    def __init__(self, at_stop: Callable[[], None]) -> None:
        app = create_app(EchoHandler)
        super().__init__(_ServerOptions("warning", None, None, 30, 30).config(app))
        self.at_stop = at_stop

    async def on_tick(self, counter: int) -> bool:
        if self.should_exit and self.at_stop is not None:
            at_stop, self.at_stop = self.at_stop, None  # type: ignore[assignment]
            at_stop()
        return await super().on_tick(counter)


class Running:
    """A HeldAtStop server serving in a thread, and its port."""

    def __init__(self, at_stop: Callable[[], None] = lambda: None) -> None:
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.port = int(self.sock.getsockname()[1])
        self.server = HeldAtStop(at_stop)
        self.thread = threading.Thread(target=self.server.run, kwargs={"sockets": [self.sock]}, daemon=True)
        self.thread.start()
        wait_for(lambda: self.server.started or not self.thread.is_alive(), "the server to start", BOUND)
        assert self.server.started

    def stop(self) -> None:
        self.server.should_exit = True

    def stopped(self) -> bool:
        return not self.thread.is_alive()


@pytest.fixture
def running() -> Iterator[list[Running]]:
    servers: list[Running] = []
    yield servers
    for server in servers:
        server.stop()
        server.thread.join(BOUND)
        server.sock.close()


def _reply(conn: socket.socket) -> bytes:
    """Everything the server sends on ``conn`` until it closes it."""
    conn.settimeout(BOUND)
    received = b""
    while chunk := conn.recv(65536):
        received += chunk
    return received


def _answered(reply: bytes, text: str) -> bool:
    head, _, body = reply.partition(b"\r\n\r\n")
    closes = b"connection: close" in head.lower()
    return head.startswith(b"HTTP/1.1 200 ") and closes and text.encode() in body


def test_connections_queued_as_the_listener_closes_are_answered_not_reset(running: list[Running]) -> None:
    queued: list[socket.socket] = []

    def connect_while_held() -> None:
        for number in range(8):
            conn = socket.create_connection(("127.0.0.1", server.port), timeout=BOUND)
            conn.sendall(_request(f"queued {number}"))
            queued.append(conn)

    server = Running(connect_while_held)
    running.append(server)
    server.stop()
    wait_for(lambda: len(queued) == 8 or server.stopped(), "the connections to be made", BOUND)
    replies = [_reply(conn) for conn in queued]
    assert [_answered(reply, f"queued {number}") for number, reply in enumerate(replies)] == [True] * 8
    wait_for(server.stopped, "the server to stop", BOUND)
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", server.port), timeout=BOUND)


def test_a_request_that_has_begun_to_come_as_the_server_stops_is_answered(running: list[Running]) -> None:
    server = Running()
    running.append(server)
    conn = socket.create_connection(("127.0.0.1", server.port), timeout=BOUND)
    second = _request("second")
    # The first request whole and the second's first bytes in one piece: once the first is
    # answered, the server has begun to read the second.
    conn.sendall(_request("first") + second[:20])
    assert conn.recv(65536).startswith(b"HTTP/1.1 200 ")
    server.stop()
    time.sleep(0.3)  # the server is stopping: closing this connection now would lose the call
    conn.sendall(second[20:])
    assert _answered(_reply(conn), "second")
    wait_for(server.stopped, "the server to stop", BOUND)


def test_a_new_connection_gets_a_moment_to_send_its_first_request(running: list[Running]) -> None:
    server = Running()
    running.append(server)
    conn = socket.create_connection(("127.0.0.1", server.port), timeout=BOUND)
    time.sleep(0.1)
    server.stop()
    time.sleep(0.3)
    conn.sendall(_request("late"))
    assert _answered(_reply(conn), "late")
    wait_for(server.stopped, "the server to stop", BOUND)


def test_a_connection_idle_after_its_calls_is_closed_at_once_and_a_silent_one_after_a_moment(
    running: list[Running],
) -> None:
    server = Running()
    running.append(server)
    idle = socket.create_connection(("127.0.0.1", server.port), timeout=BOUND)
    idle.sendall(_request("before"))
    assert idle.recv(65536).startswith(b"HTTP/1.1 200 ")
    silent = socket.create_connection(("127.0.0.1", server.port), timeout=BOUND)
    time.sleep(0.1)
    server.stop()
    assert _reply(idle) == b""
    assert _reply(silent) == b""
    wait_for(server.stopped, "the server to stop", BOUND)


@pytest.mark.skipif(sys.platform != "linux", reason="the kernel keeps new connections out on Linux only")
def test_once_the_port_closes_no_new_connection_enters_the_queue_and_those_queued_stay() -> None:
    with socket.create_server(("127.0.0.1", 0)) as listener:
        port = listener.getsockname()[1]
        with socket.create_connection(("127.0.0.1", port), timeout=BOUND) as queued:
            queued.sendall(b"sent before")
            _refuse_new(listener)
            with socket.socket() as late:
                late.settimeout(0.5)
                with pytest.raises(TimeoutError):
                    late.connect(("127.0.0.1", port))  # its SYN is dropped: no reset to come
            listener.setblocking(False)
            conn, _ = listener.accept()
            with conn:
                assert conn.recv(64) == b"sent before"
            with pytest.raises(BlockingIOError):
                listener.accept()

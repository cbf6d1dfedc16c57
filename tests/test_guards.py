"""The protocol's guards, each against the attack it stands for, on a real server over raw sockets.

Idle and slow clients (no request, half a request line, headers without their end, a body
that trickles, a reply left unread), heads far too large, and more connections than the
server takes: each is cut off or refused, says why, and holds up no other client.
"""

from __future__ import annotations

import contextlib
import socket
import threading
import time

import pytest

import dataserve
from dataserve import HTTPDataClient, Limits
from tests.conftest import EchoHandler, Logged, wait_for
from tests.test_app_bad_input import Reply, receive_all, receive_reply, split_reply

pytestmark = pytest.mark.usefixtures("server_lane")

MiB = 1 << 20


@pytest.fixture
def fast_windows(monkeypatch: pytest.MonkeyPatch) -> None:
    """Rates checked every 0.3 s instead of every 5 s, so that a test need not wait long."""
    monkeypatch.setattr("dataserve._watch.WINDOW", 0.3)


def connect(server: dataserve.RunningServer) -> socket.socket:
    return socket.create_connection(("127.0.0.1", server.port), timeout=20)


def first_reply(sock: socket.socket) -> Reply:
    data = receive_all(sock)
    split = split_reply(data)
    assert split is not None, data[:300]
    return split[0]


def assert_serving(server: dataserve.RunningServer) -> None:
    with HTTPDataClient(server.port, "http://127.0.0.1:", timeout=10) as client:
        assert client.send("/r", "still serving") == "still serving"
        assert client.ping()


@pytest.mark.parametrize(
    "sent",
    [b"", b"PUT /r HT", b"PUT /r HTTP/1.1\r\nHost: x\r\nContent-Le"],
    ids=["nothing", "half a request line", "headers without their end"],
)
def test_a_head_that_does_not_come_in_time_is_cut_off_and_holds_up_no_one(sent: bytes) -> None:
    with (
        dataserve.serve(EchoHandler, limits=Limits(head_timeout=0.5)) as server,
        Logged() as warnings,
        connect(server) as sock,
    ):
        sock.sendall(sent)
        began = time.monotonic()
        assert_serving(server)  # while the slow one waits
        data = receive_all(sock)  # the server closes it
        assert time.monotonic() - began < 10
    if data:
        reply = split_reply(data)
        assert reply is not None
        assert reply[0].status == 408
        assert "head_timeout" in reply[0].json()["message"]
    assert "no whole request head in 0.5 s (head_timeout)" in warnings.text


def test_an_idle_keep_alive_connection_is_not_taken_for_a_slow_head() -> None:
    with (
        dataserve.serve(EchoHandler, limits=Limits(head_timeout=0.3)) as server,
        HTTPDataClient(server.port, "http://127.0.0.1:") as client,
    ):
        assert client.send("/r", 1) == 1
        time.sleep(0.6)  # idle between calls: the keep-alive timeout applies, not the head's
        assert client.send("/r", 2) == 2


CALL = b"PUT /r HTTP/1.1\r\nHost: x\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: 2\r\n\r\nhi"


def test_each_request_of_a_kept_connection_has_head_timeout_from_its_own_first_byte() -> None:
    # One timer serves a connection's requests: it must count from each head's first byte,
    # not from the first request's, and still cut a later head that stalls.
    with (
        dataserve.serve(EchoHandler, limits=Limits(head_timeout=0.6)) as server,
        Logged() as warnings,
        connect(server) as sock,
    ):
        sock.sendall(CALL)
        assert receive_reply(sock).body == b"hi"
        time.sleep(0.45)  # idle, then a head that comes in two parts 0.3 s apart
        sock.sendall(CALL[:10])
        time.sleep(0.3)  # past 0.6 s since the first request, within 0.6 s of this head's first byte
        sock.sendall(CALL[10:])
        assert receive_reply(sock).body == b"hi"
        sock.sendall(CALL[:10])  # a head that stalls: cut once its own 0.6 s are up
        began = time.monotonic()
        data = receive_all(sock)
        assert 0.4 < time.monotonic() - began < 10
    reply = split_reply(data)
    assert reply is not None
    assert reply[0].status == 408
    assert "no whole request head in 0.6 s (head_timeout)" in warnings.text


def test_a_kept_connection_is_closed_keep_alive_timeout_after_its_last_reply_not_its_first() -> None:
    # One keep-alive timer serves a connection's replies: each reply counts the idle time anew.
    with (
        dataserve.serve(EchoHandler, keep_alive_timeout=2) as server,
        connect(server) as sock,
    ):
        for _ in range(3):  # 2.4 s in all, never 2 s idle
            sock.sendall(CALL)
            assert receive_reply(sock).body == b"hi"
            time.sleep(1.2)
        sock.sendall(CALL)
        assert receive_reply(sock).body == b"hi"
        idle = time.monotonic()
        assert receive_all(sock) == b""  # closed, idle
        assert 1.5 < time.monotonic() - idle < 15


def test_a_request_line_past_the_limit_is_414_as_it_arrives() -> None:
    with dataserve.serve(EchoHandler) as server, connect(server) as sock:
        sock.sendall(b"PUT /" + b"a" * (20 * 1024))  # no end of line: the server need not wait for one
        reply = first_reply(sock)
    assert reply.status == 414
    assert reply.json()["error"] == "uri_too_long"
    assert "max_target_size" in reply.json()["message"]


def test_headers_past_the_limit_are_431_before_their_end_arrives() -> None:
    with dataserve.serve(EchoHandler) as server, connect(server) as sock:
        sock.sendall(b"PUT /r HTTP/1.1\r\nHost: x\r\n")
        for _ in range(200):  # 200 KiB of headers, and never the blank line that ends them
            sock.sendall(b"X-Filler: " + b"f" * 1012 + b"\r\n")
        reply = first_reply(sock)
    assert reply.status == 431
    assert "max_head_size" in reply.json()["message"]


def test_headers_past_the_limit_are_431_when_they_come_in_one_read_with_the_body_before() -> None:
    # The protocol counts a head's bytes as reads come in while it waits for a head; a head that
    # comes in the same read as the end of the body before is still held to max_head_size.
    with dataserve.serve(EchoHandler, limits=Limits(max_head_size=4096)) as server, connect(server) as sock:
        sock.sendall(CALL[:-1])  # the first call, but the last byte of its body
        time.sleep(0.3)  # read: the server now waits for the rest of the body
        large = b"PUT /r HTTP/1.1\r\nHost: x\r\nX-Large: " + b"a" * 6000 + b"\r\nContent-Length: 0\r\n\r\n"
        sock.sendall(CALL[-1:] + large)
        data = b""
        while (first := split_reply(data)) is None or split_reply(first[1]) is None:
            chunk = sock.recv(65536)
            assert chunk, data[:300]
            data += chunk
        second = split_reply(first[1])
    assert first[0].body == b"hi"
    assert second is not None
    assert second[0].status == 431
    assert "max_head_size" in second[0].json()["message"]


def test_a_huge_head_in_small_pieces_is_refused_in_time_that_grows_with_its_size() -> None:
    # uvicorn joins a target's pieces one by one: the time for 20,000 pieces grew with their square.
    with dataserve.serve(EchoHandler) as server:
        began = time.monotonic()
        with connect(server) as sock:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            sock.sendall(b"PUT /")
            try:
                for _ in range(2000):
                    sock.send(b"a" * 10)
            except OSError:
                pass  # refused meanwhile
            reply = first_reply(sock)
        assert reply.status == 414
        assert time.monotonic() - began < 10
        assert_serving(server)


def test_connections_past_the_limit_get_503_and_the_server_goes_on() -> None:
    limits = Limits(max_connections=8, head_timeout=30)
    with dataserve.serve(EchoHandler, limits=limits) as server, Logged() as warnings:
        held = [connect(server) for _ in range(8)]
        try:
            wait_for(lambda: _refused(server), "the server to refuse a connection past max_connections")
        finally:
            for sock in held:
                sock.close()
        wait_for(lambda: not _refused(server), "the server to take connections again")
        assert_serving(server)
    assert "connections are open (max_connections 8)" in warnings.text


def _refused(server: dataserve.RunningServer) -> bool:
    """Whether a new connection is refused with 503 for max_connections."""
    with connect(server) as sock:
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        data = sock.recv(65536)
    if not data.startswith(b"HTTP/1.1 503"):
        return False
    return b"max_connections" in data


def test_a_body_that_trickles_is_given_up(fast_windows: None) -> None:
    limits = Limits(min_body_rate=1000)
    with dataserve.serve(EchoHandler, limits=limits) as server, Logged() as warnings, connect(server) as sock:
        sock.sendall(b"PUT /r HTTP/1.1\r\nHost: x\r\nContent-Type: application/octet-stream\r\n")
        sock.sendall(b"Content-Length: 100000\r\n\r\n" + b"x" * 10)
        began = time.monotonic()
        try:
            while time.monotonic() - began < 10:
                sock.sendall(b"x")
                time.sleep(0.05)
                if _closed(sock):
                    break
        except OSError:
            pass
        assert time.monotonic() - began < 10, "a trickling body held its connection"
        assert_serving(server)
    assert "under min_body_rate" in warnings.text


def _closed(sock: socket.socket) -> bool:
    """Whether the server has answered or closed the connection (anything to read, or the end)."""
    sock.setblocking(False)
    try:
        sock.recv(65536)
    except BlockingIOError:
        return False
    finally:
        sock.setblocking(True)
    return True


def test_a_client_that_stops_reading_its_reply_is_cut_off(fast_windows: None) -> None:
    limits = Limits(min_send_rate=1 * MiB)
    with dataserve.serve(EchoHandler, limits=limits) as server, Logged() as warnings, connect(server) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        body = b"z" * (16 * MiB)
        head = b"PUT /r HTTP/1.1\r\nHost: x\r\nContent-Type: application/octet-stream\r\n"
        sock.sendall(head + b"Content-Length: %d\r\n\r\n" % len(body) + body)
        # The reply is 16 MiB, and the client reads none of it.
        wait_for(lambda: "under min_send_rate" in warnings.text, "the server to cut the reader off", 20)
        assert_serving(server)


def test_requests_pipelined_and_never_read_stop_the_server_reading_more(fast_windows: None) -> None:
    limits = Limits(min_send_rate=None)
    with dataserve.serve(EchoHandler, limits=limits) as server, connect(server) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        sock.settimeout(2)
        head = b"PUT /r HTTP/1.1\r\nHost: x\r\nContent-Type: application/octet-stream\r\n"
        request = head + b"Content-Length: %d\r\n\r\n" % MiB + b"y" * MiB  # each echoed: 1 MiB back
        sent = 0
        try:
            for _ in range(500):  # 500 MiB, were the server to take it all
                sock.sendall(request)
                sent += 1
        except (TimeoutError, OSError):
            pass
        assert sent < 100, f"the server took {sent} MiB of requests whose replies nobody read"
        assert_serving(server)


def test_a_refused_upload_still_reads_its_answer() -> None:
    # The server answers 413 at once; the client is still sending. It must read the 413, not a reset.
    with dataserve.serve(EchoHandler, max_body_size=1000) as server:
        for _ in range(5):
            with connect(server) as sock:
                body = b"b" * (4 * MiB)
                head = b"PUT /r HTTP/1.1\r\nHost: x\r\nContent-Type: application/octet-stream\r\n"
                sender = threading.Thread(target=_send_quietly, args=(sock, head, body))
                sender.start()
                reply = receive_reply(sock)
                sender.join(20)
            assert reply.status == 413


def _send_quietly(sock: socket.socket, head: bytes, body: bytes) -> None:
    with contextlib.suppress(OSError):
        sock.sendall(head + b"Content-Length: %d\r\n\r\n" % len(body) + body)

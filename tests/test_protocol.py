"""dataserve's uvicorn protocol: which requests take its direct lane, pipelining, bodies in pieces.

Raw HTTP/1.1 over sockets to real servers, on the direct lane and, where the behaviour must be
the same, on uvicorn's own protocol too.
"""

from __future__ import annotations

import asyncio
import json
import random
import signal
import socket
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any, cast

import pytest
import uvicorn
from starlette.applications import Starlette
from starlette.routing import Mount

import dataserve
from dataserve import HTTPDataClient
from dataserve._app import _CallEndpoint
from dataserve._protocol import DIRECT_LANE_ENV, DataProtocol
from tests.conftest import EchoHandler, die_with_test, free_port, wait_for
from tests.test_app_bad_input import Reply, parse_replies, receive_all, split_reply

MiB = 1 << 20


def put(path: bytes, body: bytes = b"", content_type: bytes = b"application/json", *extra: bytes) -> bytes:
    """A keep-alive PUT with its exact Content-Length."""
    lines = [b"PUT " + path + b" HTTP/1.1", b"Host: t", b"Content-Type: " + content_type, *extra]
    lines.append(b"Content-Length: %d" % len(body))
    return b"\r\n".join(lines) + b"\r\n\r\n" + body


def read_replies(sock: socket.socket, count: int, *, head: bool = False) -> list[Reply]:
    """The next ``count`` whole replies on ``sock``."""
    data = b""
    replies: list[Reply] = []
    while len(replies) < count:
        split = split_reply(data, head=head and len(replies) == 1)
        if split is None:
            chunk = sock.recv(1 << 20)
            assert chunk, f"the server closed the connection after {len(replies)} replies"
            data += chunk
            continue
        reply, data = split
        replies.append(reply)
    return replies


@pytest.fixture
def endpoint_calls(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The methods of the requests that reach the Starlette route's endpoint."""
    calls: list[str] = []
    original = _CallEndpoint.__call__

    async def counting(self: _CallEndpoint, scope: Any, receive: Any, send: Any) -> None:
        calls.append(scope["method"])
        await original(self, scope, receive, send)

    monkeypatch.setattr(_CallEndpoint, "__call__", counting)
    return calls


@pytest.fixture(params=["direct lane", "uvicorn lane"])
def lane(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setenv(DIRECT_LANE_ENV, "1" if request.param == "direct lane" else "0")
    return str(request.param)


@pytest.fixture
def server(lane: str) -> Iterator[dataserve.RunningServer]:
    with dataserve.serve(EchoHandler) as running:
        yield running


def connect(server: dataserve.RunningServer) -> socket.socket:
    return socket.create_connection(("127.0.0.1", server.port), timeout=30)


def test_a_plain_call_takes_the_direct_lane_and_the_rest_the_route(
    endpoint_calls: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(DIRECT_LANE_ENV, "1")
    with dataserve.serve(EchoHandler) as server, connect(server) as sock:
        sock.sendall(put(b"/r", b"[1]"))
        assert read_replies(sock, 1)[0].json() == [1]
        assert endpoint_calls == []
        sock.sendall(b"HEAD /r HTTP/1.1\r\nHost: t\r\n\r\n")
        sock.sendall(
            b"PUT /r HTTP/1.1\r\nHost: t\r\nContent-Type: text/plain\r\nTransfer-Encoding: chunked\r\n\r\n"
        )
        sock.sendall(b"2\r\nhi\r\n0\r\n\r\n")
        replies = read_replies(sock, 2, head=True)
        assert [reply.status for reply in replies] == [200, 200]
        assert replies[1].body == b"hi"
        assert endpoint_calls == ["HEAD", "PUT"]


def test_with_the_lane_turned_off_every_call_takes_the_route(
    endpoint_calls: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(DIRECT_LANE_ENV, "0")
    with dataserve.serve(EchoHandler) as server, HTTPDataClient(server.port, "http://127.0.0.1:") as client:
        assert client.send("/r", 2) == 2
    assert endpoint_calls == ["PUT"]


def test_pipelined_requests_of_every_kind_are_answered_in_order(server: dataserve.RunningServer) -> None:
    requests = []
    expected: list[tuple[int, Any]] = []
    for index in range(60):
        kind = index % 6
        if kind == 0:
            requests.append(put(b"/r", json.dumps({"n": index}).encode()))
            expected.append((200, {"n": index}))
        elif kind == 1:
            requests.append(b"GET /healthz HTTP/1.1\r\nHost: t\r\n\r\n")
            expected.append((200, {"status": "ok"}))
        elif kind == 2:
            requests.append(put(b"/missing", b"1"))
            expected.append((404, "not_found"))
        elif kind == 3:
            body = b"%d" % index
            chunked = b"%x\r\n%s\r\n0\r\n\r\n" % (len(body), body)
            head = b"PUT /r HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\n"
            requests.append(head + b"Transfer-Encoding: chunked\r\n\r\n" + chunked)
            expected.append((200, index))
        elif kind == 4:
            requests.append(put(b"/r", b"{nope"))
            expected.append((400, "bad_payload"))
        else:
            requests.append(put(b"/r", b"x" * 100_000, b"application/octet-stream"))
            expected.append((200, "x" * 100_000))
    with connect(server) as sock:
        sock.sendall(b"".join(requests))
        replies = read_replies(sock, len(requests))
    for reply, (status, value) in zip(replies, expected, strict=True):
        assert reply.status == status
        if status == 200:
            got = (
                reply.body.decode()
                if reply.headers["content-type"] == "application/octet-stream"
                else reply.json()
            )
            assert got == value
        else:
            assert reply.json()["error"] == value


def test_a_request_sent_a_byte_at_a_time_is_answered(server: dataserve.RunningServer) -> None:
    request = put(b"/r", json.dumps(list(range(30))).encode())
    with connect(server) as sock:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        for index in range(len(request)):
            sock.sendall(request[index : index + 1])
            if index % 50 == 0:
                time.sleep(0.001)
        assert read_replies(sock, 1)[0].json() == list(range(30))


def test_a_large_body_in_uneven_pieces_with_the_next_request_right_behind_it(
    server: dataserve.RunningServer,
) -> None:
    body = random.Random(3).randbytes(8 * MiB + 123)
    data = put(b"/r", body, b"application/octet-stream") + put(b"/r", b'"next"')
    rng = random.Random(4)
    with connect(server) as sock:
        position = 0
        while position < len(data):
            size = rng.choice([1, 7, 4096, 65_535, 65_536, 300_000, 2 * MiB])
            sock.sendall(data[position : position + size])
            position += size
        first, second = read_replies(sock, 2)
    assert first.body == body
    assert second.body == b"next"  # JSON "next" in, the str "next" back as text


def test_expect_100_continue_is_answered_as_uvicorn_does(server: dataserve.RunningServer) -> None:
    head = b"PUT /r HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\nContent-Length: 2\r\n"
    with connect(server) as sock:
        sock.sendall(head + b"Expect: 100-continue\r\n\r\n")
        assert sock.recv(1024).startswith(b"HTTP/1.1 100 Continue\r\n\r\n")
        sock.sendall(b"42")
        assert read_replies(sock, 1)[0].json() == 42


def test_a_call_refused_from_its_head_drops_its_body_and_keeps_the_connection(
    lane: str,
) -> None:
    with dataserve.serve(EchoHandler, max_body_size=1000) as server, connect(server) as sock:
        sock.sendall(put(b"/r", b"z" * 200_000, b"application/octet-stream") + put(b"/r", b"7"))
        refused, answered = read_replies(sock, 2)
    assert refused.status == 413
    assert answered.json() == 7


def test_a_mounted_data_app_is_served_through_the_host_app_by_the_protocol() -> None:
    data_app = dataserve.create_app(EchoHandler)
    host = Starlette(routes=[Mount("/data", data_app)], lifespan=data_app.lifespan)
    protocol = cast(type[asyncio.Protocol], DataProtocol)  # a BufferedProtocol, which uvicorn takes too
    config = uvicorn.Config(host, http=protocol, log_level="warning", lifespan="on")
    server = uvicorn.Server(config)
    with socket.create_server(("127.0.0.1", 0)) as sock:
        thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
        thread.start()
        wait_for(lambda: server.started, "the host app's server to start")
        try:
            with HTTPDataClient(address=f"http://127.0.0.1:{sock.getsockname()[1]}/data") as client:
                assert client.send("/r", [1, 2]) == [1, 2]
                assert client.send_many([("/r", 1), ("/r", 2)]) == [1, 2]
        finally:
            server.should_exit = True
            thread.join(30)


SERVED = """
from dataserve import HTTPDataHandler, create_app

class Echo(HTTPDataHandler):
    def handle_request(self, resource, payload):
        return payload

app = create_app(Echo)
"""


def test_the_uvicorn_command_takes_the_protocol_by_its_import_path(tmp_path: Path) -> None:
    (tmp_path / "served.py").write_text(textwrap.dedent(SERVED))
    port = free_port()
    command = [sys.executable, "-m", "uvicorn", "served:app", "--port", str(port)]
    process = subprocess.Popen(
        [*command, "--http", "dataserve._protocol:DataProtocol"],
        cwd=tmp_path,
        stderr=subprocess.PIPE,
        text=True,
        preexec_fn=die_with_test,
    )
    try:

        def answers() -> bool:
            try:
                with HTTPDataClient(port, "http://127.0.0.1:", timeout=5) as client:
                    return bool(client.ping())
            except dataserve.ServerUnavailable:
                return False

        wait_for(answers, "uvicorn to serve", 30)
        with HTTPDataClient(port, "http://127.0.0.1:") as client:
            assert client.send_many([("/r", index) for index in range(100)]) == list(range(100))
    finally:
        process.send_signal(signal.SIGINT)
        process.communicate(timeout=30)
    assert process.returncode == 0


def test_replies_on_a_connection_closed_mid_call_are_dropped_and_the_server_goes_on(
    server: dataserve.RunningServer,
) -> None:
    with connect(server) as sock:
        sock.sendall(put(b"/sleep", b"0.3") + put(b"/r", b"1"))
    time.sleep(0.5)
    with connect(server) as sock:
        sock.sendall(put(b"/r", b"2") + b"GET /healthz HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
        replies = parse_replies(receive_all(sock))
    assert [reply.status for reply in replies] == [200, 200]

"""What a server holds at once: its queue of calls, the memory of their bodies, and calls nobody waits for.

Floods of calls, of large uploads and of calls sent and abandoned, against real servers: what
goes past a limit is refused at once with 503 and Retry-After (or 413 for JSON too large to
decode safely), an abandoned call never reaches the handler, and honest callers are answered.
"""

from __future__ import annotations

import socket
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

import dataserve
from dataserve import HTTPDataClient, HTTPDataHandler, Limits, PayloadError, ServerUnavailable
from dataserve._admission import Admission
from tests.conftest import wait_for
from tests.test_app_bad_input import receive_reply

pytestmark = pytest.mark.usefixtures("server_lane")

MiB = 1 << 20

JSON_HEAD = b"PUT /r HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
"""A request's head but for its length."""


class Counting(HTTPDataHandler):
    """Counts the calls it runs; ``/slow`` takes its payload's seconds, ``/hold`` until ``released``."""

    def __init__(self) -> None:
        self.ran = 0
        self.lock = threading.Lock()
        self.held = threading.Event()
        self.released = threading.Event()

    def handle_request(self, resource: str, payload: Any) -> Any:
        with self.lock:
            self.ran += 1
        if resource == "/slow":
            time.sleep(float(payload))
        if resource == "/hold":
            self.held.set()
            self.released.wait(30)
            return "done"
        if resource == "/ran":
            return self.ran
        return "done" if resource == "/slow" else payload


def test_calls_past_max_queue_get_503_with_retry_after() -> None:
    handler = Counting()
    with dataserve.serve(handler, limits=Limits(max_queue=3)) as server:

        def call(_: int) -> str:
            with HTTPDataClient(server.port, "http://127.0.0.1:", timeout=30) as client:
                try:
                    return str(client.send("/slow", 0.3))
                except ServerUnavailable as exc:
                    return str(exc)

        with ThreadPoolExecutor(10) as pool:
            outcomes = list(pool.map(call, range(10)))
    refused = [outcome for outcome in outcomes if outcome != "done"]
    assert refused, outcomes
    assert all("calls are waiting for Counting (max_queue 3)" in outcome for outcome in refused)
    assert outcomes.count("done") == handler.ran
    assert handler.ran <= 4  # one running, three waiting: no call past the bound ran


def test_a_refusal_for_a_full_queue_says_when_to_come_back() -> None:
    with dataserve.serve(Counting(), limits=Limits(max_queue=1)) as server:
        slow = [threading.Thread(target=_send, args=(server.port, "/slow", 1.0)) for _ in range(2)]
        for thread in slow:  # one runs, one waits: the queue is full
            thread.start()
            time.sleep(0.2)
        with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:
            sock.sendall(JSON_HEAD + b"Content-Length: 1\r\n\r\n1")
            reply = receive_reply(sock)
        for thread in slow:
            thread.join(10)
    assert reply.status == 503
    assert reply.headers["retry-after"] == "1"
    assert reply.json()["error"] == "overloaded"


def _send(port: int, resource: str, payload: Any) -> None:
    with HTTPDataClient(port, "http://127.0.0.1:", timeout=30) as client:
        client.send(resource, payload)


def test_uploads_past_max_memory_are_refused_before_their_bodies_are_read() -> None:
    handler = Counting()
    with dataserve.serve(handler, limits=Limits(max_memory=20 * MiB, max_queue=100)) as server:
        body = b"m" * (8 * MiB)

        def upload(_: int) -> str:
            with HTTPDataClient(server.port, "http://127.0.0.1:", timeout=60) as client:
                try:
                    client.send("/slow", 0.0)  # warm the connection
                    return "sent" if client.send("/r", body) == body else "wrong"
                except ServerUnavailable as exc:
                    return str(exc)

        with ThreadPoolExecutor(8) as pool:
            outcomes = list(pool.map(upload, range(8)))
    assert "wrong" not in outcomes
    refused = [outcome for outcome in outcomes if outcome != "sent"]
    assert refused, "eight 8 MiB uploads at once all fit in 20 MiB"
    assert all("past max_memory (20,971,520)" in outcome for outcome in refused), refused


def test_calls_sent_and_abandoned_never_reach_the_handler_and_hold_up_no_one() -> None:
    handler = Counting()
    with dataserve.serve(handler, limits=Limits(max_queue=1000)) as server:
        busy = threading.Thread(target=_send, args=(server.port, "/hold", None))
        busy.start()
        assert handler.held.wait(30)  # the handler is busy until released: what comes now waits
        for _ in range(300):  # sent, and the caller gone at once
            with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:
                sock.sendall(JSON_HEAD + b"Content-Length: 1\r\n\r\n7")
        # The server sees each close as it reads the connection: wait until it has closed them all
        # (on a slow machine that took longer than the sending), then for its tasks to hear of it.
        wait_for(lambda: _closed_by_client_only(server.port) == 0, "the server to close them", 60)
        time.sleep(0.5)
        handler.released.set()
        began = time.monotonic()
        with HTTPDataClient(server.port, "http://127.0.0.1:", timeout=30) as client:
            ran = client.send("/ran")
        waited = time.monotonic() - began
        busy.join(10)
    assert waited < 5, f"an honest caller waited {waited:.1f} s behind abandoned calls"
    assert ran <= 2 + 30, f"the handler ran {ran} calls, most of them for callers long gone"


def _closed_by_client_only(port: int) -> int:
    """The server's connections on ``port`` that their clients closed and it has not yet (CLOSE_WAIT)."""
    count = 0
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        fields = line.split()
        if int(fields[1].rsplit(":", 1)[1], 16) == port and fields[3] == "08":
            count += 1
    return count


def test_json_past_max_json_size_is_413_before_its_body_is_read() -> None:
    with dataserve.serve(Counting(), limits=Limits(max_json_size=1000)) as server:
        with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:
            sock.sendall(JSON_HEAD + b"Content-Length: 100000\r\n\r\n")
            reply = receive_reply(sock)  # no body sent: the server did not wait for it
        assert reply.status == 413
        assert "max_json_size" in reply.json()["message"]
        with HTTPDataClient(server.port, "http://127.0.0.1:") as client:
            assert client.send("/r", b"b" * 5000) == b"b" * 5000  # bytes are not JSON
            with pytest.raises(PayloadError, match="max_json_size") as info:
                client.send("/r", list(range(1000)))
            assert info.value.status == 413


def test_a_large_json_body_does_not_stall_the_health_check() -> None:
    # Decoding holds the GIL; within max_json_size it ends soon enough for the health check.
    with dataserve.serve(Counting()) as server, HTTPDataClient(server.port, "http://127.0.0.1:") as client:
        payload = ["x" * 64] * 200_000  # 13 MiB of JSON, under the 16 MiB default
        done: list[Any] = []
        caller = threading.Thread(target=lambda: done.append(client.send("/r", payload)))
        caller.start()
        slowest = 0.0
        with HTTPDataClient(server.port, "http://127.0.0.1:", timeout=30) as health:
            while caller.is_alive():
                began = time.monotonic()
                assert health.ping()
                slowest = max(slowest, time.monotonic() - began)
                time.sleep(0.01)
        caller.join(30)
    assert done == [payload]
    assert slowest < 3, f"the health check waited {slowest:.1f} s"


def test_admission_counts_places_and_bytes_and_gives_them_back() -> None:
    admission = Admission("H", max_queue=2, max_memory=100)
    assert admission.admit(60) is None
    refused = admission.admit(60)
    assert refused is not None
    assert refused.status == 503
    assert b"max_memory" in refused.body
    assert admission.admit(10) is None
    full = admission.admit(0)
    assert full is not None
    assert b"max_queue 2" in full.body
    number = admission.begin("/r")
    assert admission.waiting == 1
    assert list(admission.running) == [number]
    admission.end(number)
    admission.drop()
    admission.release(70)
    assert (admission.waiting, admission.held, admission.running) == (0, 0, {})

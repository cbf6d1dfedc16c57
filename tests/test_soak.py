"""A soak: honest callers keep being answered while hostile ones run beside them.

One server process, in rounds of a few seconds each. Four honest clients send small JSON,
2 MiB of bytes, NumPy arrays and calls that fail; beside them a slowloris keeps 30
connections sending a head a byte at a time, and each round 200 calls are sent and abandoned
at once. Every honest call must come back right (the failing ones as their RemoteError),
/healthz must answer every probe, and the server's memory must stay flat from round to round.
"""

from __future__ import annotations

import os
import re
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest

from dataserve import HTTPDataClient, RemoteError
from tests.conftest import ScriptServer, start_script

pytestmark = pytest.mark.usefixtures("server_lane")

SCRIPT = """
import time
from dataserve import HTTPDataHandler, Limits, run_http_server

class Soak(HTTPDataHandler):
    def handle_request(self, resource, payload):
        if resource == "/fail":
            raise ValueError(f"refused {payload!r}")
        if resource == "/slow":
            time.sleep(payload)
        return payload

run_http_server(0, Soak, max_concurrency=4, limits=Limits(head_timeout=2.0))
"""

ROUNDS = 4
ROUND = 2.0
"""Seconds each round's honest clients keep calling: they call flat out, so the soak's CPU is its length;
the slowloris's connections are still cut, their heads timing out at 2 s."""

CLIENTS = 4
LOOSE = 30
"""Connections the slowloris keeps open."""

STORM = 200
"""Calls sent and abandoned at the start of each round."""

GROWTH = 64 << 20
"""How far the server's resident memory may grow past the first round's, in bytes."""

BOUND = 30.0


@pytest.fixture
def server(tmp_path: Path) -> Iterator[ScriptServer]:
    script = tmp_path / "soak.py"
    script.write_text(SCRIPT)
    running = start_script(script, log=tmp_path / "soak.log")
    yield running
    running.process.terminate()
    try:
        running.process.communicate(timeout=BOUND)
    except Exception:
        running.process.kill()
        running.process.communicate(timeout=BOUND)


def resident(pid: int) -> int:
    """Process ``pid``'s resident memory in bytes."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise AssertionError("no VmRSS")


class Honest(threading.Thread):
    """One client calling for a round: each reply is checked, each wrong one kept."""

    def __init__(self, port: int, number: int, until: float) -> None:
        super().__init__(daemon=True)
        self.port, self.number, self.until = port, number, until
        self.calls = 0
        self.wrong: list[str] = []
        self.blob = os.urandom(2 << 20)
        self.array = np.arange(100_000, dtype=np.float64) * number

    def run(self) -> None:
        with HTTPDataClient(self.port, "http://127.0.0.1:", timeout=BOUND) as client:
            while time.monotonic() < self.until:
                try:
                    self.check(client, self.calls)
                except BaseException as exc:  # pytest.raises fails with a BaseException
                    self.wrong.append(f"call {self.calls}: {type(exc).__name__}: {exc}")
                self.calls += 1

    def check(self, client: HTTPDataClient, i: int) -> None:
        kind = i % 4
        if kind == 0:
            value = {"client": self.number, "call": i, "text": "é" * (i % 50)}
            assert client.send("/echo", value) == value
        elif kind == 1:
            blob = bytes([i % 256]) + self.blob
            assert client.send("/echo", blob) == blob
        elif kind == 2:
            array = self.array + i
            assert np.array_equal(client.send("/echo", array), array)
        else:
            with pytest.raises(RemoteError, match=re.escape(f"refused [{self.number}, {i}]")):
                client.send("/fail", [self.number, i])


class Slowloris(threading.Thread):
    """Keeps LOOSE connections sending a head a byte every half second, and opens new ones for those cut."""

    def __init__(self, port: int) -> None:
        super().__init__(daemon=True)
        self.port = port
        self.stopped = threading.Event()
        self.cut = 0

    def run(self) -> None:
        socks: list[socket.socket] = []
        try:
            while not self.stopped.wait(0.5):
                while len(socks) < LOOSE:
                    sock = socket.create_connection(("127.0.0.1", self.port), timeout=5)
                    sock.sendall(b"PUT /echo HTTP/1.1\r\nHost: soak\r\n")
                    socks.append(sock)
                for sock in list(socks):
                    try:
                        sock.sendall(b"x")
                    except OSError:
                        socks.remove(sock)
                        sock.close()
                        self.cut += 1
        finally:
            for sock in socks:
                sock.close()


def storm(port: int) -> None:
    """Send STORM calls and leave each at once, its reply never read."""
    request = (
        b"PUT /slow HTTP/1.1\r\nHost: soak\r\nContent-Type: application/json\r\nContent-Length: 4\r\n\r\n0.05"
    )
    for _ in range(STORM):
        with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
            sock.sendall(request)


class Health(threading.Thread):
    """Asks /healthz every 0.2 s; keeps every answer that was not 200 in time."""

    def __init__(self, port: int) -> None:
        super().__init__(daemon=True)
        self.port = port
        self.stopped = threading.Event()
        self.probes = 0
        self.failures: list[Any] = []

    def run(self) -> None:
        with httpx.Client(base_url=f"http://127.0.0.1:{self.port}", timeout=10) as http:
            while not self.stopped.wait(0.2):
                self.probes += 1
                try:
                    status = http.get("/healthz").status_code
                except httpx.HTTPError as exc:
                    self.failures.append(repr(exc))
                else:
                    if status != 200:
                        self.failures.append(status)


def test_honest_calls_are_answered_right_beside_a_slowloris_and_abandoned_calls(server: ScriptServer) -> None:
    port, pid = server.port, server.process.pid
    health, loris = Health(port), Slowloris(port)
    health.start()
    loris.start()
    memory: list[int] = []
    calls = 0
    try:
        for _ in range(ROUNDS):
            storm(port)
            clients = [Honest(port, n, time.monotonic() + ROUND) for n in range(CLIENTS)]
            for client in clients:
                client.start()
            for client in clients:
                client.join(BOUND + ROUND)
                assert not client.is_alive()
                assert client.wrong == []
                calls += client.calls
            memory.append(resident(pid))
    finally:
        health.stopped.set()
        loris.stopped.set()
        health.join(BOUND)
        loris.join(BOUND)
    assert calls >= ROUNDS * CLIENTS, "the honest clients got hardly a call through"
    assert health.failures == []
    assert health.probes >= ROUNDS
    assert loris.cut >= LOOSE, "the slowloris was never cut off"
    grown = max(memory[1:]) - memory[0]
    assert grown < GROWTH, f"memory by round (MiB): {[m >> 20 for m in memory]}"

"""A drain before the stop: for ``drain_timeout`` seconds after SIGTERM the health check says
"stopping" while calls are still accepted and served; then the server stops as before.

Each server runs in a process of its own on 127.0.0.1 (``dataserve serve``, its workers, or the
uvicorn command), and ``serve()`` in this one.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

import dataserve
from dataserve import HTTPDataClient
from tests.conftest import EchoHandler, die_with_test, free_port, wait_for, worker_pids

pytestmark = pytest.mark.usefixtures("server_lane")

ROOT = Path(__file__).resolve().parent.parent
DRAIN = 2.0
BOUND = 30.0
"""Seconds anything here may take on a loaded machine."""


class Draining:
    """A server process started with a drain, its log in a file."""

    def __init__(self, tmp_path: Path, command: list[str], port: int, cwd: Path = ROOT) -> None:
        self.port = port
        self.log = tmp_path / "server.log"
        environment = dict(os.environ)
        environment["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), environment.get("PYTHONPATH")]))
        with self.log.open("w") as log:
            self.process = subprocess.Popen(
                command,
                cwd=cwd,
                env=environment,
                stdout=subprocess.DEVNULL,
                stderr=log,
                preexec_fn=die_with_test,
            )
        wait_for(self.ready, "the server to be ready", BOUND)

    def health(self) -> tuple[int, object]:
        response = httpx.get(f"http://127.0.0.1:{self.port}/healthz", timeout=BOUND)
        return response.status_code, response.json()

    def ready(self) -> bool:
        assert self.process.poll() is None, self.log.read_text()
        try:
            return self.health() == (200, {"status": "ok"})
        except httpx.TransportError:
            return False

    def call(self) -> object:
        with HTTPDataClient(self.port, "http://127.0.0.1:", timeout=BOUND) as client:
            return client.send("/echo", "still served")

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait(BOUND)


@pytest.fixture
def started() -> Iterator[list[Draining]]:
    servers: list[Draining] = []
    yield servers
    for server in servers:
        server.kill()


def serve_command(port: int, *options: str) -> list[str]:
    handler = "tests.cli_handlers:PidHandler"
    return [sys.executable, "-m", "dataserve", "serve", handler, "--port", str(port), *options]


def test_while_draining_the_health_check_says_stopping_and_calls_are_still_served(
    tmp_path: Path, started: list[Draining]
) -> None:
    port = free_port()
    server = Draining(tmp_path, serve_command(port, "--drain-timeout", str(DRAIN)), port)
    started.append(server)
    signalled = time.monotonic()
    server.process.send_signal(signal.SIGTERM)
    wait_for(lambda: server.health()[0] == 503, "the health check to say stopping", BOUND)
    assert server.health() == (503, {"status": "stopping"})
    assert server.call() == "still served"  # on a new connection, during the drain
    assert server.process.wait(BOUND) == 0
    assert time.monotonic() - signalled >= DRAIN
    assert "stopping in 2 s (drain_timeout)" in server.log.read_text()


def test_while_draining_each_reply_closes_its_connection(tmp_path: Path, started: list[Draining]) -> None:
    port = free_port()
    server = Draining(tmp_path, serve_command(port, "--drain-timeout", str(DRAIN)), port)
    started.append(server)
    with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=BOUND) as kept:
        before = kept.put("/echo", json="kept alive")
        assert before.text == "kept alive"
        assert before.headers.get("connection") != "close"
        server.process.send_signal(signal.SIGTERM)
        wait_for(lambda: server.health()[0] == 503, "the health check to say stopping", BOUND)
        during = kept.put("/echo", json="the last on this connection")  # on the kept-alive one
        assert during.text == "the last on this connection"
        assert during.headers["connection"] == "close"
    assert server.process.wait(BOUND) == 0


def test_a_second_signal_ends_the_drain_at_once(tmp_path: Path, started: list[Draining]) -> None:
    port = free_port()
    server = Draining(tmp_path, serve_command(port, "--drain-timeout", "600"), port)
    started.append(server)
    server.process.send_signal(signal.SIGTERM)
    wait_for(lambda: server.health()[0] == 503, "the health check to say stopping", BOUND)
    server.process.send_signal(signal.SIGTERM)
    assert server.process.wait(BOUND) == 0


def test_without_a_drain_the_server_stops_at_once(tmp_path: Path, started: list[Draining]) -> None:
    port = free_port()
    server = Draining(tmp_path, serve_command(port), port)
    started.append(server)
    server.process.send_signal(signal.SIGTERM)
    assert server.process.wait(BOUND) == 0
    assert "drain_timeout" not in server.log.read_text()


def test_each_worker_drains(tmp_path: Path, started: list[Draining]) -> None:
    port = free_port()
    command = serve_command(port, "--workers", "2", "--drain-timeout", str(DRAIN))
    server = Draining(tmp_path, command, port)
    started.append(server)
    assert len(worker_pids(port, count=2)) == 2
    server.process.send_signal(signal.SIGTERM)
    wait_for(lambda: server.health()[0] == 503, "a worker's health check to say stopping", BOUND)
    assert server.call() == "still served"
    assert server.process.wait(BOUND) == 0
    assert server.log.read_text().count("stopping in 2 s (drain_timeout)") == 2


APP_MODULE = """
from dataserve import create_app
from tests.cli_handlers import PidHandler

app = create_app(PidHandler, drain_timeout=2)
"""


def test_an_app_under_the_uvicorn_command_drains(tmp_path: Path, started: list[Draining]) -> None:
    (tmp_path / "drained.py").write_text(textwrap.dedent(APP_MODULE))
    port = free_port()
    command = [sys.executable, "-m", "uvicorn", "drained:app", "--port", str(port), "--log-level", "warning"]
    server = Draining(tmp_path, command, port, cwd=tmp_path)
    started.append(server)
    server.process.send_signal(signal.SIGTERM)
    wait_for(lambda: server.health()[0] == 503, "the health check to say stopping", BOUND)
    assert server.call() == "still served"
    # uvicorn's command ends by raising the signal it was stopped with again, once it has stopped.
    assert server.process.wait(BOUND) in (0, -signal.SIGTERM)
    assert "stopping in 2 s (drain_timeout)" in server.log.read_text()


def test_serve_drains_as_its_block_ends() -> None:
    seen: list[tuple[int, object]] = []
    with dataserve.serve(EchoHandler, drain_timeout=1.0) as running:
        url = f"http://127.0.0.1:{running.port}"

        def watch() -> None:
            time.sleep(0.3)  # the block has ended by now, and the drain begun
            with httpx.Client(base_url=url, timeout=BOUND) as http:
                response = http.get("/healthz")
                seen.append((response.status_code, response.json()))
                seen.append((http.put("/echo", json=7).status_code, None))

        watcher = threading.Thread(target=watch)
        watcher.start()
    watcher.join(BOUND)
    assert seen == [(503, {"status": "stopping"}), (200, None)]


def test_a_negative_drain_is_refused() -> None:
    with pytest.raises(ValueError, match="drain_timeout must be 0 or more"):
        dataserve.create_app(EchoHandler, drain_timeout=-1)

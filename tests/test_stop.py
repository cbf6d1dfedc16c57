"""A stop that always stops: past the grace period the process exits, whatever the handler does.

A server process with a handler stuck for ever is stopped with SIGTERM: it exits within a
bounded time, its caller hears 503 (ServerUnavailable: the call may have run), never a
RemoteError, the log names the call cut, and teardown() does not run under the stuck call.
With calls that finish in time, teardown() runs after them, never beside one.
"""

from __future__ import annotations

import signal
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

import dataserve
from dataserve import HTTPDataClient, ServerUnavailable
from tests.conftest import EchoHandler, ScriptServer, start_script

pytestmark = pytest.mark.usefixtures("server_lane")

SCRIPT = """
import os, sys, time
from dataserve import HTTPDataHandler, run_http_server

def say(line):
    os.write(1, (line + "\\n").encode())  # one write, whole: two handler threads say things

class Stuck(HTTPDataHandler):
    def teardown(self):
        say(f"teardown {time.monotonic()}")

    def handle_request(self, resource, payload):
        say(f"start {resource}")
        if resource == "/stuck":
            time.sleep(3600)
        elif resource == "/spin":
            while True:
                pass
        else:
            time.sleep(payload)
        say(f"end {resource} {time.monotonic()}")
        return "done"

run_http_server(0, Stuck, max_concurrency=2, shutdown_timeout=int(sys.argv[1]))
"""

BOUND = 20.0
"""Seconds a stopped server may take to exit past its grace period, on a loaded machine."""


@pytest.fixture
def start(tmp_path: Path) -> Iterator[Callable[[int], ScriptServer]]:
    """Start the script with a grace period; whatever it started is killed at the test's end."""
    started: list[ScriptServer] = []

    def start(grace: int) -> ScriptServer:
        script = tmp_path / "stuck.py"
        script.write_text(SCRIPT)
        started.append(start_script(script, str(grace)))
        return started[-1]

    yield start
    for server in started:
        if server.process.poll() is None:
            server.process.kill()
            server.process.communicate(timeout=BOUND)


def call_in_background(port: int, resource: str, payload: Any, outcomes: list[Any]) -> threading.Thread:
    def call() -> None:
        with HTTPDataClient(port, "http://127.0.0.1:", timeout=60) as client:
            try:
                outcomes.append(client.send(resource, payload))
            except Exception as exc:
                outcomes.append(exc)

    thread = threading.Thread(target=call)
    thread.start()
    return thread


@pytest.mark.parametrize("resource", ["/stuck", "/spin"], ids=["asleep", "spinning"])
def test_a_handler_stuck_for_ever_does_not_keep_the_server_from_stopping(
    start: Callable[[int], ScriptServer], resource: str
) -> None:
    server = start(1)
    process = server.process
    assert process.stdout is not None
    outcomes: list[Any] = []
    caller = call_in_background(server.port, resource, None, outcomes)
    assert process.stdout.readline() == f"start {resource}\n"
    process.send_signal(signal.SIGTERM)
    began = time.monotonic()
    out, err = process.communicate(timeout=1 + BOUND)
    took = time.monotonic() - began
    caller.join(30)
    assert process.returncode == 0, err
    assert took < 1 + BOUND
    [outcome] = outcomes
    assert isinstance(outcome, ServerUnavailable), outcome
    assert "the server stopped before Stuck answered the call" in str(outcome)
    assert "may have run" in str(outcome)
    assert f"cut with 503; in Stuck.handle_request: {resource}" in err
    assert f"Stuck.teardown() is not run: handle_request is still running on {resource}" in err
    assert "teardown" not in out


def test_teardown_runs_after_the_calls_that_finish_in_time(start: Callable[[int], ScriptServer]) -> None:
    server = start(10)
    process = server.process
    assert process.stdout is not None
    outcomes: list[Any] = []
    callers = [call_in_background(server.port, "/slow", 1.0, outcomes) for _ in range(2)]
    assert process.stdout.readline().startswith("start /slow")
    assert process.stdout.readline().startswith("start /slow")
    process.send_signal(signal.SIGTERM)
    out, err = process.communicate(timeout=30)
    for caller in callers:
        caller.join(30)
    assert outcomes == ["done", "done"]
    assert process.returncode == 0, err
    lines = [line.split() for line in out.splitlines()]
    ends = [float(line[2]) for line in lines if line[0] == "end"]
    [teardown] = [float(line[1]) for line in lines if line[0] == "teardown"]
    assert len(ends) == 2
    assert teardown >= max(ends), "teardown() ran while a call was in the handler"


@pytest.mark.anyio
async def test_the_health_check_says_stopping_once_the_server_stops() -> None:
    app = dataserve.create_app(EchoHandler)
    transport = httpx.ASGITransport(app=app)
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=transport, base_url="http://t") as http,
    ):
        assert (await http.get("/healthz")).json() == {"status": "ok"}
        app.core.stopping()
        response = await http.get("/healthz")
        assert (response.status_code, response.json()) == (503, {"status": "stopping"})
        assert (await http.put("/r", json=[1])).json() == [1]  # calls already coming are still served

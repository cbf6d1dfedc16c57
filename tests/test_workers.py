"""Workers under ``--workers``: they die with their supervisor, keep the token out of their
environments, and a worker that crashes is replaced with a warning.

Each test runs ``python -m dataserve serve tests.cli_handlers:ChildHandler --workers 2`` in a
process of its own, on 127.0.0.1, and stops what it started by pid.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from dataserve import AuthenticationError, HTTPDataClient, ServerUnavailable
from dataserve._token import TOKEN_ENV
from tests.conftest import die_with_test, free_port, worker_pids

ROOT = Path(__file__).resolve().parent.parent
BOUND = 30.0
"""Seconds anything here may take on a loaded machine."""

TOKEN = "workers-test-token-7f3a9c"
SERVE = [sys.executable, "-m", "dataserve", "serve", "tests.cli_handlers:ChildHandler"]


class Supervised:
    """``dataserve serve`` with two workers on ``port``, its log in a file."""

    def __init__(self, tmp_path: Path, port: int, *args: str, env: dict[str, str] | None = None) -> None:
        self.port = port
        self.log = tmp_path / f"serve-{port}-{time.monotonic_ns()}.log"
        environment = dict(os.environ)
        environment.pop(TOKEN_ENV, None)
        environment["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), environment.get("PYTHONPATH")]))
        environment.update(env or {})
        with self.log.open("w") as log:
            self.process = subprocess.Popen(
                [*SERVE, "--workers", "2", "--port", str(port), *args],
                cwd=ROOT,
                env=environment,
                stdout=subprocess.PIPE,
                stderr=log,
                text=True,
                preexec_fn=die_with_test,
            )
        assert self.process.stdout is not None
        first_line = self.process.stdout.readline()
        assert f"on http://127.0.0.1:{port} with 2 workers" in first_line, (first_line, self.errors())

    def errors(self) -> str:
        """What the supervisor and its workers have logged so far."""
        return self.log.read_text()

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(BOUND)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(BOUND)


@pytest.fixture
def supervised() -> Iterator[list[Supervised]]:
    """Servers a test starts, each stopped at its end, with any workers they left."""
    started: list[Supervised] = []
    yield started
    for server in started:
        server.stop()


def alive(pid: int) -> bool:
    """Whether process ``pid`` is running (a zombie waiting to be reaped is not)."""
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().rpartition(")")[2].split()[0] != "Z"
    except FileNotFoundError:
        return False


def wait_until(condition: object, what: str) -> None:
    deadline = time.monotonic() + BOUND
    while not condition():  # type: ignore[operator]
        assert time.monotonic() < deadline, f"not within {BOUND} s: {what}"
        time.sleep(0.05)


pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")


def test_workers_end_when_their_supervisor_is_killed_and_the_port_serves_again(
    tmp_path: Path, supervised: list[Supervised]
) -> None:
    port = free_port()
    first = Supervised(tmp_path, port)
    supervised.append(first)
    workers = worker_pids(port, count=2)
    assert len(workers) == 2

    first.process.kill()  # SIGKILL: the supervisor has no chance to stop its workers itself
    first.process.wait(BOUND)
    wait_until(lambda: not any(alive(pid) for pid in workers), f"workers {workers} end")

    second = Supervised(tmp_path, port)  # the same port: no orphan holds it
    supervised.append(second)
    again = worker_pids(port, count=2)
    assert len(again) == 2
    assert not again & workers


@pytest.mark.parametrize("given", ["--token", "environment"])
def test_the_token_is_in_no_workers_environment_nor_its_childrens(
    tmp_path: Path, supervised: list[Supervised], given: str
) -> None:
    port = free_port()
    if given == "--token":
        server = Supervised(tmp_path, port, "--token", TOKEN)
    else:
        server = Supervised(tmp_path, port, env={TOKEN_ENV: TOKEN})
    supervised.append(server)
    with HTTPDataClient(port, "http://127.0.0.1:", token=TOKEN, timeout=BOUND) as client:
        child = json.loads(client.send("/child-env"))
    workers = _pids_with_token(port)
    assert len(workers) == 2
    for pid in workers:
        assert TOKEN.encode() not in Path(f"/proc/{pid}/environ").read_bytes(), f"worker {pid}"
    assert TOKEN_ENV not in child
    assert TOKEN not in json.dumps(child)
    with pytest.raises(AuthenticationError), HTTPDataClient(port, "http://127.0.0.1:", timeout=BOUND) as bare:
        bare.send("/pid")


def _pids_with_token(port: int) -> set[int]:
    """Both workers' pids, asked with the token over fresh connections."""
    pids: set[int] = set()
    deadline = time.monotonic() + BOUND
    while len(pids) < 2 and time.monotonic() < deadline:
        with HTTPDataClient(port, "http://127.0.0.1:", token=TOKEN, timeout=BOUND) as client:
            pids.add(int(client.send("/pid")))
    return pids


def test_a_worker_that_crashes_is_replaced_with_a_warning(
    tmp_path: Path, supervised: list[Supervised]
) -> None:
    port = free_port()
    server = Supervised(tmp_path, port)
    supervised.append(server)
    workers = worker_pids(port, count=2)
    assert len(workers) == 2

    with pytest.raises(ServerUnavailable), HTTPDataClient(port, "http://127.0.0.1:", timeout=BOUND) as client:
        client.send("/segfault")
    wait_until(lambda: "was killed by SIGSEGV" in server.errors(), "the supervisor says a worker crashed")
    [line] = [line for line in server.errors().splitlines() if "was killed by SIGSEGV" in line]
    assert line.startswith("WARNING:")
    crashed = int(line.split("worker process ")[1].split()[0])
    assert crashed in workers
    now = worker_pids(port, count=2)
    assert len(now) == 2
    assert crashed not in now

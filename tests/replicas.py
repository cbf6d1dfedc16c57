"""Replicas of one server behind a real load balancer, for the scale-out tests.

Each replica is ``dataserve serve tests.cli_handlers:ReplicaHandler`` in its own process on
127.0.0.1, recording every call it runs in a directory the test reads; the balancer (HAProxy,
nginx) runs the recipe from docs/scale-out with the test's ports put in. Every process is
started to die with the test, and stopped by its pid at the test's end.
"""

from __future__ import annotations

import collections
import functools
import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from dataserve import HTTPDataClient, ServerUnavailable
from tests.conftest import die_with_test, free_port, wait_for

ROOT = Path(__file__).resolve().parent.parent
RECIPES = ROOT / "docs" / "scale-out"
BOUND = 30.0
"""Seconds any one step may take on a loaded machine."""
RECIPE_PORTS = (8000, 8001, 8002, 8003)
"""The balancer's port and the replicas' in the recipes, replaced by free ones in a test."""


class Replica:
    """One ``dataserve serve`` process of ReplicaHandler, on a port that outlives its restarts."""

    def __init__(self, port: int, calls: Path, log: Path, drain: float, refuse_while_loading: bool) -> None:
        self.port, self.calls, self.log, self.drain = port, calls, log, drain
        self.refuse_while_loading = refuse_while_loading
        self.process: subprocess.Popen[bytes] | None = None

    def start(self, setup: float = 0.0) -> None:
        """Start the server; its setup() takes ``setup`` seconds. Returns before it is ready."""
        environment = dict(os.environ)
        environment["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), environment.get("PYTHONPATH")]))
        environment["DATASERVE_TEST_CALLS"] = str(self.calls)
        environment["DATASERVE_TEST_SETUP"] = str(setup)
        command = [sys.executable, "-m", "dataserve", "serve", "tests.cli_handlers:ReplicaHandler"]
        command += ["--port", str(self.port), "--drain-timeout", str(self.drain)]
        if self.refuse_while_loading:
            command.append("--refuse-while-loading")
        with self.log.open("a") as log:
            self.process = subprocess.Popen(
                command,
                cwd=ROOT,
                env=environment,
                stdout=subprocess.DEVNULL,
                stderr=log,
                preexec_fn=die_with_test,
            )

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    def ready(self) -> bool:
        assert self.process is not None
        assert self.process.poll() is None, self.log.read_text()
        try:
            return httpx.get(f"http://127.0.0.1:{self.port}/healthz", timeout=BOUND).status_code == 200
        except httpx.TransportError:
            return False

    def stop(self) -> None:
        """SIGTERM, as an orchestrator sends it: the replica drains, then stops."""
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            self.process.wait(BOUND + self.drain)

    def kill(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(BOUND)


@dataclass
class Fleet:
    """Three replicas, the balancer in front of them, and where the replicas record their calls."""

    port: int
    """The balancer's port."""
    replicas: list[Replica]
    calls: Path

    def client(self, **options: object) -> HTTPDataClient:
        return HTTPDataClient(self.port, "http://127.0.0.1:", timeout=BOUND, **options)  # type: ignore[arg-type]

    def ran(self, suffix: str = "") -> collections.Counter[str]:
        """How often each call id ran (``suffix`` ".started": began), over every replica."""
        counts: collections.Counter[str] = collections.Counter()
        for path in self.calls.iterdir():
            if path.name.endswith(suffix) and (suffix or "." not in path.name):
                counts.update(path.read_text().split())
        return counts

    def ran_on(self, pid: int) -> list[str]:
        path = self.calls / str(pid)
        return path.read_text().split() if path.exists() else []

    def started_on(self, pid: int) -> list[str]:
        path = self.calls / f"{pid}.started"
        return path.read_text().split() if path.exists() else []

    def kill_mid_call(self, call_id: str, delay: float, **options: object) -> tuple[object, Replica]:
        """Send a ``/slow`` call of ``delay`` seconds, kill the replica running it as soon as it
        has begun, and return what the call gave (its reply, or the exception it raised) and
        the replica killed."""
        outcome: list[object] = []

        def call() -> None:
            with self.client(**options) as client:
                try:
                    outcome.append(client.send("/slow", {"id": call_id, "delay": delay}))
                except Exception as exc:
                    outcome.append(exc)

        caller = threading.Thread(target=call)
        caller.start()
        wait_for(lambda: self.ran(".started")[call_id] >= 1, "the slow call to begin on a replica", BOUND)
        [running] = [replica for replica in self.replicas if call_id in self.started_on(replica.pid)]
        running.kill()
        caller.join(BOUND + delay)
        assert not caller.is_alive(), "the call did not end"
        [result] = outcome
        return result, running

    def wait_balanced(self, **options: object) -> None:
        """Wait until calls through the balancer reach every replica."""
        wanted = {replica.pid for replica in self.replicas}
        seen: set[int] = set()
        deadline = time.monotonic() + BOUND
        with self.client(**options) as client:
            while seen != wanted:
                assert time.monotonic() < deadline, f"calls reached only {seen} of {wanted}"
                try:
                    seen.add(client.send("/call", {"id": f"warm-{uuid.uuid4()}"})["pid"])
                except ServerUnavailable:
                    time.sleep(0.1)


def start_replicas(tmp_path: Path, *, drain: float = 2.0, refuse_while_loading: bool = True) -> list[Replica]:
    """Three replicas, each ready; they drain for ``drain`` seconds as they stop."""
    calls = tmp_path / "calls"
    calls.mkdir()
    replicas = [
        Replica(free_port(), calls, tmp_path / f"replica{n}.log", drain, refuse_while_loading)
        for n in range(3)
    ]
    for replica in replicas:
        replica.start()
    for replica in replicas:
        wait_for(replica.ready, f"replica on {replica.port} to be ready", BOUND)
    return replicas


def recipe(name: str, port: int, replicas: list[Replica]) -> str:
    """The recipe ``name`` with the test's ports in place of the recipe's."""
    text = (RECIPES / name).read_text()
    for old, new in zip(RECIPE_PORTS, [port] + [replica.port for replica in replicas], strict=True):
        assert f"127.0.0.1:{old}" in text, f"{name} names no 127.0.0.1:{old}"
        text = text.replace(f"127.0.0.1:{old}", f"127.0.0.1:{new}")
    return text


@dataclass
class Load:
    """Client threads that keep calling through the balancer, each call with an id of its own,
    until stopped; every call that failed is kept with its exception."""

    fleet: Fleet
    threads: int = 4
    options: dict[str, object] = field(default_factory=dict)
    answered: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)
    stopped: threading.Event = field(default_factory=threading.Event)

    def __post_init__(self) -> None:
        self._threads = [
            threading.Thread(target=self._run, args=(n,), daemon=True) for n in range(self.threads)
        ]

    def __enter__(self) -> Load:
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stopped.set()
        for thread in self._threads:
            thread.join(BOUND * 2)
            assert not thread.is_alive(), "a client is stuck"

    def _run(self, number: int) -> None:
        with self.fleet.client(**self.options) as client:
            i = 0
            while not self.stopped.is_set():
                call_id = f"{number}-{i}"
                resource, payload = (
                    ("/slow", {"id": call_id, "delay": 0.05}) if i % 5 == 0 else ("/call", {"id": call_id})
                )
                try:
                    reply = client.send(resource, payload)
                    assert reply["id"] == call_id, f"call {call_id} answered as {reply}"
                    self.answered.append(call_id)
                except Exception as exc:
                    self.failed.append(f"{call_id}: {type(exc).__name__}: {exc}")
                i += 1


def rolling_restart(fleet: Fleet, setup: float, up: Callable[[Replica], object]) -> list[int]:
    """Restart each replica in turn as an orchestrator would: SIGTERM, wait for it to stop, start
    it again with a ``setup`` that takes that long, and wait until ``up(replica)`` says the
    balancer sends it calls again. Returns the new replicas' pids."""
    pids = []
    for replica in fleet.replicas:
        replica.stop()
        replica.start(setup=setup)
        wait_for(replica.ready, f"the restarted replica on {replica.port}", BOUND)
        wait_for(
            functools.partial(_holds, up, replica), f"the balancer to send calls to {replica.port}", BOUND
        )
        pids.append(replica.pid)
    return pids


def _holds(condition: Callable[[Replica], object], replica: Replica) -> bool:
    return bool(condition(replica))

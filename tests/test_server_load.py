"""Load on a server in its own process: 16 threads and 16 asyncio tasks call it at once.

Each round makes 400 calls from threads sharing one HTTPDataClient and 400 from tasks
sharing one AsyncHTTPDataClient, every payload unique (JSON, text and bytes in turn). Every
reply must be its own call's, every call answered once and run once by the handler, and
the serving processes' memory must stay flat over a second round equal to the first. Run
with ``-s`` to see the rate and the memory of each round.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import queue
import random
import re
import selectors
import signal
import subprocess
import sys
import time
import uuid
from collections import Counter, defaultdict
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import pytest

from dataserve import AsyncHTTPDataClient, HTTPDataClient, ServerUnavailable
from tests.conftest import die_with_test, wait_for, worker_pids

pytestmark = pytest.mark.usefixtures("server_lane")

ROOT = Path(__file__).parent.parent
HANDLER = "tests.load_handlers:LoadHandler"
THREADS = 16
TASKS = 16
CALLS = 400
"""Calls of the threads, and again of the tasks, in one round: a round takes 1-3 s on an idle 2-CPU
machine, and about three times as long with both its CPUs kept busy by other processes."""

CALL_TIMEOUT = 10.0
"""Seconds one call may take: far more than any takes, yet bounding a stuck one."""

ROUND_DEADLINE = 30.0
"""Seconds after which a round's threads and tasks start no more calls; its missing replies then fail it.

Ten times what a round takes on a busy machine: it bounds a server that stopped answering, not a slow one."""

PROCESS_TIMEOUT = 30.0
"""Seconds the server process gets to print its first line, to serve, and to stop."""

RSS_GROWTH_LIMIT_KIB = 1536
"""How much the serving processes' resident memory may grow over the second of two equal rounds.

A round's 800 requests carry about 2.7 MiB of payloads (3.4 KiB a call) and their
replies as much again. A handler that kept every payload grows by about 7 MiB a round,
one that kept 2 KiB a call by just over the limit, while a server that has warmed up moves
by well under 1 MiB (allocator pages, the connections of a new pair of clients: from -380 to
+288 KiB in twelve runs on a 2-CPU machine).
"""


STATUS = Path("/proc/self/status")


@dataclass(frozen=True)
class Call:
    """One call of a round: its unique id, and what it sends where."""

    call_id: str
    resource: str
    payload: Any


def make_calls(count: int, seed: int) -> list[Call]:
    """``count`` calls with unique payloads, of the same kinds and sizes for the same seed.

    Kinds take turns; one call in 8 asks the handler to sleep, one in 20 is 16-64 KiB,
    the others are under 4 KiB.
    """
    rng = random.Random(seed)
    calls = []
    for n in range(count):
        call_id = uuid.uuid4().hex
        kind = ("json", "text", "bytes")[n % 3]
        size = rng.randrange(16 * 1024, 64 * 1024) if n % 20 == 0 else rng.randrange(4 * 1024)
        payload: Any
        if kind == "json":
            numbers = [rng.randrange(-(10**9), 10**9) for _ in range(size // 12)]
            payload = {"id": call_id, "numbers": numbers, "ratio": rng.random(), "flag": n % 2 == 0}
        elif kind == "text":
            payload = call_id + " " + "".join(rng.choices('abc xyz 019\n\t"\\é€😀', k=size // 2))
        else:
            payload = call_id.encode() + rng.randbytes(size)
        slow = "/slow" if n % 8 == 0 else ""
        calls.append(Call(call_id, f"/{kind}/{call_id}{slow}", payload))
    return calls


def expected_reply(call: Call, pid: int, number: int) -> Any:
    """What LoadHandler answers to ``call`` as the ``number``-th call of process ``pid``."""
    kind = call.resource.split("/")[1]
    if kind == "json":
        total = sum(call.payload["numbers"])
        return {"pid": pid, "number": number, "resource": call.resource, "echo": call.payload, "total": total}
    header = f"{pid} {number} {call.resource} "
    if kind == "text":
        return header + call.payload[::-1]
    return header.encode() + hashlib.sha256(call.payload).digest() + call.payload


def check_reply(call: Call, reply: Any) -> tuple[int, int]:
    """The pid and number that ``reply`` carries, once it is checked to be ``call``'s own reply."""
    if isinstance(reply, dict):
        pid, number = reply["pid"], reply["number"]
    else:
        assert isinstance(reply, str | bytes), f"the reply to {call.resource} is {reply!r}"
        header = reply if isinstance(reply, str) else reply[:100].decode(errors="replace")
        pid, number = map(int, header.split(" ", 2)[:2])
    assert reply == expected_reply(call, pid, number), f"the reply to {call.resource} is not its own"
    return pid, number


def call_from_thread(
    client: HTTPDataClient, pending: queue.SimpleQueue[Call], deadline: float
) -> list[tuple[Call, Any]]:
    """Make the pending calls with the shared client until none is left or the deadline passes."""
    replies = []
    while time.monotonic() < deadline:
        try:
            call = pending.get_nowait()
        except queue.Empty:
            break
        replies.append((call, client.send(call.resource, call.payload)))
    return replies


async def call_from_tasks(port: int, pending: list[Call], deadline: float) -> list[tuple[Call, Any]]:
    """Make the pending calls from TASKS tasks sharing one async client, as call_from_thread does."""
    replies = []

    async def task(client: AsyncHTTPDataClient) -> None:
        while pending and time.monotonic() < deadline:
            call = pending.pop()
            replies.append((call, await client.send(call.resource, call.payload)))

    async with (
        AsyncHTTPDataClient(port, "http://127.0.0.1:", timeout=CALL_TIMEOUT) as client,
        asyncio.TaskGroup() as group,
    ):
        for _ in range(TASKS):
            group.create_task(task(client))
    return replies


@dataclass(frozen=True)
class Round:
    """The calls of one round, the replies they got, and how long it took."""

    calls: list[Call]
    replies: list[tuple[Call, Any]]
    seconds: float


def run_round(port: int, seed: int) -> Round:
    """THREADS threads and TASKS tasks making CALLS calls each, all at the same time."""
    thread_calls, task_calls = make_calls(CALLS, seed), make_calls(CALLS, seed + 1)
    pending: queue.SimpleQueue[Call] = queue.SimpleQueue()
    for call in thread_calls:
        pending.put(call)
    deadline = time.monotonic() + ROUND_DEADLINE
    start = time.perf_counter()
    with (
        HTTPDataClient(port, "http://127.0.0.1:", timeout=CALL_TIMEOUT) as client,
        ThreadPoolExecutor(THREADS + 1) as pool,
    ):
        tasks = pool.submit(asyncio.run, call_from_tasks(port, list(task_calls), deadline))
        threads = [pool.submit(call_from_thread, client, pending, deadline) for _ in range(THREADS)]
        replies = [reply for future in [*threads, tasks] for reply in future.result()]
    return Round(thread_calls + task_calls, replies, time.perf_counter() - start)


def check_round(load: Round) -> list[tuple[int, int]]:
    """The (pid, number) of every reply, once each call is checked to have its own reply, once."""
    answered = Counter(call.call_id for call, _ in load.replies)
    missing = {call.call_id for call in load.calls} - set(answered)
    assert not missing, f"{len(missing)} of {len(load.calls)} calls got no reply in {ROUND_DEADLINE} s"
    assert set(answered.values()) == {1}, "a call got more than one reply"
    return [check_reply(call, reply) for call, reply in load.replies]


class LoadServer:
    """``python -m dataserve serve`` of LoadHandler in its own process, and the pids that serve it."""

    def __init__(self, max_concurrency: int, workers: int, stderr: IO[str]) -> None:
        self.stderr = stderr
        options = ["--port", "0", "--max-concurrency", str(max_concurrency), "--workers", str(workers)]
        self.process = subprocess.Popen(
            [sys.executable, "-m", "dataserve", "serve", HANDLER, *options],
            cwd=ROOT,
            env=server_env(),
            stdout=subprocess.PIPE,
            stderr=stderr,
            text=True,
            preexec_fn=die_with_test,
        )
        try:
            line = self._first_line()
            match = re.search(r"on http://127\.0\.0\.1:(\d+) ", line)
            assert match, f"unexpected first line {line!r}"
            self.port = int(match.group(1))
            wait_for(self._ready, "the server to answer its health check", PROCESS_TIMEOUT)
            self.pids = self._serving_pids(workers)
        except BaseException:
            self.kill()  # a server that failed to start is stopped here: no test holds it yet
            raise

    def _first_line(self) -> str:
        assert self.process.stdout is not None
        with selectors.DefaultSelector() as selector:
            selector.register(self.process.stdout, selectors.EVENT_READ)
            ready = selector.select(PROCESS_TIMEOUT)
        line = self.process.stdout.readline() if ready else ""
        if not line:
            self.kill()
            pytest.fail(f"the server printed nothing and exited with {self.process.returncode}: {self.log()}")
        return line

    def _ready(self) -> bool:
        assert self.process.poll() is None, f"the server exited: {self.log()}"
        try:
            with HTTPDataClient(self.port, "http://127.0.0.1:", timeout=5) as client:
                return client.ping()
        except ServerUnavailable:
            return False

    def _serving_pids(self, workers: int) -> set[int]:
        """The pids that answer over fresh connections, until ``workers`` of them have."""
        pids = worker_pids(self.port, count=workers)
        assert len(pids) == workers, f"{len(pids)} of {workers} workers answered"
        if workers == 1:
            assert pids == {self.process.pid}
        elif STATUS.exists():
            assert {parent_pid(pid) for pid in pids} == {self.process.pid}
        return pids

    def log(self) -> str:
        self.stderr.seek(0)
        return self.stderr.read()

    def stop(self) -> tuple[int, str]:
        """Interrupt the server as Ctrl-C does; its exit status and its stdout after the first line."""
        self.process.send_signal(signal.SIGINT)
        out, _ = self.process.communicate(timeout=PROCESS_TIMEOUT)
        return self.process.returncode, out

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.communicate(timeout=PROCESS_TIMEOUT)


@pytest.fixture
def serving() -> Iterator[list[LoadServer]]:
    """The servers a test starts, killed at its end if the test has not stopped them."""
    servers: list[LoadServer] = []
    yield servers
    for server in servers:
        server.kill()


def server_env() -> dict[str, str]:
    """The environment with this checkout first on the path, for the server and its workers."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    return env


def parent_pid(pid: int) -> int:
    stat = (Path("/proc") / str(pid) / "stat").read_text()
    return int(stat.rpartition(")")[2].split()[1])


def rss_kib(pids: set[int]) -> int:
    """The resident memory of the processes ``pids`` together, in KiB, from /proc (Linux only)."""
    total = 0
    for pid in pids:
        status = (Path("/proc") / str(pid) / "status").read_text()
        match = re.search(r"^VmRSS:\s+(\d+) kB$", status, re.MULTILINE)
        assert match, f"no VmRSS in /proc/{pid}/status"
        total += int(match.group(1))
    return total


@pytest.mark.parametrize(
    ("max_concurrency", "workers"),
    [(1, 1), (8, 1), (1, 2)],
    ids=["concurrency-1", "concurrency-8", "2-workers"],
)
def test_every_call_under_load_gets_its_own_reply_once_and_memory_stays_flat(
    serving: list[LoadServer], tmp_path: Path, max_concurrency: int, workers: int
) -> None:
    measures_memory = STATUS.exists()
    with (tmp_path / "server.err").open("w+") as stderr:
        server = LoadServer(max_concurrency, workers, stderr)
        serving.append(server)
        numbers: dict[int, list[int]] = defaultdict(list)
        rss: list[int] = []
        for seed, name in [(0, "warm-up"), (2, "round 1"), (4, "round 2")]:
            load = run_round(server.port, seed)
            for pid, number in check_round(load):
                numbers[pid].append(number)
            rss.append(rss_kib(server.pids) if measures_memory else 0)
            rate = len(load.replies) / load.seconds
            print(
                f"\nmax_concurrency={max_concurrency} workers={workers} {name}: {len(load.replies)} calls "
                f"in {load.seconds:.2f} s, {rate:.0f} calls/s; RSS {rss[-1] / 1024:.1f} MiB",
                end="",
            )
        code, out = server.stop()
        assert code == 0, server.log()
        assert out == "dataserve: stopped\n"
        assert "Traceback" not in server.log()
    assert set(numbers) == server.pids, "a serving process answered no call"
    for pid, seen in numbers.items():
        assert sorted(seen) == list(range(1, len(seen) + 1)), f"process {pid} ran a call twice or lost one"
    if not measures_memory:
        pytest.skip("the replies are checked; memory is read from /proc/PID/status, which only Linux has")
    growth = rss[2] - rss[1]
    print(f"\nRSS growth over round 2: {growth} KiB (limit {RSS_GROWTH_LIMIT_KIB} KiB)")
    assert growth < RSS_GROWTH_LIMIT_KIB, f"the server grew by {growth} KiB over a round equal to the last"

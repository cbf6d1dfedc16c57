"""Handlers and real loopback servers shared by the tests."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import uvicorn
from hypothesis import settings
from starlette.types import ASGIApp

import dataserve
from dataserve._protocol import DIRECT_LANE_ENV

# Property tests are bounded by example counts, never by the wall clock of a busy machine.
settings.register_profile("dataserve", deadline=None)
settings.load_profile("dataserve")

LONGEST_FIRST = [
    "test_server_load.py",
    "test_docs.py",
    "test_client.py",
    "test_haproxy.py",
    "test_benchmarks.py",
    "test_cli.py",
    "test_drain.py",
    "test_server.py",
    "test_soak.py",
    "test_nginx.py",
    "test_stop.py",
    "test_scale_out_benchmark.py",
]
"""The modules that take longest, longest first (about 90 s down to 18 s on 2 CPUs).

pytest-xdist hands each module whole to the next free worker, in the order collected: a long
module collected last would run alone at the end. Started first, the long ones overlap."""


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Collect the longest modules first; the others keep their order, after them."""
    rank = {name: number for number, name in enumerate(LONGEST_FIRST)}
    items.sort(key=lambda item: rank.get(item.path.name, len(rank)))


@dataclass
class ScriptServer:
    """A script serving in its own process, and the port its first line printed."""

    process: subprocess.Popen[str]
    first_line: str
    port: int


def start_script(script: Path, *args: str, log: Path | None = None) -> ScriptServer:
    """Run ``script``, which serves and prints dataserve's first line, and read the port from it.

    Its stderr goes to the file ``log`` if given (a server that logs much would fill a pipe
    nobody reads, and block), else to a pipe.
    """
    with contextlib.ExitStack() as stack:
        stderr = stack.enter_context(log.open("w")) if log is not None else subprocess.PIPE
        process = subprocess.Popen(
            [sys.executable, str(script), *args],
            stdout=subprocess.PIPE,
            stderr=stderr,
            text=True,
            preexec_fn=die_with_test,
        )
    assert process.stdout is not None
    first_line = process.stdout.readline()
    match = re.search(r"on https?://127\.0\.0\.1:(\d+)", first_line)
    if not match:
        process.kill()
        err = log.read_text() if log is not None else process.communicate(timeout=10)[1]
        pytest.fail(f"unexpected first line {first_line!r}; stderr: {err}")
    return ScriptServer(process, first_line, int(match.group(1)))


def run_in_fresh_python(code: str) -> None:
    """Run ``code`` in a new interpreter that imports this checkout's dataserve; fail the
    test with its stderr unless it exits 0 (for what a fresh process does or does not import)."""
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).parent.parent)}
    result = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr


def die_with_test() -> None:
    """Popen's ``preexec_fn`` for a server a test starts: the server gets SIGTERM when the test
    process that started it ends, however it ends (Linux), so that no server outlives its test
    even when pytest is killed."""
    if sys.platform.startswith("linux"):
        import ctypes

        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM, 0, 0, 0)  # PR_SET_PDEATHSIG


def free_port() -> int:
    """A port nothing listens on (bound, read, and released again)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class EchoHandler(dataserve.HTTPDataHandler):
    """Answers every resource with what it was sent; a few resources do more."""

    def __init__(self) -> None:
        self.calls = 0
        self.lock = threading.Lock()

    def handle_request(self, resource: str, payload: Any) -> Any:
        with self.lock:
            self.calls += 1
        if resource == "/missing":
            return None
        if resource == "/fail":
            raise ValueError(f"cannot handle {payload!r}")
        if resource == "/set":
            return {1, 2}
        if resource == "/calls":
            return self.calls
        if resource == "/sleep":
            time.sleep(float(payload))
            return "slept"
        if resource == "/type":
            return type(payload).__name__
        if resource == "/unencodable":
            return _Unencodable()
        return payload


class _Unencodable(list[int]):
    """A list whose own code fails as dataserve encodes it: a failure that is neither the
    handler's nor a PayloadError."""

    def __iter__(self) -> Iterator[int]:
        raise RuntimeError("this list cannot be read")


class AsyncEchoHandler(dataserve.HTTPDataHandler):
    """An ``async def`` handler that echoes, sleeping on the event loop when asked."""

    async def handle_request(self, resource: str, payload: Any) -> Any:
        if resource == "/sleep":
            await asyncio.sleep(float(payload))
            return "slept"
        return payload


@pytest.fixture(scope="module", params=["direct lane", "uvicorn lane"])
def server_lane(request: pytest.FixtureRequest) -> Iterator[str]:
    """Each module that uses it runs twice: its servers answering plain calls on dataserve's own
    protocol (the direct lane), then on uvicorn's protocol and the ASGI app alone."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv(DIRECT_LANE_ENV, "1" if request.param == "direct lane" else "0")
        yield str(request.param)


@pytest.fixture(scope="module")
def server(server_lane: str) -> Iterator[dataserve.RunningServer]:
    """A real server of EchoHandler on 127.0.0.1, shared by the tests of one module."""
    with dataserve.serve(EchoHandler, port=0) as running:
        yield running


@pytest.fixture
def client(server: dataserve.RunningServer) -> Iterator[dataserve.HTTPDataClient]:
    with dataserve.HTTPDataClient(server.port, "http://127.0.0.1:", timeout=30) as http_client:
        yield http_client


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@contextlib.contextmanager
def serve_app(app: ASGIApp) -> Iterator[int]:
    """Serve any ASGI app (a host app with dataserve mounted in it) on 127.0.0.1; yield its port."""
    with socket.create_server(("127.0.0.1", 0)) as sock:
        server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="on"))
        thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
        thread.start()
        wait_for(lambda: server.started or not thread.is_alive(), "the app's server to start", 30)
        assert server.started, "the app's server did not start; see its log"
        try:
            yield int(sock.getsockname()[1])
        finally:
            server.should_exit = True
            thread.join(30)


class Logged(logging.Handler):
    """The records that dataserve's and uvicorn's loggers log at ``level`` or above, while it is open.

    Open it once the server has started: a start configures those loggers anew.
    """

    def __init__(self, level: int = logging.WARNING) -> None:
        super().__init__(level)
        self.records: list[logging.LogRecord] = []
        self._loggers = [logging.getLogger(name) for name in ("dataserve", "uvicorn.error")]

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)

    @property
    def text(self) -> str:
        return "\n".join(record.getMessage() for record in self.records)

    def __enter__(self) -> Logged:
        import dataserve._watch

        dataserve._watch._last_warned.clear()  # each test sees its own warnings
        for logger in self._loggers:
            logger.addHandler(self)
        return self

    def __exit__(self, *exc: object) -> None:
        for logger in self._loggers:
            logger.removeHandler(self)


def wait_for(condition: Callable[[], bool], what: str, timeout: float = 10.0) -> None:
    """Wait until ``condition()`` holds, failing the test after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.01)


def worker_pids(
    port: int | None = None, *, uds: str | os.PathLike[str] | None = None, count: int = 2
) -> set[int]:
    """The pids that answer ``/pid`` over fresh connections, 8 at a time, until ``count`` do (or 30 s pass).

    The server is on 127.0.0.1 at ``port``, or on the Unix socket ``uds``. A worker that is
    still starting answers nothing, so the calls go on until both have answered.
    """
    pids: set[int] = set()

    def pid() -> int:
        if uds is not None:
            client = dataserve.HTTPDataClient(uds=uds, timeout=30)
        else:
            client = dataserve.HTTPDataClient(port, "http://127.0.0.1:", timeout=30)
        with client:
            return int(client.send("/pid"))

    deadline = time.monotonic() + 30
    with ThreadPoolExecutor(8) as pool:
        while len(pids) < count and time.monotonic() < deadline:
            pids.update(pool.map(lambda _: pid(), range(8)))
            time.sleep(0.01)
    return pids

"""A server short of file descriptors says so, keeps its connections below its limit, and goes on.

The server runs in a process of its own whose descriptor limit is 128, soft and hard, so that
it cannot raise it: it keeps at most 128 - RESERVED connections, refuses more with 503, warns
when the handler's files take the process close to the limit, and answers again once they
are closed.
"""

from __future__ import annotations

import os
import resource
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from dataserve import HTTPDataClient, ServerUnavailable
from dataserve._descriptors import RESERVED
from tests.conftest import die_with_test, wait_for

ROOT = Path(__file__).resolve().parent.parent
LIMIT = 128
BOUND = 30.0

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="counts /proc/self/fd")


def _low_limit() -> None:
    die_with_test()
    resource.setrlimit(resource.RLIMIT_NOFILE, (LIMIT, LIMIT))


@pytest.fixture
def server(tmp_path: Path) -> Iterator[tuple[int, Path]]:
    """A server with a descriptor limit of LIMIT: its port and its log."""
    log = tmp_path / "serve.log"
    environment = dict(os.environ)
    environment["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), environment.get("PYTHONPATH")]))
    with log.open("w") as err:
        process = subprocess.Popen(
            [sys.executable, "-m", "dataserve", "serve", "tests.cli_handlers:ChildHandler", "--port", "0"],
            cwd=ROOT,
            env=environment,
            stdout=subprocess.PIPE,
            stderr=err,
            text=True,
            preexec_fn=_low_limit,
        )
    try:
        assert process.stdout is not None
        line = process.stdout.readline()
        assert " on http://127.0.0.1:" in line, (line, log.read_text())
        yield int(line.split("127.0.0.1:")[1].split()[0]), log
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(BOUND)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(BOUND)


def test_a_limit_too_low_for_max_connections_keeps_fewer_and_says_so(server: tuple[int, Path]) -> None:
    port, log = server
    keeps = LIMIT - RESERVED
    assert (
        f"may open {LIMIT} file descriptors, too few for max_connections 1000; "
        f"it keeps at most {keeps} connections open"
    ) in log.read_text()
    idle = [socket.create_connection(("127.0.0.1", port), timeout=BOUND) for _ in range(keeps)]
    try:
        with pytest.raises(ServerUnavailable, match="connections"), _client(port) as client:
            client.send("/pid")
    finally:
        for sock in idle:
            sock.close()
    # The server frees a slot once its event loop has seen the close: on a loaded machine that
    # is a moment after close() returns here, and until then it answers 503 as it should.
    with _client(port) as client:
        wait_for(lambda: _answers(client), "the server to see the idle connections closed", BOUND)
        assert client.send("/echo", 1) == 1


def test_descriptors_close_to_the_limit_are_warned_of_and_the_server_goes_on(
    server: tuple[int, Path],
) -> None:
    port, log = server
    with _client(port) as client:
        assert client.send("/hog", 6) > 0  # the handler's files leave six descriptors free
        deadline = time.monotonic() + BOUND
        while "file descriptors are in use" not in log.read_text():
            assert time.monotonic() < deadline, log.read_text()
            time.sleep(0.1)
        [line] = [line for line in log.read_text().splitlines() if "file descriptors are in use" in line]
        assert line.startswith("WARNING:")
        assert f"of this process's {LIMIT} file descriptors" in line
        assert client.send("/release") == 0
        assert client.send("/echo", "still here") == "still here"


def _client(port: int) -> HTTPDataClient:
    return HTTPDataClient(port, "http://127.0.0.1:", timeout=BOUND)


def _answers(client: HTTPDataClient) -> bool:
    """Whether a call gets through, not turned away for want of a free connection."""
    try:
        client.send("/echo", 1)
    except ServerUnavailable as exc:
        if "connections" not in str(exc):
            raise  # any other refusal fails the test
        return False
    return True

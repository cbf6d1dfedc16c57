"""Servers on Unix sockets: the file's mode, stale and live files, removal on exit, every client."""

from __future__ import annotations

import asyncio
import os
import select
import signal
import socket
import stat
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest

import dataserve
from dataserve import AsyncHTTPDataClient, DataServeError, HTTPDataClient, ServerUnavailable
from tests.conftest import EchoHandler, die_with_test, wait_for, worker_pids

pytestmark = pytest.mark.usefixtures("server_lane")


@pytest.fixture
def socket_path(tmp_path: Path) -> Iterator[Path]:
    # A Unix socket's path must be short (108 bytes): pytest's tmp_path can be longer.
    short = Path(f"/tmp/dataserve-test-{os.getpid()}-{tmp_path.name[-20:]}.sock")
    yield short
    short.unlink(missing_ok=True)


@pytest.mark.parametrize("client_lane", ["fast path", "httpx"])
def test_server_on_a_unix_socket_answers_the_client_on_either_lane(
    socket_path: Path, client_lane: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DATASERVE_FAST_PATH", "1" if client_lane == "fast path" else "0")
    with dataserve.serve(EchoHandler, uds=socket_path) as server, HTTPDataClient(uds=server.uds) as client:
        assert (client._fast is not None) == (client_lane == "fast path")
        assert client.send("/r", [1, "two", None]) == [1, "two", None]
        assert client.send("/r", b"\x00" * 100_000) == b"\x00" * 100_000
        assert client.send_many([("/r", 1), ("/r", "x")]) == [1, "x"]
        assert client.ping() is True
    assert server.uds == str(socket_path)
    assert server.url == "http://localhost"


def test_async_client_calls_a_server_on_a_unix_socket(socket_path: Path) -> None:
    async def calls(path: str) -> list[object]:
        async with AsyncHTTPDataClient(uds=path) as client:
            return [await client.send("/r", {"a": 1}), await client.ping()]

    with dataserve.serve(EchoHandler, uds=socket_path) as server:
        assert server.uds is not None
        assert asyncio.run(calls(server.uds)) == [{"a": 1}, True]


def test_socket_file_is_only_its_owners_and_is_removed_on_exit(socket_path: Path) -> None:
    with dataserve.serve(EchoHandler, uds=socket_path):
        mode = os.stat(socket_path).st_mode
        assert stat.S_ISSOCK(mode)
        assert stat.S_IMODE(mode) == 0o600
    assert not socket_path.exists()


def test_stale_socket_file_of_a_dead_server_is_replaced(socket_path: Path) -> None:
    dead = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    dead.bind(str(socket_path))
    dead.close()  # the file stays, and nothing listens on it
    with dataserve.serve(EchoHandler, uds=socket_path) as server, HTTPDataClient(uds=server.uds) as client:
        assert client.send("/r", "fresh") == "fresh"


def test_socket_a_live_server_listens_on_is_refused_and_left_alone(socket_path: Path) -> None:
    with dataserve.serve(EchoHandler, uds=socket_path) as server:
        with (
            pytest.raises(DataServeError, match="a server is already listening there; stop it or choose"),
            dataserve.serve(EchoHandler, uds=socket_path),
        ):
            pass  # pragma: no cover
        with HTTPDataClient(uds=server.uds) as client:
            assert client.send("/r", "still mine") == "still mine"


def test_a_file_that_is_not_a_socket_is_refused(socket_path: Path) -> None:
    socket_path.write_text("my notes")
    with (
        pytest.raises(DataServeError, match="a file that is not a socket is there"),
        dataserve.serve(EchoHandler, uds=socket_path),
    ):
        pass  # pragma: no cover
    assert socket_path.read_text() == "my notes"


def test_a_port_and_a_socket_together_are_refused(socket_path: Path) -> None:
    with (
        pytest.raises(ValueError, match="a port or a Unix socket"),
        dataserve.serve(EchoHandler, port=5001, uds=socket_path),
    ):
        pass  # pragma: no cover


def test_client_of_a_socket_nothing_listens_on_names_it(socket_path: Path) -> None:
    with (
        HTTPDataClient(uds=socket_path) as client,
        pytest.raises(ServerUnavailable, match=f"the Unix socket {socket_path}"),
    ):
        client.send("/r", 1)


SCRIPT = """
import sys
from dataserve import HTTPDataHandler, run_http_server

class Echo(HTTPDataHandler):
    def handle_request(self, resource, payload):
        return payload

run_http_server(None, Echo, uds=sys.argv[1])
"""


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_run_http_server_on_a_socket_prints_it_and_removes_it_when_stopped(
    tmp_path: Path, socket_path: Path, sig: int
) -> None:
    script = tmp_path / "server.py"
    script.write_text(textwrap.dedent(SCRIPT))
    process = subprocess.Popen(
        [sys.executable, str(script), str(socket_path)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        preexec_fn=die_with_test,
    )
    try:
        assert process.stdout is not None
        line = process.stdout.readline()
        assert line == f"dataserve: serving Echo on unix socket {socket_path} (press Ctrl-C to stop)\n"
        wait_for(socket_path.exists, "the server to make its socket")
        with HTTPDataClient(uds=socket_path) as client:
            assert client.send("/r", "over the socket") == "over the socket"
        process.send_signal(sig)
        out, err = process.communicate(timeout=30)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(10)
    assert process.returncode == 0, err
    assert out == "dataserve: stopped\n"
    assert not socket_path.exists()


WORKERS_SCRIPT = """
import os, sys
from dataserve import HTTPDataHandler, run_http_server

class Pid(HTTPDataHandler):
    def handle_request(self, resource, payload):
        return os.getpid()

if __name__ == "__main__":
    run_http_server(None, "workers_on_socket:Pid", uds=sys.argv[1], workers=2)
"""


def test_workers_share_one_unix_socket(tmp_path: Path, socket_path: Path) -> None:
    (tmp_path / "workers_on_socket.py").write_text(textwrap.dedent(WORKERS_SCRIPT))
    process = subprocess.Popen(
        [sys.executable, "workers_on_socket.py", str(socket_path)],
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        preexec_fn=die_with_test,
    )
    try:
        assert process.stdout is not None
        ready, _, _ = select.select([process.stdout], [], [], 30)
        assert ready, "no line from the server in 30 s"
        first_line = process.stdout.readline()  # printed once the socket listens, not when it is made
        assert first_line.startswith("dataserve: serving "), first_line
        assert len(worker_pids(uds=socket_path)) == 2
        process.send_signal(signal.SIGINT)
        _, err = process.communicate(timeout=30)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(10)
    assert process.returncode == 0, err
    assert not socket_path.exists()

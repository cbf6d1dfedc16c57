"""One failure reads the same from every client lane: the socket lane, httpx, the async client and the CLI."""

from __future__ import annotations

import asyncio
import errno
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

import dataserve
from dataserve._errors import transport_failure


@pytest.fixture
def refused_port() -> Iterator[int]:
    """A port bound on 127.0.0.1 and never listened on: every connection to it is refused."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        yield sock.getsockname()[1]


def _refusal(where: str) -> str:
    return (
        f"cannot reach a dataserve server at {where} (connection refused); check that the server is "
        f"running and listening at {where}; the call did not run"
    )


def test_refused_connection_reads_the_same_on_the_socket_lane(refused_port: int) -> None:
    with (
        dataserve.HTTPDataClient(refused_port, "http://127.0.0.1:") as client,
        pytest.raises(dataserve.ServerUnavailable) as caught,
    ):
        client.send("/x")
    assert str(caught.value) == _refusal(f"http://127.0.0.1:{refused_port}")
    assert caught.value.may_have_run is False


def test_refused_connection_reads_the_same_through_httpx(refused_port: int) -> None:
    with (
        dataserve.HTTPDataClient(refused_port, "https://127.0.0.1:") as client,
        pytest.raises(dataserve.ServerUnavailable) as caught,
    ):
        client.send("/x")
    assert str(caught.value) == _refusal(f"https://127.0.0.1:{refused_port}")


def test_refused_connection_reads_the_same_from_the_async_client(refused_port: int) -> None:
    async def call() -> None:
        async with dataserve.AsyncHTTPDataClient(refused_port, "http://127.0.0.1:") as client:
            await client.send("/x")

    with pytest.raises(dataserve.ServerUnavailable) as caught:
        asyncio.run(call())
    assert str(caught.value) == _refusal(f"http://127.0.0.1:{refused_port}")


def test_refused_connection_reads_the_same_in_the_cli(refused_port: int) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "dataserve", "send", "--port", str(refused_port), "/x"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 1
    assert result.stderr.strip() == f"dataserve: error: {_refusal(f'http://localhost:{refused_port}')}"


def test_missing_socket_file_is_named(tmp_path: Path) -> None:
    path = tmp_path / "none.sock"
    with dataserve.HTTPDataClient(uds=path) as client, pytest.raises(dataserve.ServerUnavailable) as caught:
        client.send("/x")
    assert "(no such socket file)" in str(caught.value)


def test_transport_failure_finds_the_os_error_along_the_causes() -> None:
    outer = OSError("All connection attempts failed")  # as anyio wraps a refused connection
    outer.__cause__ = ConnectionRefusedError(errno.ECONNREFUSED, "Connect call failed")
    assert transport_failure(outer) == "connection refused"


def test_transport_failure_names_an_unknown_host() -> None:
    exc = socket.gaierror(socket.EAI_NONAME, "Name or service not known")
    assert transport_failure(exc) == "cannot resolve the host name: Name or service not known"


def test_transport_failure_keeps_other_failures_as_they_are() -> None:
    assert transport_failure(RuntimeError("odd")) == "RuntimeError: odd"

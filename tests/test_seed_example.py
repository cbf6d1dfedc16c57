"""The example of the original documentation, as it is written: a server file and a client file."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from tests.conftest import die_with_test, free_port

pytestmark = pytest.mark.usefixtures("server_lane")

SERVER_FILE = """
from dataserve import HTTPDataHandler, run_http_server

xdata = [1, 2, 3]

class MyDataHandler(HTTPDataHandler):
    def handle_request(self, resource, payload):
        if resource == '/xdata':
            global xdata
            return xdata + payload
        elif resource == '/ydata':
            return 2
        return None

run_http_server(5001, MyDataHandler)
"""

CLIENT_FILE = """
from dataserve import HTTPDataClient

client = HTTPDataClient(port=5001)
ret = client.send('/xdata', [4, 5, 6])
ret = client.send('/ydata')
"""

# Runs the client file unchanged, printing what each send() returned.
CLIENT_HARNESS = """
import runpy, sys
import dataserve

send = dataserve.HTTPDataClient.send

def printing_send(self, resource, payload=None):
    ret = send(self, resource, payload)
    print(repr(ret))
    return ret

dataserve.HTTPDataClient.send = printing_send
runpy.run_path(sys.argv[1])
"""


def write(path: Path, text: str, port: int) -> Path:
    """Write the seed text, on a free port instead of 5001 so that tests never collide."""
    path.write_text(textwrap.dedent(text).replace("5001", str(port)))
    return path


def run_client(harness: Path, client: Path) -> subprocess.CompletedProcess[str]:
    """Run the client file, retrying while the server process is still starting."""
    deadline = time.monotonic() + 30
    while True:
        result = subprocess.run(
            [sys.executable, str(harness), str(client)], capture_output=True, text=True, timeout=60
        )
        if result.returncode == 0 or "ServerUnavailable" not in result.stderr or time.monotonic() > deadline:
            return result
        time.sleep(0.1)


def test_seed_example_runs_in_two_processes(tmp_path: Path) -> None:
    port = free_port()
    server = subprocess.Popen(
        [sys.executable, str(write(tmp_path / "server.py", SERVER_FILE, port))],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        preexec_fn=die_with_test,
    )
    try:
        harness = tmp_path / "harness.py"
        harness.write_text(textwrap.dedent(CLIENT_HARNESS))
        result = run_client(harness, write(tmp_path / "client.py", CLIENT_FILE, port))
        assert result.returncode == 0, result.stderr
        assert result.stdout.splitlines() == ["[1, 2, 3, 4, 5, 6]", "2"]
    finally:
        server.terminate()
        out, err = server.communicate(timeout=30)
    assert server.returncode == 0, err
    assert f"serving MyDataHandler on http://127.0.0.1:{port}" in out

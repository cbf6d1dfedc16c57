"""Call logs: ``dataserve serve --access-log`` prints one line per call, as it answers it.

This runs the command a user runs in a terminal, calls the server three times (one call
is refused with 404, one fails in the handler), stops it with Ctrl-C, and prints what the
server printed on standard output: its first line, a line per call, and its last line.
"""

import contextlib
import re
import signal
import subprocess
import sys
from pathlib import Path

from dataserve import HTTPDataClient, HTTPDataHandler, RemoteError, ResourceNotFound

xdata = [1, 2, 3]


class MyDataHandler(HTTPDataHandler):
    def handle_request(self, resource, payload):
        if resource == "/xdata":
            return xdata + payload
        if resource == "/fail":
            raise ValueError("no such row")
        return None


if __name__ == "__main__":
    command = [sys.executable, "-m", "dataserve", "serve", "observe_access_log:MyDataHandler"]
    server = subprocess.Popen(
        [*command, "--port", "0", "--access-log"],
        cwd=Path(__file__).parent,  # where the handler's module is
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        first_line = server.stdout.readline()
        port = int(re.search(r"127\.0\.0\.1:(\d+)", first_line).group(1))
        with HTTPDataClient(port, "http://127.0.0.1:") as client:
            assert client.send("/xdata", [4, 5]) == [1, 2, 3, 4, 5]
            with contextlib.suppress(ResourceNotFound):
                client.send("/ydata", None)
            with contextlib.suppress(RemoteError):
                client.send("/fail", "x")
    finally:
        server.send_signal(signal.SIGINT)
        out, err = server.communicate(timeout=60)
    print("$ dataserve serve observe_access_log:MyDataHandler --port 0 --access-log")
    print(first_line + out, end="")
    lines = out.splitlines()
    assert [line.split('"')[1] for line in lines if '"' in line] == ["PUT /xdata", "PUT /ydata", "PUT /fail"]
    assert " 404 " in lines[1]
    assert " 500 " in lines[2]
    assert "ValueError: no such row" in err  # the handler's traceback is in the server's log (stderr)

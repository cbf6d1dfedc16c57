"""Calling a server from the shell with ``dataserve send``: JSON, text, bytes and an error."""

import json
import shlex
import subprocess
import sys
import tempfile
from pathlib import Path

from dataserve import HTTPDataHandler, serve

xdata = [1, 2, 3]


class MyDataHandler(HTTPDataHandler):
    def handle_request(self, resource, payload):
        if resource == "/xdata":
            return {"xdata": xdata + payload}
        if resource == "/upper":
            return payload.upper()
        if resource == "/reverse":
            return payload[::-1]
        return None


def dataserve(*args):
    """Run ``dataserve ARGS...`` (here as ``python -m dataserve``) and return its result."""
    command = [sys.executable, "-m", "dataserve", *args]
    result = subprocess.run(command, capture_output=True, text=True, timeout=60)
    print("$", shlex.join(["dataserve", *args]), f"  # exit status {result.returncode}")
    print(result.stdout + result.stderr, end="")
    return result


with serve(MyDataHandler, port=0) as server, tempfile.TemporaryDirectory() as tmp:
    # A VALUE that is valid JSON goes as JSON; a JSON reply is pretty-printed.
    result = dataserve("send", "/xdata", "[4, 5, 6]", "--url", server.url)
    assert result.returncode == 0
    assert json.loads(result.stdout) == {"xdata": [1, 2, 3, 4, 5, 6]}
    assert result.stdout == '{\n  "xdata": [\n    1,\n    2,\n    3,\n    4,\n    5,\n    6\n  ]\n}\n'

    # Any other VALUE goes as text (--text forces it), and a text reply prints as it is.
    result = dataserve("send", "/upper", "hello, dataserve", "--url", server.url)
    assert result.stdout == "HELLO, DATASERVE\n"

    # --file sends a file's bytes; a bytes reply is saved with --output, or only summarised.
    data_file, reply_file = Path(tmp, "data.bin"), Path(tmp, "reply.bin")
    data_file.write_bytes(b"\x00\x01\x02\xff")
    result = dataserve("send", "/reverse", "--file", str(data_file), "--url", server.url)
    assert result.stdout == "<4 bytes; use --output PATH to save them>\n"
    result = dataserve(
        "send", "/reverse", "--file", str(data_file), "--output", str(reply_file), "--url", server.url
    )
    assert reply_file.read_bytes() == b"\xff\x02\x01\x00"
    assert result.stderr == f"wrote 4 bytes to {reply_file}\n"

    # A failed call prints one line on stderr and exits with status 1.
    result = dataserve("send", "/zdata", "--url", server.url)
    assert result.returncode == 1
    assert result.stderr.startswith("dataserve: error: MyDataHandler.handle_request returned None")

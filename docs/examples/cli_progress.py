"""``dataserve send`` in a terminal: the progress bars of a large upload and download, run for real.

The command runs with its stdout and stderr on a pseudo-terminal (the ``pty`` module), as in a
terminal window, and this prints what the window shows once it has finished: each bar is redrawn
in place with a carriage return, and the last drawing stays. The command is printed without the
``--port`` of the free port the server took. Unix only (``pty``).
"""

import os
import pty
import re
import shlex
import subprocess
import sys
import tempfile
from pathlib import Path

from dataserve import HTTPDataHandler, serve

SIZE = 16 * 1024 * 1024
"""Bytes sent and returned: above the 1 MiB from which the bars show."""


class EchoHandler(HTTPDataHandler):
    def handle_request(self, resource, payload):
        if resource == "/echo":
            return payload
        return None


def window(output):
    """The lines a terminal shows for ``output``: a carriage return goes back to the start of the
    line, what follows writes over what was there, and ESC [ K erases the rest of the line."""
    lines, line, column = [], [], 0
    for char in re.findall(r"\x1b\[K|.", output, re.DOTALL):
        if char == "\r":
            column = 0
        elif char == "\n":
            lines.append("".join(line))
            line, column = [], 0
        elif char == "\x1b[K":
            del line[column:]
        else:
            assert char.isprintable(), f"{char!r} is not written as it is"
            line[column : column + 1] = [char]
            column += 1
    assert not line, f"no newline after {''.join(line)!r}"
    return lines


def in_terminal(command, port, folder):
    """Run the shell command ``dataserve ...`` (here ``python -m dataserve ... --port PORT``) on a
    pseudo-terminal, and print it as given with what the terminal shows."""
    args = [sys.executable, "-m", *shlex.split(command), "--port", str(port)]
    controller, terminal = pty.openpty()
    with subprocess.Popen(args, cwd=folder, stdin=terminal, stdout=terminal, stderr=terminal) as process:
        os.close(terminal)  # only the command has it now, so reading ends when the command does
        output = b""
        while True:
            try:
                chunk = os.read(controller, 65536)
            except OSError:  # Linux: EIO once the command has closed the terminal
                break
            if not chunk:
                break
            output += chunk
        os.close(controller)
    assert process.returncode == 0, output
    print("$", command)
    for line in window(output.decode()):
        print(line)


with serve(EchoHandler, port=0) as server, tempfile.TemporaryDirectory() as folder:
    Path(folder, "big.bin").write_bytes(bytes(SIZE))
    in_terminal("dataserve send /echo --file big.bin --output echoed.bin", server.port, folder)
    assert Path(folder, "echoed.bin").stat().st_size == SIZE

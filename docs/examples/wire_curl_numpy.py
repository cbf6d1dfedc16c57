"""Needs the curl program, and NumPy: pip install '.[numpy]' (from the dataserve checkout). The
wire-format page's curl call with an array, run for real: the commands as a terminal shows
them, and what they print.

The server takes a free port; the commands are printed with the page's port, 5001.
"""

import shlex
import shutil
import subprocess
import sys
import tempfile

try:
    import numpy  # noqa: F401
except ImportError:
    sys.exit("this example needs NumPy: pip install numpy")
if shutil.which("curl") is None:
    sys.exit("this example needs the curl program: install it (apt-get install curl, for one)")

from dataserve import HTTPDataHandler, serve

SHOWN = "http://127.0.0.1:5001"


def run(commands, url, folder):
    """Run each shell command in ``folder`` against ``url``, printing it as shown and its output."""
    for command in commands:
        real = command.replace(SHOWN, url)
        if real.startswith("python "):
            real = shlex.quote(sys.executable) + real.removeprefix("python")
        result = subprocess.run(real, shell=True, cwd=folder, capture_output=True, text=True, timeout=60)
        assert result.returncode == 0, f"{command}\n{result.stderr}"
        print("$", command)
        if result.stdout:
            print(result.stdout, end="" if result.stdout.endswith("\n") else "\n")


class ScaleHandler(HTTPDataHandler):
    def handle_request(self, resource, payload):
        if resource == "/scale":
            return payload * 10
        return None


NUMPY = [
    "python -c \"import numpy; numpy.save('a.npy', numpy.arange(6.0).reshape(2, 3))\"",
    f"curl -sS -X PUT --data-binary @a.npy -H 'Content-Type: application/x-npy' -o reply.npy {SHOWN}/scale",
    "python -c \"import numpy; print(numpy.load('reply.npy'))\"",
]

with tempfile.TemporaryDirectory() as folder, serve(ScaleHandler, port=0) as server:
    run(NUMPY, server.url, folder)

"""Needs NumPy, pandas and pyarrow: pip install '.[numpy,pandas]' (from the dataserve checkout).

``dataserve send`` saving and summarising replies of bytes, an array and a table, run for real
as the command-line page shows it, from a folder of its own: the commands without the
``--port`` of the free port the server took, and what they print on stdout and stderr. The
``--8<--`` lines mark the parts of this output the page includes.
"""

import os
import shlex
import subprocess
import sys
import tempfile
from pathlib import Path

try:
    import numpy as np
    import pandas  # noqa: F401
    import pyarrow  # noqa: F401
except ImportError as exc:
    sys.exit(f"this example needs NumPy, pandas and pyarrow ({exc}): pip install numpy pandas pyarrow")

from dataserve import serve

sys.path.insert(0, str(Path(__file__).parent / "wire"))
from tables import TablesHandler  # the wire-format page's handler: /prices and /describe


class RepliesHandler(TablesHandler):
    def handle_request(self, resource, payload):
        if resource == "/image":
            return b"\x89PNG\r\n\x1a\n" + bytes(48_205)  # 48,213 bytes, as an image's might be
        if resource == "/bigarray":
            return np.ones((1000, 1000))
        return super().handle_request(resource, payload)


def dataserve(command, port, folder):
    """Run the shell command ``dataserve ...`` (here ``python -m dataserve ... --port PORT``) and
    print it as given, with what it prints on stdout and stderr."""
    first, _, rest = command.partition(" | ")
    real = f"{shlex.quote(sys.executable)} -m {first} --port {port}" + (f" | {rest}" if rest else "")
    real = real.replace("| python ", f"| {shlex.quote(sys.executable)} ")
    result = subprocess.run(
        real,
        shell=True,
        cwd=folder,
        env=os.environ,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    assert result.returncode == 0, f"{command}\n{result.stdout}"
    print("$", command)
    print(result.stdout, end="")


with serve(RepliesHandler, port=0) as server, tempfile.TemporaryDirectory() as folder:
    print("# --8<-- [start:bytes]")
    dataserve("dataserve send /image --output image.png", server.port, folder)
    dataserve("dataserve send /image --output - | gzip > image.png.gz", server.port, folder)
    print("# --8<-- [end:bytes]")
    assert Path(folder, "image.png").stat().st_size == 48_213

    print("# --8<-- [start:tables]")
    for command in [
        "dataserve send /bigarray",
        "dataserve send /bigarray --output big.npy",
        "dataserve send /prices",
        "dataserve send /prices -o prices.arrows",
        "dataserve send /describe --arrow prices.arrows",
        "dataserve send /prices -o - | python -c "
        '"import sys, pyarrow; print(pyarrow.ipc.open_stream(sys.stdin.buffer.read()).read_pandas())"',
    ]:
        dataserve(command, server.port, folder)
    print("# --8<-- [end:tables]")
    assert np.load(Path(folder, "big.npy")).shape == (1000, 1000)

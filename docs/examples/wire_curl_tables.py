"""Needs the curl program, and pandas and pyarrow: pip install '.[pandas]' (from the dataserve
checkout). The wire-format page's calls with tables, run for real against
``dataserve serve tables:TablesHandler`` (wire/tables.py): the commands as a terminal shows
them, and what they print, curl's and wire/read_prices.py's.

The server takes a free port; the commands are printed with the page's port, 5001.
"""

import os
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
from pathlib import Path

try:
    import pandas  # noqa: F401
    import pyarrow  # noqa: F401
except ImportError as exc:
    sys.exit(f"this example needs pandas and pyarrow ({exc}): pip install pandas pyarrow")
if shutil.which("curl") is None:
    sys.exit("this example needs the curl program: install it (apt-get install curl, for one)")

HERE = Path(__file__).parent / "wire"
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


TABLES = [
    "python -c \"import pyarrow; t = pyarrow.table({'x': [1.5, 2.0, 2.5]}); "
    "w = pyarrow.ipc.new_stream('x.arrows', t.schema); w.write_table(t); w.close()\"",
    "curl -sS -X PUT --data-binary @x.arrows -H 'Content-Type: application/vnd.apache.arrow.stream' "
    f"{SHOWN}/describe",
    "curl -sS -X PUT --data-binary 'oops' -H 'Content-Type: application/vnd.apache.arrow.stream' "
    f"{SHOWN}/describe",
    f"curl -sS -X PUT -o prices.arrows {SHOWN}/prices",
    'python -c "import pyarrow; '
    "print(pyarrow.ipc.open_stream(open('prices.arrows', 'rb')).read_all().schema)\"",
]

with tempfile.TemporaryDirectory() as folder:
    # dataserve serve tables:TablesHandler, from a folder that holds tables.py.
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    url = f"http://127.0.0.1:{port}"
    shutil.copy(HERE / "tables.py", folder)
    (Path(folder) / "read_prices.py").write_text(
        (HERE / "read_prices.py").read_text(encoding="utf-8").replace(SHOWN, url), encoding="utf-8"
    )
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    server = subprocess.Popen(
        [sys.executable, "-m", "dataserve", "serve", "tables:TablesHandler", "--port", str(port)],
        cwd=folder,
        env=env,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert "serving TablesHandler" in server.stdout.readline()  # it answers from now on
        run([*TABLES, "python read_prices.py"], url, folder)
    finally:
        server.send_signal(signal.SIGINT)
        server.communicate(timeout=30)

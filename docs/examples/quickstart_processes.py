"""The quickstart in two processes, as in two terminals: start quickstart/server.py, run
quickstart/client.py, press Ctrl-C; and print what each printed, as the quickstart page shows it.

The two files serve and call port 5001; this runs copies of them on a free port instead (a test
may run this while another server holds 5001) and prints that port as 5001.
"""

import os
import signal
import socket
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).parent / "quickstart"

with socket.socket() as probe:
    probe.bind(("127.0.0.1", 0))
    port = str(probe.getsockname()[1])

env = dict(os.environ, PYTHONUNBUFFERED="1")
with tempfile.TemporaryDirectory() as folder:
    for name in ["server.py", "client.py"]:
        text = (HERE / name).read_text(encoding="utf-8")
        assert "5001" in text
        (Path(folder) / name).write_text(text.replace("5001", port), encoding="utf-8")

    server = subprocess.Popen(
        [sys.executable, "server.py"], cwd=folder, env=env, stdout=subprocess.PIPE, text=True
    )
    try:
        serving = server.stdout.readline()  # once it says where it serves, it answers
        print("$ python server.py")
        print(serving.replace(port, "5001"), end="")
        client = subprocess.run(
            [sys.executable, "client.py"], cwd=folder, env=env, capture_output=True, text=True, timeout=30
        )
        print("$ python client.py")
        print(client.stdout.replace(port, "5001"), end="")
        assert client.returncode == 0, client.stderr
    finally:
        server.send_signal(signal.SIGINT)  # Ctrl-C
        rest, _ = server.communicate(timeout=30)
    print("^C" + rest, end="")
    assert server.returncode == 0

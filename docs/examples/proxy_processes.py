"""The proxy server in two processes, as in two terminals: start proxy/server.py, run
proxy/client.py, press Ctrl-C; and print what each printed, as the proxy page shows it.

The two files serve and call port 5002; this runs copies of them on a free port instead (a test
may run this while another server holds 5002) and prints that port as 5002.
"""

import os
import signal
import socket
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).parent / "proxy"

with socket.socket() as probe:
    probe.bind(("127.0.0.1", 0))
    port = str(probe.getsockname()[1])

env = dict(os.environ, PYTHONUNBUFFERED="1")
with tempfile.TemporaryDirectory() as folder:
    for name in ["server.py", "client.py"]:
        text = (HERE / name).read_text(encoding="utf-8")
        assert "5002" in text
        (Path(folder) / name).write_text(text.replace("5002", port), encoding="utf-8")

    server = subprocess.Popen(
        [sys.executable, "server.py"], cwd=folder, env=env, stdout=subprocess.PIPE, text=True
    )
    try:
        serving = server.stdout.readline()  # once it says where it serves, it answers
        print("$ python server.py")
        print(serving.replace(port, "5002"), end="")
        client = subprocess.run(
            [sys.executable, "client.py"], cwd=folder, env=env, capture_output=True, text=True, timeout=30
        )
        print("$ python client.py")
        print(client.stdout.replace(port, "5002"), end="")
        assert client.returncode == 0, client.stderr
    finally:
        server.send_signal(signal.SIGINT)  # Ctrl-C
        rest, _ = server.communicate(timeout=30)
    print("^C" + rest, end="")
    assert server.returncode == 0

"""Needs trustme, which makes throwaway certificates: pip install trustme (or '.[test]').

The dataserve command, run for real as the command-line page shows it: ``dataserve serve``
from a folder that holds cli/myhandlers.py (and, to serve HTTPS, a throwaway certificate),
stopped with Ctrl-C, and ``dataserve send`` to it.

The servers take free ports and the commands are printed without them: what they print shows
5001 (5002 for the port nothing listens on) in their place, as the page's commands would. The
``--8<--`` lines mark the parts of this output the page includes.
"""

import os
import secrets
import shlex
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path

import httpx

try:
    import trustme
except ImportError:
    sys.exit("this example needs trustme, which makes throwaway certificates: pip install trustme")

HERE = Path(__file__).parent / "cli"
ENV = {name: value for name, value in os.environ.items() if name != "DATASERVE_TOKEN"}
ENV["PYTHONUNBUFFERED"] = "1"


def free_port():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def part(name):
    print(f"# --8<-- [start:{name}]")


def end(name):
    print(f"# --8<-- [end:{name}]")


@contextmanager
def serving(folder, *args, shown=5001, ctrl_c=True, env=ENV, cafile=None):
    """Run ``dataserve serve ARGS --port P``, print it as run without ``--port``, until the block ends.

    ``cafile`` is the authority of the server's certificate, when it serves HTTPS.
    """
    port = free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "dataserve", "serve", *args, "--port", str(port)],
        cwd=folder,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    lines = []
    for line in server.stdout:  # up to the line that says it serves: it answers from then on
        lines.append(line.replace(str(port), str(shown)))
        if "(press Ctrl-C to stop)" in line:
            break
    scheme, verify = (
        ("http", True) if cafile is None else ("https", ssl.create_default_context(cafile=cafile))
    )
    while True:  # and Ctrl-C only once it answers (a Ctrl-C as it starts up is another story)
        try:
            health = httpx.get(f"{scheme}://127.0.0.1:{port}/healthz", trust_env=False, verify=verify)
            if health.status_code == 200:
                break
        except httpx.TransportError:
            time.sleep(0.05)
    try:
        if ctrl_c:
            print("$", shlex.join(["dataserve", "serve", *args]))
            print("".join(lines), end="")
        yield port
    finally:
        server.send_signal(signal.SIGINT)  # Ctrl-C
        rest, _ = server.communicate(timeout=30)
    if ctrl_c:
        print("^C" + rest, end="")
    assert server.returncode == 0, rest


def dataserve(folder, *args, port, shown=5001):
    """Run ``dataserve ARGS --port PORT`` and print it as run without ``--port``."""
    result = subprocess.run(
        [sys.executable, "-m", "dataserve", *args, "--port", str(port)],
        cwd=folder,
        env=ENV,
        capture_output=True,
        text=True,
        timeout=60,
    )
    print("$", shlex.join(["dataserve", *args, *(["--port", str(shown)] if shown != 5001 else [])]))
    print((result.stdout + result.stderr).replace(str(port), str(shown)), end="")
    return result


with tempfile.TemporaryDirectory() as folder:
    shutil.copy(HERE / "myhandlers.py", folder)

    part("serve")
    with serving(folder, "myhandlers:MyDataHandler"):
        pass
    end("serve")

    part("public")
    with serving(folder, "myhandlers:MyDataHandler", "--host", "0.0.0.0"):
        pass
    end("public")

    # HTTPS with a token. The certificate is a throwaway one, for 127.0.0.1 and localhost: in
    # real life it comes from your organisation's authority, or from a public one.
    authority = trustme.CA()
    authority.cert_pem.write_to_path(str(Path(folder, "ca.pem")))
    certificate = authority.issue_cert("127.0.0.1", "localhost")
    Path(folder, "server.pem").write_bytes(b"".join(pem.bytes() for pem in certificate.cert_chain_pems))
    certificate.private_key_pem.write_to_path(str(Path(folder, "server-key.pem")))
    part("https")
    print("$ export DATASERVE_TOKEN=\"$(python -c 'import secrets; print(secrets.token_urlsafe(32))')\"")
    token = secrets.token_urlsafe(32)  # what that line puts in $DATASERVE_TOKEN
    tls = ["--ssl-certfile", "server.pem", "--ssl-keyfile", "server-key.pem"]
    cafile = str(Path(folder, "ca.pem"))
    with serving(
        folder, "myhandlers:MyDataHandler", *tls, env={**ENV, "DATASERVE_TOKEN": token}, cafile=cafile
    ) as port:
        context = ssl.create_default_context(cafile=cafile)
        url = f"https://127.0.0.1:{port}/ydata"
        assert httpx.put(url, verify=context, trust_env=False).status_code == 401  # no token: refused
        bearer = {"Authorization": f"Bearer {token}"}
        assert httpx.put(url, verify=context, trust_env=False, headers=bearer).json() == 2
    end("https")

    part("bad-path")
    for path in ["myhandler:MyDataHandler", "myhandlers:MyDataHandlr", "myhandlers"]:
        result = dataserve(folder, "serve", path, port=free_port())
        assert result.returncode == 1
    end("bad-path")

    with serving(folder, "myhandlers:MyDataHandler", ctrl_c=False) as port:
        part("send")
        assert dataserve(folder, "send", "/xdata", "[4, 5, 6]", port=port).returncode == 0
        assert dataserve(folder, "send", "/ydata", port=port).returncode == 0
        end("send")

        part("failed")
        assert dataserve(folder, "send", "/zdata", port=port).returncode == 1
        assert dataserve(folder, "send", "/ydata", port=free_port(), shown=5002).returncode == 1
        end("failed")

    Path(folder, "big.bin").write_bytes(bytes(2_000))
    part("refused")
    with serving(folder, "myhandlers:MyDataHandler", "--token", "s3cret", ctrl_c=False) as port:
        assert dataserve(folder, "send", "/ydata", port=port).returncode == 1
    with serving(folder, "myhandlers:MyDataHandler", "--max-body-size", "1000", ctrl_c=False) as port:
        assert dataserve(folder, "send", "/upload", "--file", "big.bin", port=port).returncode == 1
    end("refused")

"""Needs trustme, which makes throwaway certificates: pip install trustme (or '.[test]').

``dataserve send`` to an HTTPS server that needs a token: --cafile, --insecure, $DATASERVE_TOKEN."""

import os
import secrets
import shlex
import subprocess
import sys
import tempfile
from pathlib import Path

try:
    import trustme
except ImportError:
    sys.exit("this example needs trustme, which makes throwaway certificates: pip install trustme")

from dataserve import HTTPDataHandler, serve


class AccountHandler(HTTPDataHandler):
    def handle_request(self, resource, payload):
        if resource == "/balance":
            return {"account": payload, "balance": 1250}
        return None


def dataserve(*args, token=None):
    """Run ``dataserve ARGS...`` (here as ``python -m dataserve``), with $DATASERVE_TOKEN set to ``token``."""
    env = {name: value for name, value in os.environ.items() if name != "DATASERVE_TOKEN"}
    if token is not None:
        env["DATASERVE_TOKEN"] = token
    command = [sys.executable, "-m", "dataserve", *args]
    result = subprocess.run(command, capture_output=True, text=True, env=env, timeout=60)
    shown = shlex.join(["dataserve", *args])
    print("$", "DATASERVE_TOKEN=... " + shown if token else shown, f"  # exit status {result.returncode}")
    print(result.stdout + result.stderr, end="")
    return result


os.environ.pop("DATASERVE_TOKEN", None)  # Only the token given below counts.
token = secrets.token_urlsafe(32)

# A throwaway authority and certificate. In real life the certificate comes from your
# organisation's authority, or from a public one such as Let's Encrypt.
authority = trustme.CA()
certificate = authority.issue_cert("127.0.0.1", "localhost")

with tempfile.TemporaryDirectory() as tmp:
    ca_path, cert_path, key_path = Path(tmp, "ca.pem"), Path(tmp, "server.pem"), Path(tmp, "server-key.pem")
    authority.cert_pem.write_to_path(str(ca_path))
    cert_path.write_bytes(b"".join(pem.bytes() for pem in certificate.cert_chain_pems))
    certificate.private_key_pem.write_to_path(str(key_path))

    with serve(AccountHandler, port=0, token=token, ssl_certfile=cert_path, ssl_keyfile=key_path) as server:
        # The token from $DATASERVE_TOKEN, the certificate checked against ca.pem.
        result = dataserve(
            "send", "/balance", "alice", "--url", server.url, "--cafile", str(ca_path), token=token
        )
        assert result.returncode == 0
        assert result.stdout == '{\n  "account": "alice",\n  "balance": 1250\n}\n'

        # Without the token: one line on stderr, and status 1.
        result = dataserve("send", "/balance", "alice", "--url", server.url, "--cafile", str(ca_path))
        assert result.returncode == 1
        assert result.stderr.startswith("dataserve: error: this server needs a token")

        # Without --cafile the certificate is checked against the public authorities, and fails.
        result = dataserve("send", "/balance", "alice", "--url", server.url, token=token)
        assert result.returncode == 1
        assert "CERTIFICATE_VERIFY_FAILED" in result.stderr

        # --insecure skips the check: only to try things out.
        result = dataserve("send", "/balance", "alice", "--url", server.url, "--insecure", token=token)
        assert result.returncode == 0

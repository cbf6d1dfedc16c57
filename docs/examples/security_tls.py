"""Needs trustme, which makes throwaway certificates: pip install trustme (or '.[test]').

HTTPS: a server with a certificate and a token, and a client that verifies the certificate."""

import os
import secrets
import sys
import tempfile
from pathlib import Path

try:
    import trustme
except ImportError:
    sys.exit("this example needs trustme, which makes throwaway certificates: pip install trustme")

from dataserve import HTTPDataClient, HTTPDataHandler, ServerUnavailable, serve


class AccountHandler(HTTPDataHandler):
    def handle_request(self, resource, payload):
        if resource == "/balance":
            return {"account": payload, "balance": 1250}
        return None


os.environ.pop("DATASERVE_TOKEN", None)  # Only the token given below counts.
token = secrets.token_urlsafe(32)

# A throwaway certificate authority (CA), and a certificate it signs for this machine.
# In real life the certificate comes from your organisation's CA, or from a public one such
# as Let's Encrypt, and only the server's key file must be kept secret.
authority = trustme.CA()
certificate = authority.issue_cert("127.0.0.1", "localhost")

with tempfile.TemporaryDirectory() as tmp:
    ca_path = Path(tmp, "ca.pem")  # what clients trust
    cert_path = Path(tmp, "server.pem")  # the server's certificate (chain)
    key_path = Path(tmp, "server-key.pem")  # the server's private key
    authority.cert_pem.write_to_path(str(ca_path))
    cert_path.write_bytes(b"".join(pem.bytes() for pem in certificate.cert_chain_pems))
    certificate.private_key_pem.write_to_path(str(key_path))

    with serve(AccountHandler, port=0, token=token, ssl_certfile=cert_path, ssl_keyfile=key_path) as server:
        print("serving on", server.url)
        assert server.url.startswith("https://")

        # verify= names the CA to check the server's certificate against.
        with HTTPDataClient(address=server.url, verify=ca_path, token=token) as client:
            reply = client.send("/balance", "alice")
            print("over HTTPS:", reply)
            assert reply == {"account": "alice", "balance": 1250}

        # By default a client trusts only the system's authorities, which did not sign this one.
        with HTTPDataClient(address=server.url, token=token) as client:
            try:
                client.send("/balance", "alice")
            except ServerUnavailable as exc:
                print("ServerUnavailable:", exc)
                refused = exc
            else:
                raise AssertionError("expected ServerUnavailable")
            assert "CERTIFICATE_VERIFY_FAILED" in str(refused)

"""The calls a server refuses before its handler runs: no token (401), a body too large (413)."""

import os

from dataserve import AuthenticationError, HTTPDataClient, HTTPDataHandler, PayloadError, serve


class UploadHandler(HTTPDataHandler):
    def handle_request(self, resource, payload):
        if resource == "/upload":
            return len(payload)
        return None


os.environ.pop("DATASERVE_TOKEN", None)  # Only the tokens given below count.
token = "example-token-use-a-long-random-one"

# This server takes bodies of at most 1 KiB (the default is 1 GiB).
with serve(UploadHandler, port=0, token=token, max_body_size=1024) as server:
    # 401: the call carries no token, or another one.
    with HTTPDataClient(address=server.url) as client:
        try:
            client.send("/upload", b"\x00" * 100)
        except AuthenticationError as exc:
            print("AuthenticationError:", exc)
        else:
            raise AssertionError("expected AuthenticationError")

    with HTTPDataClient(address=server.url, token=token) as client:
        assert client.send("/upload", b"\x00" * 1024) == 1024

        # 413: the body is over the server's max_body_size; the rest of it is never read.
        try:
            client.send("/upload", b"\x00" * 2048)
        except PayloadError as exc:
            print("PayloadError:", exc)
            too_large = exc
        else:
            raise AssertionError("expected PayloadError")
        assert too_large.status == 413

        # The server goes on serving.
        assert client.send("/upload", b"\x00" * 10) == 10

"""Timeouts: the client's, one call's own, and the wait to connect."""

import time

from dataserve import HTTPDataClient, HTTPDataHandler, ServerUnavailable, serve


class ReportHandler(HTTPDataHandler):
    def handle_request(self, resource, payload):
        if resource == "/report":
            time.sleep(payload)  # a computation that takes `payload` seconds
            return "report ready"
        return None


with serve(ReportHandler, port=0, max_concurrency=2) as server:
    # Each call waits at most 0.5 s to send its payload and then for its reply, and at
    # most 5 s for the server to accept its connection.
    with HTTPDataClient(address=server.url, timeout=0.5, connect_timeout=5) as client:
        assert client.send("/report", 0) == "report ready"

        # A call that takes longer raises ServerUnavailable; the handler runs on regardless.
        try:
            client.send("/report", 1.5)
        except ServerUnavailable as exc:
            print("ServerUnavailable:", exc)
            late = exc
        else:
            raise AssertionError("expected ServerUnavailable")
        assert "no reply" in str(late)

        # One call that is known to be slow gets its own timeouts; the others keep the client's.
        reply = client.send("/report", 1, timeout=30, connect_timeout=2)
        print("with timeout=30:", reply)
        assert reply == "report ready"

    # timeout=None waits for ever for the reply (the wait to connect is still connect_timeout).
    with HTTPDataClient(address=server.url, timeout=None) as client:
        assert client.send("/report", 1) == "report ready"
        print("with timeout=None:", "report ready")

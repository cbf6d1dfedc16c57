"""What a client takes from a server at most: a reply's size, and a whole call's time."""

import time

from dataserve import HTTPDataClient, HTTPDataHandler, PayloadError, ServerUnavailable, serve


class Archive(HTTPDataHandler):
    def handle_request(self, resource, payload):
        if resource == "/blob":
            return bytes(payload)  # payload bytes of zeros
        if resource == "/slow":
            time.sleep(payload)
            return "done"
        return None


with serve(Archive, port=0, max_concurrency=2) as server:
    # A reply over max_reply_size is refused as its head arrives, before its body is read.
    with HTTPDataClient(address=server.url, max_reply_size=1 << 20) as client:
        assert len(client.send("/blob", 1000)) == 1000
        try:
            client.send("/blob", 10 << 20)
        except PayloadError as exc:
            print("PayloadError:", exc)
        else:
            raise AssertionError("expected PayloadError")

    # A deadline bounds the whole call, however the reply comes; timeout bounds each wait.
    with HTTPDataClient(address=server.url, timeout=60, deadline=1.0) as client:
        began = time.monotonic()
        try:
            client.send("/slow", 3)
        except ServerUnavailable as exc:
            assert 1.0 <= time.monotonic() - began < 3
            print("ServerUnavailable at the deadline:", exc)
        else:
            raise AssertionError("expected ServerUnavailable")
        # One call can have a deadline of its own.
        print(client.send("/slow", 1.5, deadline=10))

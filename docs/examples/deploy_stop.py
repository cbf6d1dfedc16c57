"""A stop that always stops: past the grace period, calls still running are cut with 503."""

import threading
import time

from dataserve import HTTPDataClient, HTTPDataHandler, ServerUnavailable, serve


class Model(HTTPDataHandler):
    def handle_request(self, resource, payload):
        if resource == "/train":
            time.sleep(payload)  # a call that takes far longer than the grace period
            return "trained"
        return None

    def teardown(self):
        print("teardown")  # never while handle_request still runs


outcome = []


def train(url):
    with HTTPDataClient(address=url) as client:
        try:
            outcome.append(client.send("/train", 3600))
        except ServerUnavailable as exc:
            outcome.append(exc)


began = time.monotonic()
with serve(Model, port=0, shutdown_timeout=1) as server:
    caller = threading.Thread(target=train, args=(server.url,))
    caller.start()
    time.sleep(0.5)  # the call is in the handler now
stopped_after = time.monotonic() - began
assert stopped_after < 5, stopped_after  # the grace period, and a second for teardown
print("stopped in less than 5 s")
caller.join()
[cut] = outcome
print("ServerUnavailable:", cut)
assert isinstance(cut, ServerUnavailable)
assert "may have run" in str(cut)

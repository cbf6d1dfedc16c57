"""Needs NumPy: pip install '.[numpy]' (from the dataserve checkout).

Limits: a server that takes less than the defaults, and what its callers hear past each."""

import socket
import sys
import time
from concurrent.futures import ThreadPoolExecutor

try:
    import numpy as np
except ImportError:
    sys.exit("this example needs NumPy: pip install numpy (or '.[numpy]' from the dataserve checkout)")

from dataserve import HTTPDataClient, HTTPDataHandler, Limits, PayloadError, ServerUnavailable, serve


class Model(HTTPDataHandler):
    def handle_request(self, resource, payload):
        if resource == "/predict":
            time.sleep(0.5)
            return payload
        return None


limits = Limits(max_json_size=1_000, max_queue=2, head_timeout=1.0)
with serve(Model, port=0, limits=limits) as server, HTTPDataClient(address=server.url) as client:
    # JSON over max_json_size is refused before its body is read: send large data as bytes or arrays.
    try:
        client.send("/predict", list(range(1_000)))
    except PayloadError as exc:
        print("PayloadError:", exc)
    else:
        raise AssertionError("expected PayloadError")
    array = np.arange(1_000)
    assert np.array_equal(client.send("/predict", array), array)

    # Past max_queue waiting calls, a call is refused at once with 503 and Retry-After.
    def call(n):
        with HTTPDataClient(address=server.url) as caller:
            try:
                return caller.send("/predict", n)
            except ServerUnavailable as exc:
                return exc

    with ThreadPoolExecutor(5) as callers:
        replies = list(callers.map(call, range(5)))
    refused = [reply for reply in replies if isinstance(reply, ServerUnavailable)]
    # At most 1 running and 2 waiting: 2 refused, as a rule.
    assert refused
    assert len(refused) < 5
    print("five callers at once: some answered, the others refused")
    print("ServerUnavailable:", refused[0])

    # A connection that sends no whole request head within head_timeout is closed with 408.
    with socket.create_connection((server.host, server.port)) as idle:
        idle.sendall(b"PUT /predict HTTP/1.1\r\nHost: example\r\n")  # and then nothing
        idle.settimeout(10)
        answer = idle.recv(4096).split(b"\r\n")[0]
        print("a head that never ends:", answer.decode())
        assert answer == b"HTTP/1.1 408 Request Timeout"

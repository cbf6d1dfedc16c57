"""Pass an instance when the handler needs arguments: the server uses that very object."""

import threading

from dataserve import HTTPDataClient, HTTPDataHandler, serve


class ScaleHandler(HTTPDataHandler):
    def __init__(self, factor):
        self.factor = factor
        self.calls = 0
        self.lock = threading.Lock()

    def handle_request(self, resource, payload):
        if resource == "/scale":
            with self.lock:
                self.calls += 1
            return [x * self.factor for x in payload]
        return None


handler = ScaleHandler(factor=10)

with serve(handler, port=0) as server, HTTPDataClient(server.port, "http://127.0.0.1:") as client:
    reply = client.send("/scale", [1, 2, 3])
    print("/scale ->", reply)
    assert reply == [10, 20, 30]
    assert client.send("/scale", [0.5]) == [5.0]

print("calls seen by our instance:", handler.calls)
assert handler.calls == 2

"""A handler whose setup() fails: a call that waits for it gets 503 (ServerUnavailable), and
serve() raises DataServeError instead of serving."""

import socket
import tempfile
import threading
import time
from pathlib import Path

from dataserve import DataServeError, HTTPDataClient, HTTPDataHandler, ServerUnavailable, serve

folder = tempfile.TemporaryDirectory()
MODEL = Path(folder.name) / "model.bin"  # which is not there


class ModelHandler(HTTPDataHandler):
    def setup(self):
        time.sleep(0.5)  # the first part of a long load goes well
        self.model = MODEL.read_bytes()  # FileNotFoundError

    def handle_request(self, resource, payload):
        if resource == "/predict":
            return len(self.model)
        return None


def call_while_loading(port, failures):
    """Call the server once it answers its health check, while setup() runs."""
    with HTTPDataClient(port, "http://127.0.0.1:") as client:
        while True:
            try:
                if not client.ping():  # up, but not ready: setup() runs
                    break
            except ServerUnavailable:  # not listening yet
                time.sleep(0.01)
        try:
            client.send("/predict", [1.0, 2.0])  # waits for setup() to finish
        except ServerUnavailable as exc:
            failures.append(exc)


with socket.socket() as probe:  # a free port, to call before serve() returns
    probe.bind(("127.0.0.1", 0))
    port = probe.getsockname()[1]

print("The server logs the traceback of setup()'s failure to stderr.")
failures = []
caller = threading.Thread(target=call_while_loading, args=(port, failures), daemon=True)
caller.start()
try:
    with serve(ModelHandler, port=port):
        raise AssertionError("serve() should not return: setup() failed")
except DataServeError as exc:
    caller.join(30)
    print("ServerUnavailable:", failures[0])
    print("DataServeError:", exc)
    failed = exc
assert type(failed) is DataServeError
assert not failures[0].may_have_run  # the handler never saw the call: safe to send again
folder.cleanup()

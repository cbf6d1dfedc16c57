"""setup() loads the data once as the server starts; teardown() releases it as the server stops."""

import json
import tempfile
from pathlib import Path

from dataserve import HTTPDataClient, HTTPDataHandler, serve

data_file = Path(tempfile.mkdtemp()) / "prices.json"
data_file.write_text(json.dumps({"apple": 0.5, "pear": 0.75}))


class PriceHandler(HTTPDataHandler):
    def __init__(self, path):
        self.path = path
        self.prices = None
        self.log = []

    def setup(self):
        # Runs once, in the server process, as the server starts. Meanwhile GET /healthz
        # answers 503, and calls wait until it has finished.
        self.prices = json.loads(self.path.read_text())
        self.log.append("setup")

    def teardown(self):
        # Runs once, as the server stops, if setup() finished.
        self.prices = None
        self.log.append("teardown")

    def handle_request(self, resource, payload):
        if resource == "/price":
            return self.prices.get(payload)
        return None


handler = PriceHandler(data_file)
with serve(handler, port=0) as server:
    # serve() returns once setup() has finished.
    assert handler.log == ["setup"]
    with HTTPDataClient(server.port, "http://127.0.0.1:") as client:
        print("ready:", client.ping())
        print("price of a pear:", client.send("/price", "pear"))
        assert client.send("/price", "pear") == 0.75

print("hooks that ran:", handler.log)
assert handler.log == ["setup", "teardown"]

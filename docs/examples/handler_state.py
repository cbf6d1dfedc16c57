"""A handler that loads its data once and answers many callers at the same time."""

import threading

from dataserve import HTTPDataClient, HTTPDataHandler, serve


class TableHandler(HTTPDataHandler):
    def __init__(self):
        # Runs once, when the server starts: load the model or the data set here.
        self.table = {f"key{i}": i * i for i in range(100_000)}
        self.lookups = 0
        self.lock = threading.Lock()

    def handle_request(self, resource, payload):
        if resource == "/lookup":
            # With max_concurrency above 1, a plain handle_request runs in several
            # worker threads at a time: guard what it changes with a lock.
            with self.lock:
                self.lookups += 1
            return [self.table.get(key) for key in payload]
        if resource == "/lookups":
            return self.lookups
        return None


def caller(port, results):
    # Each thread uses its own client.
    with HTTPDataClient(port, "http://127.0.0.1:") as client:
        for _ in range(25):
            results.append(client.send("/lookup", ["key3", "key12", "nokey"]))


with serve(TableHandler, port=0, max_concurrency=8) as server:
    results = []
    threads = [threading.Thread(target=caller, args=(server.port, results)) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    print("one reply:", results[0])
    assert results == [[9, 144, None]] * 200

    with HTTPDataClient(server.port, "http://127.0.0.1:") as client:
        lookups = client.send("/lookups")
    print("lookups counted by the one handler instance:", lookups)
    assert lookups == 200

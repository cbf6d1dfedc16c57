"""Plain handlers run one call at a time unless max_concurrency lets more run at once."""

import threading
import time
from concurrent.futures import ThreadPoolExecutor

from dataserve import HTTPDataClient, HTTPDataHandler, serve


class SlowLookup(HTTPDataHandler):
    def __init__(self):
        self.lock = threading.Lock()  # Needed only with max_concurrency above 1.
        self.running = 0
        self.most_at_once = 0

    def handle_request(self, resource, payload):
        if resource == "/lookup":
            with self.lock:
                self.running += 1
                self.most_at_once = max(self.most_at_once, self.running)
            time.sleep(0.2)  # Stands for a slow disk or network read.
            with self.lock:
                self.running -= 1
            return payload * 2
        return None


def call_four_at_once(port):
    def call(number):
        with HTTPDataClient(port, "http://127.0.0.1:") as client:
            return client.send("/lookup", number)

    with ThreadPoolExecutor(4) as pool:
        return list(pool.map(call, range(4)))


for max_concurrency in (1, 4):
    handler = SlowLookup()
    with serve(handler, port=0, max_concurrency=max_concurrency) as server:
        replies = call_four_at_once(server.port)
    print(f"max_concurrency={max_concurrency}: replies {replies}, at most {handler.most_at_once} at once")
    assert replies == [0, 2, 4, 6]
    assert handler.most_at_once <= max_concurrency

assert handler.most_at_once > 1  # With 4, the slow calls overlapped.

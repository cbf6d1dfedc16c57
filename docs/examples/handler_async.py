"""An ``async def`` handler runs on the server's event loop and can await other work."""

import asyncio
import threading
import time

from dataserve import HTTPDataClient, HTTPDataHandler, serve


class AsyncHandler(HTTPDataHandler):
    async def handle_request(self, resource, payload):
        if resource == "/square":
            # Stands for awaiting a database, another service or a model server.
            # Never block here (time.sleep, heavy computation): that stops every call.
            await asyncio.sleep(0.5)
            return payload * payload
        return None


def caller(port, number, results):
    with HTTPDataClient(port, "http://127.0.0.1:") as client:
        results[number] = client.send("/square", number)


with serve(AsyncHandler, port=0) as server:
    results = {}
    threads = [threading.Thread(target=caller, args=(server.port, n, results)) for n in range(10)]
    start = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    elapsed = time.perf_counter() - start

    # Ten calls that each wait half a second overlap on the event loop.
    print(f"10 calls in {elapsed:.2f} s:", dict(sorted(results.items())))
    assert results == {n: n * n for n in range(10)}
    assert elapsed < 5  # one after the other they would take 5 s

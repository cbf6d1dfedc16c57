"""A server on a Unix socket, for the processes of one machine, and both clients calling it."""

import asyncio
import os
import stat
import tempfile

from dataserve import AsyncHTTPDataClient, HTTPDataClient, HTTPDataHandler, serve


class Lookup(HTTPDataHandler):
    def __init__(self):
        self.table = {"answer": 42}

    def handle_request(self, resource, payload):
        if resource == "/lookup":
            return self.table.get(payload, "unknown")
        return None


async def ask(path):
    async with AsyncHTTPDataClient(uds=path) as client:
        return await client.send("/lookup", "answer")


with tempfile.TemporaryDirectory() as directory:
    path = os.path.join(directory, "lookup.sock")
    with serve(Lookup, uds=path) as server:
        mode = stat.S_IMODE(os.stat(path).st_mode)
        print(f"serving on {server.uds}, mode {mode:o}")
        assert mode == 0o600  # only this user's processes may call

        with HTTPDataClient(uds=path) as client:
            print("send:", client.send("/lookup", "answer"))
            assert client.send("/lookup", "answer") == 42
            assert client.send_many([("/lookup", "answer"), ("/lookup", "question")]) == [42, "unknown"]
        assert asyncio.run(ask(path)) == 42
    assert not os.path.exists(path)  # removed when the server stopped

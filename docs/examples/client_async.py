"""The async client: one AsyncHTTPDataClient, many calls at once, each with its own reply."""

import asyncio

from dataserve import AsyncHTTPDataClient, HTTPDataHandler, ResourceNotFound, serve


class SquareHandler(HTTPDataHandler):
    async def handle_request(self, resource, payload):
        if resource == "/echo":
            return payload
        if resource == "/square":
            # Stands for awaiting a database: while one call awaits, the server runs the others.
            await asyncio.sleep(0.2)
            return payload * payload
        return None


async def main(port):
    async with AsyncHTTPDataClient(port, "http://127.0.0.1:") as client:
        assert await client.ping() is True
        assert await client.send("/echo", {"rows": [1, 2]}) == {"rows": [1, 2]}
        assert await client.send("/echo", b"\x00\xff") == b"\x00\xff"

        # Ten calls at once on the one client: each reply comes back to its own call.
        squares = await asyncio.gather(*(client.send("/square", n) for n in range(10)))
        print("squares:", squares)
        assert squares == [n * n for n in range(10)]

        # The same exceptions as HTTPDataClient.
        try:
            await client.send("/cube", 3)
        except ResourceNotFound as exc:
            print("ResourceNotFound:", exc)

        # With return_exceptions=True, one failed call does not hide the others' replies.
        first, failed, last = await asyncio.gather(
            client.send("/echo", "a"),
            client.send("/cube", 3),
            client.send("/echo", "b"),
            return_exceptions=True,
        )
        print("replies:", first, type(failed).__name__, last)
        assert first == "a"
        assert isinstance(failed, ResourceNotFound)
        assert last == "b"
    # The client is closed here, as after `await client.aclose()`.


with serve(SquareHandler, port=0) as server:
    asyncio.run(main(server.port))

"""Calling a server: the payload types, the resource, ping, and the address forms."""

import contextlib
import time

from dataserve import HTTPDataClient, HTTPDataHandler, ServerUnavailable, serve


class EchoHandler(HTTPDataHandler):
    def handle_request(self, resource, payload):
        if resource == "/echo":
            return payload
        if resource == "/type":
            return type(payload).__name__
        return None


def wait_for_server(client, timeout=60.0):
    """Return once the server answers; for a server that is still loading its data."""
    deadline = time.monotonic() + timeout
    while True:
        with contextlib.suppress(ServerUnavailable):
            if client.ping():
                return
        if time.monotonic() > deadline:
            raise TimeoutError(f"no dataserve server at {client.base_url} after {timeout} s")
        time.sleep(0.2)


with serve(EchoHandler, port=0) as server, HTTPDataClient(server.port, "http://127.0.0.1:") as client:
    wait_for_server(client)
    assert client.ping() is True

    assert client.send("/echo", "text") == "text"
    assert client.send("/echo", {"rows": [1, 2], "name": "x"}) == {"rows": [1, 2], "name": "x"}
    assert client.send("/echo", b"\x00\xff") == b"\x00\xff"
    assert client.send("/echo", bytearray(b"abc")) == b"abc"  # bytes-like comes back as bytes

    # No payload: the handler gets None.
    assert client.send("/type") == "NoneType"

    # The leading "/" of the resource is optional.
    assert client.send("echo", 42) == 42
    print("calls answered by", client.base_url)

# Where a client sends its calls. Making a client does not connect: the first call does.
addresses = [
    (HTTPDataClient(5001), "http://localhost:5001"),
    (HTTPDataClient(5001, "http://10.0.0.2:"), "http://10.0.0.2:5001"),
    (HTTPDataClient(5001, "http://10.0.0.2"), "http://10.0.0.2:5001"),
    (HTTPDataClient(address="http://10.0.0.2:8000/data"), "http://10.0.0.2:8000/data"),
    (HTTPDataClient(5001, "http://10.0.0.2:8000/data"), "http://10.0.0.2:8000/data"),
]
for client, base_url in addresses:
    print(f"{client!r} sends /xdata to {client.base_url}/xdata")
    assert client.base_url == base_url
    client.close()

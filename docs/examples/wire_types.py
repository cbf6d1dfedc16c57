"""Which Python values travel, and what JSON changes on the way."""

import math

from dataserve import HTTPDataClient, HTTPDataHandler, PayloadError, serve


class EchoHandler(HTTPDataHandler):
    def handle_request(self, resource, payload):
        if resource == "/echo":
            return payload
        if resource == "/type":
            return type(payload).__name__
        return None


with serve(EchoHandler, port=0) as server, HTTPDataClient(server.port, "http://127.0.0.1:") as client:
    # The type of the payload is what the handler gets, and the type of the reply is what
    # the caller gets.
    assert client.send("/type", "text") == "str"
    assert client.send("/type", "") == "str"
    assert client.send("/type", [1, 2]) == "list"
    assert client.send("/type", b"\x00") == "bytes"
    assert client.send("/type", memoryview(b"\x00")) == "bytes"
    assert client.send("/type", None) == "NoneType"

    # A tuple comes back as a list.
    assert client.send("/echo", (1, "a", (2, 3))) == [1, "a", [2, 3]]

    # Dict keys that are int, float, bool or None come back as strings.
    reply = client.send("/echo", {1: "a", 2.5: "b", False: "c", None: "d"})
    print("dict keys ->", reply)
    assert reply == {"1": "a", "2.5": "b", "false": "c", "null": "d"}

    # bool stays bool, and an int of any size stays exact.
    assert client.send("/echo", True) is True
    assert client.send("/echo", 2**100) == 2**100

    # Floats come back exactly, NaN and the infinities included.
    floats = [0.1, 1 / 3, 1e308, 5e-324, -0.0, math.nan, math.inf, -math.inf]
    reply = client.send("/echo", floats)
    print("floats ->", reply)
    assert [repr(x) for x in reply] == [repr(x) for x in floats]

    # Refused before sending: dict keys of other types, types JSON does not have,
    # and a str that is not valid Unicode.
    for value in [{(1, 2): "a"}, {1, 2}, [object()], "\ud800"]:
        try:
            client.send("/echo", value)
        except PayloadError as exc:
            print(f"{type(value).__name__} refused:", str(exc).split(":")[0])
        else:
            raise AssertionError(f"expected PayloadError for {value!r}")

"""Each exception a call can raise, and what it carries."""

import time

from dataserve import (
    DataServeError,
    HTTPDataClient,
    HTTPDataHandler,
    PayloadError,
    RemoteError,
    ResourceNotFound,
    ServerUnavailable,
    serve,
)


class StatsHandler(HTTPDataHandler):
    def handle_request(self, resource, payload):
        if resource == "/mean":
            return sum(payload) / len(payload)
        if resource == "/slow":
            time.sleep(payload)
            return "done"
        return None


print("The server logs the traceback of the failing call below to stderr.")

with serve(StatsHandler, port=0) as server:
    with HTTPDataClient(server.port, "http://127.0.0.1:") as client:
        assert client.send("/mean", [1, 2, 3]) == 2.0

        # 404: the handler returned None for this resource.
        try:
            client.send("/median", [1, 2, 3])
        except ResourceNotFound as exc:
            print("ResourceNotFound:", exc)
            missing = exc.resource
        else:
            raise AssertionError("expected ResourceNotFound")
        assert missing == "/median"

        # 500: the handler raised.
        try:
            client.send("/mean", [])
        except RemoteError as exc:
            print("RemoteError:", exc)
            failure = exc
        else:
            raise AssertionError("expected RemoteError")
        assert failure.remote_type == "ZeroDivisionError"
        assert failure.remote_traceback is None  # the server runs without debug=True

        # A value dataserve cannot send is refused before anything is sent.
        try:
            client.send("/mean", {1, 2, 3})
        except PayloadError as exc:
            print("PayloadError:", exc)
        else:
            raise AssertionError("expected PayloadError")

    # No reply within the client's timeout.
    with HTTPDataClient(server.port, "http://127.0.0.1:", timeout=0.5) as client:
        try:
            client.send("/slow", 1.5)
        except ServerUnavailable as exc:
            print("ServerUnavailable:", exc)
        else:
            raise AssertionError("expected ServerUnavailable")

# The server has stopped: nothing listens on its port any more.
with HTTPDataClient(server.port, "http://127.0.0.1:") as client:
    try:
        client.send("/mean", [1, 2])
    except ServerUnavailable as exc:
        print("ServerUnavailable:", exc)
        message = str(exc)
    else:
        raise AssertionError("expected ServerUnavailable")
    assert server.url in message

    # Each of them is a DataServeError: catch that to handle them all in one place.
    try:
        client.ping()
    except DataServeError as exc:
        print(f"{type(exc).__name__} is a DataServeError")
        caught = exc
    else:
        raise AssertionError("expected DataServeError")
    assert isinstance(caught, ServerUnavailable)

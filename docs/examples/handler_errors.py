"""What the caller sees when a handler fails, and that the server keeps serving."""

from dataserve import HTTPDataClient, HTTPDataHandler, RemoteError, ResourceNotFound, serve


class RatioHandler(HTTPDataHandler):
    def handle_request(self, resource, payload):
        if resource == "/ratio":
            return payload[0] / payload[1]
        if resource == "/digits":
            return set(str(payload))  # a set is not a type dataserve can send
        return None


print("The server logs the tracebacks of the failing calls below to stderr.")

# debug=True sends the handler's traceback back to the caller too.
with (
    serve(RatioHandler, port=0, debug=True) as server,
    HTTPDataClient(server.port, "http://127.0.0.1:") as client,
):
    assert client.send("/ratio", [1, 4]) == 0.25

    # The handler raises: 500, RemoteError.
    try:
        client.send("/ratio", [1, 0])
    except RemoteError as exc:
        print("RemoteError:", exc)
        failure = exc
    else:
        raise AssertionError("expected RemoteError")
    assert failure.remote_type == "ZeroDivisionError"
    assert failure.remote_message == "division by zero"
    assert "Traceback (most recent call last)" in failure.remote_traceback

    # The server is still serving.
    assert client.send("/ratio", [3, 4]) == 0.75

    # The handler returns a value that cannot be sent: 500, RemoteError too.
    try:
        client.send("/digits", 2024)
    except RemoteError as exc:
        print("RemoteError:", exc)
        failure = exc
    else:
        raise AssertionError("expected RemoteError")
    assert failure.remote_type == "PayloadError"

    # The handler returns None: 404, ResourceNotFound.
    try:
        client.send("/sum", [1, 2])
    except ResourceNotFound as exc:
        print("ResourceNotFound:", exc)
        missing = exc.resource
    else:
        raise AssertionError("expected ResourceNotFound")
    assert missing == "/sum"

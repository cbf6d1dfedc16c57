"""Access tokens: the server answers only calls that carry its token."""

import os
import secrets

from dataserve import AuthenticationError, HTTPDataClient, HTTPDataHandler, serve


class AccountHandler(HTTPDataHandler):
    def handle_request(self, resource, payload):
        if resource == "/balance":
            return {"account": payload, "balance": 1250}
        return None


# This example sets $DATASERVE_TOKEN itself further down: start without one.
os.environ.pop("DATASERVE_TOKEN", None)

# A long random token. A real one comes from a file only you can read, or a secret store.
token = secrets.token_urlsafe(32)

with serve(AccountHandler, port=0, token=token) as server:
    # A client with the token gets the reply.
    with HTTPDataClient(address=server.url, token=token) as client:
        reply = client.send("/balance", "alice")
        print("with the token:", reply)
        assert reply == {"account": "alice", "balance": 1250}

    # Without the token, or with another one, the call never reaches the handler.
    for other in [None, "not-the-token"]:
        with HTTPDataClient(address=server.url, token=other) as client:
            try:
                client.send("/balance", "alice")
            except AuthenticationError as exc:
                print("AuthenticationError:", exc)
                refused = exc
            else:
                raise AssertionError("expected AuthenticationError")
            assert "401" in str(refused)
            # The health check needs no token, so load balancers can probe it.
            assert client.ping() is True

    # A client made without token= takes it from $DATASERVE_TOKEN (and so does a server).
    os.environ["DATASERVE_TOKEN"] = token
    with HTTPDataClient(address=server.url) as client:
        reply = client.send("/balance", "bob")
        print("with $DATASERVE_TOKEN:", reply)
        assert reply == {"account": "bob", "balance": 1250}

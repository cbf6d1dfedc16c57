"""send_many: many calls pipelined on one connection, their replies in order, failures in their place."""

from dataserve import HTTPDataClient, HTTPDataHandler, RemoteError, ResourceNotFound, serve


class Ledger(HTTPDataHandler):
    def __init__(self):
        self.entries = []

    def handle_request(self, resource, payload):
        if resource == "/add":
            self.entries.append(payload)
            return len(self.entries)  # the entry's number: the calls run in the order sent
        if resource == "/total":
            return sum(self.entries)
        if resource == "/fail":
            raise ValueError(f"cannot take {payload!r}")
        return None


with serve(Ledger, port=0) as server, HTTPDataClient(server.port, "http://127.0.0.1:") as client:
    numbers = client.send_many([("/add", amount) for amount in (5, 10, 20)] + [("/total", None)])
    print("send_many:", numbers)
    assert numbers == [1, 2, 3, 35]

    # A failure does not stop the others: every reply is read, then the first failure is raised.
    try:
        client.send_many([("/add", 1), ("/nothing", None), ("/fail", 2), ("/add", 3)])
    except ResourceNotFound as exc:
        print("first failure:", type(exc).__name__)
    assert client.send("/total") == 39  # both /add calls ran

    # With return_exceptions=True, each failure takes its call's place in the list.
    replies = client.send_many([("/add", 1), ("/fail", 2)], return_exceptions=True)
    print("with return_exceptions:", [type(reply).__name__ for reply in replies])
    assert replies[0] == 6
    assert isinstance(replies[1], RemoteError)

"""Sending a call again after ServerUnavailable, without running its change twice."""

import time
import uuid

from dataserve import HTTPDataClient, HTTPDataHandler, ServerUnavailable, serve


class LedgerHandler(HTTPDataHandler):
    """Deposits money: each call carries an id, and a call whose id was done is answered again."""

    def __init__(self):
        self.balance = 0
        self.done = {}  # id of a deposit -> the balance it left

    def handle_request(self, resource, payload):
        if resource == "/deposit":
            deposit_id = payload["id"]
            if deposit_id not in self.done:
                time.sleep(payload["delay"])  # a slow bank, so that the first try times out
                self.balance += payload["amount"]
                self.done[deposit_id] = self.balance
            return self.done[deposit_id]
        if resource == "/balance":
            return self.balance
        return None


def send_with_retries(client, resource, payload, timeouts=(0.5, 30)):
    """Send the call, again with a longer timeout each time it raises ServerUnavailable."""
    for attempt, timeout in enumerate(timeouts, start=1):
        try:
            return client.send(resource, payload, timeout=timeout)
        except ServerUnavailable as exc:
            print(f"attempt {attempt} failed: {exc}")
            if attempt == len(timeouts):
                raise
    raise AssertionError("unreachable")


with serve(LedgerHandler, port=0) as server, HTTPDataClient(address=server.url) as client:
    # The first try times out, but the handler goes on and makes the deposit. The second
    # try carries the same id, so the handler answers it without depositing again.
    deposit = {"id": str(uuid.uuid4()), "amount": 100, "delay": 1.0}
    balance = send_with_retries(client, "/deposit", deposit)
    print("balance after the deposit:", balance)
    assert balance == 100
    assert client.send("/balance") == 100  # deposited once, not twice

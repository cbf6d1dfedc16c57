"""The pickle-based proxy server in one process: serve a class, call it through two proxies."""

import secrets
from datetime import date
from fractions import Fraction

from dataserve import DataServeError
from dataserve.proxy import get_proxy_class, serve_proxy


class Ledger:
    """Made once in the server; every proxy calls this one instance."""

    def __init__(self):
        self.entries = []

    def add(self, day, amount, tags):
        self.entries.append((day, amount, tags))
        return len(self.entries)

    def total(self):
        return sum(amount for _, amount, _ in self.entries)

    def since(self, day):
        return [entry for entry in self.entries if entry[0] >= day]


# A random secret instead of the default authkey, which is the class name.
authkey = secrets.token_hex(16)

with serve_proxy(Ledger, authkey=authkey) as server:
    print(f"serving {server.name} on {server.host}:{server.port}")

    ledger = get_proxy_class("Ledger", server.port, authkey=authkey)
    other = get_proxy_class("Ledger", server.port, authkey=authkey)

    # Arguments and return values travel by pickle: dates, fractions and sets arrive as they are.
    ledger.add(date(2024, 1, 31), Fraction(1, 3), {"rent"})
    count = other.add(date(2024, 2, 29), Fraction(2, 3), {"food", "travel"})
    print("entries:", count)
    assert count == 2  # both proxies reach the same instance

    total = ledger.total()
    print("total:", total)
    assert total == 1
    assert isinstance(total, Fraction)

    recent = other.since(date(2024, 2, 1))
    print("since February:", recent)
    assert recent == [(date(2024, 2, 29), Fraction(2, 3), {"food", "travel"})]

    # An exception the method raises is raised by the call.
    try:
        ledger.since("February")
    except TypeError as exc:
        print("TypeError:", exc)
    else:
        raise AssertionError("expected TypeError")

    # A client with another key is refused before anything is unpickled.
    try:
        get_proxy_class("Ledger", server.port)  # the default key: the class name
    except DataServeError as exc:
        print("DataServeError:", exc)
    else:
        raise AssertionError("expected DataServeError")
print("server stopped")

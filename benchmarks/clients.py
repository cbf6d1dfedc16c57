"""Calling the benchmark servers: one interface for both, and client processes that load them."""

from __future__ import annotations

import contextlib
import multiprocessing
import time
from collections.abc import Callable
from functools import partial
from multiprocessing.connection import Connection
from multiprocessing.process import BaseProcess
from typing import Any, Protocol, cast

from servers import PROXY_NAME

from dataserve import HTTPDataClient
from dataserve.proxy import get_proxy_class

SMALL = [1, 2, 3]
"""The payload of a small call."""

START_DELAY = 0.05
"""Seconds between telling the client processes when to start and the start, for them all to hear it."""

Address = int | str
"""A server's port on 127.0.0.1, or the path of its Unix socket."""


class Bench(Protocol):
    """The methods of ``servers.BenchData``, as a client calls them on either server."""

    def small(self, values: list[int]) -> Any: ...

    def echo(self, data: bytes) -> Any: ...

    def array(self, size: int) -> Any: ...

    def frame(self, rows: int) -> Any: ...


class HTTPBench:
    """``BenchData``'s methods on a dataserve server, over one pooled connection."""

    def __init__(self, address: Address) -> None:
        if isinstance(address, str):
            self.client = HTTPDataClient(uds=address, timeout=300)
        else:
            self.client = HTTPDataClient(address, "http://127.0.0.1:", timeout=300)

    def small(self, values: list[int]) -> Any:
        return self.client.send("/small", values)

    def small_many(self, values: list[int], count: int) -> Any:
        """``count`` small calls pipelined at once: ``send_many``."""
        return self.client.send_many([("/small", values)] * count)

    def echo(self, data: bytes) -> Any:
        return self.client.send("/echo", data)

    def array(self, size: int) -> Any:
        return self.client.send("/array", size)

    def frame(self, rows: int) -> Any:
        return self.client.send("/frame", rows)


def connect(kind: str, address: Address) -> Bench:
    """A client of the server of ``kind`` (``"dataserve"`` or ``"proxy"``) at ``address``."""
    if kind == "dataserve":
        return HTTPBench(address)
    if isinstance(address, str):
        return cast(Bench, get_proxy_class(PROXY_NAME, None, uds=address))
    return cast(Bench, get_proxy_class(PROXY_NAME, address, "127.0.0.1"))


class ClientPool:
    """Client processes, each with its own connection to each server, that make small calls together."""

    def __init__(self, size: int) -> None:
        context = multiprocessing.get_context("spawn")
        self._processes: list[BaseProcess] = []
        self._connections: list[Connection] = []
        for _ in range(size):
            mine, theirs = context.Pipe()
            process = context.Process(target=_client, args=(theirs,), daemon=True)
            process.start()
            theirs.close()
            self._processes.append(process)
            self._connections.append(mine)

    def calls_per_second(
        self, kind: str, address: Address, clients: int, duration: float, batch: int = 1
    ) -> float:
        """The small calls per second that ``clients`` processes, together, get through in ``duration`` s.

        Each makes one call at a time, or ``batch`` of them at once with ``send_many``.
        """
        connections = self._connections[:clients]
        for connection in connections:
            connection.send((kind, address, batch))
        for connection in connections:
            connection.recv()  # connected, and ready to start
        start = time.monotonic() + START_DELAY
        for connection in connections:
            connection.send((start, start + duration))
        rates: list[float] = []
        for connection in connections:
            calls, elapsed = connection.recv()
            rates.append(calls / elapsed)
        return sum(rates)

    def close(self) -> None:
        """Stop the client processes."""
        for connection in self._connections:
            with contextlib.suppress(OSError):  # the process has ended already, as on Ctrl-C
                connection.send(None)
            connection.close()
        for process in self._processes:
            process.join(10)
            if process.is_alive():
                process.kill()
                process.join()


def _caller(bench: Bench, batch: int) -> Callable[[], object]:
    """One call at a time, or ``batch`` calls at once with ``send_many``."""
    if batch == 1:
        return partial(bench.small, SMALL)
    assert isinstance(bench, HTTPBench)
    return partial(bench.small_many, SMALL, batch)


def _client(connection: Connection) -> None:
    """One client process: for each server it is handed, make small calls from a start to a stop time."""
    benches: dict[tuple[str, Address], Bench] = {}
    while (order := connection.recv()) is not None:
        kind, address, batch = order
        bench = benches.get((kind, address))
        if bench is None:
            bench = benches[kind, address] = connect(kind, address)
        call = _caller(bench, batch)
        call()  # connects, the first time
        connection.send("ready")
        start, stop = connection.recv()
        time.sleep(max(0.0, start - time.monotonic()))
        calls, began = 0, time.monotonic()
        while True:
            call()
            calls += batch
            now = time.monotonic()
            if now >= stop:
                break
        connection.send((calls, now - began))

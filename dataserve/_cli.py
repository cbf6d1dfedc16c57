"""The ``dataserve`` command."""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from typing import Any

from ._client import HTTPDataClient
from ._errors import DataServeError
from ._handler import HTTPDataHandler
from ._server import serve

__all__ = ["main"]


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``dataserve`` command with ``argv`` and return its exit status."""
    parser = argparse.ArgumentParser(prog="dataserve", description="Serve Python data over HTTP.")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    commands.add_parser("demo", help="start a server on a free port, call it as the docs do, and stop")
    args = parser.parse_args(argv)
    if args.command == "demo":
        return demo()
    parser.error(f"unknown command {args.command!r}")  # pragma: no cover


class DemoHandler(HTTPDataHandler):
    """The handler of the quickstart example."""

    def __init__(self) -> None:
        self.xdata = [1, 2, 3]

    def handle_request(self, resource: str, payload: Any) -> Any:
        if resource == "/xdata":
            return self.xdata + payload
        elif resource == "/ydata":
            return 2
        elif resource == "/upper":
            return payload.upper()
        elif resource == "/reverse":
            return payload[::-1]
        return None


def demo() -> int:
    """Serve DemoHandler in the background, print a few calls and their replies, and stop."""
    calls: list[tuple[str, Any]] = [
        ("/xdata", [4, 5, 6]),
        ("/ydata", None),
        ("/upper", "hello, dataserve"),
        ("/reverse", b"\x00\x01\x02\xff"),
        ("/nothing", {"a": 1}),
    ]
    with serve(DemoHandler, port=0) as server:
        print(f"dataserve demo: serving DemoHandler on {server.url}")
        with HTTPDataClient(server.port, "http://127.0.0.1:") as client:
            for resource, payload in calls:
                shown = (
                    f"client.send({resource!r})"
                    if payload is None
                    else f"client.send({resource!r}, {payload!r})"
                )
                try:
                    print(f"{shown} -> {client.send(resource, payload)!r}")
                except DataServeError as exc:
                    print(f"{shown} -> {type(exc).__name__}: {exc}")
    print("dataserve demo: server stopped")
    return 0

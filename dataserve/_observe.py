"""What a server's lanes tell of each call they answer: to the call log, to the metrics, or both.

A lane calls ``begin`` once a call's head is read and ``end`` exactly once as it is answered,
just before the reply's last bytes leave (so that a scrape the caller makes once it has the
reply counts the call, whichever worker answers it), or given up because its caller went
(status 499, as nginx logs it). The direct lane does so itself (``_direct``); for the ASGI app,
``ObserveMiddleware`` does it around every request but the health check and the metrics
themselves, so that preflights, 405s and refusals are logged and counted too.
"""

from __future__ import annotations

import time
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from ._access import AccessLog, peer
from ._metrics import Metrics

__all__ = ["GONE_STATUS", "ObserveMiddleware", "Observer"]

GONE_STATUS = 499
"""The status a call is logged with when its caller went before it was answered."""


class Observer:
    """The call log and the metrics of one app, either of them None when it is off."""

    def __init__(self, access_log: AccessLog | None, metrics: Metrics | None) -> None:
        self.access_log = access_log
        self.metrics = metrics

    def begin(self) -> float:
        """A call's head is read: the time it began, to give back to ``end``."""
        if self.metrics is not None:
            self.metrics.begin()
        return time.perf_counter()

    def end(
        self,
        began: float,
        client: str,
        method: str,
        resource: str,
        status: int,
        bytes_in: int,
        bytes_out: int,
    ) -> None:
        """A call begun at ``began`` is answered with ``status``."""
        duration = time.perf_counter() - began
        if self.metrics is not None:
            self.metrics.end(status, duration, bytes_in, bytes_out)
        if self.access_log is not None:
            self.access_log.record(client, method, resource, status, duration, bytes_in, bytes_out)


class ObserveMiddleware:
    """ASGI middleware that tells the observer of every HTTP request but those to ``quiet`` paths."""

    def __init__(self, app: ASGIApp, observer: Observer, quiet: frozenset[str]) -> None:
        self.app = app
        self.observer = observer
        self.quiet = quiet

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path: str = scope["path"]
        root: str = scope.get("root_path", "")
        if root and path.startswith(root):  # mounted: the resource, as the handler sees it
            path = path[len(root) :] or "/"
        method: str = scope["method"]
        if method == "GET" and path in self.quiet:
            await self.app(scope, receive, send)
            return
        observer = self.observer
        began = observer.begin()
        counts: dict[str, Any] = {"status": GONE_STATUS, "in": 0, "out": 0, "told": False}

        def tell() -> None:
            if not counts["told"]:
                counts["told"] = True
                client = peer(scope.get("client"))
                observer.end(began, client, method, path, counts["status"], counts["in"], counts["out"])

        async def receive_counted() -> Message:
            message = await receive()
            if message["type"] == "http.request":
                counts["in"] += len(message.get("body", b""))
            return message

        async def send_counted(message: Message) -> None:
            if message["type"] == "http.response.start":
                counts["status"] = message["status"]
            elif message["type"] == "http.response.body":
                counts["out"] += len(message.get("body", b""))
                if not message.get("more_body", False):
                    tell()  # before the reply's end leaves: a scrape its caller makes next counts it
            await send(message)

        try:
            await self.app(scope, receive_counted, send_counted)
        except Exception:
            if counts["status"] == GONE_STATUS:  # no reply began: Starlette's outer middleware answers 500
                counts["status"] = 500
            raise
        finally:
            tell()

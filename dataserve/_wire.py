"""What a dataserve client and server agree on beyond the codec: the health path, and a reply."""

from __future__ import annotations

__all__ = ["HEALTH_PATH", "Reply"]

HEALTH_PATH = "/healthz"
"""GET here answers 200 while the server is ready: for load balancers and ``ping()``."""


class Reply:
    """What a server answered, as every client lane hands it back: status, headers and body.

    ``headers`` has lower-case names; a header sent more than once keeps its last value.
    """

    __slots__ = ("body", "headers", "reason", "status")

    def __init__(self, status: int, headers: dict[str, str], body: bytes, reason: str = "") -> None:
        self.status = status
        self.headers = headers
        self.body = body
        self.reason = reason

    def __repr__(self) -> str:
        return f"Reply({self.status}, {self.headers!r}, <{len(self.body)} bytes>)"

"""What a server takes from its callers at most, and how long it waits on them.

Each limit stands against one way a careless or hostile client could hold a server up: see
docs/security.md. The call core enforces those of a call (sizes, the queue, memory); dataserve's
uvicorn protocol those of a connection (heads, timeouts, rates, the number of connections),
on every request it carries.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

__all__ = ["KiB", "Limits", "MiB"]

KiB = 1024
MiB = 1024 * KiB


_MAY_BE_NONE = frozenset({"max_json_size", "max_memory", "min_body_rate", "min_send_rate"})


@dataclass(frozen=True)
class Limits:
    """A server's limits, beyond ``max_body_size``: ``create_app(..., limits=Limits(head_timeout=5))``,
    and ``run_http_server`` and ``serve`` alike.

    ``None`` turns a size, memory or rate limit off.
    """

    max_json_size: int | None = 16 * MiB
    """The largest JSON body (413 beyond it): decoding JSON holds the GIL and can take some 25 times
    the body's size in memory, so it is bounded below ``max_body_size``. Send more as bytes or arrays."""
    max_memory: int | None = 2048 * MiB
    """Bytes of call bodies and replies the server holds at once, over all calls: a call that would
    go over it is refused with 503 and ``Retry-After`` before its body is read."""
    max_queue: int = 512
    """Calls waiting for a handler thread (or, for an ``async def`` handler, running) at once: more
    are refused with 503 and ``Retry-After``."""
    max_connections: int = 1000
    """Open connections: a connection beyond it gets a 503 and is closed at once."""
    max_head_size: int = 128 * KiB
    """Bytes of a request's line and headers as they arrive: a head that grows past it is refused
    (414 for the request line, 431 for headers) before more of it is read."""
    max_target_size: int = 16 * KiB
    """Bytes of a request's target (path and query)."""
    head_timeout: float = 10.0
    """Seconds a connection may take to send a request's whole head, from its first byte, or from
    the connection's opening for the first request."""
    min_body_rate: int | None = 16 * KiB
    """Bytes a second, averaged over 5 s, below which a body that is being sent is given up."""
    min_send_rate: int | None = 16 * KiB
    """Bytes a second, averaged over 5 s, below which a client that is being sent a reply is given up."""

    def __post_init__(self) -> None:
        for field in dataclasses.fields(self):
            value = getattr(self, field.name)
            if value is None:
                if field.name not in _MAY_BE_NONE:
                    raise ValueError(f"{field.name} must be a number, not None")
                continue
            if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
                raise ValueError(f"{field.name} must be 0 or more, or None, not {value!r}")
        if self.max_queue < 1 or self.max_connections < 1:
            raise ValueError("max_queue and max_connections must be 1 or more")

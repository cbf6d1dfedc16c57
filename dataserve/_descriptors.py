"""File descriptors: each connection takes one, and a server out of them resets new clients silently.

So a server asks for as many as the system lets its user have (the hard limit), keeps its
``max_connections`` below what it got, and, while it runs, warns once the process comes close
to its limit, whatever took the descriptors (connections, or files the handler opens).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import sys

__all__ = ["CHECK_EVERY", "RESERVED", "raise_limit", "watch"]

logger = logging.getLogger("dataserve")

RESERVED = 64
"""Descriptors kept free of connections, for the server's own files and sockets and the handler's."""

CHECK_EVERY = 1.0
"""Seconds between two counts of the descriptors in use."""

_CLOSE_TO = 0.9
"""The share of the limit in use past which the server warns."""


def raise_limit(max_connections: int) -> int:
    """Raise this process's descriptor limit as far as the system allows, if ``max_connections`` needs it.

    Returns how many connections the server may keep open: ``max_connections``, or fewer, with
    a warning, when the limit stays too low for them.
    """
    try:
        import resource
    except ImportError:  # not on Unix: no limit to read
        return max_connections
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = max_connections + RESERVED
    if soft != resource.RLIM_INFINITY and soft < wanted:
        new = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
        with contextlib.suppress(ValueError, OSError):
            resource.setrlimit(resource.RLIMIT_NOFILE, (new, hard))
            soft = new
    if soft != resource.RLIM_INFINITY and soft < wanted:
        allowed = max(1, soft - RESERVED)
        logger.warning(
            "dataserve: this process may open %d file descriptors, too few for max_connections %d; "
            "it keeps at most %d connections open (raise the limit with ulimit -n)",
            soft,
            max_connections,
            allowed,
        )
        return allowed
    return max_connections


async def watch() -> None:
    """Every second, warn if the descriptors in use come close to the limit (Linux; ends with its task)."""
    if not sys.platform.startswith("linux"):
        return
    import resource

    warned = False
    while True:
        await asyncio.sleep(CHECK_EVERY)
        soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
        try:
            used = len(os.listdir("/proc/self/fd"))
        except OSError:
            return
        close = soft != resource.RLIM_INFINITY and used >= _CLOSE_TO * soft
        if close and not warned:
            logger.warning(
                "dataserve: %d of this process's %d file descriptors are in use; once none is left, "
                "new connections are reset without a reply (lower max_connections, or raise ulimit -n)",
                used,
                soft,
            )
        warned = close

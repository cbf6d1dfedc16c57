"""Call logs: one line per call, through the ``dataserve.access`` logger (``access_log=True``).

Each line says who called (the client's address, or "unix" for a Unix socket), the method
and resource, the status, how long the server took from the request's head to its reply,
and the bytes of the request's and the reply's bodies. The same values travel on the log
record as attributes (``client``, ``method``, ``resource``, ``status``, ``duration``,
``bytes_in``, ``bytes_out``), for a formatter that writes JSON or a handler that counts.
The time of the line is the log record's: ``dataserve``'s own server prints it.
"""

from __future__ import annotations

import logging

__all__ = ["ACCESS_LOGGER", "AccessLog", "peer"]

ACCESS_LOGGER = "dataserve.access"
"""The name of the logger the lines go to."""


def peer(client: tuple[str, int] | list[object] | None) -> str:
    """The caller as a log line names it: ``host:port``, or ``unix`` for a Unix socket."""
    if not client:
        return "unix"
    host, port = client[0], client[1]
    return f"[{host}]:{port}" if ":" in str(host) else f"{host}:{port}"


class AccessLog:
    """Writes the line of each call, at INFO, to the ``dataserve.access`` logger."""

    def __init__(self) -> None:
        self.logger = logging.getLogger(ACCESS_LOGGER)

    def record(
        self,
        client: str,
        method: str,
        resource: str,
        status: int,
        duration: float,
        bytes_in: int,
        bytes_out: int,
    ) -> None:
        """Log one call; ``duration`` is in seconds."""
        logger = self.logger
        if not logger.isEnabledFor(logging.INFO):
            return
        logger.info(
            '%s "%s %s" %d %.2f ms in=%d out=%d',
            client,
            method,
            resource,
            status,
            duration * 1000,
            bytes_in,
            bytes_out,
            extra={
                "client": client,
                "method": method,
                "resource": resource,
                "status": status,
                "duration": duration,
                "bytes_in": bytes_in,
                "bytes_out": bytes_out,
            },
        )

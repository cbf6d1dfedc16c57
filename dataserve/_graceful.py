"""uvicorn's server, stopping without losing a connection that the kernel had already accepted.

When a listening socket closes, the kernel resets every connection still waiting in its accept
queue. The client of such a connection, a load balancer among them, saw its connection made and
sent its call: it gets "connection reset" instead of "connection refused", and cannot tell whether
the call ran. nginx, for one, answers 502 to a POST that met a reset, where it sends a refused
one to the next replica. So as it closes its listeners, this server first tells the kernel to
let no new connection in (on Linux), then takes every queued one itself, in the same step as the
close; those are served as any other while stopping: their first call is answered, and the
reply closes the connection.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import logging
import socket
import ssl
import struct
import sys

import uvicorn
from uvicorn.server import ServerState

__all__ = ["DataServer", "StoppingState"]

_HANDSHAKE_TIMEOUT = 10.0
"""How long a TLS handshake of a connection taken from the queue may take."""

_SO_ATTACH_FILTER = 26
_BPF_RET_K = 0x06
"""Linux's socket option for a classic BPF filter, and the instruction that returns a constant."""

logger = logging.getLogger("dataserve")


class StoppingState(ServerState):
    """uvicorn's state shared by a server's connections, which also says when the server stops."""

    def __init__(self) -> None:
        super().__init__()
        self.stopping = False
        """Whether the server has begun to stop: a connection made from now on closes after one call."""


class DataServer(uvicorn.Server):
    """uvicorn's server, which serves the connections queued on its listeners as it closes them."""

    def __init__(self, config: uvicorn.Config) -> None:
        super().__init__(config)
        self.server_state = StoppingState()

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        assert isinstance(self.server_state, StoppingState)
        self.server_state.stopping = True
        for sock in sockets or []:
            _refuse_new(sock)
        queued = [conn for sock in sockets or [] for conn in _accept_queued(sock)]
        for server in self.servers:  # at once: what comes from now on is refused, not reset
            server.close()
        if queued:
            await asyncio.gather(*(self._adopt(conn) for conn in queued))
        await super().shutdown(sockets)

    async def _adopt(self, conn: socket.socket) -> None:
        """Make ``conn`` a connection of this server, as uvicorn makes those it accepts."""
        loop = asyncio.get_running_loop()
        config = self.config

        def protocol() -> asyncio.Protocol:
            return config.http_protocol_class(  # type: ignore[call-arg]
                config=config, server_state=self.server_state, app_state=self.lifespan.state
            )

        try:
            connecting = loop.connect_accepted_socket(protocol, conn, ssl=config.ssl)
            await asyncio.wait_for(connecting, _HANDSHAKE_TIMEOUT)
        except (OSError, TimeoutError, ssl.SSLError) as exc:  # a client gone, or a failed TLS handshake
            logger.debug("dataserve: a connection accepted as the server stopped failed: %s", exc)
            conn.close()


def _refuse_new(sock: socket.socket) -> None:
    """Have the kernel drop new connections to ``sock`` from now on, where it can (Linux, TCP).

    Between the last connection taken from the queue and the close, one more could come and be
    reset. A socket filter that drops every packet keeps new ones out of the queue: their
    clients send their first packet again a second later, find the port closed, and are refused.
    """
    if sys.platform != "linux" or sock.family not in (socket.AF_INET, socket.AF_INET6):
        return
    drop = struct.pack("HBBI", _BPF_RET_K, 0, 0, 0)  # one instruction: keep 0 bytes of the packet
    program = ctypes.create_string_buffer(drop)
    fprog = struct.pack("HP", 1, ctypes.addressof(program))
    with contextlib.suppress(OSError):  # the kernel copies the program; without it, the window stays
        sock.setsockopt(socket.SOL_SOCKET, _SO_ATTACH_FILTER, fprog)


def _accept_queued(sock: socket.socket) -> list[socket.socket]:
    """The connections waiting in the accept queue of the listening socket ``sock``."""
    queued: list[socket.socket] = []
    while True:
        try:
            conn, _ = sock.accept()
        except OSError:  # none left (BlockingIOError), or no descriptor for one more
            return queued
        queued.append(conn)

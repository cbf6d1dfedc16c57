"""Where a server listens: a TCP port or a Unix socket, taken before the handler is made.

A Unix socket serves the processes of one machine. Its file is made mode 0600, so that only
its owner's processes may call; a stale file left by a server that died is replaced, one a
live server still answers on is refused, and the file is removed when the server stops.
"""

from __future__ import annotations

import contextlib
import errno
import ipaddress
import os
import socket
import stat
import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass

from ._errors import DataServeError

__all__ = ["Listening", "listen", "warn_if_open"]

_UMASK_LOCK = threading.Lock()
"""The umask is the process's: two servers starting in two threads must not set it at once."""


@dataclass(frozen=True)
class Listening:
    """A bound socket, and how clients reach it."""

    sock: socket.socket
    host: str
    port: int
    uds: str | None
    tls: bool

    @property
    def url(self) -> str:
        """The base URL clients call: ``http://127.0.0.1:5001``; ``http://localhost`` on a Unix socket."""
        return url(self.host, self.port, self.tls, self.uds)

    @property
    def where(self) -> str:
        """Where the server listens, for a person: its URL, or ``unix socket PATH``."""
        return self.url if self.uds is None else f"unix socket {self.uds}"


@contextlib.contextmanager
def listen(host: str, port: int | None, uds: str | os.PathLike[str] | None, tls: bool) -> Iterator[Listening]:
    """Bind ``host:port``, or the Unix socket ``uds``, for the length of the block.

    Raises DataServeError, saying what to do, if the port or the socket is taken.
    """
    if uds is None:
        if port is None:
            raise ValueError("give the port to listen on, or uds=PATH for a Unix socket")
        with _bind_tcp(host, port) as sock:
            yield Listening(sock, host, sock.getsockname()[1], None, tls)
        return
    if port is not None:
        raise ValueError(f"give a port or a Unix socket to listen on, not both (port {port}, uds {uds!r})")
    path = os.fspath(uds)
    with _bind_unix(path) as sock:
        yield Listening(sock, "localhost", 0, path, tls)


def url(host: str, port: int, tls: bool, uds: str | None = None) -> str:
    scheme = "https" if tls else "http"
    if uds is not None:
        return f"{scheme}://localhost"
    return f"{scheme}://[{host}]:{port}" if ":" in host else f"{scheme}://{host}:{port}"


def warn_if_open(host: str, token: str | None, uds: str | None = None) -> None:
    """Say so when anyone on the network may call the handler."""
    if token is None and uds is None and not _is_loopback(host):
        print(
            f"dataserve: warning: serving on {host} without a token: anyone who can reach this port "
            "can call the handler; pass token=... (or --token, or set $DATASERVE_TOKEN)",
            file=sys.stderr,
            flush=True,
        )


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _bind_tcp(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    try:
        return socket.create_server((host, port), family=family)
    except OSError as exc:
        raise DataServeError(f"cannot listen on {host}:{port}: {exc.strerror}; choose another port") from None


@contextlib.contextmanager
def _bind_unix(path: str) -> Iterator[socket.socket]:
    _clear_stale(path)
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        with _UMASK_LOCK:
            previous = os.umask(0o177)  # the file is made 0600: only its owner may connect
            try:
                sock.bind(path)
            finally:
                os.umask(previous)
        os.chmod(path, 0o600)
        sock.listen(socket.SOMAXCONN)
    except OSError as exc:
        sock.close()
        raise DataServeError(f"cannot listen on the Unix socket {path}: {exc.strerror or exc}") from None
    made = os.stat(path).st_ino
    try:
        with sock:
            yield sock
    finally:
        with contextlib.suppress(OSError):
            if os.stat(path).st_ino == made:  # still ours, not a later server's
                os.unlink(path)


def _clear_stale(path: str) -> None:
    """Remove the file at ``path`` if it is a socket nothing listens on; refuse any other file."""
    try:
        mode = os.lstat(path).st_mode
    except FileNotFoundError:
        return
    if not stat.S_ISSOCK(mode):
        raise DataServeError(
            f"cannot listen on {path}: a file that is not a socket is there; remove it or choose another path"
        )
    probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        probe.settimeout(1.0)
        probe.connect(path)
    except OSError as exc:
        if exc.errno not in (errno.ECONNREFUSED, errno.ENOENT):
            raise DataServeError(f"cannot listen on {path}: {exc.strerror or exc}") from None
        os.unlink(path)  # left by a server that died
        return
    finally:
        probe.close()
    raise DataServeError(
        f"cannot listen on {path}: a server is already listening there; stop it or choose another path"
    )

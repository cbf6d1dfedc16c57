"""The pickle-based ProxyServer that dataserve replaces, kept for comparison.

A server process holds one instance of a class; other processes get a proxy to it whose
method calls run in the server, with arguments and return values passed by pickle. It is
built on ``multiprocessing.managers``, as the original was::

    # server
    from dataserve.proxy import run_proxy_server
    run_proxy_server(Store, 5002)

    # client
    from dataserve.proxy import get_proxy_class
    store = get_proxy_class("Store", 5002)
    store.append([1, 2, 3])  # runs Store.append in the server

Unpickling runs code, so whoever can connect and knows the authkey can run any code in
the server, and a server can run any code in its clients. Without an authkey given, the
server makes a random one that only its own user can read (``_proxykey``). Use it only
between processes you trust, on a network you trust; see docs/proxy.md.
"""

from __future__ import annotations

import contextlib
import os
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from multiprocessing import AuthenticationError
from multiprocessing.connection import Connection, Listener
from multiprocessing.managers import BaseManager, RemoteError
from typing import Any, Protocol, cast

from ._errors import DataServeError, ServerUnavailable
from ._proxykey import AUTHKEY_ENV, client_key, forget, keep, server_key
from ._signals import signals_interrupt

__all__ = ["RunningProxyServer", "get_proxy_class", "run_proxy_server", "serve_proxy"]

_STOP_TIMEOUT = 5.0
"""Seconds to wait for the server's threads when it stops; calls still running are left."""


def run_proxy_server(
    proxy_class: type[object],
    port: int | None,
    *,
    host: str = "127.0.0.1",
    authkey: bytes | str | None = None,
    uds: str | os.PathLike[str] | None = None,
) -> None:
    """Serve one instance of ``proxy_class`` on ``host:port`` until Ctrl-C or SIGTERM.

    Clients reach it with ``get_proxy_class(proxy_class.__name__, port)``. The port is
    taken first, so a port in use fails at once; then the instance is made, once, and
    every client shares it. Port 0 picks a free port; the line printed at start shows the
    real one. With ``uds`` (and ``port`` None) it listens on that Unix socket instead.

    ``authkey`` is the shared secret clients must prove they know. It defaults to the
    ``DATASERVE_AUTHKEY`` environment variable; without either, the server makes a random
    key, which it keeps in a file only its user can read, where that user's clients on
    this machine find it. A short key given is warned about. Read docs/proxy.md before
    serving beyond this machine.
    """
    with signals_interrupt(), contextlib.suppress(KeyboardInterrupt):
        server = _ProxyServer(proxy_class, _address(host, port, uds), authkey)
        try:
            print(
                f"dataserve proxy: serving {server.name} on {server.where} (press Ctrl-C to stop)",
                flush=True,
            )
            server.wait()
        finally:
            server.stop()
    print("dataserve proxy: stopped", flush=True)


@dataclass(frozen=True)
class RunningProxyServer:
    """Where a proxy server started by ``serve_proxy()`` listens, and the name it serves."""

    host: str
    port: int
    name: str
    uds: str | None = None


@contextlib.contextmanager
def serve_proxy(
    proxy_class: type[object],
    *,
    port: int | None = 0,
    host: str = "127.0.0.1",
    authkey: bytes | str | None = None,
    uds: str | os.PathLike[str] | None = None,
) -> Iterator[RunningProxyServer]:
    """Serve ``proxy_class`` in background threads for the length of a ``with`` block.

    Yields once the instance is made and the server accepts connections; on exit, closes
    the port and every proxy's connection. For tests, benchmarks and scripts that serve
    and call in one process. The arguments are those of ``run_proxy_server``.
    """
    server = _ProxyServer(proxy_class, _address(host, None if uds is not None else port, uds), authkey)
    try:
        if isinstance(server.address, str):
            yield RunningProxyServer("localhost", 0, server.name, server.address)
        else:
            yield RunningProxyServer(host, server.address[1], server.name)
    finally:
        server.stop()


def get_proxy_class(
    proxy_name: str,
    port: int | None,
    host: str = "localhost",
    authkey: bytes | str | None = None,
    *,
    connect_timeout: float = 10.0,
    uds: str | os.PathLike[str] | None = None,
) -> Any:
    """A proxy to the instance that the server at ``host:port`` (or on ``uds``) serves as ``proxy_name``.

    ``proxy_name`` is the served class's ``__name__``. Calling a public method of the
    proxy runs it on the server's instance, with the arguments and the return value
    passed by pickle; an exception the method raises is raised by the call. Method calls
    wait as long as the method runs: ``connect_timeout`` bounds only reaching the server.

    ``authkey`` defaults to the ``DATASERVE_AUTHKEY`` environment variable, else to the
    key that a server which made its own keeps for its user; it must be the server's.

    Raises ``ServerUnavailable`` if nothing answers at ``host:port`` like a proxy server
    within ``connect_timeout`` seconds, and ``DataServeError`` if the server refuses the
    authkey or serves no class named ``proxy_name``.
    """
    _check_name(proxy_name)
    address = _address(host, port, uds)
    where = _where(address)
    _probe(address, connect_timeout)
    key = client_key(authkey, address)
    manager = _manager_class()
    manager.register(proxy_name)
    client = manager(address=address, authkey=key)
    try:
        client.connect()
        return getattr(client, proxy_name)()
    except AuthenticationError:
        raise DataServeError(
            f"the proxy server at {where} refused the authkey: its key and this one differ. "
            f"Each side uses the authkey argument, else the {AUTHKEY_ENV} environment variable "
            "(else the server makes a random key, which its own user's clients on its machine find); "
            f"set {AUTHKEY_ENV} to the same secret for the server and its clients, or pass the "
            "same authkey to both"
        ) from None
    except RemoteError as exc:
        # args[0] is the server's traceback, as text; its last line names the exception.
        remote = str(exc.args[0] if exc.args else "").strip().splitlines()
        if remote and remote[-1].startswith("KeyError"):  # the registry has no such name
            raise DataServeError(
                f"the proxy server at {where} serves no class named {proxy_name!r}; "
                "proxy_name must be the __name__ of the class given to run_proxy_server"
            ) from None
        raise DataServeError(
            f"the proxy server at {where} could not hand out its {proxy_name}: "
            f"{remote[-1] if remote else 'no reason given'}"
        ) from None
    except (OSError, EOFError) as exc:
        reason = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
        raise ServerUnavailable(
            f"the proxy server at {where} closed the connection ({reason}); check that it is still running",
            may_have_run=False,
        ) from None


class _ServerInternals(Protocol):
    """What this module uses of a ``multiprocessing.managers.Server``.

    typeshed's stub of Server leaves out ``listener`` (made by ``__init__``) and
    ``stop_event`` (made by ``serve_forever``, which ``_ProxyServer`` replaces because it
    ends with ``sys.exit(0)`` and cannot be stopped from another thread). CPython 3.11 to
    3.13 have both.
    """

    address: tuple[str, int] | str
    listener: Listener
    stop_event: threading.Event

    def handle_request(self, conn: Connection[Any, Any]) -> None: ...


class _ProxyServer:
    """A manager Server run by threads of this process, so that it can stop cleanly.

    One thread accepts connections and one more serves each, as ``serve_forever`` does.
    Stopping closes the port and shuts down every connection, which ends the threads
    serving them (they read end of file), so no proxy can reach the instance afterwards.
    """

    def __init__(
        self, proxy_class: type[object], address: tuple[str, int] | str, authkey: bytes | str | None
    ) -> None:
        self.name = _check_name(proxy_class.__name__)
        manager = _manager_class()
        # The instance is made once the port is taken and connections are accepted;
        # a client that asks for it earlier waits in ``_shared_instance``.
        manager.register(self.name, callable=self._shared_instance)
        self._instance: object = None
        self._instance_made = False
        self._instance_ready = threading.Event()
        key, made = server_key(authkey, self.name)
        try:
            server = manager(address=address, authkey=key).get_server()
        except OSError as exc:
            raise DataServeError(
                f"cannot listen on {_where(address)}: {exc.strerror or exc}; choose another port or path"
            ) from None
        self._server = cast(_ServerInternals, server)
        self._key_file = keep(key, self._server.address) if made else None
        # Server.serve_client serves a connection while stop_event is unset, and when it
        # ends because stop_event is set it sends a reply nobody asked for, which the next
        # call would read as its own. So, as in the stdlib, only a client's "shutdown"
        # request sets stop_event; stop() ends connections by shutting their sockets down.
        self._server.stop_event = self._shutdown_requested = threading.Event()
        self._stopping = threading.Event()
        self.address = self._server.address
        self.where = _where(self.address)
        self._lock = threading.Lock()
        self._connections: dict[socket.socket, threading.Thread] = {}
        self._accepter = threading.Thread(target=self._accept, name="dataserve-proxy", daemon=True)
        self._accepter.start()
        try:
            self._instance = proxy_class()
        except BaseException:
            self.stop()
            raise
        self._instance_made = True
        self._instance_ready.set()

    def wait(self) -> None:
        """Block until a client asks the server to shut down; Ctrl-C interrupts."""
        while not self._shutdown_requested.wait(1.0):
            pass

    def stop(self) -> None:
        """Close the port and every connection, and wait a while for their threads."""
        self._stopping.set()
        self._instance_ready.set()
        self._wake_accepter()
        self._accepter.join(_STOP_TIMEOUT)
        self._server.listener.close()
        with self._lock:
            connections = list(self._connections.items())
        for watch, _ in connections:
            with contextlib.suppress(OSError):
                watch.shutdown(socket.SHUT_RDWR)
        deadline = time.monotonic() + _STOP_TIMEOUT
        for _, thread in connections:
            thread.join(max(0.0, deadline - time.monotonic()))
        if self._key_file is not None:
            forget(self._key_file)
            self._key_file = None

    def _shared_instance(self) -> object:
        self._instance_ready.wait()
        if not self._instance_made:
            raise DataServeError(f"the server stopped before it made its {self.name}")
        return self._instance

    def _accept(self) -> None:
        while True:
            try:
                conn = self._server.listener.accept()
            except OSError:
                if self._stopping.is_set():
                    return
                time.sleep(0.05)  # for example out of file descriptors: try again shortly
                continue
            if self._stopping.is_set():
                conn.close()
                return
            if self._shutdown_requested.is_set():
                conn.close()  # serve_client would end at once, with a stray reply
                continue
            # A second handle on the connection's socket, to shut it down from stop(): the
            # thread serving it is blocked reading, and only a shutdown wakes it.
            family = socket.AF_UNIX if isinstance(self.address, str) else socket.AF_INET
            watch = socket.fromfd(conn.fileno(), family, socket.SOCK_STREAM)
            thread = threading.Thread(
                target=self._serve, args=(conn, watch), name="dataserve-proxy-connection", daemon=True
            )
            with self._lock:
                self._connections[watch] = thread
            thread.start()

    def _serve(self, conn: Connection[Any, Any], watch: socket.socket) -> None:
        try:
            self._server.handle_request(conn)  # authenticates, then serves calls until EOF
        finally:
            with self._lock:
                del self._connections[watch]
            watch.close()

    def _wake_accepter(self) -> None:
        """Connect once, so that the thread blocked in accept() sees the server stopping."""
        with contextlib.suppress(OSError), _connect(self.address, 1.0):
            pass


def _manager_class() -> type[BaseManager]:
    class ProxyManager(BaseManager):
        """A new manager class for each server and client, so that registrations never mix."""

    return ProxyManager


def _check_name(name: str) -> str:
    """``name``, if a manager can serve a class under it."""
    if name.startswith("_") or hasattr(BaseManager, name):
        raise ValueError(
            f"the proxy server cannot serve a class named {name!r}: the name must not start with "
            "'_' nor be an attribute of multiprocessing.managers.BaseManager; rename the class"
        )
    return name


def _probe(address: tuple[str, int] | str, timeout: float) -> None:
    """Fail within ``timeout`` where multiprocessing would wait without end.

    A proxy server speaks first: it sends an authentication challenge as soon as it
    accepts. A host that drops packets, or a port served by something else (such as a
    dataserve HTTP server), would otherwise leave the client waiting for ever.
    """
    where = _where(address)
    try:
        sock = _connect(address, timeout)
    except OSError as exc:
        raise ServerUnavailable(
            f"cannot reach the proxy server at {where} ({exc.strerror or exc}); check that "
            "run_proxy_server is running there and that the host and port are right",
            may_have_run=False,
        ) from None
    with sock:
        try:
            greeting = sock.recv(1)
        except OSError:
            greeting = b""
    if not greeting:
        raise ServerUnavailable(
            f"{where} accepted the connection but did not answer like a proxy server within "
            f"{timeout} s; check that the port is run_proxy_server's (not, say, an HTTP server's)",
            may_have_run=False,
        )


def _address(host: str, port: int | None, uds: str | os.PathLike[str] | None) -> tuple[str, int] | str:
    """What multiprocessing listens on or connects to: ``(host, port)``, or a Unix socket's path."""
    if uds is not None:
        if port is not None:
            raise ValueError(f"give a port or a Unix socket, not both (port {port}, uds {uds!r})")
        return os.fspath(uds)
    if port is None:
        raise ValueError("give the port, or uds=PATH for a Unix socket")
    return (host, port)


def _where(address: tuple[str, int] | str) -> str:
    return f"unix socket {address}" if isinstance(address, str) else f"{address[0]}:{address[1]}"


def _connect(address: tuple[str, int] | str, timeout: float) -> socket.socket:
    """A socket connected to ``address``, a host and port (0.0.0.0 meaning this machine) or a path."""
    if not isinstance(address, str):
        host, port = address
        return socket.create_connection(("127.0.0.1" if host in ("0.0.0.0", "") else host, port), timeout)
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        sock.settimeout(timeout)
        sock.connect(address)
    except BaseException:
        sock.close()
        raise
    return sock

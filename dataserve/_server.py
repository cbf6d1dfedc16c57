"""Running a handler's app under uvicorn: blocking in the foreground, or in a background thread."""

from __future__ import annotations

import contextlib
import copy
import signal
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass

import uvicorn
import uvicorn.config

from ._app import create_app
from ._errors import DataServeError
from ._handler import HTTPDataHandler

__all__ = ["RunningServer", "run_http_server", "serve"]

_STOP_TIMEOUT = 10.0
"""Seconds to wait for a server that failed to start to wind down."""


def run_http_server(
    port: int,
    data_handler: type[HTTPDataHandler] | HTTPDataHandler,
    *,
    host: str = "127.0.0.1",
    debug: bool = False,
    log_level: str = "warning",
) -> None:
    """Serve ``data_handler`` on ``host:port`` until Ctrl-C or SIGTERM, then return.

    Port 0 picks a free port; the line printed at start shows the real one. The port is
    taken before the handler is made, so a port in use fails at once. The default host
    serves this machine only: pass ``host="0.0.0.0"`` to serve other machines.
    """
    with _bind(host, port) as sock:
        server = _uvicorn_server(data_handler, debug=debug, log_level=log_level)
        url = _url(host, sock.getsockname()[1])
        print(f"dataserve: serving {_name(data_handler)} on {url} (press Ctrl-C to stop)", flush=True)
        with _signals_interrupt(), contextlib.suppress(KeyboardInterrupt):
            server.run(sockets=[sock])
    print("dataserve: stopped", flush=True)


@dataclass(frozen=True)
class RunningServer:
    """Where a server started by ``serve()`` listens."""

    host: str
    port: int

    @property
    def url(self) -> str:
        """The base URL a client reaches the server at, such as ``http://127.0.0.1:5001``."""
        return _url(self.host, self.port)


@contextlib.contextmanager
def serve(
    data_handler: type[HTTPDataHandler] | HTTPDataHandler,
    *,
    port: int = 0,
    host: str = "127.0.0.1",
    debug: bool = False,
    log_level: str = "warning",
    startup_timeout: float = 30.0,
) -> Iterator[RunningServer]:
    """Serve ``data_handler`` in a background thread for the length of a ``with`` block.

    Returns once the server accepts connections and stops it on exit: for tests,
    notebooks and scripts that serve and query in one process.
    """
    with _bind(host, port) as sock:
        server = _uvicorn_server(data_handler, debug=debug, log_level=log_level)
        thread = threading.Thread(
            target=server.run, kwargs={"sockets": [sock]}, name="dataserve", daemon=True
        )
        thread.start()
        deadline = time.monotonic() + startup_timeout
        while not server.started:
            if not thread.is_alive() or time.monotonic() > deadline:
                server.should_exit = True
                thread.join(_STOP_TIMEOUT)
                raise DataServeError(
                    f"the server for {_name(data_handler)} did not start within {startup_timeout} s; "
                    "see the log above"
                )
            time.sleep(0.005)
        try:
            yield RunningServer(host, sock.getsockname()[1])
        finally:
            server.should_exit = True
            thread.join()


def _uvicorn_server(
    data_handler: type[HTTPDataHandler] | HTTPDataHandler, *, debug: bool, log_level: str
) -> uvicorn.Server:
    """The uvicorn server for ``data_handler``'s app, logging handler failures as uvicorn logs."""
    log_config = copy.deepcopy(uvicorn.config.LOGGING_CONFIG)
    log_config["loggers"]["dataserve"] = {"handlers": ["default"], "level": "INFO", "propagate": False}
    app = create_app(data_handler, debug=debug)
    return uvicorn.Server(
        uvicorn.Config(app, log_level=log_level, log_config=log_config, access_log=False, lifespan="on")
    )


def _bind(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    try:
        return socket.create_server((host, port), family=family)
    except OSError as exc:
        raise DataServeError(f"cannot listen on {host}:{port}: {exc.strerror}; choose another port") from None


def _url(host: str, port: int) -> str:
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"


def _name(data_handler: object) -> str:
    return data_handler.__name__ if isinstance(data_handler, type) else type(data_handler).__name__


@contextlib.contextmanager
def _signals_interrupt() -> Iterator[None]:
    """Make SIGTERM stop the server like Ctrl-C: uvicorn re-raises it once it has shut down."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGTERM, signal.default_int_handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)

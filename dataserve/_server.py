"""Running a handler's app under uvicorn: blocking in the foreground, or in a background thread."""

from __future__ import annotations

import asyncio
import contextlib
import copy
import dataclasses
import os
import ssl
import threading
import time
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, TypeAlias, cast

import uvicorn
import uvicorn.config

from . import _descriptors as descriptors
from ._access import ACCESS_LOGGER
from ._app import DEFAULT_MAX_BODY_SIZE, DataApp, create_app
from ._errors import DataServeError
from ._graceful import DataServer
from ._handler import HTTPDataHandler, import_handler
from ._lifecycle import State
from ._limits import Limits
from ._listen import listen, url, warn_if_open
from ._signals import signals_stop
from ._token import resolve_token
from ._usercodecs import Codec
from ._workers import AppOptions, run_workers

__all__ = ["RunningServer", "run_http_server", "serve"]

Handler: TypeAlias = type[HTTPDataHandler] | HTTPDataHandler | str
"""A handler class, an instance of one, or its import path such as ``"mymodule:MyHandler"``."""

_STOP_TIMEOUT = 10.0
"""Seconds to wait for a server that failed to start to wind down."""


def run_http_server(
    port: int | None,
    data_handler: Handler,
    *,
    host: str = "127.0.0.1",
    uds: str | os.PathLike[str] | None = None,
    token: str | None = None,
    max_concurrency: int = 1,
    workers: int = 1,
    max_body_size: int | None = DEFAULT_MAX_BODY_SIZE,
    limits: Limits | None = None,
    drain_timeout: float = 0,
    refuse_while_loading: bool = False,
    codecs: Iterable[Codec] | None = None,
    access_log: bool = False,
    metrics: bool = False,
    open_metrics: bool = False,
    cors_origins: Sequence[str] = (),
    ssl_certfile: str | os.PathLike[str] | None = None,
    ssl_keyfile: str | os.PathLike[str] | None = None,
    keep_alive_timeout: int = 30,
    shutdown_timeout: int = 30,
    debug: bool = False,
    log_level: str = "warning",
) -> None:
    """Serve ``data_handler`` on ``host:port`` until Ctrl-C or SIGTERM, then return.

    Port 0 picks a free port; the line printed at start shows the real one. The port is
    taken before the handler is made, so a port in use fails at once. With ``uds`` (and
    ``port`` None) the server listens on that Unix socket instead, for the processes of this
    machine: its file is made mode 0600 and removed on exit. The default host
    serves this machine only: pass ``host="0.0.0.0"`` to serve other machines, with a
    ``token`` (or ``$DATASERVE_TOKEN``) that callers must send, and TLS from
    ``ssl_certfile`` and ``ssl_keyfile``. With ``workers`` above 1, that many processes
    share the port, each with its own handler: ``data_handler`` must then be an import
    path such as ``"mymodule:MyHandler"``. On Ctrl-C or SIGTERM, the health check says
    "stopping" while calls are still served for ``drain_timeout`` seconds (none by default),
    then calls under way get ``shutdown_timeout`` seconds to finish. Raises DataServeError if
    the port is taken or the handler's ``setup()`` fails. With ``access_log`` each call is
    logged in one line (to standard output, through the ``dataserve.access`` logger); see
    ``create_app`` for ``metrics``, ``cors_origins`` and the other options.
    """
    if workers < 1:
        raise ValueError(f"workers must be 1 or more, not {workers}")
    if workers > 1 and not isinstance(data_handler, str):
        raise TypeError(
            "with workers > 1, pass the handler as an import path such as 'mymodule:MyHandler', "
            "so that each worker process can import it"
        )
    app_options = AppOptions(
        debug,
        max_concurrency,
        resolve_token(token),
        max_body_size,
        _limits(limits),
        drain_timeout,
        refuse_while_loading,
        tuple(codecs or ()),
        access_log=access_log,
        metrics=metrics,
        open_metrics=open_metrics,
        cors_origins=tuple(cors_origins),
    )
    options = _ServerOptions(log_level, ssl_certfile, ssl_keyfile, keep_alive_timeout, shutdown_timeout)
    name = _name(data_handler)
    with listen(host, port, uds, options.tls) as listening:
        warn_if_open(host, app_options.token, listening.uds)
        if workers > 1:
            assert isinstance(data_handler, str)
            where = f"{listening.where} with {workers} workers"
            print(f"dataserve: serving {name} on {where} (press Ctrl-C to stop)", flush=True)
            run_workers(data_handler, listening.sock, workers, app_options, options.config)
        else:
            server, app = _uvicorn_server(data_handler, app_options, options)
            with signals_stop(server):
                print(f"dataserve: serving {name} on {listening.where} (press Ctrl-C to stop)", flush=True)
                server.run(sockets=[listening.sock])
            _raise_if_failed(app)
    print("dataserve: stopped", flush=True)


@dataclass(frozen=True)
class RunningServer:
    """Where a server started by ``serve()`` listens: a host and port, or a Unix socket (``uds``)."""

    host: str
    port: int
    tls: bool = False
    uds: str | None = None

    @property
    def url(self) -> str:
        """The base URL a client reaches the server at, such as ``http://127.0.0.1:5001``.

        Over a Unix socket it is ``http://localhost``: reach it with ``HTTPDataClient(uds=server.uds)``.
        """
        return url(self.host, self.port, self.tls, self.uds)


@contextlib.contextmanager
def serve(
    data_handler: Handler,
    *,
    port: int | None = 0,
    host: str = "127.0.0.1",
    uds: str | os.PathLike[str] | None = None,
    token: str | None = None,
    max_concurrency: int = 1,
    max_body_size: int | None = DEFAULT_MAX_BODY_SIZE,
    limits: Limits | None = None,
    drain_timeout: float = 0,
    refuse_while_loading: bool = False,
    codecs: Iterable[Codec] | None = None,
    access_log: bool = False,
    metrics: bool = False,
    open_metrics: bool = False,
    cors_origins: Sequence[str] = (),
    ssl_certfile: str | os.PathLike[str] | None = None,
    ssl_keyfile: str | os.PathLike[str] | None = None,
    keep_alive_timeout: int = 30,
    shutdown_timeout: int = 30,
    debug: bool = False,
    log_level: str = "warning",
    startup_timeout: float = 30.0,
) -> Iterator[RunningServer]:
    """Serve ``data_handler`` in a background thread for the length of a ``with`` block.

    Returns once the server accepts connections and the handler's ``setup()`` has
    finished, and stops it on exit: for tests, notebooks and scripts that serve and query
    in one process. With ``uds`` it listens on that Unix socket instead of a port. Raises
    DataServeError if the port is taken, ``setup()`` fails, or the
    server is not ready within ``startup_timeout`` seconds. The other options are those of
    ``run_http_server``.
    """
    app_options = AppOptions(
        debug,
        max_concurrency,
        resolve_token(token),
        max_body_size,
        _limits(limits),
        drain_timeout,
        refuse_while_loading,
        tuple(codecs or ()),
        access_log=access_log,
        metrics=metrics,
        open_metrics=open_metrics,
        cors_origins=tuple(cors_origins),
    )
    options = _ServerOptions(log_level, ssl_certfile, ssl_keyfile, keep_alive_timeout, shutdown_timeout)
    with listen(host, None if uds is not None and port == 0 else port, uds, options.tls) as listening:
        warn_if_open(host, app_options.token, listening.uds)
        server, app = _uvicorn_server(data_handler, app_options, options)
        thread = threading.Thread(
            target=server.run, kwargs={"sockets": [listening.sock]}, name="dataserve", daemon=True
        )
        thread.start()
        deadline = time.monotonic() + startup_timeout
        while not server.started or app.lifecycle.state is State.STARTING:
            if not thread.is_alive() or time.monotonic() > deadline:
                break
            time.sleep(0.005)
        if not server.started or app.lifecycle.state is not State.READY:
            server.should_exit = True
            thread.join(_STOP_TIMEOUT)
            _raise_if_failed(app)
            raise DataServeError(
                f"the server for {_name(data_handler)} did not start within {startup_timeout} s; "
                "see the log above"
            )
        try:
            yield RunningServer(listening.host, listening.port, options.tls, listening.uds)
        finally:
            if drain_timeout > 0:  # the server's thread takes no signal: the drain is here
                app.core.stopping()
                time.sleep(drain_timeout)
            server.should_exit = True
            thread.join()


@dataclass(frozen=True)
class _ServerOptions:
    """What the HTTP server (uvicorn) takes."""

    log_level: str
    ssl_certfile: str | os.PathLike[str] | None
    ssl_keyfile: str | os.PathLike[str] | None
    keep_alive_timeout: int
    shutdown_timeout: int

    def __post_init__(self) -> None:
        if self.ssl_certfile is None:
            return
        try:  # Fail in one line, before serving, rather than in uvicorn's startup.
            ssl.create_default_context(ssl.Purpose.CLIENT_AUTH).load_cert_chain(
                self.ssl_certfile, self.ssl_keyfile
            )
        except (OSError, ssl.SSLError) as exc:
            raise DataServeError(
                f"cannot load the certificate {os.fspath(self.ssl_certfile)!r} with the key "
                f"{self.ssl_keyfile and os.fspath(self.ssl_keyfile)!r}: {exc}"
            ) from None

    @property
    def tls(self) -> bool:
        return self.ssl_certfile is not None

    def config(self, app: Any, **extra: Any) -> uvicorn.Config:
        """uvicorn's configuration, logging handler failures as uvicorn logs."""
        log_config = copy.deepcopy(uvicorn.config.LOGGING_CONFIG)
        log_config["loggers"]["dataserve"] = {"handlers": ["default"], "level": "INFO", "propagate": False}
        log_config["formatters"]["dataserve.access"] = {"format": "%(asctime)s %(message)s"}
        log_config["handlers"]["dataserve.access"] = {
            "formatter": "dataserve.access",
            "class": "logging.StreamHandler",
            "stream": "ext://sys.stdout",
        }
        log_config["loggers"][ACCESS_LOGGER] = {
            "handlers": ["dataserve.access"],
            "level": "INFO",
            "propagate": False,
        }
        return uvicorn.Config(
            app,
            log_level=self.log_level,
            log_config=log_config,
            access_log=False,
            lifespan="on",
            ssl_certfile=self.ssl_certfile,
            ssl_keyfile=self.ssl_keyfile,
            timeout_keep_alive=self.keep_alive_timeout,
            timeout_graceful_shutdown=self.shutdown_timeout,
            http=_protocol_class(),
            **extra,
        )


def _limits(limits: Limits | None) -> Limits:
    """``limits``, with no more connections than this process may open descriptors for."""
    limits = limits or Limits()
    allowed = descriptors.raise_limit(limits.max_connections)
    return (
        limits if allowed == limits.max_connections else dataclasses.replace(limits, max_connections=allowed)
    )


def _protocol_class() -> type[asyncio.Protocol]:
    """dataserve's protocol: its guards on every request, and its direct lane for plain calls."""
    from ._protocol import DataProtocol

    # A BufferedProtocol, which uvicorn's annotation leaves out: it takes any protocol class.
    return cast(type[asyncio.Protocol], DataProtocol)


def _uvicorn_server(
    data_handler: Handler, app_options: AppOptions, options: _ServerOptions
) -> tuple[DataServer, DataApp]:
    """The uvicorn server for ``data_handler``'s app, which stops it if the handler's setup() fails."""
    handler = import_handler(data_handler) if isinstance(data_handler, str) else data_handler
    app = create_app(handler, **app_options.kwargs())
    server = DataServer(options.config(app))

    def stop(exc: BaseException) -> None:
        server.should_exit = True

    app.lifecycle.on_failure = stop
    return server, app


def _raise_if_failed(app: DataApp) -> None:
    error = app.lifecycle.error
    if error is not None:
        raise DataServeError(
            f"{app.lifecycle.name}.setup() failed ({type(error).__name__}: {error}); the server did not start"
        ) from error


def _name(data_handler: object) -> str:
    if isinstance(data_handler, str):
        return data_handler.rpartition(":")[2]
    return data_handler.__name__ if isinstance(data_handler, type) else type(data_handler).__name__

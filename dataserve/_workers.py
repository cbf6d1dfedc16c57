"""Worker processes sharing one socket, under uvicorn's supervisor: ``run_http_server(..., workers=N)``.

Each worker imports the handler by its import path and makes its own app. What it serves
with (the token among the options) reaches it with the pickled configuration, through the
pipe that starts it, never through its environment, where whatever the handler starts
would find it. A worker dies with its supervisor, even one killed with SIGKILL, and the
supervisor says at WARNING when a worker ended or hung and was replaced.
"""

from __future__ import annotations

import logging
import os
import signal
import socket
import sys
import threading
import time
from dataclasses import dataclass, fields
from functools import partial
from typing import Any

from uvicorn.supervisors import Multiprocess

from ._app import DataApp, create_app
from ._errors import DataServeError
from ._handler import import_handler
from ._lifecycle import STARTUP_FAILURE
from ._limits import Limits
from ._metrics import require_prometheus, shared_metrics, worker_gone
from ._token import TOKEN_ENV
from ._usercodecs import Codec

__all__ = ["AppOptions", "run_workers", "worker_app"]

logger = logging.getLogger("dataserve")

_PR_SET_PDEATHSIG = 1
"""Linux's prctl option: the signal a process gets when the thread that started it ends."""


@dataclass(frozen=True)
class AppOptions:
    """What ``create_app`` takes besides the handler, also sent to worker processes."""

    debug: bool
    max_concurrency: int
    token: str | None
    max_body_size: int | None
    limits: Limits
    drain_timeout: float = 0
    refuse_while_loading: bool = False
    codecs: tuple[Codec, ...] = ()
    access_log: bool = False
    metrics: bool = False
    open_metrics: bool = False
    cors_origins: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if self.metrics:
            require_prometheus()  # here, in one line, rather than in every worker

    def kwargs(self) -> dict[str, Any]:
        """The options as ``create_app``'s keyword arguments."""
        return {field.name: getattr(self, field.name) for field in fields(self)}


def worker_app(target: str, options: AppOptions, supervisor: int) -> DataApp:
    """The app of one worker process, which serves ``target`` with ``options`` while ``supervisor`` lives."""
    _die_with(supervisor)
    os.environ.pop(TOKEN_ENV, None)  # resolved already: the handler's own children need not see it
    return create_app(import_handler(target), **options.kwargs())


def run_workers(target: str, sock: socket.socket, workers: int, options: AppOptions, config: Any) -> None:
    """Serve ``target`` from ``workers`` processes sharing ``sock``, under uvicorn's supervisor.

    ``config`` makes uvicorn's configuration from the app factory: ``config(app, **extra)``.
    """
    import_handler(target)  # Fail here, in one line, rather than once in every worker.
    factory = partial(worker_app, target, options, os.getpid())
    supervisor = _Supervisor(config(factory, factory=True, workers=workers), sockets=[sock])
    # A worker starts with a copy of this environment: the token, resolved into the options
    # already, is out of it while workers start, and back once they are all gone.
    token = os.environ.pop(TOKEN_ENV, None)
    try:
        with shared_metrics(options.metrics):
            supervisor.run()
    finally:
        if token is not None:
            os.environ[TOKEN_ENV] = token
    if any(process.exitcode == STARTUP_FAILURE for process in supervisor.processes):
        raise DataServeError(f"a worker serving {target} failed to start; see the log above")


class _Supervisor(Multiprocess):
    """uvicorn's supervisor, which says at WARNING when it replaces a worker, and why, and lets
    go of the listening socket as the workers stop."""

    def terminate_all(self) -> None:
        # The workers share the socket with this process. The kernel keeps queueing connections
        # on it until its last holder closes it, and then resets those still queued: were this
        # process the last, it would reset every connection made while the workers stopped.
        for sock in self.sockets:
            sock.close()
        super().terminate_all()

    def keep_subprocess_alive(self) -> None:
        before = [(process, process.exitcode) for process in self.processes]
        super().keep_subprocess_alive()
        if self.should_exit.is_set():
            return
        for (old, exitcode_before), process in zip(before, self.processes, strict=True):
            if process is old:
                continue
            exitcode = old.exitcode  # read after uvicorn joined it: a snapshot may predate the death
            if exitcode is None or (exitcode == -signal.SIGKILL and exitcode_before is None):
                wait = self.config.timeout_worker_healthcheck
                how = (
                    f"was killed by SIGKILL (it did not answer its supervisor within {wait} s,"
                    " or was killed from outside)"
                )
            elif exitcode < 0:
                how = f"was killed by {signal.Signals(-exitcode).name}"
            else:
                how = f"exited with status {exitcode}"
            logger.warning(
                "dataserve: worker process %s %s; started %s in its place", old.pid, how, process.pid
            )
            if old.pid is not None:
                worker_gone(old.pid)


def _die_with(supervisor: int) -> None:
    """End this process with SIGTERM, and so shut its server down, when the process ``supervisor`` ends.

    Linux does it (``PR_SET_PDEATHSIG``); elsewhere a thread checks the parent every second.
    """
    if sys.platform.startswith("linux"):
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)
    else:

        def watch() -> None:
            while os.getppid() == supervisor:
                time.sleep(1.0)
            os.kill(os.getpid(), signal.SIGTERM)

        threading.Thread(target=watch, name="dataserve supervisor watch", daemon=True).start()
    if os.getppid() != supervisor:  # it ended before this process got this far
        os.kill(os.getpid(), signal.SIGTERM)

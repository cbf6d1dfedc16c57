"""Prometheus metrics of a server's calls, served at ``GET /metrics`` (``metrics=True``).

Needs prometheus-client (``pip install prometheus-client``, or the ``metrics`` extra). The
metrics, with no label a caller controls (resources are not labels):

- ``dataserve_calls_total{status}``: calls answered, by HTTP status;
- ``dataserve_call_duration_seconds``: a histogram of the time from a call's head to its reply;
- ``dataserve_calls_in_flight``: calls read and not yet answered;
- ``dataserve_request_bytes_total`` and ``dataserve_response_bytes_total``: body bytes in and out;
- ``dataserve_setup_duration_seconds``: how long the handler's ``setup()`` took;
- ``dataserve_ready``: 1 while the handler is set up and serving, else 0.

A single process keeps them in a registry of the app's own. Worker processes
(``workers=N``) share prometheus-client's multiprocess directory, which dataserve's server
makes for them (or takes from ``$PROMETHEUS_MULTIPROC_DIR``): whichever worker answers a
scrape reports the sum over all live workers; ``dataserve_ready`` then counts the workers that
are ready, and ``dataserve_setup_duration_seconds`` is the slowest worker's.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from collections.abc import Iterator
from typing import Any

from ._errors import DataServeError
from ._lifecycle import Lifecycle, State

__all__ = ["METRICS_PATH", "MULTIPROC_ENV", "Metrics", "require_prometheus", "shared_metrics", "worker_gone"]

METRICS_PATH = "/metrics"
"""Where the metrics are served."""

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
"""prometheus-client's variable for the directory that worker processes share their metrics in."""

BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
"""The duration histogram's buckets, in seconds: a small call takes well under a millisecond."""

MISSING = (
    "metrics=True needs prometheus-client, which is not installed here: pip install prometheus-client "
    "(or '.[metrics]' from the dataserve checkout)"
)


def require_prometheus() -> None:
    """Raise DataServeError, saying what to install, if prometheus-client is missing."""
    try:
        import prometheus_client  # noqa: F401
    except ImportError as exc:
        raise DataServeError(MISSING) from exc


@contextlib.contextmanager
def shared_metrics(metrics: bool) -> Iterator[None]:
    """Give the worker processes started within a directory to share their metrics in.

    One of dataserve's own, made empty and removed at the end, unless ``$PROMETHEUS_MULTIPROC_DIR``
    names one already (then the user empties it before the server starts, as prometheus-client asks).
    """
    if not metrics or os.environ.get(MULTIPROC_ENV):
        yield
        return
    folder = tempfile.mkdtemp(prefix="dataserve-metrics-")
    os.environ[MULTIPROC_ENV] = folder
    try:
        yield
    finally:
        os.environ.pop(MULTIPROC_ENV, None)
        shutil.rmtree(folder, ignore_errors=True)


def worker_gone(pid: int) -> None:
    """A worker process has ended: its live gauges (in flight, ready) no longer count."""
    if os.environ.get(MULTIPROC_ENV):
        from prometheus_client import multiprocess

        multiprocess.mark_process_dead(pid)  # type: ignore[no-untyped-call]


class Metrics:
    """The metrics of one app's calls, and their text in Prometheus' format."""

    def __init__(self, lifecycle: Lifecycle) -> None:
        require_prometheus()
        import prometheus_client as prom

        self._prom = prom
        self.multiprocess = bool(os.environ.get(MULTIPROC_ENV))
        registry = None if self.multiprocess else prom.CollectorRegistry(auto_describe=True)
        self.registry = registry
        self.calls = prom.Counter(
            "dataserve_calls", "Calls answered, by HTTP status.", ["status"], registry=registry
        )
        self.duration = prom.Histogram(
            "dataserve_call_duration_seconds",
            "Seconds from a call's head to its reply.",
            buckets=BUCKETS,
            registry=registry,
        )
        self.in_flight = prom.Gauge(
            "dataserve_calls_in_flight",
            "Calls read and not yet answered.",
            registry=registry,
            multiprocess_mode="livesum",
        )
        self.bytes_in = prom.Counter(
            "dataserve_request_bytes", "Bytes of request bodies read.", registry=registry
        )
        self.bytes_out = prom.Counter(
            "dataserve_response_bytes", "Bytes of reply bodies sent.", registry=registry
        )
        self.setup_seconds = prom.Gauge(
            "dataserve_setup_duration_seconds",
            "Seconds the handler's setup() took (with workers, the slowest worker's).",
            registry=registry,
            multiprocess_mode="max",
        )
        self.ready = prom.Gauge(
            "dataserve_ready",
            "1 while the handler is set up and serving, else 0 (with workers, how many are).",
            registry=registry,
            multiprocess_mode="livesum",
        )
        self.lifecycle = lifecycle
        lifecycle.listeners.append(self._follow)
        self._follow(lifecycle.state)

    def _follow(self, state: State) -> None:
        self.ready.set(1 if state is State.READY else 0)
        if self.lifecycle.setup_seconds is not None:
            self.setup_seconds.set(self.lifecycle.setup_seconds)

    def begin(self) -> None:
        """A call's head is read."""
        self.in_flight.inc()

    def end(self, status: int, duration: float, bytes_in: int, bytes_out: int) -> None:
        """A call begun is answered (or its caller has gone: status 499)."""
        self.in_flight.dec()
        self.calls.labels(str(status)).inc()
        self.duration.observe(duration)
        if bytes_in:
            self.bytes_in.inc(bytes_in)
        if bytes_out:
            self.bytes_out.inc(bytes_out)

    def text(self) -> tuple[bytes, str]:
        """The metrics in Prometheus' text format, and its content type."""
        prom = self._prom
        registry: Any = self.registry
        if registry is None:
            from prometheus_client import multiprocess

            registry = prom.CollectorRegistry()
            multiprocess.MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
        return prom.generate_latest(registry), prom.CONTENT_TYPE_LATEST

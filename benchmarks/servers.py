"""What the benchmarks serve, and the server processes that serve it.

The same ``BenchData`` object answers both servers: the ProxyServer serves it as it is,
dataserve through ``BenchHandler`` (or ``BenchAsyncHandler``, the same as ``async def``). Run
as a script, this module serves ``BenchData`` with the ProxyServer on a free port, or on the
Unix socket its argument names; dataserve runs as ``python -m dataserve serve``.
"""

from __future__ import annotations

import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import pandas as pd

from dataserve import HTTPDataHandler
from dataserve.proxy import run_proxy_server

HERE = Path(__file__).resolve().parent

XDATA = [1, 2, 3]
"""The data a small call adds its payload to, as in the quickstart."""

STOP_TIMEOUT = 30.0
"""Seconds a server process gets to stop after Ctrl-C before it is killed."""


class BenchData:
    """The served object: a small call, a bytes echo, float64 arrays and mixed-dtype DataFrames."""

    def __init__(self) -> None:
        self._arrays: dict[int, npt.NDArray[np.float64]] = {}
        self._frames: dict[int, pd.DataFrame] = {}
        self._lock = threading.Lock()

    def small(self, values: list[int]) -> list[int]:
        return XDATA + values

    def echo(self, data: bytes) -> bytes:
        return data

    def array(self, size: int) -> npt.NDArray[np.float64]:
        """``numpy.arange(size)`` as float64: made by the first call (the warm-up), then kept."""
        with self._lock:
            if size not in self._arrays:
                self._arrays[size] = np.arange(size, dtype=np.float64)
            return self._arrays[size]

    def frame(self, rows: int) -> pd.DataFrame:
        """``mixed_frame(rows)``: made by the first call (the warm-up), then kept."""
        with self._lock:
            if rows not in self._frames:
                self._frames[rows] = mixed_frame(rows)
            return self._frames[rows]


def mixed_frame(rows: int) -> pd.DataFrame:
    """A DataFrame of ``rows`` rows with a column of each dtype people hold: int64, float64, a
    nullable Int64 with missing values, strings, a categorical, tz-aware datetimes and bools."""
    rng = np.random.default_rng(rows)
    counts = pd.array(rng.integers(-1000, 1000, rows), dtype="Int64")
    counts[::7] = pd.NA
    words = np.array(["alpha", "beta", "gamma", "delta", "epsilon", "zeta"])
    return pd.DataFrame(
        {
            "id": np.arange(rows, dtype=np.int64),
            "value": rng.standard_normal(rows),
            "count": counts,
            "label": pd.Series(words[rng.integers(0, len(words), rows)], dtype="string"),
            "kind": pd.Categorical.from_codes(rng.integers(0, 3, rows), ["low", "mid", "high"]),
            "when": pd.date_range("2024-01-01", periods=rows, freq="s", tz="Europe/Paris"),
            "flag": rng.random(rows) > 0.5,
        }
    )


PROXY_NAME = BenchData.__name__
"""The name a ProxyServer client asks for."""


class BenchHandler(HTTPDataHandler):
    """``BenchData`` on dataserve: each resource calls the method of the same name."""

    def __init__(self) -> None:
        self.data = BenchData()

    def handle_request(self, resource: str, payload: Any) -> Any:
        if resource == "/small":
            return self.data.small(payload)
        if resource == "/echo":
            return self.data.echo(payload)
        if resource == "/array":
            return self.data.array(payload)
        if resource == "/frame":
            return self.data.frame(payload)
        return None


class BenchAsyncHandler(BenchHandler):
    """``BenchHandler`` as an ``async def`` handler, which runs on the event loop."""

    async def handle_request(self, resource: str, payload: Any) -> Any:
        return BenchHandler.handle_request(self, resource, payload)


@dataclass
class ServerProcess:
    """A server running in a process of its own, and the port it listens on."""

    name: str
    kind: str
    """``"dataserve"`` or ``"proxy"``: how a client reaches it."""
    process: subprocess.Popen[str]
    address: int | str
    """The port it listens on at 127.0.0.1, or the path of its Unix socket."""
    _idle: dict[int, int] = field(default_factory=dict, init=False)
    """Each process's resident bytes when the peak was last reset."""

    def pids(self) -> list[int]:
        """The server's process and its children (the workers, for dataserve with several)."""
        return [self.process.pid, *_children(self.process.pid)]

    def reset_peak_memory(self) -> None:
        """Start a new peak: each process's peak resident size (VmHWM) becomes its size now."""
        self._idle = {}
        for pid in self.pids():
            Path(f"/proc/{pid}/clear_refs").write_text("5")
            self._idle[pid] = _status_bytes(pid, "VmRSS")

    def peak_memory(self) -> int:
        """The most bytes any of its processes has held, since the reset, above what it held then."""
        return max(_status_bytes(pid, "VmHWM") - idle for pid, idle in self._idle.items())

    def stop(self) -> None:
        """Stop the server with Ctrl-C (SIGINT) and wait for it; kill it if it does not stop."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
            try:
                self.process.wait(STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        if self.process.stdout is not None:
            self.process.stdout.close()


def start_dataserve(
    workers: int,
    max_concurrency: int,
    handler: str = "BenchHandler",
    uds: str | None = None,
    options: Sequence[str] = (),
    log: Path | None = None,
) -> ServerProcess:
    """Serve ``handler`` with ``workers`` processes, as ``dataserve serve`` does, on a port or ``uds``,
    with more ``options`` (such as ``--access-log``); with ``log``, its standard output goes to that file."""
    command = ["-m", "dataserve", "serve", f"servers:{handler}", "--workers", str(workers)]
    command += ["--max-concurrency", str(max_concurrency), *options]
    command += ["--port", "0"] if uds is None else ["--uds", uds]
    name = f"dataserve {handler}, {workers} worker{'s' if workers > 1 else ''} {' '.join(options)}".strip()
    return _start(name, "dataserve", command, log)


def start_proxy(uds: str | None = None) -> ServerProcess:
    """Serve ``BenchData`` with the ProxyServer, on a port or the Unix socket ``uds``."""
    return _start("ProxyServer", "proxy", [str(HERE / "servers.py"), *([] if uds is None else [uds])])


def _start(name: str, kind: str, arguments: list[str], log: Path | None = None) -> ServerProcess:
    """Start ``python arguments`` in this directory; where it listens is on the first line it prints.

    Its standard output is a pipe read for that line only, or the file ``log`` for a server that
    prints a line per call (a pipe nobody reads would fill, and block it).
    """
    if log is None:
        process = subprocess.Popen([sys.executable, *arguments], cwd=HERE, stdout=subprocess.PIPE, text=True)
        assert process.stdout is not None
        line = process.stdout.readline()
    else:
        with log.open("w") as out:
            process = subprocess.Popen([sys.executable, *arguments], cwd=HERE, stdout=out, text=True)
        line = _first_line(log, process)
    found = re.search(r"127\.0\.0\.1:(\d+)|unix socket (\S+)", line)
    if found is None:
        process.kill()
        process.wait()
        raise RuntimeError(f"{name} did not start (it printed {line!r}); see its errors above")
    address: int | str = int(found.group(1)) if found.group(1) else found.group(2)
    return ServerProcess(name, kind, process, address)


def _first_line(log: Path, process: subprocess.Popen[str]) -> str:
    """The first line ``process`` writes to the file ``log``, once it is there (or "" if it exits first)."""
    deadline = time.monotonic() + STOP_TIMEOUT * 6
    while time.monotonic() < deadline and process.poll() is None:
        text = log.read_text()
        if "\n" in text:
            return text.partition("\n")[0]
        time.sleep(0.02)
    return ""


def _children(parent: int) -> list[int]:
    """The processes whose parent is ``parent``, from /proc/PID/stat."""
    children = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            # The command name, in parentheses, may hold spaces: the fields after it are plain.
            fields = stat.read_text().rpartition(")")[2].split()
        except OSError:  # the process has ended
            continue
        if int(fields[1]) == parent:
            children.append(int(stat.parent.name))
    return children


def _status_bytes(pid: int, name: str) -> int:
    """The size called ``name`` in /proc/PID/status (given there in kB), in bytes."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(name + ":"):
            return int(line.split()[1]) * 1024
    raise RuntimeError(f"/proc/{pid}/status has no {name}")


if __name__ == "__main__":
    if len(sys.argv) > 1:
        run_proxy_server(BenchData, None, uds=sys.argv[1])
    else:
        run_proxy_server(BenchData, 0)

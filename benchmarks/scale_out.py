"""What a load balancer costs, and what replicas behind it bring, on this machine.

    python benchmarks/scale_out.py [--quick] [--rounds N]

Starts one ``dataserve serve`` process to call directly and three replicas behind HAProxy and
nginx (each run with its recipe from docs/scale-out, where installed), then measures, in
interleaved rounds: the small-call latency through each balancer against the direct call, and
calls per second from 8 client processes, one replica called directly against three behind
each balancer, for a call that waits 10 ms (a model waiting on a device or a store: replicas
add capacity) and one that only computes (replicas share the machine's CPUs). Prints a
Markdown table of medians with their min-max spread over the rounds.
"""

from __future__ import annotations

import argparse
import multiprocessing
import multiprocessing.pool
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any

import httpx

import dataserve
from dataserve import HTTPDataClient

ROOT = Path(__file__).resolve().parent.parent
RECIPES = ROOT / "docs" / "scale-out"
SBIN = os.pathsep.join([os.environ.get("PATH", ""), "/usr/sbin", "/sbin"])
CLIENTS = 8
WAIT = 0.01
"""Seconds the waiting call waits."""


class Work(dataserve.HTTPDataHandler):
    """``/small`` echoes its payload; ``/wait`` waits ``WAIT`` seconds first; ``/compute`` sums a range."""

    def handle_request(self, resource: str, payload: Any) -> Any:
        if resource == "/wait":
            time.sleep(WAIT)
        elif resource == "/compute":
            return sum(range(payload))
        return payload


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextmanager
def process(command: list[str], ready: Callable[[], bool], log: Path) -> Iterator[subprocess.Popen[bytes]]:
    """Run ``command`` until the block ends; returns once ``ready()``."""
    environment = dict(os.environ)
    environment["PYTHONPATH"] = os.pathsep.join([str(Path(__file__).parent), str(ROOT)])
    with log.open("w") as out:
        child = subprocess.Popen(command, env=environment, stdout=out, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 30
        while not ready():
            if child.poll() is not None or time.monotonic() > deadline:
                raise SystemExit(f"{command[0]} did not start; see {log}: {log.read_text()[-2000:]}")
            time.sleep(0.05)
        yield child
    finally:
        child.send_signal(signal.SIGTERM)
        try:
            child.wait(30)
        except subprocess.TimeoutExpired:
            child.kill()
            child.wait(30)


def healthy(port: int) -> Callable[[], bool]:
    def check() -> bool:
        try:
            return httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=5).status_code == 200
        except httpx.TransportError:
            return False

    return check


def replica(port: int) -> list[str]:
    return [sys.executable, "-m", "dataserve", "serve", "scale_out:Work", "--port", str(port)]


def recipe(name: str, port: int, replicas: Sequence[int]) -> str:
    text = (RECIPES / name).read_text()
    for old, new in zip((8000, 8001, 8002, 8003), [port, *replicas], strict=True):
        text = text.replace(f"127.0.0.1:{old}", f"127.0.0.1:{new}")
    return text


def start(stack: ExitStack, directory: Path) -> dict[str, int]:
    """The ports to call: ``direct`` (one replica), and ``haproxy`` and ``nginx`` (three replicas each)."""
    ports = {"direct": free_port()}
    stack.enter_context(process(replica(ports["direct"]), healthy(ports["direct"]), directory / "direct.log"))
    replicas = [free_port() for _ in range(3)]
    for n, port in enumerate(replicas):
        stack.enter_context(process(replica(port), healthy(port), directory / f"replica{n}.log"))
    haproxy = shutil.which("haproxy", path=SBIN)
    if haproxy is not None:
        ports["haproxy"] = free_port()
        config = directory / "haproxy.cfg"
        config.write_text(recipe("haproxy.cfg", ports["haproxy"], replicas))
        command = [haproxy, "-db", "-f", str(config)]
        stack.enter_context(process(command, all_up(ports["haproxy"]), directory / "haproxy.log"))
    nginx = shutil.which("nginx", path=SBIN)
    if nginx is not None:
        ports["nginx"] = free_port()
        config = directory / "nginx.conf"
        local = f"access_log off; client_body_temp_path {directory}/body; proxy_temp_path {directory}/proxy;"
        config.write_text(
            recipe("nginx.conf", ports["nginx"], replicas).replace("http {\n", f"http {{\n{local}\n")
        )
        directives = f"daemon off; pid {directory}/nginx.pid; error_log {directory}/nginx.err;"
        command = [nginx, "-p", str(directory), "-c", str(config), "-g", directives]
        stack.enter_context(process(command, all_up(ports["nginx"]), directory / "nginx.log"))
    return ports


def all_up(port: int) -> Callable[[], bool]:
    """Whether calls through the balancer at ``port`` go through (to some replica)."""

    def check() -> bool:
        try:
            with HTTPDataClient(port, "http://127.0.0.1:", timeout=5) as client:
                return bool(client.send("/small", [1]) == [1])
        except dataserve.DataServeError:
            return False

    return check


def latency(port: int, calls: int) -> float:
    """The median seconds of one small call."""
    times = []
    with HTTPDataClient(port, "http://127.0.0.1:", timeout=30) as client:
        client.send("/small", [1, 2, 3])
        for _ in range(calls):
            begun = time.perf_counter()
            client.send("/small", [1, 2, 3])
            times.append(time.perf_counter() - begun)
    return statistics.median(times)


def _calls(port: int, resource: str, payload: Any, seconds: float, start: float) -> int:
    with HTTPDataClient(port, "http://127.0.0.1:", timeout=30) as client:
        client.send("/small", [1])
        time.sleep(max(0.0, start - time.monotonic()))
        stop, calls = start + seconds, 0
        while time.monotonic() < stop:
            client.send(resource, payload)
            calls += 1
    return calls


def throughput(
    pool: multiprocessing.pool.Pool, port: int, resource: str, payload: Any, seconds: float
) -> float:
    """Calls a second from CLIENTS processes calling at once for ``seconds``."""
    start = time.monotonic() + 1.0  # every client connected and waiting by then
    counts: list[int] = pool.starmap(_calls, [(port, resource, payload, seconds, start)] * CLIENTS)
    return sum(counts) / seconds


def spread(values: list[float], scale: float = 1.0, digits: int = 0) -> str:
    numbers = [value * scale for value in values]
    median = statistics.median(numbers)
    return f"{median:.{digits}f} ({min(numbers):.{digits}f}-{max(numbers):.{digits}f})"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="tiny sizes: to check the script runs")
    parser.add_argument("--rounds", type=int, default=5)
    options = parser.parse_args(argv)
    rounds = 1 if options.quick else options.rounds
    calls, seconds = (50, 0.5) if options.quick else (1000, 3.0)
    with tempfile.TemporaryDirectory() as tmp, ExitStack() as stack:
        ports = start(stack, Path(tmp))
        pool = stack.enter_context(multiprocessing.get_context("spawn").Pool(CLIENTS))
        lanes = list(ports)
        for lane in lanes:  # a warm-up: the client processes start and import dataserve
            throughput(pool, ports[lane], "/small", [1], 0.1)
        results: dict[tuple[str, str], list[float]] = {}
        for _ in range(rounds):  # interleaved: every lane once per round
            for lane in lanes:
                port = ports[lane]
                results.setdefault(("latency", lane), []).append(latency(port, calls))
                results.setdefault(("wait", lane), []).append(throughput(pool, port, "/wait", "x", seconds))
                results.setdefault(("compute", lane), []).append(
                    throughput(pool, port, "/compute", 20_000, seconds)
                )
    direct = {kind: statistics.median(results[kind, "direct"]) for kind in ("latency", "wait", "compute")}
    lines = [
        f"| measure ({rounds} rounds, median (min-max)) | " + " | ".join(lanes) + " |",
        "|---|" + "--:|" * len(lanes),
        "| small call p50, us | "
        + " | ".join(spread(results["latency", lane], 1e6) for lane in lanes)
        + " |",
        "| vs direct | "
        + " | ".join(
            f"{statistics.median(results['latency', lane]) / direct['latency']:.2f}x" for lane in lanes
        )
        + " |",
        f"| calls/s, {CLIENTS} clients, {WAIT * 1000:g} ms wait | "
        + " | ".join(spread(results["wait", lane]) for lane in lanes)
        + " |",
        "| vs one replica | "
        + " | ".join(f"{statistics.median(results['wait', lane]) / direct['wait']:.2f}x" for lane in lanes)
        + " |",
        f"| calls/s, {CLIENTS} clients, compute | "
        + " | ".join(spread(results["compute", lane]) for lane in lanes)
        + " |",
        "| vs one replica | "
        + " | ".join(
            f"{statistics.median(results['compute', lane]) / direct['compute']:.2f}x" for lane in lanes
        )
        + " |",
    ]
    print(f"direct: one replica; haproxy, nginx: three replicas behind it; {os.cpu_count()} CPUs")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())

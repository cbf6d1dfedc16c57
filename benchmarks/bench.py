"""Race dataserve against the pickle-based ProxyServer it replaces, and write up the results.

    python benchmarks/bench.py [--quick] [--out-dir DIR] [--no-docs] [--max-concurrency N]

Both servers serve the same object (``servers.BenchData``) from processes of their own.
Every measure alternates between them in one run, after a warm-up round, and keeps the
median over its rounds. The script prints the table and writes ``DIR/benchmarks.md``
(between its results markers only) and ``DIR/img/benchmarks.png``; DIR is ``docs/`` by default.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import partial
from importlib import metadata
from pathlib import Path
from typing import TypeVar

import numpy as np
import report
from clients import SMALL, Bench, ClientPool, connect
from report import MiB, Pair, Results
from servers import XDATA, ServerProcess, start_dataserve, start_proxy

import dataserve

ROOT = Path(__file__).resolve().parent.parent

T = TypeVar("T")


@dataclass(frozen=True)
class Plan:
    """How much the benchmark measures, and how often."""

    rounds: int
    """Rounds of each measure after the warm-up round; each number is the median over them."""
    latency_calls: int
    """Small calls per round of the latency measure."""
    byte_sizes: tuple[int, ...]
    array_sizes: tuple[int, ...]
    sample_bytes: int
    """Each round of a round trip measure makes as many calls as send this many payload bytes (1 at least)."""
    clients: tuple[int, ...]
    load_rounds: int
    load_seconds: float
    """How long the clients of one round of the calls-per-second measure make calls."""


FULL = Plan(
    rounds=9,
    latency_calls=2000,
    byte_sizes=(MiB, 10 * MiB, 100 * MiB),
    array_sizes=(10**6, 10**7),
    sample_bytes=64 * MiB,
    clients=(1, 4, 16),
    load_rounds=5,
    load_seconds=1.5,
)

QUICK = Plan(
    rounds=2,
    latency_calls=20,
    byte_sizes=(1024, 10 * 1024, 100 * 1024),
    array_sizes=(1000, 10_000),
    sample_bytes=100 * 1024,
    clients=(1, 2, 4),
    load_rounds=1,
    load_seconds=0.1,
)

MAX_CONCURRENCY = 1
"""dataserve's ``--max-concurrency``, its default: 4 did no better with 16 clients on 2 CPUs."""


def main(argv: Sequence[str] | None = None) -> int:
    """Run the benchmark with the command line ``argv``, print the table, write the page and chart."""
    args = _parser().parse_args(argv)
    plan = QUICK if args.quick else FULL
    with contextlib.ExitStack() as stack:
        pool = ClientPool(max(plan.clients))
        stack.callback(pool.close)
        servers = []
        for start in (
            partial(start_dataserve, 1, args.max_concurrency),
            partial(start_dataserve, 2, args.max_concurrency),
            start_proxy,
        ):
            servers.append(start())
            stack.callback(servers[-1].stop)
        one_worker, two_workers, proxy = servers
        results = measure(plan, one_worker, two_workers, proxy, pool)
    markdown = report.table(report.rows(results))
    print(markdown)
    if not args.no_docs:
        out = Path(args.out_dir)
        page = report.section(markdown, machine(plan, args.max_concurrency))
        report.write_page(out / "benchmarks.md", page)
        report.chart(results, out / report.IMAGE)
        print(f"wrote {out / 'benchmarks.md'} and {out / report.IMAGE}")
    return 0


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description="Race dataserve against the pickle-based ProxyServer.")
    parser.add_argument("--quick", action="store_true", help="tiny sizes and few rounds: checks that it runs")
    parser.add_argument(
        "--out-dir",
        default=str(ROOT / "docs"),
        metavar="DIR",
        help="write DIR/benchmarks.md and DIR/img/benchmarks.png (default: the docs/ of this checkout)",
    )
    parser.add_argument("--no-docs", action="store_true", help="print the table, write nothing")
    parser.add_argument(
        "--max-concurrency",
        type=int,
        default=MAX_CONCURRENCY,
        metavar="N",
        help=f"dataserve's calls at once per worker (default {MAX_CONCURRENCY})",
    )
    return parser


def measure(
    plan: Plan, one_worker: ServerProcess, two_workers: ServerProcess, proxy: ServerProcess, pool: ClientPool
) -> Results:
    """Every measure, on dataserve (with one worker, and two for the calls per second) and the proxy."""
    servers = [one_worker, proxy]
    benches = [connect(server.kind, server.port) for server in servers]
    for bench in benches:
        check(bench)
    p50, p99 = small_call_latency(plan, benches)
    round_trips = {size: bytes_round_trip(plan, size, benches, servers) for size in plan.byte_sizes}
    array_rate = {size: array_round_trip(plan, size, benches) for size in plan.array_sizes}
    calls = calls_per_second(plan, pool, one_worker, two_workers, proxy)
    bytes_rate = {size: mb_per_second for size, (mb_per_second, _) in round_trips.items()}
    _, peak_memory = round_trips[max(plan.byte_sizes)]
    return Results(p50, p99, bytes_rate, array_rate, calls, peak_memory)


def check(bench: Bench) -> None:
    """Fail unless ``bench`` answers each call as ``servers.BenchData`` does."""
    payload = b"\x00\x01dataserve\xff"
    if list(bench.small(SMALL)) != XDATA + SMALL or bench.echo(payload) != payload:
        raise RuntimeError(f"{bench!r} does not answer as servers.BenchData does")
    if not np.array_equal(bench.array(10), np.arange(10, dtype=np.float64)):
        raise RuntimeError(f"{bench!r} does not return the arrays servers.BenchData does")


def small_call_latency(plan: Plan, benches: Sequence[Bench]) -> tuple[Pair, Pair]:
    """The p50 and p99 of a small call's time, in microseconds."""

    def latencies(bench: Bench) -> list[float]:
        times = []
        for _ in range(plan.latency_calls):
            began = time.perf_counter_ns()
            bench.small(SMALL)
            times.append((time.perf_counter_ns() - began) / 1000)
        return times

    rounds = interleaved(plan.rounds, [partial(latencies, bench) for bench in benches])
    p50 = [statistics.median(statistics.median(times) for times in server) for server in rounds]
    p99 = [statistics.median(statistics.quantiles(times, n=100)[98] for times in server) for server in rounds]
    return Pair(*p50), Pair(*p99)


def bytes_round_trip(
    plan: Plan, size: int, benches: Sequence[Bench], servers: Sequence[ServerProcess]
) -> tuple[Pair, Pair]:
    """MB/s of ``size`` random bytes sent and sent back, and each server's highest peak memory."""
    payload = np.random.default_rng(size).bytes(size)
    calls = max(1, plan.sample_bytes // size)

    def round_trip(bench: Bench, server: ServerProcess) -> tuple[float, int]:
        server.reset_peak_memory()
        mb_per_second = rate(partial(bench.echo, payload), 2 * size, calls)
        return mb_per_second, server.peak_memory()

    measures = [partial(round_trip, bench, server) for bench, server in zip(benches, servers, strict=True)]
    rounds = interleaved(plan.rounds, measures)
    rates = [statistics.median(mb for mb, _ in server) for server in rounds]
    peaks = [max(peak for _, peak in server) for server in rounds]
    return Pair(*rates), Pair(*peaks)


def array_round_trip(plan: Plan, size: int, benches: Sequence[Bench]) -> Pair:
    """MB/s of a float64 array of ``size`` elements that the server returns."""
    calls = max(1, plan.sample_bytes // (8 * size))
    measures = [partial(rate, partial(bench.array, size), 8 * size, calls) for bench in benches]
    rounds = interleaved(plan.rounds, measures)
    return Pair(*(statistics.median(server) for server in rounds))


def calls_per_second(
    plan: Plan, pool: ClientPool, one_worker: ServerProcess, two_workers: ServerProcess, proxy: ServerProcess
) -> dict[tuple[int, int], Pair]:
    """Small calls per second of each number of client processes, by clients and dataserve workers."""
    servers = [one_worker, two_workers, proxy]
    calls = {}
    for clients in plan.clients:
        runs = [partial(pool.calls_per_second, s.kind, s.port, clients, plan.load_seconds) for s in servers]
        one, two, by_proxy = (statistics.median(server) for server in interleaved(plan.load_rounds, runs))
        calls[clients, 1] = Pair(one, by_proxy)
        calls[clients, 2] = Pair(two, by_proxy)
    return calls


def rate(call: Callable[[], object], moved: int, calls: int) -> float:
    """MB/s (10^6 bytes a second) of ``calls`` calls of ``call``, each moving ``moved`` bytes."""
    began = time.perf_counter()
    for _ in range(calls):
        call()
    return moved * calls / (time.perf_counter() - began) / 1e6


def interleaved(rounds: int, measures: Sequence[Callable[[], T]]) -> list[list[T]]:
    """Each measure's results over ``rounds`` rounds, after a warm-up round; the order flips each round."""
    results: list[list[T]] = [[] for _ in measures]
    for number in range(rounds + 1):
        order = list(range(len(measures)))
        if number % 2:
            order.reverse()
        for index in order:
            result = measures[index]()
            if number:  # round 0 is the warm-up
                results[index].append(result)
    return results


def machine(plan: Plan, max_concurrency: int) -> str:
    """Where and how the benchmark ran, for the page."""
    versions = ", ".join(
        [f"dataserve {dataserve.__version__}"]
        + [f"{name} {metadata.version(name)}" for name in ("uvicorn", "starlette", "httpx", "numpy")]
    )
    return (
        f"Measured on {datetime.date.today().isoformat()} on {os.cpu_count()} CPUs ({_cpu()}), "
        f"{platform.system()} {platform.release()}, Python {platform.python_version()}; {versions}. "
        f"{plan.rounds} rounds of each round trip measure ({plan.latency_calls} calls a round for latency), "
        f"{plan.load_rounds} rounds of {plan.load_seconds:g} s for calls per second; dataserve runs "
        f"`--max-concurrency {max_concurrency}`."
    )


def _cpu() -> str:
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.partition(":")[2].strip()
    return platform.machine()


if __name__ == "__main__":
    sys.exit(main())

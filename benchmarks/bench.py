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
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from functools import partial
from importlib import metadata
from pathlib import Path
from typing import TypeVar

import numpy as np
import pandas as pd
import report
from clients import SMALL, Address, Bench, ClientPool, connect
from report import MiB, Observed, Pair, Results
from servers import PROXY_NAME, XDATA, ServerProcess, mixed_frame, start_dataserve, start_proxy

import dataserve

ROOT = Path(__file__).resolve().parent.parent

T = TypeVar("T")


@dataclass(frozen=True)
class Plan:
    """How much the benchmark measures, and how often."""

    rounds: int
    """Rounds of each measure after the warm-up round; each number is the median over them."""
    latency_calls: int
    """Small calls per round of the latency measures."""
    programs: int
    """Short programs run per round of that measure."""
    byte_sizes: tuple[int, ...]
    array_sizes: tuple[int, ...]
    frame_rows: int
    """Rows of the mixed-dtype DataFrame the server returns (``servers.mixed_frame``)."""
    frame_calls: int
    """Calls per round of that measure."""
    sample_bytes: int
    """Each round of a round trip measure makes as many calls as send this many payload bytes (1 at least)."""
    clients: tuple[int, ...]
    batch: int
    """Calls per ``send_many`` in the pipelined calls-per-second measures."""
    load_rounds: int
    load_seconds: float
    """How long the clients of one round of the calls-per-second measure make calls."""


FULL = Plan(
    rounds=9,
    latency_calls=2000,
    programs=5,
    byte_sizes=(MiB, 10 * MiB, 100 * MiB),
    array_sizes=(10**6, 10**7),
    frame_rows=10**6,
    frame_calls=3,
    sample_bytes=64 * MiB,
    clients=(1, 8, 16),
    batch=16,
    load_rounds=5,
    load_seconds=1.5,
)

QUICK = Plan(
    rounds=1,
    latency_calls=20,
    programs=1,
    byte_sizes=(1024, 10 * 1024, 100 * 1024),
    array_sizes=(1000, 10_000),
    frame_rows=1000,
    frame_calls=1,
    sample_bytes=100 * 1024,
    clients=(1, 2),
    batch=4,
    load_rounds=1,
    load_seconds=0.1,
)

MAX_CONCURRENCY = 1
"""dataserve's ``--max-concurrency``, its default: 4 did no better with 16 clients on 2 CPUs."""

WORKERS = 2
"""dataserve's worker processes in the calls-per-second measures: one per CPU of the machine it ran on."""


@dataclass(frozen=True)
class Servers:
    """The server processes the measures run against."""

    plain: ServerProcess
    """dataserve with a plain handler, one worker, on a port."""
    asynchronous: ServerProcess
    """dataserve with an ``async def`` handler."""
    unix: ServerProcess
    """dataserve with a plain handler on a Unix socket."""
    unix_async: ServerProcess
    """dataserve with an ``async def`` handler on a Unix socket."""
    workers: ServerProcess
    """dataserve with ``WORKERS`` workers, for calls per second."""
    workers_async: ServerProcess
    """The same with an ``async def`` handler."""
    proxy: ServerProcess
    proxy_unix: ServerProcess
    """The ProxyServer on a Unix socket."""
    logged: ServerProcess
    """dataserve with a plain handler and ``--access-log``, its lines written to a file."""
    metered: ServerProcess
    """dataserve with a plain handler and ``--metrics``."""


def main(argv: Sequence[str] | None = None) -> int:
    """Run the benchmark with the command line ``argv``, print the table, write the page and chart."""
    args = _parser().parse_args(argv)
    plan = QUICK if args.quick else FULL
    with contextlib.ExitStack() as stack:
        sockets = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="dataserve-bench-")))
        pool = ClientPool(max(plan.clients))
        stack.callback(pool.close)
        starts = (
            partial(start_dataserve, 1, args.max_concurrency),
            partial(start_dataserve, 1, args.max_concurrency, "BenchAsyncHandler"),
            partial(start_dataserve, 1, args.max_concurrency, uds=str(sockets / "dataserve.sock")),
            partial(
                start_dataserve, 1, args.max_concurrency, "BenchAsyncHandler", str(sockets / "async.sock")
            ),
            partial(start_dataserve, WORKERS, args.max_concurrency),
            partial(start_dataserve, WORKERS, args.max_concurrency, "BenchAsyncHandler"),
            start_proxy,
            partial(start_proxy, str(sockets / "proxy.sock")),
            partial(start_dataserve, 1, args.max_concurrency, options=["--access-log"], log=sockets / "log"),
            partial(start_dataserve, 1, args.max_concurrency, options=["--metrics"]),
        )
        with ThreadPoolExecutor(len(starts)) as starting:  # at once: each waits for its server's first line
            futures = [starting.submit(start) for start in starts]
        for future in futures:  # every server that started is stopped, even if another did not start
            if future.exception() is None:
                stack.callback(future.result().stop)
        started = [future.result() for future in futures]
        results = measure(plan, Servers(*started), pool)
    markdown = report.table(report.rows(results), WORKERS)
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


def measure(plan: Plan, servers: Servers, pool: ClientPool) -> Results:
    """Every measure, on dataserve and the ProxyServer."""
    plain, proxy = connect("dataserve", servers.plain.address), connect("proxy", servers.proxy.address)
    asynchronous = connect("dataserve", servers.asynchronous.address)
    unix, proxy_unix = (
        connect("dataserve", servers.unix.address),
        connect("proxy", servers.proxy_unix.address),
    )
    unix_async = connect("dataserve", servers.unix_async.address)
    for bench in (plain, proxy, asynchronous, unix, unix_async, proxy_unix):
        check(bench)
    short = short_program(plan, servers.plain.address, servers.proxy.address)
    p50, p99 = small_call_latency(plan, [plain, proxy])
    async_p50, _ = small_call_latency(plan, [asynchronous, proxy])
    uds_p50, _ = small_call_latency(plan, [unix, proxy_unix])
    uds_async_p50, _ = small_call_latency(plan, [unix_async, proxy_unix])
    logged, metered = (
        connect("dataserve", servers.logged.address),
        connect("dataserve", servers.metered.address),
    )
    check(logged)
    check(metered)
    seen = observed_latency(plan, plain, logged, metered, proxy)
    pair = [servers.plain, servers.proxy]
    round_trips = {size: bytes_round_trip(plan, size, [plain, proxy], pair) for size in plan.byte_sizes}
    array_rate = {size: array_round_trip(plan, size, [plain, proxy]) for size in plan.array_sizes}
    frame = frame_returned(plan, [plain, proxy])
    calls = calls_per_second(plan, pool, servers.workers, servers.workers_async, servers.proxy)
    bytes_rate = {size: mb_per_second for size, (mb_per_second, _) in round_trips.items()}
    _, peak_memory = round_trips[max(plan.byte_sizes)]
    return Results(
        short,
        p50,
        p99,
        async_p50,
        uds_p50,
        uds_async_p50,
        seen,
        bytes_rate,
        array_rate,
        plan.frame_rows,
        frame,
        calls,
        WORKERS,
        peak_memory,
    )


def check(bench: Bench) -> None:
    """Fail unless ``bench`` answers each call as ``servers.BenchData`` does."""
    payload = b"\x00\x01dataserve\xff"
    if list(bench.small(SMALL)) != XDATA + SMALL or bench.echo(payload) != payload:
        raise RuntimeError(f"{bench!r} does not answer as servers.BenchData does")
    if not np.array_equal(bench.array(10), np.arange(10, dtype=np.float64)):
        raise RuntimeError(f"{bench!r} does not return the arrays servers.BenchData does")
    try:
        pd.testing.assert_frame_equal(bench.frame(10), mixed_frame(10), check_exact=True)
    except AssertionError as exc:
        raise RuntimeError(
            f"{bench!r} does not return the DataFrames servers.BenchData does: {exc}"
        ) from None


SHORT_PROGRAMS = {
    "dataserve": (
        "from dataserve import HTTPDataClient\n"
        "with HTTPDataClient({port}, 'http://127.0.0.1:') as client:\n"
        "    assert client.send('/small', [1, 2, 3]) == [1, 2, 3, 1, 2, 3]\n"
    ),
    "proxy": (
        "from dataserve.proxy import get_proxy_class\n"
        "data = get_proxy_class({name!r}, {port}, '127.0.0.1')\n"
        "assert data.small([1, 2, 3]) == [1, 2, 3, 1, 2, 3]\n"
    ),
}
"""A short program of each kind: start, import the client, make one small call, and exit."""


def short_program(plan: Plan, dataserve_port: Address, proxy_port: Address) -> Pair:
    """Milliseconds for a new Python process to import a client, make one small call and exit."""

    def run(kind: str, port: Address) -> float:
        code = SHORT_PROGRAMS[kind].format(port=port, name=PROXY_NAME)
        times = []
        for _ in range(plan.programs):
            began = time.perf_counter()
            subprocess.run([sys.executable, "-c", code], check=True, cwd=ROOT)
            times.append((time.perf_counter() - began) * 1000)
        return statistics.median(times)

    rounds = interleaved(
        plan.rounds, [partial(run, "dataserve", dataserve_port), partial(run, "proxy", proxy_port)]
    )
    return Pair(*(statistics.median(server) for server in rounds))


def small_call_latency(plan: Plan, benches: Sequence[Bench]) -> tuple[Pair, Pair]:
    """The p50 and p99 of a small call's time, in microseconds."""
    p50, p99 = latency_quantiles(plan, benches)
    return Pair(*p50), Pair(*p99)


def latency_quantiles(plan: Plan, benches: Sequence[Bench]) -> tuple[list[float], list[float]]:
    """The p50 and p99 of a small call's time on each of ``benches``, in microseconds, interleaved."""

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
    return p50, p99


def observed_latency(plan: Plan, plain: Bench, logged: Bench, metered: Bench, proxy: Bench) -> Observed:
    """The small call p50 of dataserve plain, with its call log and with its metrics, and of the
    ProxyServer, in one interleaved run: each one's cost is its difference from the plain p50."""
    p50, _ = latency_quantiles(plan, [plain, logged, metered, proxy])
    return Observed(*p50)


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


def frame_returned(plan: Plan, benches: Sequence[Bench]) -> Pair:
    """Milliseconds for a call that returns the ``plan.frame_rows``-row mixed-dtype DataFrame: as an
    Arrow stream from dataserve, pickled by the ProxyServer."""

    def per_call(bench: Bench) -> float:
        began = time.perf_counter()
        for _ in range(plan.frame_calls):
            bench.frame(plan.frame_rows)
        return (time.perf_counter() - began) * 1000 / plan.frame_calls

    rounds = interleaved(plan.rounds, [partial(per_call, bench) for bench in benches])
    return Pair(*(statistics.median(server) for server in rounds))


def calls_per_second(
    plan: Plan, pool: ClientPool, workers: ServerProcess, workers_async: ServerProcess, proxy: ServerProcess
) -> dict[tuple[int, int, bool], Pair]:
    """Small calls per second, by client processes, calls per batch and whether the handler is async.

    Each number of clients makes one call at a time and, but for a single client, batches of
    ``plan.batch``; with the most clients, the ``async def`` handler is measured too.
    """
    calls = {}
    for clients in plan.clients:
        kinds = [(1, False)] if clients == 1 else [(1, False), (plan.batch, False)]
        if clients == max(plan.clients):
            kinds.append((1, True))
        runs = [
            partial(
                pool.calls_per_second,
                "dataserve",
                (workers_async if is_async else workers).address,
                clients,
                plan.load_seconds,
                batch,
            )
            for batch, is_async in kinds
        ]
        runs.append(partial(pool.calls_per_second, "proxy", proxy.address, clients, plan.load_seconds))
        *ours, by_proxy = (statistics.median(server) for server in interleaved(plan.load_rounds, runs))
        for (batch, is_async), rate_ in zip(kinds, ours, strict=True):
            calls[clients, batch, is_async] = Pair(rate_, by_proxy)
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
        + [
            f"{name} {metadata.version(name)}"
            for name in ("uvicorn", "starlette", "httpx", "numpy", "pandas", "pyarrow")
        ]
    )
    return (
        f"Measured on {datetime.date.today().isoformat()} on {os.cpu_count()} CPUs ({_cpu()}), "
        f"{platform.system()} {platform.release()}, Python {platform.python_version()}; {versions}. "
        f"{plan.rounds} rounds of each measure ({plan.latency_calls} calls a round for latency, "
        f"{plan.programs} programs for the short program), {plan.load_rounds} rounds of "
        f"{plan.load_seconds:g} s for calls per second; dataserve runs `--max-concurrency {max_concurrency}`."
    )


def _cpu() -> str:
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.partition(":")[2].strip()
    return platform.machine()


if __name__ == "__main__":
    sys.exit(main())

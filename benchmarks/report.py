"""The benchmark results: their table, with each target and whether it is met, a chart, and the page."""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

MiB = 1 << 20

START = "<!-- results:start -->"
END = "<!-- results:end -->"
"""The page is rewritten between these markers only: what is written around them stays."""

IMAGE = "img/benchmarks.png"
"""Where the chart goes, relative to the page."""

PAGE = f"""\
---
# The results table has five columns: give it the width of the table of contents.
hide:
  - toc
---

# Benchmarks

How dataserve compares with the pickle-based [ProxyServer](proxy.md) it replaces. Both
serve the same object (`BenchData` in `benchmarks/servers.py`), each from processes of its
own on 127.0.0.1, and the benchmark alternates between them in one run: every measure is
taken on one server, then the other, in a different order each round, after a warm-up
round, and each number below is the median over the rounds.

{START}
{END}

## Where the time goes

<!-- analysis -->

## How to run

From the repository root:

```bash
nox -s bench                          # installs this checkout with [bench] and runs the full benchmark
python benchmarks/bench.py            # the same, after pip install '.[bench]' (a few minutes)
python benchmarks/bench.py --quick    # tiny sizes and few rounds: checks that it runs
python benchmarks/bench.py --no-docs  # prints the table and writes nothing
```

It prints the table, and rewrites the part of this page between the `results` markers and
`docs/{IMAGE}`; the rest of the page stays as it is. It needs Linux, where it reads the
servers' memory from `/proc`; run it on an otherwise idle machine.
"""


@dataclass(frozen=True)
class Pair:
    """One measure, taken on dataserve and on the ProxyServer."""

    dataserve: float
    proxy: float

    @property
    def ratio(self) -> float:
        """dataserve's number over the ProxyServer's; NaN where the ProxyServer's is 0."""
        return self.dataserve / self.proxy if self.proxy else math.nan


@dataclass(frozen=True)
class Observed:
    """Microseconds per small call (p50) with the call log and the metrics on, in one interleaved run."""

    plain: float
    access_log: float
    metrics: float
    proxy: float


@dataclass(frozen=True)
class Results:
    """Everything the benchmark measures."""

    short_program: Pair
    """Milliseconds for a program to start, import its client, make one small call and exit."""
    latency_p50: Pair
    """Microseconds per small call, plain handler."""
    latency_p99: Pair
    async_p50: Pair
    """Microseconds per small call, ``async def`` handler."""
    uds_p50: Pair
    """Microseconds per small call over a Unix socket, plain handler (each server on its own socket)."""
    uds_async_p50: Pair
    """The same with an ``async def`` handler."""
    observed: Observed
    """Small calls with ``--access-log`` and with ``--metrics``, beside plain ones."""
    bytes_rate: dict[int, Pair]
    """MB/s of a bytes round trip, by payload size in bytes."""
    array_rate: dict[int, Pair]
    """MB/s of a returned float64 array, by its number of elements."""
    frame_rows: int
    """Rows of the mixed-dtype DataFrame of ``frame_ms``."""
    frame_ms: Pair
    """Milliseconds per call returning a mixed-dtype DataFrame: Arrow against pickle."""
    calls: dict[tuple[int, int, bool], Pair]
    """Small calls per second, by client processes, calls per batch (1: one call at a time) and
    whether the handler is ``async def``."""
    workers: int
    """dataserve's worker processes in the calls-per-second measures."""
    peak_memory: Pair
    """Bytes each server held, at its peak, above what it held before the largest bytes round trip."""

    @property
    def memory_payload(self) -> int:
        """The payload size of the round trip that ``peak_memory`` is measured on."""
        return max(self.bytes_rate)


@dataclass(frozen=True)
class Target:
    """What a ratio should be: at most (``<=``) or at least (``>=``) ``value``."""

    sense: str
    value: float

    def met(self, ratio: float) -> bool:
        return ratio <= self.value if self.sense == "<=" else ratio >= self.value

    def __str__(self) -> str:
        return f"{'≤' if self.sense == '<=' else '≥'} {self.value:g}x"


BYTES_TARGETS = {MiB: Target(">=", 1.5), 10 * MiB: Target(">=", 2.5), 100 * MiB: Target(">=", 3)}
ARRAY_TARGETS = {10**7: Target(">=", 3)}
MEMORY_TARGET = 1.5
"""dataserve's peak memory above idle during the largest round trip, in payloads."""


@dataclass(frozen=True)
class Row:
    """One line of the table."""

    measure: str
    dataserve: str
    proxy: str
    ratio: float
    target: str = ""
    met: bool | None = None


def rows(results: Results) -> list[Row]:
    """The table's rows, each with its target, if it has one, and whether it is met."""
    table = [
        _row("Short program: start, import, 1 call, exit (ms)", results.short_program, Target("<=", 0.5)),
        _row("Small call p50, plain handler (µs)", results.latency_p50, Target("<=", 2)),
        _row("Small call p99, plain handler (µs)", results.latency_p99),
        _row("Small call p50, `async def` handler (µs)", results.async_p50, Target("<=", 1.5)),
        _row("Small call p50, Unix socket, plain handler (µs)", results.uds_p50, Target("<=", 1.5)),
        _row("Small call p50, Unix socket, `async def` (µs)", results.uds_async_p50, Target("<=", 1.5)),
    ]
    seen = results.observed
    for option, p50 in (("--access-log", seen.access_log), ("--metrics", seen.metrics)):
        label = f"Small call p50, `{option}`: {p50 - seen.plain:+.0f} µs on plain's {seen.plain:.0f} (µs)"
        table.append(_row(label, Pair(p50, seen.proxy)))
    for size, pair in results.bytes_rate.items():
        table.append(_row(f"Bytes round trip, {size_label(size)} (MB/s)", pair, BYTES_TARGETS.get(size)))
    for elements, pair in results.array_rate.items():
        label = f"float64 array returned, {size_label(8 * elements, decimal=True)} (MB/s)"
        table.append(_row(label, pair, ARRAY_TARGETS.get(elements)))
    table.append(_row(f"Mixed-dtype DataFrame returned, {results.frame_rows:,} rows (ms)", results.frame_ms))
    for (clients, batch, is_async), pair in results.calls.items():
        target: Target | None
        if batch > 1:
            label = f"Calls/s, {_count(clients, 'client')}, `send_many` of {batch}"
            target = Target(">=", 1.5)
        else:
            label = f"Calls/s, {_count(clients, 'client')}, one at a time"
            label += ", `async def`" if is_async else ""
            target = Target(">=", 1) if clients >= 8 else None
        table.append(_row(label, pair, target))
    memory, payload = results.peak_memory, results.memory_payload
    table.append(
        Row(
            f"Server peak memory above idle, {size_label(payload)} round trip",
            _memory(memory.dataserve, payload),
            _memory(memory.proxy, payload),
            memory.ratio,
            target=f"≤ {MEMORY_TARGET:g}x payload",
            met=memory.dataserve <= MEMORY_TARGET * payload,
        )
    )
    return table


def table(lines: list[Row], workers: int) -> str:
    """The rows as a Markdown table narrow enough for the page: each target shares a cell with its mark."""
    out = [
        "| Measure | dataserve | ProxyServer | Ratio | Target |",
        "|---|--:|--:|--:|:--|",
    ]
    for row in lines:
        ratio = "n/a" if math.isnan(row.ratio) else f"{row.ratio:.2f}x"
        target = row.target
        if row.met is not None:
            target = f"{target} ✓" if row.met else f"**{target} ✗**"
        out.append(f"| {row.measure} | {row.dataserve} | {row.proxy} | {ratio} | {target} |")
    return "\n".join(out) + (
        f"\n\nRatio: dataserve's number over the ProxyServer's (lower is better for times, higher for "
        f"rates). Calls per second: dataserve with {_count(workers, 'worker')}; the ProxyServer "
        "serves each connection in a thread of its own. ✓ met, ✗ missed."
    )


def section(markdown_table: str, machine: str) -> str:
    """What goes between the page's markers: the machine, the table and the chart."""
    return f"{machine}\n\n{markdown_table}\n\n![dataserve and the ProxyServer, side by side]({IMAGE})"


def write_page(path: Path, results_section: str) -> None:
    """Put ``results_section`` between the markers of the page at ``path``, made from PAGE if missing."""
    text = path.read_text(encoding="utf-8") if path.exists() else PAGE
    before, start, rest = text.partition(START)
    _, end, after = rest.partition(END)
    if not start or not end:
        raise ValueError(f"{path} has no {START} ... {END} markers: put them back where the results go")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(f"{before}{START}\n{results_section}\n{END}{after}", encoding="utf-8")


def chart(results: Results, path: Path) -> None:
    """Draw the results, on both servers, into the PNG at ``path``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.axes import Axes

    figure, ((latency, rates), (calls, memory)) = plt.subplots(2, 2, figsize=(12, 8), layout="constrained")
    figure.suptitle("dataserve and the ProxyServer (medians; memory: highest)")

    def bars(axes: Axes, labels: list[str], pairs: list[Pair]) -> None:
        positions = range(len(labels))
        axes.bar([x - 0.2 for x in positions], [p.dataserve for p in pairs], 0.4, label="dataserve")
        axes.bar([x + 0.2 for x in positions], [p.proxy for p in pairs], 0.4, label="ProxyServer")
        axes.set_xticks(list(positions), labels)
        axes.legend()

    latency_pairs = [
        results.latency_p50,
        results.latency_p99,
        results.async_p50,
        results.uds_p50,
        results.uds_async_p50,
    ]
    bars(latency, ["p50", "p99", "p50\nasync", "p50\nUnix", "p50 Unix\nasync"], latency_pairs)
    latency.set_title("Small call latency (lower is better)")
    latency.set_ylabel("µs")

    rate_labels = [f"bytes\n{size_label(size)}" for size in results.bytes_rate]
    rate_labels += [f"array\n{size_label(8 * elements, decimal=True)}" for elements in results.array_rate]
    bars(rates, rate_labels, [*results.bytes_rate.values(), *results.array_rate.values()])
    rates.set_title("Round trips (higher is better)")
    rates.set_ylabel("MB/s")

    call_labels = [
        f"{clients}" + (f"\nbatches of {batch}" if batch > 1 else "") + ("\nasync" if is_async else "")
        for clients, batch, is_async in results.calls
    ]
    bars(calls, call_labels, list(results.calls.values()))
    calls.set_title(
        f"Small calls per second, dataserve with {_count(results.workers, 'worker')} (higher is better)"
    )

    payload, peak = results.memory_payload / MiB, results.peak_memory
    label = f"{size_label(results.memory_payload)} round trip"
    bars(memory, [label], [Pair(peak.dataserve / MiB, peak.proxy / MiB)])
    memory.axhline(payload, color="grey", linestyle=":", label="payload")
    memory.axhline(MEMORY_TARGET * payload, color="grey", linestyle="--", label=f"{MEMORY_TARGET:g}x payload")
    memory.set_title("Server peak memory above idle (lower is better)")
    memory.set_ylabel("MiB")
    memory.set_ylim(0, 1.3 * max(2 * payload, peak.dataserve / MiB, peak.proxy / MiB))
    memory.legend(loc="upper left", ncols=2)

    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=100)
    plt.close(figure)


def size_label(size: int, *, decimal: bool = False) -> str:
    """A byte count as MiB or KiB (or, ``decimal``, MB or kB), or bytes."""
    units = ((10**6, "MB"), (10**3, "kB")) if decimal else ((MiB, "MiB"), (1024, "KiB"))
    for unit, name in units:
        if size >= unit:
            return f"{size / unit:g} {name}"
    return f"{size} B"


def _row(label: str, pair: Pair, target: Target | None = None) -> Row:
    if target is None:
        return Row(label, *_numbers(pair))
    return Row(label, *_numbers(pair), str(target), target.met(pair.ratio))


def _numbers(pair: Pair) -> tuple[str, str, float]:
    """A row's cells for the two servers' numbers, and their ratio."""
    return _number(pair.dataserve), _number(pair.proxy), pair.ratio


def _number(value: float) -> str:
    return f"{value:,.1f}" if value < 100 else f"{value:,.0f}"


def _memory(size: float, payload: int) -> str:
    return f"{size / MiB:,.0f} MiB ({size / payload:.1f}x)"


def _count(number: int, thing: str) -> str:
    return f"{number} {thing}" if number == 1 else f"{number} {thing}s"

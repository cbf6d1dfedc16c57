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
# Benchmarks

How dataserve compares with the pickle-based [ProxyServer](proxy.md) it replaces. Both
serve the same object (`BenchData` in `benchmarks/servers.py`), each from a process of its
own on 127.0.0.1, and the benchmark alternates between them in one run: every measure is
taken on one server, then the other, in a different order each round, after a warm-up
round, and each number below is the median over the rounds.

- **Small call**: `[1, 2, 3]` in, `[1, 2, 3, 1, 2, 3]` out, one call after another over one
  connection; p50 and p99 of the time each call takes, seen by the client.
- **Bytes round trip**: the payload goes to the server and comes back; MB/s counts it twice
  (sent and received), with 1 MB = 10^6 bytes.
- **NumPy array**: the server returns a float64 array it already holds (`.npy` for
  dataserve, pickle for the ProxyServer); MB/s counts the bytes returned.
- **Calls per second**: several client processes, each with one connection, make small
  calls for a fixed time; the rate is their sum. The ProxyServer serves each connection in
  a thread of its own; dataserve runs with one or two worker processes.
- **Peak memory**: how far each server's resident memory (Linux's VmHWM, reset before each
  call) rises above what it held before the largest bytes round trip; the highest over the
  rounds.

The ratio is dataserve's number over the ProxyServer's: above 1 is faster for throughput
and calls per second, below 1 is faster for latency.

{START}
{END}

## Where the time goes

<!-- analysis -->

## How to run

From the repository root:

```bash
nox -s bench                          # installs dataserve[bench] and runs the full benchmark
python benchmarks/bench.py            # the same, with dataserve[bench] installed (a few minutes)
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
class Results:
    """Everything the benchmark measures."""

    latency_p50: Pair
    """Microseconds per small call."""
    latency_p99: Pair
    bytes_rate: dict[int, Pair]
    """MB/s of a bytes round trip, by payload size in bytes."""
    array_rate: dict[int, Pair]
    """MB/s of a returned float64 array, by its number of elements."""
    calls: dict[tuple[int, int], Pair]
    """Small calls per second, by number of clients and of dataserve workers."""
    peak_memory: Pair
    """Bytes each server held, at its peak, above what it held before the largest bytes round trip."""

    @property
    def memory_payload(self) -> int:
        """The payload size of the round trip that ``peak_memory`` is measured on."""
        return max(self.bytes_rate)


@dataclass(frozen=True)
class Row:
    """One line of the table."""

    measure: str
    dataserve: str
    proxy: str
    ratio: float
    target: str = "—"
    met: bool | None = None


def rows(results: Results) -> list[Row]:
    """The table's rows, each with its target, if it has one, and whether it is met."""
    p50, p99 = results.latency_p50, results.latency_p99
    table = [
        Row("Small call, p50 latency (µs)", *_numbers(p50), "≤ 1x", p50.ratio <= 1),
        Row("Small call, p99 latency (µs)", *_numbers(p99)),
    ]
    for size, pair in results.bytes_rate.items():
        table.append(_rate_row(f"Bytes round trip, {size_label(size)} (MB/s, sent + received)", pair))
    for elements, pair in results.array_rate.items():
        label = f"NumPy float64 array, {elements:,} elements returned (MB/s)"
        table.append(_rate_row(label, pair))
    most = max(clients for clients, _ in results.calls)
    for (clients, workers), pair in results.calls.items():
        label = f"Calls/s, {_count(clients, 'client')}, dataserve with {_count(workers, 'worker')}"
        if (clients, workers) == (most, 2):
            table.append(Row(label, *_numbers(pair), "≥ 1.5x", pair.ratio >= 1.5))
        else:
            table.append(Row(label, *_numbers(pair)))
    memory, payload = results.peak_memory, results.memory_payload
    table.append(
        Row(
            f"Server peak memory above idle, {size_label(payload)} round trip",
            _memory(memory.dataserve, payload),
            _memory(memory.proxy, payload),
            memory.ratio,
            target="dataserve < 3x payload",
            met=memory.dataserve < 3 * payload,
        )
    )
    return table


def table(lines: list[Row]) -> str:
    """The rows as a Markdown table."""
    out = [
        "| Measure | dataserve | ProxyServer | dataserve / ProxyServer | Target | Met |",
        "|---|--:|--:|--:|---|---|",
    ]
    for row in lines:
        met = "—" if row.met is None else ("yes" if row.met else "**no**")
        ratio = "n/a" if math.isnan(row.ratio) else f"{row.ratio:.2f}x"
        out.append(f"| {row.measure} | {row.dataserve} | {row.proxy} | {ratio} | {row.target} | {met} |")
    return "\n".join(out)


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
    colors = {"dataserve": "tab:blue", "ProxyServer": "tab:orange", "dataserve, 2 workers": "tab:green"}

    def bars(axes: Axes, labels: list[str], pairs: list[Pair]) -> None:
        positions = range(len(labels))
        axes.bar([x - 0.2 for x in positions], [p.dataserve for p in pairs], 0.4, label="dataserve")
        axes.bar([x + 0.2 for x in positions], [p.proxy for p in pairs], 0.4, label="ProxyServer")
        axes.set_xticks(list(positions), labels)
        axes.legend()

    bars(latency, ["p50", "p99"], [results.latency_p50, results.latency_p99])
    latency.set_title("Small call latency (lower is better)")
    latency.set_ylabel("µs")

    rate_labels = [f"bytes\n{size_label(size)}" for size in results.bytes_rate]
    rate_labels += [f"array\n{elements:,}" for elements in results.array_rate]
    bars(rates, rate_labels, [*results.bytes_rate.values(), *results.array_rate.values()])
    rates.set_title("Round trips (higher is better)")
    rates.set_ylabel("MB/s")

    clients = sorted({count for count, _ in results.calls})
    lines = {
        "dataserve": [results.calls[count, 1].dataserve for count in clients],
        "dataserve, 2 workers": [results.calls[count, 2].dataserve for count in clients],
        "ProxyServer": [results.calls[count, 1].proxy for count in clients],
    }
    for name, values in lines.items():
        calls.plot(clients, values, marker="o", color=colors[name], label=name)
    calls.set_xscale("log", base=2)
    calls.set_xticks(clients, [str(count) for count in clients])
    calls.set_yscale("log")
    calls.yaxis.set_major_formatter("{x:,.0f}")
    calls.yaxis.set_minor_formatter("{x:,.0f}")
    calls.set_title("Small calls per second (higher is better)")
    calls.set_xlabel("client processes")
    calls.legend()

    payload, peak = results.memory_payload / MiB, results.peak_memory
    label = f"{size_label(results.memory_payload)} round trip"
    bars(memory, [label], [Pair(peak.dataserve / MiB, peak.proxy / MiB)])
    memory.axhline(payload, color="grey", linestyle=":", label="payload")
    memory.axhline(3 * payload, color="grey", linestyle="--", label="3x payload")
    memory.set_title("Server peak memory above idle (lower is better)")
    memory.set_ylabel("MiB")
    memory.set_ylim(0, 1.3 * max(3 * payload, peak.dataserve / MiB, peak.proxy / MiB))
    memory.legend(loc="upper left", ncols=2)

    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=100)
    plt.close(figure)


def size_label(size: int) -> str:
    """A byte count as MiB or KiB, or bytes."""
    for unit, name in ((MiB, "MiB"), (1024, "KiB")):
        if size >= unit:
            return f"{size / unit:g} {name}"
    return f"{size} B"


def _rate_row(label: str, pair: Pair) -> Row:
    return Row(label, *_numbers(pair), "≥ 2x", pair.ratio >= 2)


def _numbers(pair: Pair) -> tuple[str, str, float]:
    """A row's cells for the two servers' numbers, and their ratio."""
    return f"{pair.dataserve:,.0f}", f"{pair.proxy:,.0f}", pair.ratio


def _memory(size: float, payload: int) -> str:
    return f"{size / MiB:,.0f} MiB ({size / payload:.1f}x payload)"


def _count(number: int, thing: str) -> str:
    return f"{number} {thing}" if number == 1 else f"{number} {thing}s"

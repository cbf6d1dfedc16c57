"""The benchmark script runs at tiny sizes and writes its table and chart; it never checks a speed."""

from __future__ import annotations

import importlib
import os
import re
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest

ROOT = Path(__file__).parent.parent
BENCHMARKS = ROOT / "benchmarks"
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"

ROWS = {
    "Short program": 1,
    "Small call p50": 6,
    "Small call p99": 1,
    "Bytes round trip": 3,
    "float64 array returned": 2,
    "Mixed-dtype DataFrame returned": 1,
    "Calls/s": 4,
    "Server peak memory": 1,
}
"""How many rows of the quick run's table start with each of these."""


@pytest.fixture(scope="module")
def quick_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[subprocess.CompletedProcess[str], Path]:
    """One run of ``benchmarks/bench.py --quick``, and the directory it wrote to."""
    pytest.importorskip("numpy")
    pytest.importorskip("matplotlib")
    pytest.importorskip("pandas")
    pytest.importorskip("pyarrow")
    out = tmp_path_factory.mktemp("bench")
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    command = [sys.executable, str(BENCHMARKS / "bench.py"), "--quick", "--out-dir", str(out)]
    try:
        result = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    except subprocess.TimeoutExpired as exc:
        pytest.fail(f"bench.py --quick did not finish in 120 s\nstderr:\n{exc.stderr!r}")
    return result, out


@pytest.fixture
def report(monkeypatch: pytest.MonkeyPatch) -> ModuleType:
    """The benchmarks' ``report`` module."""
    monkeypatch.syspath_prepend(str(BENCHMARKS))
    return importlib.import_module("report")


def table_rows(page: str) -> list[list[str]]:
    """The cells of each row of the results table on ``page``, without the header."""
    results = page.partition("<!-- results:start -->")[2].partition("<!-- results:end -->")[0]
    lines = [line for line in results.splitlines() if line.startswith("|")]
    assert lines[0] == "| Measure | dataserve | ProxyServer | Ratio | Target |", lines[0]
    return [[cell.strip() for cell in line.strip("|").split("|")] for line in lines[2:]]


def test_quick_run_exits_0_and_prints_the_table(
    quick_run: tuple[subprocess.CompletedProcess[str], Path],
) -> None:
    result, out = quick_run
    assert result.returncode == 0, f"stdout:\n{result.stdout}\nstderr:\n{result.stderr}"
    assert "| Measure | dataserve | ProxyServer |" in result.stdout
    assert f"wrote {out / 'benchmarks.md'}" in result.stdout


def test_page_has_every_row_with_a_ratio_and_a_verdict(
    quick_run: tuple[subprocess.CompletedProcess[str], Path],
) -> None:
    _, out = quick_run
    rows = table_rows((out / "benchmarks.md").read_text(encoding="utf-8"))
    assert len(rows) == sum(ROWS.values())
    for start, count in ROWS.items():
        assert sum(row[0].startswith(start) for row in rows) == count, start
    for measure, _, _, ratio, target in rows:
        assert re.fullmatch(r"\d+\.\d\dx|n/a", ratio), f"{measure}: ratio {ratio!r}"
        assert re.fullmatch(r"|[≤≥] [\d.]+x( payload)? ✓|\*\*[≤≥] [\d.]+x( payload)? ✗\*\*", target), target
    # the short program, the four p50 latencies, calls/s in batches and memory (the quick run's sizes
    # and client counts are below those the other targets are set for)
    assert sum(target != "" for *_, target in rows) == 7


def test_page_shows_the_machine_the_chart_and_how_to_run(
    quick_run: tuple[subprocess.CompletedProcess[str], Path],
) -> None:
    _, out = quick_run
    page = (out / "benchmarks.md").read_text(encoding="utf-8")
    assert "CPUs" in page
    assert "Python 3." in page
    assert "![" in page
    assert "(img/benchmarks.png)" in page
    assert "## How to run" in page
    assert "<!-- analysis -->" in page


def test_chart_is_a_png(quick_run: tuple[subprocess.CompletedProcess[str], Path]) -> None:
    _, out = quick_run
    assert (out / "img" / "benchmarks.png").read_bytes().startswith(PNG_SIGNATURE)


def test_rewriting_the_page_keeps_what_is_written_around_the_results(
    report: ModuleType, tmp_path: Path
) -> None:
    page = tmp_path / "benchmarks.md"
    report.write_page(page, "first results")
    written = page.read_text(encoding="utf-8")
    page.write_text(written.replace("<!-- analysis -->", "Most of the time goes to HTTP."), encoding="utf-8")
    report.write_page(page, "second results")
    text = page.read_text(encoding="utf-8")
    assert "second results" in text
    assert "first results" not in text
    assert "Most of the time goes to HTTP." in text
    # The front matter first (the page gives the table of contents' width to its table), then the title.
    assert text.startswith("---\n")
    assert "hide:\n  - toc\n---\n\n# Benchmarks\n" in text


def test_a_page_without_the_markers_is_left_alone(report: ModuleType, tmp_path: Path) -> None:
    page = tmp_path / "benchmarks.md"
    page.write_text("# Benchmarks\n\nNo markers here.\n", encoding="utf-8")
    with pytest.raises(ValueError, match="markers"):
        report.write_page(page, "results")
    assert page.read_text(encoding="utf-8") == "# Benchmarks\n\nNo markers here.\n"

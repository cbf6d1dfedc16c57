"""benchmarks/scale_out.py runs at tiny sizes against real replicas and balancers, and prints
its table with a number in every cell; it never checks a speed."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).parent.parent
SBIN = os.pathsep.join([os.environ.get("PATH", ""), "/usr/sbin", "/sbin"])


def test_a_quick_run_prints_every_measure_for_every_lane() -> None:
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    command = [sys.executable, str(ROOT / "benchmarks" / "scale_out.py"), "--quick"]
    try:
        result = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    except subprocess.TimeoutExpired as exc:
        pytest.fail(f"scale_out.py --quick did not finish in 120 s\nstderr:\n{exc.stderr!r}")
    assert result.returncode == 0, f"stdout:\n{result.stdout}\nstderr:\n{result.stderr}"
    lanes = ["direct"] + [name for name in ("haproxy", "nginx") if shutil.which(name, path=SBIN)]
    rows = [line for line in result.stdout.splitlines() if line.startswith("|")]
    assert rows[0].split("|")[2:-1] == [f" {lane} " for lane in lanes]
    assert len(rows) == 8
    for row in rows[2:]:
        cells = [cell.strip() for cell in row.strip("|").split("|")][1:]
        assert len(cells) == len(lanes), row
        assert all(re.fullmatch(r"\d+(\.\d+)?x|\d+ \(\d+-\d+\)", cell) for cell in cells), row

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from dataserve._cli import main


def test_demo_serves_calls_and_exits_0() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "dataserve", "demo"], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0].startswith("dataserve demo: serving DemoHandler on http://127.0.0.1:")
    assert "client.send('/xdata', [4, 5, 6]) -> [1, 2, 3, 4, 5, 6]" in lines
    assert "client.send('/ydata') -> 2" in lines
    assert "client.send('/upper', 'hello, dataserve') -> 'HELLO, DATASERVE'" in lines
    assert "client.send('/reverse', b'\\x00\\x01\\x02\\xff') -> b'\\xff\\x02\\x01\\x00'" in lines
    assert any(line.startswith("client.send('/nothing', {'a': 1}) -> ResourceNotFound:") for line in lines)
    assert lines[-1] == "dataserve demo: server stopped"


SCRIPT = Path(sys.executable).parent / "dataserve"


@pytest.mark.skipif(not SCRIPT.exists(), reason="dataserve is not installed as a console script here")
def test_console_script_runs_demo() -> None:
    result = subprocess.run([str(SCRIPT), "demo"], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert "client.send('/ydata') -> 2" in result.stdout


def test_unknown_command_exits_2_with_usage(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        main(["nope"])
    assert info.value.code == 2
    assert "usage: dataserve" in capsys.readouterr().err


def test_demo_in_process_returns_0(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["demo"]) == 0
    assert "client.send('/ydata') -> 2" in capsys.readouterr().out

"""The docs: every example in docs/examples runs and passes its checks, and the site builds."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.usefixtures("server_lane")

ROOT = Path(__file__).parent.parent
EXAMPLES = sorted((ROOT / "docs" / "examples").glob("*.py"))


def _env() -> dict[str, str]:
    """The environment with this checkout's dataserve first on the path."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    return env


def _run(args: list[str], timeout: float) -> subprocess.CompletedProcess[str]:
    try:
        return subprocess.run(
            args, cwd=ROOT, env=_env(), capture_output=True, text=True, timeout=timeout, check=False
        )
    except subprocess.TimeoutExpired as exc:
        stderr = exc.stderr.decode(errors="replace") if isinstance(exc.stderr, bytes) else exc.stderr
        pytest.fail(f"{' '.join(args)} did not finish in {timeout} s\nstderr:\n{stderr}")


def test_examples_exist() -> None:
    assert EXAMPLES, f"no examples in {ROOT / 'docs' / 'examples'}"


@pytest.mark.parametrize("example", EXAMPLES, ids=[path.name for path in EXAMPLES])
def test_example_runs(example: Path) -> None:
    result = _run([sys.executable, str(example)], timeout=60)
    assert result.returncode == 0, (
        f"{example.name} exited with {result.returncode}\nstdout:\n{result.stdout}\nstderr:\n{result.stderr}"
    )


def test_mkdocs_build_strict(tmp_path: Path) -> None:
    pytest.importorskip("mkdocs")
    pytest.importorskip("pymdownx")
    # cwd=ROOT: the snippets' base_path in mkdocs.yml is relative to where mkdocs runs.
    result = _run(
        [
            sys.executable,
            "-m",
            "mkdocs",
            "build",
            "--strict",
            "-f",
            str(ROOT / "mkdocs.yml"),
            "-d",
            str(tmp_path / "site"),
        ],
        timeout=120,
    )
    assert result.returncode == 0, f"mkdocs build --strict failed\n{result.stdout}\n{result.stderr}"
    assert (tmp_path / "site" / "index.html").is_file()

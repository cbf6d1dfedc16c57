"""Development sessions: ``nox -s tests lint docs``; ``nox -s bench`` for the benchmarks,
``nox -s uvicorn_range`` for the oldest and newest uvicorn supported, and ``nox -s ray`` for
the Ray Serve recipe."""

from __future__ import annotations

import nox

nox.options.sessions = ["tests", "lint", "docs"]
nox.options.default_venv_backend = "venv"


@nox.session(python="3.11")
def tests(session: nox.Session) -> None:
    """Run the test suite against real servers on 127.0.0.1."""
    session.install("-e", ".[test]")
    session.run("pytest", *session.posargs)


UVICORN_RANGE = ["0.51.0", "0.55.0"]
"""The oldest and newest uvicorn that pyproject.toml lets in: dataserve's protocol builds on its internals."""


@nox.session(python="3.11")
@nox.parametrize("version", UVICORN_RANGE)
def uvicorn_range(session: nox.Session, version: str) -> None:
    """Run the tests on each end of the uvicorn range dataserve supports."""
    session.install("-e", ".[test]", f"uvicorn=={version}")
    session.run("pytest", *session.posargs)


@nox.session(python="3.11")
def lint(session: nox.Session) -> None:
    """ruff check, ruff format --check, and mypy --strict on the package."""
    session.install("-e", ".[test]", "ruff>=0.6", "mypy>=1.11")
    session.run("ruff", "check", ".")
    session.run("ruff", "format", "--check", ".")
    session.run("mypy", "--strict", "dataserve", "tests")
    session.run("mypy", "--strict", "benchmarks")


@nox.session(python="3.11")
def docs(session: nox.Session) -> None:
    """Build the documentation with mkdocs, failing on any warning."""
    session.install("-e", ".[docs]")
    session.run("mkdocs", "build", "--strict", "-d", str(session.create_tmp()) + "/site")


@nox.session(python="3.11")
def bench(session: nox.Session) -> None:
    """Race dataserve against the ProxyServer; write docs/benchmarks.md and its chart (a few minutes)."""
    session.install("-e", ".[bench]")
    session.run("python", "benchmarks/bench.py", *session.posargs)


@nox.session(python="3.11")
def ray(session: nox.Session) -> None:
    """Run the Ray Serve recipe's tests on a local Ray (opt-in: Ray is large and slow to start)."""
    session.install("-e", ".[test]", "ray[serve]>=2.40")
    session.run("pytest", "-p", "no:xdist", "tests/test_ray_serve.py", *session.posargs)

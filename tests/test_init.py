from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

import dataserve
from dataserve import (
    AuthenticationError,
    DataServeError,
    PayloadError,
    RemoteError,
    ResourceNotFound,
    ServerUnavailable,
)


def test_public_names_are_exported() -> None:
    assert sorted(dataserve.__all__) == sorted(
        [
            "AsyncHTTPDataClient",
            "AuthenticationError",
            "Codec",
            "DataApp",
            "DataServeError",
            "HTTPDataClient",
            "HTTPDataHandler",
            "Limits",
            "PayloadError",
            "RemoteError",
            "ResourceNotFound",
            "RunningServer",
            "ServerUnavailable",
            "create_app",
            "register_codec",
            "run_http_server",
            "serve",
        ]
    )
    for name in dataserve.__all__:
        assert getattr(dataserve, name).__module__.startswith("dataserve")


def test_every_exception_is_a_dataserve_error() -> None:
    for error in (AuthenticationError, PayloadError, RemoteError, ResourceNotFound, ServerUnavailable):
        assert issubclass(error, DataServeError)


SERVER_STACK = ("starlette", "uvicorn", "anyio", "httpx")
"""What a program that only calls a server over plain HTTP must not import."""

LEAN_CLIENT = """
import json, sys
stack = {stack!r}

def loaded():
    return sorted(name for name in sys.modules if name.partition(".")[0] in stack)

import dataserve
after_import = loaded()
from dataserve import HTTPDataClient, ServerUnavailable
after_from_import = loaded()
with HTTPDataClient({port}, "http://127.0.0.1:") as client:
    reply = client.send("/r", [1, 2])
print(json.dumps([after_import, after_from_import, loaded(), reply]))
"""


def test_a_client_program_imports_no_server_and_no_httpx_before_or_after_a_call(
    server: dataserve.RunningServer,
) -> None:
    script = LEAN_CLIENT.format(stack=SERVER_STACK, port=server.port)
    environment = {**os.environ, "DATASERVE_FAST_PATH": "1"}
    for name in ("http_proxy", "HTTP_PROXY", "all_proxy", "ALL_PROXY"):
        environment.pop(name, None)
    done = subprocess.run(
        [sys.executable, "-c", script],
        capture_output=True,
        text=True,
        timeout=60,
        env=environment,
        check=True,
    )
    assert json.loads(done.stdout) == [[], [], [], [1, 2]]


def test_public_names_are_found_lazily_and_listed_by_dir() -> None:
    done = subprocess.run(
        [sys.executable, "-c", "import dataserve, sys; print('dataserve._server' in sys.modules)"],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    assert done.stdout == "False\n"
    assert set(dataserve.__all__) <= set(dir(dataserve))
    with pytest.raises(AttributeError, match="has no attribute 'nope'"):
        dataserve.nope  # noqa: B018

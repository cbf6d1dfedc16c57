"""dataserve: serve Python data from one long-running process to others over HTTP.

The names below are imported on first use (PEP 562), so that a program that only calls a
server (``from dataserve import HTTPDataClient``) loads neither the server (Starlette,
uvicorn) nor httpx until a call needs it.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ._app import DataApp, create_app
    from ._client import AsyncHTTPDataClient, HTTPDataClient
    from ._errors import (
        AuthenticationError,
        DataServeError,
        PayloadError,
        RemoteError,
        ResourceNotFound,
        ServerUnavailable,
    )
    from ._handler import HTTPDataHandler
    from ._limits import Limits
    from ._server import RunningServer, run_http_server, serve
    from ._usercodecs import Codec, register_codec

__all__ = [
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

__version__ = "0.1.0"

_MODULES = {
    "DataApp": "_app",
    "create_app": "_app",
    "AsyncHTTPDataClient": "_client",
    "HTTPDataClient": "_client",
    "AuthenticationError": "_errors",
    "DataServeError": "_errors",
    "PayloadError": "_errors",
    "RemoteError": "_errors",
    "ResourceNotFound": "_errors",
    "ServerUnavailable": "_errors",
    "HTTPDataHandler": "_handler",
    "Limits": "_limits",
    "RunningServer": "_server",
    "run_http_server": "_server",
    "serve": "_server",
    "Codec": "_usercodecs",
    "register_codec": "_usercodecs",
}
"""The module of each public name."""


def __getattr__(name: str) -> Any:
    module = _MODULES.get(name)
    if module is None:
        raise AttributeError(f"module 'dataserve' has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{module}", __name__), name)
    globals()[name] = value  # found here from now on, without this function
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *__all__])

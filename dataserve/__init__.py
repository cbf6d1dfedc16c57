"""dataserve: serve Python data from one long-running process to others over HTTP."""

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
from ._server import RunningServer, run_http_server, serve

__all__ = [
    "AsyncHTTPDataClient",
    "AuthenticationError",
    "DataApp",
    "DataServeError",
    "HTTPDataClient",
    "HTTPDataHandler",
    "PayloadError",
    "RemoteError",
    "ResourceNotFound",
    "RunningServer",
    "ServerUnavailable",
    "create_app",
    "run_http_server",
    "serve",
]

__version__ = "0.1.0"

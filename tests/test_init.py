from __future__ import annotations

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
    )
    for name in dataserve.__all__:
        assert getattr(dataserve, name).__module__.startswith("dataserve")


def test_every_exception_is_a_dataserve_error() -> None:
    for error in (AuthenticationError, PayloadError, RemoteError, ResourceNotFound, ServerUnavailable):
        assert issubclass(error, DataServeError)

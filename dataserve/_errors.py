"""The exceptions a dataserve caller can catch, and their HTTP status codes.

The tree::

    DataServeError
      ResourceNotFound     404: the handler returned None for the resource
      RemoteError          500: the handler raised; carries its type name and message
      PayloadError         a value that cannot be sent, or 400 / 413 / 415 from the server
      AuthenticationError  401: the server needs a token, or the one sent is wrong
      ServerUnavailable    connection refused, reset or timed out; 503 while it cannot serve
"""

from __future__ import annotations

__all__ = [
    "AuthenticationError",
    "DataServeError",
    "PayloadError",
    "RemoteError",
    "ResourceNotFound",
    "ServerUnavailable",
]


class DataServeError(Exception):
    """Base class of every exception dataserve raises to its callers."""


class ResourceNotFound(DataServeError):
    """The server's handler does not handle the resource (it returned None)."""

    def __init__(self, message: str, *, resource: str = "") -> None:
        super().__init__(message)
        self.resource = resource


class RemoteError(DataServeError):
    """The server's handler raised an exception while handling the call."""

    def __init__(
        self,
        message: str,
        *,
        remote_type: str = "",
        remote_message: str = "",
        remote_traceback: str | None = None,
    ) -> None:
        super().__init__(message)
        self.remote_type = remote_type
        self.remote_message = remote_message
        self.remote_traceback = remote_traceback


class PayloadError(DataServeError):
    """A value that dataserve cannot encode, or a body the other side cannot decode.

    ``status`` is the HTTP status that stands for the refusal: 400 for a body that does
    not decode as its Content-Type says, 413 for one too large, 415 for an unknown
    Content-Type. It is None for a value refused before anything was sent.
    """

    def __init__(self, message: str, *, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


class AuthenticationError(DataServeError):
    """The server refused the call: it needs a token, or the one sent is wrong (401)."""


class ServerUnavailable(DataServeError):
    """The server could not be reached, or did not answer in time."""

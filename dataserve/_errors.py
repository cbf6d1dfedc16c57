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

import errno
import json
import socket

from ._wire import Reply

__all__ = [
    "AuthenticationError",
    "DataServeError",
    "PayloadError",
    "RemoteError",
    "ResourceNotFound",
    "ServerUnavailable",
    "error_body",
    "error_reply",
    "refused_reply",
    "status_error",
    "transport_failure",
    "unavailable",
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
    """The server could not be reached, did not answer in time, or cannot serve now (503); or
    something other than a dataserve server answered (a proxy's 502 or 504).

    ``may_have_run`` says whether the call could have reached the handler: False only when it
    certainly did not (the connection was refused, the request was not all sent, the server
    refused it before its handler saw it), so that sending it again is safe. The message ends
    by saying which.
    """

    def __init__(self, message: str, *, may_have_run: bool = True) -> None:
        if "may have run" not in message and "did not run" not in message:
            message += "; the call may have run" if may_have_run else "; the call did not run"
        super().__init__(message)
        self.may_have_run = may_have_run


def error_body(error: str, message: str, **extra: str) -> bytes:
    """The JSON body ``{"error": ..., "message": ...}`` that every refusal and failure carries."""
    body = {"error": error, "message": message, **extra}
    return json.dumps(body, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


def error_reply(status: int, error: str, message: str, **extra: str) -> Reply:
    """A reply whose JSON body ``{"error": ..., "message": ...}`` says why the call failed."""
    return Reply(status, {"content-type": "application/json"}, error_body(error, message, **extra))


def status_error(reply: Reply, where: str, resource: str) -> DataServeError:
    """The exception for a reply that is not 200, with the server's message.

    ``where`` names the call (``"PUT http://127.0.0.1:5001/xdata"``) and ``resource`` its resource.
    """
    status = reply.status
    error = _dataserve_error(reply)
    if error is None:
        return _foreign(reply, where)
    message = str(error["message"])
    if status == 404:
        return ResourceNotFound(f"{message} (404 from {where})", resource=resource)
    if status == 500:
        traceback = error.get("traceback")
        remote_type = str(error.get("exception", "Exception"))
        return RemoteError(
            f"the handler failed on {where}: {remote_type}: {message}",
            remote_type=remote_type,
            remote_message=message,
            remote_traceback=None if traceback is None else str(traceback),
        )
    if status in (400, 413, 415):
        refused = "the call" if error.get("error") == "bad_resource" else "the payload"
        return PayloadError(f"the server refused {refused}: {message} ({status} from {where})", status=status)
    if status == 401:
        return AuthenticationError(f"{message} (401 from {where})")
    if status == 503:
        return ServerUnavailable(
            f"the server cannot serve now: {message} (503 from {where})",
            may_have_run=error.get("error") not in _NOT_RUN,
        )
    return DataServeError(f"unexpected {status} {reply.reason or _phrase(status)} from {where}: {message}")


_NOT_RUN = frozenset({"overloaded", "loading", "unavailable"})
"""The errors of a dataserve 503 refusing a call before its handler saw it."""


def _dataserve_error(reply: Reply) -> dict[str, object] | None:
    """The JSON error body a dataserve server sends with every refusal and failure, if ``reply`` has one."""
    if not reply.headers.get("content-type", "").startswith("application/json"):
        return None
    try:
        error = json.loads(reply.body)
    except ValueError:
        return None
    if isinstance(error, dict) and isinstance(error.get("error"), str) and "message" in error:
        return error
    return None


def _foreign(reply: Reply, where: str) -> DataServeError:
    """The exception for a reply that is not a dataserve server's own: a proxy's, or another server's."""
    status = reply.status
    what = f"{status} {reply.reason or _phrase(status)}".strip()
    text = " ".join(reply.body[:300].decode("utf-8", "replace").split())
    said = f": {text}" if text else ""
    if status == 413:
        return PayloadError(
            f"something in front of the server (a proxy?) refused the payload as too large ({what} from "
            f"{where}{said}); send less, or raise its limit (nginx: client_max_body_size)",
            status=413,
        )
    if status == 401:
        return AuthenticationError(f"{what} from {where}, not from a dataserve server{said}")
    if status in (400, 415):
        return PayloadError(
            f"the call was refused ({what} from {where}, not a dataserve server{said})", status=status
        )
    return ServerUnavailable(
        f"{what} from {where}, not from a dataserve server: a proxy or another server answered{said}. "
        "Check that the server behind it is running, and that the address is a dataserve server's",
        may_have_run=status != 404,
    )


def refused_reply(where: str, exc: Exception) -> DataServeError:
    """The exception for a reply the client itself gave up on: one larger than it takes
    (PayloadError), or one not whole by the call's deadline (ServerUnavailable, a TimeoutError)."""
    if isinstance(exc, TimeoutError):
        return ServerUnavailable(
            f"no whole reply from {where} within the call's deadline; the handler may have run. "
            "Give the call a later deadline, or check the server",
            may_have_run=True,
        )
    return PayloadError(f"{exc}, from {where}: give the client a larger max_reply_size to take it")


def unavailable(where: str, exc: BaseException, *, sent: bool, timed_out: bool = False) -> ServerUnavailable:
    """The ServerUnavailable for a transport failure reaching the server at ``where``, saying what to check.

    ``sent`` says whether the request was all sent before the failure (then the handler may
    have run); ``timed_out`` that ``exc`` is a timeout of a kind other than TimeoutError.
    """
    if "CERTIFICATE_VERIFY_FAILED" in str(exc):
        return ServerUnavailable(
            f"cannot verify the certificate of {where} ({exc}); give the client the CA that signed it "
            "(verify='ca.pem', or --cafile), or check that this is the server you mean",
            may_have_run=False,
        )
    if timed_out or isinstance(exc, TimeoutError):
        waited = "for the reply" if sent else "to connect or to send the call"
        return ServerUnavailable(
            f"no reply from {where} in time ({type(exc).__name__}, waiting {waited}); check that the "
            f"server at {where} is running and not overloaded, or raise the client's timeout",
            may_have_run=sent,
        )
    if sent:
        return ServerUnavailable(
            f"the connection to {where} broke before the reply came ({transport_failure(exc)}); "
            "the server may have stopped or restarted",
            may_have_run=True,
        )
    return ServerUnavailable(
        f"cannot reach a dataserve server at {where} ({transport_failure(exc)}); "
        f"check that the server is running and listening at {where}",
        may_have_run=False,
    )


_FAILURES = {
    errno.ECONNREFUSED: "connection refused",
    errno.ECONNRESET: "connection reset",
    errno.ECONNABORTED: "connection aborted",
    errno.EPIPE: "connection closed by the server",
    errno.ENOENT: "no such socket file",
    errno.EACCES: "permission denied",
    errno.EHOSTUNREACH: "host unreachable",
    errno.ENETUNREACH: "network unreachable",
    errno.EADDRNOTAVAIL: "address not available",
}


def transport_failure(exc: BaseException) -> str:
    """The failure under ``exc`` in the words every client lane uses, such as "connection refused".

    The socket lane, httpx and the async client wrap one refused connection in three ways
    (ConnectionRefusedError, ConnectError, "All connection attempts failed"); the caller reads
    the same words from each. The root OS error is found along the exceptions' causes.
    """
    root: BaseException | None = None
    seen: BaseException | None = exc
    while seen is not None and seen is not root:
        if isinstance(seen, socket.gaierror):
            return f"cannot resolve the host name: {seen.strerror or seen}"
        if isinstance(seen, OSError) and seen.errno in _FAILURES:
            return _FAILURES[seen.errno]
        root = seen
        seen = seen.__cause__ or seen.__context__
    return f"{type(exc).__name__}: {exc}"


def _phrase(status: int) -> str:
    from http import HTTPStatus

    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return ""

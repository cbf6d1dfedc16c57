"""The base class a user derives from to answer a server's calls."""

from __future__ import annotations

from typing import Any

__all__ = ["HTTPDataHandler"]


class HTTPDataHandler:
    """Answers the calls that reach a dataserve server.

    Derive from it and override ``handle_request``. The server makes one instance and
    keeps it for its whole life, so state set up in ``__init__`` (a model, a table) is
    loaded once and shared by every call. ``handle_request`` may be ``async def``.
    """

    def handle_request(self, resource: str, payload: Any) -> Any:
        """Return the reply for ``payload`` sent to ``resource``, or None if not handled.

        ``resource`` is the URL path, starting with ``/``, without the query string.
        ``payload`` is the decoded body: a str, a JSON value, bytes, or None. The reply
        may be any of the same types; None means the resource is not handled (404).
        """
        raise NotImplementedError(
            f"{type(self).__name__} must override handle_request(self, resource, payload)"
        )

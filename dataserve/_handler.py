"""The base class a user derives from to answer a server's calls, and its lifecycle hooks."""

from __future__ import annotations

import importlib
from typing import Any

from ._errors import DataServeError

__all__ = ["HTTPDataHandler", "import_handler"]


class HTTPDataHandler:
    """Answers the calls that reach a dataserve server.

    Derive from it and override ``handle_request``. The server makes one instance and
    keeps it for its whole life, so state loaded once (a model, a table) is shared by
    every call. Load it in ``__init__``, or in ``setup()`` to let the server answer its
    health check (503, then 200) while it loads. Any of the three may be ``async def``.
    """

    def setup(self) -> Any:
        """Load what the handler needs; runs once per server process, as the server starts.

        Calls that arrive meanwhile wait for it, and ``GET /healthz`` answers 503. If it
        raises, the server stops instead of serving. May be ``async def``.
        """

    def teardown(self) -> Any:
        """Release what ``setup()`` loaded; runs once per server process, as the server stops.

        Runs only if ``setup()`` finished. May be ``async def``.
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


def import_handler(path: str) -> type[HTTPDataHandler] | HTTPDataHandler:
    """The handler class (or instance) that an import path such as ``"mymodule:MyHandler"`` names.

    Raises DataServeError, saying what is wrong, if it does not import or is not a handler.
    """
    module_name, _, attribute = path.partition(":")
    if not module_name or not attribute:
        raise DataServeError(
            f"{path!r} is not an import path: write it as module:ClassName, such as mymodule:MyHandler"
        )
    try:
        found: Any = importlib.import_module(module_name)
    except ImportError as exc:
        raise DataServeError(f"cannot import module {module_name!r} of {path!r}: {exc}") from None
    except Exception as exc:
        raise DataServeError(
            f"importing {module_name!r} of {path!r} raised {type(exc).__name__}: {exc}"
        ) from None
    for part in attribute.split("."):
        try:
            found = getattr(found, part)
        except AttributeError:
            raise DataServeError(f"module {module_name!r} has no {attribute!r} (from {path!r})") from None
    is_handler_class = isinstance(found, type) and issubclass(found, HTTPDataHandler)
    if not (is_handler_class or isinstance(found, HTTPDataHandler)):
        raise DataServeError(f"{path!r} is {found!r}, not a subclass of dataserve.HTTPDataHandler")
    return found  # type: ignore[no-any-return]

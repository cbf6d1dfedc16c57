"""Where a client sends its calls: the base URL from the seed's ``(port, address)``, and request targets.

Kept free of httpx, so that a client that needs only the socket lane never imports it: the
request target is built as httpx builds it (dot segments resolved, the path and query
percent-encoded with the WHATWG sets, an existing ``%xx`` kept), so that both lanes send the
same bytes for the same resource.
"""

from __future__ import annotations

from urllib.parse import urlsplit

__all__ = ["Address", "base_url", "request_target", "resource_path"]

_UNRESERVED = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~"
# https://url.spec.whatwg.org/#percent-encoded-bytes, as httpx applies them.
_QUERY_SAFE = frozenset(
    _UNRESERVED + "".join(chr(i) for i in range(0x20, 0x7F) if i not in (0x20, 0x22, 0x23, 0x3C, 0x3E))
)
_PATH_SAFE = _QUERY_SAFE - frozenset("?`{}")


class Address:
    """A server's base URL taken apart: scheme, host, port and the path calls go under."""

    __slots__ = ("host", "path", "port", "scheme", "url")

    def __init__(self, url: str) -> None:
        parts = urlsplit(url)
        self.url = url
        self.scheme = parts.scheme
        self.host = parts.hostname or "localhost"
        try:
            port = parts.port
        except ValueError:
            raise ValueError(f"{url!r} has no valid port number") from None
        self.port = port if port is not None else (443 if self.scheme == "https" else 80)
        self.path = parts.path.rstrip("/")

    def __repr__(self) -> str:
        return f"Address({self.url!r})"


def base_url(port: int | None, address: str) -> str:
    """The server's base URL from the seed's ``(port, address)`` pair.

    ``address`` may end in a colon (``"http://10.0.0.2:"``, the port follows), name a host
    (``"10.0.0.2"``, ``"http://10.0.0.2"``), or be a full base URL whose port wins over ``port``.
    Raises ValueError for an address that is no URL.
    """
    if "://" not in address:
        address = "http://" + address
    if address.endswith(":"):
        if port is None:
            raise ValueError(f"address {address!r} ends in a colon: pass the port too")
        address = f"{address}{port}"
    parts = urlsplit(address)
    if parts.scheme not in ("http", "https"):
        raise ValueError(f"address {address!r} is not an http:// or https:// URL")
    if not parts.hostname:
        raise ValueError(f"address {address!r} names no host")
    try:
        given = parts.port
    except ValueError:
        raise ValueError(f"address {address!r} has no valid port number") from None
    netloc = parts.netloc.lower()
    if given is None and port is not None:
        netloc = f"{netloc.rstrip(':')}:{port}"
    path = _quote(_remove_dot_segments(parts.path), _PATH_SAFE).rstrip("/")
    return f"{parts.scheme}://{netloc}{path}"


def resource_path(resource: str) -> str:
    """The request path for ``resource``, which gets a leading ``/`` if it has none."""
    return resource if resource.startswith("/") else "/" + resource


def request_target(base_path: str, resource: str) -> bytes:
    """The request target (path and query) of ``resource`` under ``base_path``, as httpx sends it.

    A fragment is dropped, ``.`` and ``..`` segments are resolved, and what the path and the
    query may not hold is percent-encoded as UTF-8.
    """
    resource, _, _ = resource.partition("#")
    path, question, query = resource.partition("?")
    path = _quote(_remove_dot_segments(base_path + resource_path(path)), _PATH_SAFE) or "/"
    target = path + "?" + _quote(query, _QUERY_SAFE) if question else path
    return target.encode("ascii")


def _remove_dot_segments(path: str) -> str:
    """``path`` without its ``.`` and ``..`` segments, resolved as httpx resolves them."""
    if "." not in path:
        return path
    segments = path.split("/")
    if "." not in segments and ".." not in segments:
        return path
    output: list[str] = []
    for segment in segments:
        if segment == "..":
            if output and output != [""]:
                output.pop()
        elif segment != ".":
            output.append(segment)
    return "/".join(output)


def _quote(text: str, safe: frozenset[str]) -> str:
    """``text`` with every character but the ``safe`` ones percent-encoded as UTF-8.

    ``%`` is safe, so that an escape already in ``text`` stays as it is.
    """
    if all(char in safe for char in text):
        return text
    return "".join(char if char in safe else _percent(char) for char in text)


def _percent(char: str) -> str:
    return "".join(f"%{byte:02X}" for byte in char.encode("utf-8"))

"""Values to typed HTTP bodies and back, the same in both directions and on both sides.

| Python value                          | Content-Type                  | decoded as |
|---------------------------------------|-------------------------------|------------|
| ``str``                               | ``text/plain; charset=utf-8`` | ``str``    |
| ``None``, ``bool``, ``int``, ``float``, ``list``, ``tuple``, ``dict`` | ``application/json`` | JSON value |
| ``bytes``, ``bytearray``, ``memoryview`` | ``application/octet-stream`` | ``bytes``  |

An empty body without a Content-Type decodes as ``None``.
"""

from __future__ import annotations

import json
from typing import Any

from ._errors import PayloadError

__all__ = ["BYTES", "JSON", "TEXT", "decode", "encode"]

TEXT = "text/plain; charset=utf-8"
JSON = "application/json"
BYTES = "application/octet-stream"

_ALLOWED = (
    "str, a JSON-able value (None, bool, int, float, list, tuple, "
    "dict with str, int, float, bool or None keys) or bytes-like (bytes, bytearray, memoryview)"
)
_JSON_TYPES = (dict, list, tuple, int, float, type(None))
_encode_json = json.JSONEncoder(allow_nan=True, separators=(",", ":")).encode


def encode(value: object) -> tuple[bytes, str]:
    """Return the body and Content-Type that carry ``value``.

    Raises PayloadError, naming the type, for a value dataserve cannot carry.
    """
    if isinstance(value, str):
        try:
            return value.encode("utf-8"), TEXT
        except UnicodeEncodeError as exc:
            raise PayloadError(f"cannot send this str as UTF-8 text: {exc}") from None
    if isinstance(value, bytes):
        return value, BYTES
    if isinstance(value, (bytearray, memoryview)):
        return bytes(value), BYTES
    if isinstance(value, _JSON_TYPES):
        try:
            return _encode_json(value).encode("ascii"), JSON
        except (TypeError, ValueError, RecursionError) as exc:
            detail = "too deeply nested" if isinstance(exc, RecursionError) else str(exc)
            raise PayloadError(
                f"cannot send this {type(value).__name__}: {detail}. "
                f"dataserve sends {_ALLOWED}; pickle other objects yourself and send the bytes"
            ) from None
    raise PayloadError(
        f"cannot send a value of type {type(value).__name__}: dataserve sends {_ALLOWED}; "
        "pickle other objects yourself and send the bytes"
    )


def decode(body: bytes, content_type: str | None) -> Any:
    """Return the value that ``body`` carries, typed by its ``content_type``.

    Raises PayloadError with status 400 for a body that does not decode as its type
    says, and with status 415 for a Content-Type dataserve does not know.
    """
    if not content_type:
        if not body:
            return None
        raise PayloadError(
            f"a body without a Content-Type cannot be decoded; send it as {TEXT}, {JSON} or {BYTES}",
            status=415,
        )
    media_type, _, params = content_type.partition(";")
    media_type = media_type.strip().lower()
    if media_type == "application/json" or media_type.endswith("+json"):
        try:
            return json.loads(body)
        except (ValueError, RecursionError) as exc:
            detail = "too deeply nested" if isinstance(exc, RecursionError) else str(exc)
            raise PayloadError(f"the body is not valid JSON: {detail}", status=400) from None
    if media_type == "application/octet-stream":
        return body
    if media_type == "text/plain":
        charset = _charset(params)
        try:
            return body.decode(charset)
        except UnicodeDecodeError as exc:
            raise PayloadError(f"the body is not valid {charset} text: {exc}", status=400) from None
        except LookupError:
            raise PayloadError(f"unknown charset {charset!r}; send text as utf-8", status=415) from None
    raise PayloadError(
        f"unsupported Content-Type {content_type!r}; dataserve takes {TEXT}, {JSON} or {BYTES}",
        status=415,
    )


def _charset(params: str) -> str:
    for param in params.split(";"):
        name, _, value = param.partition("=")
        if name.strip().lower() == "charset":
            return value.strip().strip('"') or "utf-8"
    return "utf-8"

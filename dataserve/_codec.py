"""Values to typed HTTP bodies and back, the same in both directions and on both sides.

| Python value                          | Content-Type                  | decoded as |
|---------------------------------------|-------------------------------|------------|
| ``str``                               | ``text/plain; charset=utf-8`` | ``str``    |
| ``None``, ``bool``, ``int``, ``float``, ``list``, ``tuple``, ``dict`` | ``application/json`` | JSON value |
| ``bytes``, ``bytearray``, ``memoryview`` | ``application/octet-stream`` | ``bytes``  |
| ``numpy.ndarray``                     | ``application/x-npy``         | read-only ``numpy.ndarray`` |
| a table: ``pyarrow.Table``, ``RecordBatch``, | ``application/vnd.apache.arrow.stream`` | the same kind |
| pandas and polars ``DataFrame`` and ``Series`` |                         | (or ``pyarrow.Table``) |

An empty body without a Content-Type decodes as ``None``. Codecs of one's own (``_usercodecs``)
carry what these do not, and decode the bodies of their Content-Types.

NumPy is optional and never imported here unless an ``application/x-npy`` body comes in:
a value can only be an ndarray (or a NumPy scalar) if NumPy is already imported, so
``encode`` looks for it in ``sys.modules``. Arrays travel in the ``.npy`` format, without
pickle (``_npy``).

Tables (``_arrow``) go the same way: pyarrow, pandas and polars are looked for in
``sys.modules`` to tell a table, and imported only when an Arrow body comes in.

NumPy scalars of bool, integer and floating types travel as the JSON value they stand
for (``numpy.int64(3)`` arrives as ``3``), alone or inside lists and dicts. Other NumPy
scalars (complex, datetime64, longdouble, ...) are refused: ``numpy.asarray(x)`` sends one
as a 0-d array, which keeps its dtype.
"""

from __future__ import annotations

import codecs
import functools
import re
from collections.abc import Callable
from typing import Any

from . import _json
from ._arrow import ARROW, decode_arrow, encode_arrow, table_kind
from ._errors import PayloadError
from ._npy import NPY, decode_npy, encode_npy, imported
from ._usercodecs import Codecs, decode_with, encode_with

__all__ = ["ARROW", "BYTES", "CHARSETS", "JSON", "NO_CODECS", "NPY", "TEXT", "decode", "encode", "is_json"]

TEXT = "text/plain; charset=utf-8"
JSON = "application/json"
BYTES = "application/octet-stream"

_ALLOWED = (
    "str, a JSON-able value (None, bool, int, float, list, tuple, "
    "dict with str, int, float, bool or None keys), bytes-like (bytes, bytearray, memoryview), "
    "a numpy.ndarray, or a table (pyarrow.Table or RecordBatch, pandas or polars DataFrame or Series)"
)


NO_CODECS = Codecs()
"""No codecs of an app's or client's own: the process's (``register_codec``) alone."""


_OTHERS = (
    "teach it other types with a dataserve.Codec registered on both sides (see the Types page "
    "of the docs), or pickle them yourself and send the bytes"
)


def encode(value: object, codecs: Codecs = NO_CODECS) -> tuple[bytes, str]:
    """Return the body and Content-Type that carry ``value``: as one of dataserve's own types,
    or else by the first of ``codecs`` that claims its type.

    Raises PayloadError, naming the type, for a value dataserve cannot carry.
    """
    try:
        if type(value) in _JSON_EXACT:  # the commonest payloads: no other type need be looked for
            return _json_body(value)
        return _encode(value)
    except PayloadError:
        codec = codecs.for_value(value)
        if codec is None:
            raise
    return encode_with(codec, value)


def _encode(value: object) -> tuple[bytes, str]:
    if isinstance(value, str):
        try:
            return value.encode("utf-8"), TEXT
        except UnicodeEncodeError as exc:
            raise PayloadError(f"cannot send this str as UTF-8 text: {exc}") from None
    if isinstance(value, bytes):
        return value, BYTES
    if isinstance(value, (bytearray, memoryview)):
        return bytes(value), BYTES
    numpy = imported("numpy")
    if numpy is not None and isinstance(value, numpy.ndarray):
        return encode_npy(numpy, value), NPY
    if isinstance(value, _JSON_TYPES) or (numpy is not None and isinstance(value, numpy.generic)):
        return _json_body(value)
    kind = table_kind(value)  # after the JSON types: a small call pays nothing for tables
    if kind is not None:
        return encode_arrow(value, kind), ARROW
    raise PayloadError(
        f"cannot send a value of type {type(value).__name__}: dataserve sends {_ALLOWED}; {_OTHERS}"
    )


def decode(body: bytes | bytearray, content_type: str | None, codecs: Codecs = NO_CODECS) -> Any:
    """Return the value that ``body`` carries, typed by its ``content_type``: by the codec of
    ``codecs`` for it, if there is one, else as one of dataserve's own types.

    Raises PayloadError with status 400 for a body that does not decode as its type
    says, and with status 415 for a Content-Type dataserve does not know (or an .npy
    body where NumPy is not installed, an Arrow body where pyarrow is not).
    """
    own = _DECODERS.get(content_type)  # exactly as dataserve sends it: no codec may claim it
    if own is not None:
        return own(body)
    if not content_type:
        if not body:
            return None
        raise PayloadError(
            f"a body without a Content-Type cannot be decoded; send it as {TEXT}, {JSON} or {BYTES}",
            status=415,
        )
    media_type, _, params = content_type.partition(";")
    media_type = media_type.strip().lower()
    codec = codecs.for_media(media_type)
    if codec is not None:
        return decode_with(codec, body)
    if _is_json_media(media_type):
        return _decode_json(body)
    if media_type == "application/octet-stream":
        return bytes(body)  # The same object for bytes; a copy only of a bytearray.
    if media_type == "text/plain":
        return _decode_text(body, _charset(params))
    if media_type == NPY:
        return decode_npy(body)
    if media_type == ARROW:
        return decode_arrow(body)
    taken = ", ".join([TEXT, JSON, BYTES, NPY, ARROW, *codecs.media_types()])
    raise PayloadError(
        f"unsupported Content-Type {content_type!r}; dataserve takes {taken}. A type of your own "
        "travels by a dataserve.Codec registered on both sides",
        status=415,
    )


CHARSETS = frozenset(
    {
        "utf-8",
        "utf-8-sig",
        "ascii",
        "iso8859-1",
        "iso8859-15",
        "cp1252",
        "utf-16",
        "utf-16-le",
        "utf-16-be",
        "utf-32",
        "utf-32-le",
        "utf-32-be",
    }
)
"""The charsets text is taken in, by Python's names for them (``latin-1`` is ``iso8859-1``): those
people send, whose decoders take time in proportion to the text and make no lone surrogates.
Others (``punycode``'s decoder takes time in proportion to the square of the text, ``utf-7``'s
makes lone surrogates) are refused with 415."""


def is_json(content_type: str | None) -> bool:
    """Whether a body of ``content_type`` is decoded as JSON."""
    return content_type is not None and _is_json_media(content_type.partition(";")[0].strip().lower())


def _is_json_media(media_type: str) -> bool:
    return media_type == "application/json" or media_type.endswith("+json")


def _decode_text(body: bytes | bytearray, charset: str) -> str:
    try:
        name = codecs.lookup(charset).name
    except LookupError:
        name = ""
    if name not in CHARSETS:
        raise PayloadError(
            f"charset {charset!r} is not taken; send text as utf-8 (or one of utf-16, utf-32, "
            "latin-1, cp1252, ascii)",
            status=415,
        )
    try:
        return body.decode(name)
    except UnicodeError as exc:
        raise PayloadError(f"the body is not valid {charset} text: {exc}", status=400) from None


def _charset(params: str) -> str:
    for param in params.split(";"):
        name, _, value = param.partition("=")
        if name.strip().lower() == "charset":
            return value.strip().strip('"') or "utf-8"
    return "utf-8"


# JSON


_JSON_TYPES = (dict, list, tuple, int, float, type(None))

_JSON_EXACT = frozenset({dict, list, tuple, int, float, bool, type(None)})
"""The JSON types themselves, not subclasses: a value of one can be of no other type ``encode`` knows."""


def _json_body(value: object) -> tuple[bytes, str]:
    try:
        return _json.dumps(value).encode("utf-8"), JSON
    except (TypeError, ValueError, RecursionError) as exc:
        detail = "too deeply nested" if isinstance(exc, RecursionError) else str(exc)
        raise PayloadError(
            f"cannot send this {type(value).__name__}: {detail}. dataserve sends {_ALLOWED}; {_OTHERS}"
        ) from None


# A \\uD800-\\uDFFF escape not in a surrogate pair; its match only prompts the full check.
_LONE_SURROGATE = re.compile(
    rb"\\u[dD][89abAB][0-9a-fA-F]{2}(?!\\u[dD][c-fC-F])|(?<![0-9a-fA-F]{4})\\u[dD][c-fC-F][0-9a-fA-F]{2}"
)


def _decode_json(body: bytes | bytearray) -> Any:
    try:
        value = _json.loads(body)
    except (ValueError, RecursionError) as exc:
        detail = "too deeply nested" if isinstance(exc, RecursionError) else str(exc)
        raise PayloadError(f"the body is not valid JSON: {detail}", status=400) from None
    if _LONE_SURROGATE.search(body):
        try:
            _json.dumps(value).encode("utf-8")
        except UnicodeEncodeError:
            raise PayloadError(
                "the JSON holds a string with a lone surrogate escape such as \\ud800, which is not "
                "valid Unicode; send such data as bytes",
                status=400,
            ) from None
    return value


_DECODERS: dict[str | None, Callable[[bytes | bytearray], Any]] = {
    JSON: _decode_json,
    TEXT: functools.partial(_decode_text, charset="utf-8"),
    BYTES: bytes,
}
"""The decoders of the Content-Types dataserve sends, by the exact header: a reply skips the parsing."""

"""JSON text to and from values, as the standard library's ``json`` makes and reads it, for less.

``json.dumps`` builds its C encoder anew for every value and ``json.loads`` passes a body through
four Python functions before the C scanner reads it: for a small call, that is most of what
JSON costs. Here each thread keeps one C encoder, and a UTF-8 body goes to the scanner at once.
The text is the same, and so are the errors: TypeError for a value JSON has no form for,
ValueError for a circular one, JSONDecodeError (a ValueError) for a body that is not JSON, and
RecursionError for one nested too deep.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from json import encoder
from json.encoder import c_make_encoder  # type: ignore[attr-defined]  # None without the C accelerator
from typing import Any

from ._arrow import table_kind
from ._npy import imported

__all__ = ["dumps", "loads"]


def _default(value: object) -> object:
    """The JSON value of a NumPy bool, integer or floating scalar; TypeError for the rest."""
    kind = table_kind(value)
    if kind is not None:
        raise TypeError(
            f"a {kind} travels only as the whole payload, not inside a list, tuple or dict; "
            "send one table per call"
        )
    numpy = imported("numpy")
    if numpy is not None:
        if isinstance(value, numpy.ndarray):
            raise TypeError(
                "a numpy.ndarray travels only as the whole payload, not inside a list, tuple or dict; "
                "send one array per call, or convert it with .tolist()"
            )
        if isinstance(value, numpy.generic):
            item = value.item() if value.dtype.kind in "biuf" else None
            if type(item) in (bool, int, float):
                return item
            raise TypeError(
                f"a numpy.{type(value).__name__} scalar has no JSON value; "
                "send numpy.asarray(value) to send it as a 0-d array"
            )
    raise TypeError(f"Object of type {type(value).__name__} is not JSON serializable")


# Not ASCII-escaped: a str with lone surrogates (not valid Unicode) is then refused when the text
# is written as UTF-8, at any depth, as the decoder refuses it, rather than escaped as \\ud800.
_ENCODER = json.JSONEncoder(allow_nan=True, ensure_ascii=False, separators=(",", ":"), default=_default)


class _Encoders(threading.local):
    """One C encoder per thread, with the marks it finds circular values by: a thread's own, as two
    threads may encode the same list at once, and emptied after a failure, which leaves marks."""

    def __init__(self) -> None:
        self.marks: dict[int, object] = {}
        make = c_make_encoder
        self.encode: Callable[[object, int], tuple[str, ...] | list[str]] | None = (
            None
            if make is None
            else make(
                self.marks,
                _default,
                encoder.encode_basestring,
                None,
                _ENCODER.key_separator,
                _ENCODER.item_separator,
                False,
                False,
                True,
            )
        )


_encoders = _Encoders()


def dumps(value: object) -> str:
    """The JSON text of ``value``: ``json.JSONEncoder(ensure_ascii=False, separators=(",", ":"))``'s,
    with NumPy's bool, integer and floating scalars as the numbers they hold."""
    encoders = _encoders
    encode = encoders.encode
    if encode is None:  # a Python without json's C accelerator
        return _ENCODER.encode(value)
    try:
        return "".join(encode(value, 0))
    except BaseException:
        encoders.marks.clear()
        raise


_SPACE = " \t\n\r"
"""What JSON takes as white space around a value."""
_DECODER = json.JSONDecoder()
_UTF8_NOT_SURE = (b"\x00", b"\xef", b"\xfe", b"\xff")
"""First bytes of a body that might not be UTF-8 (a BOM, UTF-16 or UTF-32): ``json.loads`` tells."""


def loads(body: bytes | bytearray) -> Any:
    """The value of the JSON ``body``, as ``json.loads(body)`` reads it."""
    if body[:1] in _UTF8_NOT_SURE or body[1:2] == b"\x00":
        return json.loads(body)
    text = body.decode("utf-8", "surrogatepass")  # as json.loads decodes UTF-8 bytes
    value, end = _DECODER.raw_decode(text, len(text) - len(text.lstrip(_SPACE)))
    if end != len(text):
        rest = text[end:].lstrip(_SPACE)
        if rest:
            raise json.JSONDecodeError("Extra data", text, len(text) - len(rest))
    return value

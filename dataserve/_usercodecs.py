"""Codecs of one's own: a type dataserve does not carry, taught to it without pickle.

A ``Codec`` names a Content-Type, the Python types it claims, and turns a value into bytes and
back. It is registered with an app and with a client (``codecs=[...]``), or for the whole
process (``register_codec``); the app's or client's own come first, then the process's, each in
the order given.

A codec carries values dataserve's own types do not: ``str``, JSON values, bytes, arrays and
tables always travel as they do, so a codec that claims ``dict`` is asked only for a dict JSON
cannot carry (one holding bytes, say). A body is decoded by the codec of its Content-Type, if
one is registered, before dataserve's own types are looked at.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Iterable
from typing import Any, ClassVar

from ._errors import PayloadError

__all__ = ["Codec", "Codecs", "register_codec", "registered_codecs"]

_OWN = frozenset(
    {
        "text/plain",
        "application/json",
        "application/octet-stream",
        "application/x-npy",
        "application/vnd.apache.arrow.stream",
    }
)
"""The media types of dataserve's own types: a codec cannot take one over."""

_MEDIA_TYPE = re.compile(r"[a-z0-9][a-z0-9!#$&^_.+-]*/[a-z0-9][a-z0-9!#$&^_.+-]*")


class Codec:
    """A type of one's own, and how it travels: subclass it, set ``content_type`` and ``types``,
    and write ``encode`` and ``decode``::

        class WhenCodec(dataserve.Codec):
            content_type = "application/vnd.example.datetime"
            types = (datetime.datetime,)

            def encode(self, value):
                return value.isoformat().encode()

            def decode(self, body):
                return datetime.datetime.fromisoformat(body.decode())

    Register an instance on both sides, with the same ``content_type``: ``create_app``,
    ``serve`` or ``run_http_server`` (``codecs=[WhenCodec()]``) and ``HTTPDataClient`` or
    ``AsyncHTTPDataClient`` (the same), or ``dataserve.register_codec(WhenCodec())`` for every
    app and client of the process. Whatever ``encode`` or ``decode`` raises becomes a
    ``PayloadError``: a value refused before it is sent, a body answered with 400. With
    ``workers`` a server's codecs go to each worker process by pickle, so define the class at
    the top level of a module.
    """

    content_type: ClassVar[str] = ""
    """The Content-Type the value travels as, such as ``application/vnd.example.datetime``
    (parameters such as ``; charset=utf-8`` may follow): the receiving side finds the codec by it."""

    types: ClassVar[tuple[type, ...]] = ()
    """The Python types the codec sends: a value that is an instance of one of them."""

    def encode(self, value: Any) -> bytes:
        """The body that carries ``value``."""
        raise NotImplementedError(f"{type(self).__name__}.encode is not written")

    def decode(self, body: bytes) -> Any:
        """The value that ``body`` carries."""
        raise NotImplementedError(f"{type(self).__name__}.decode is not written")

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.content_type!r})"


def _media_type(content_type: str) -> str:
    return content_type.partition(";")[0].strip().lower()


def _checked(codec: Codec) -> Codec:
    """``codec``, if it can be registered: a ValueError or TypeError that says what to fix if not."""
    name = type(codec).__name__
    if isinstance(codec, type):
        raise TypeError(f"register an instance of {codec.__name__}, not the class: {codec.__name__}()")
    for attribute in ("content_type", "types", "encode", "decode"):
        if not hasattr(codec, attribute):
            raise TypeError(f"{name} is not a codec: it has no {attribute}; subclass dataserve.Codec")
    content_type = codec.content_type
    if not isinstance(content_type, str) or not _MEDIA_TYPE.fullmatch(_media_type(content_type)):
        raise ValueError(
            f"{name}.content_type must be a media type such as 'application/vnd.example.thing', "
            f"not {content_type!r}"
        )
    if _media_type(content_type) in _OWN:
        raise ValueError(
            f"{name}.content_type {content_type!r} is one of dataserve's own; give your type a name "
            "of its own, such as 'application/vnd.example.thing'"
        )
    types = codec.types
    if not (isinstance(types, tuple) and types and all(isinstance(kind, type) for kind in types)):
        raise TypeError(
            f"{name}.types must be a tuple of one or more classes, such as (datetime,), not {types!r}"
        )
    return codec


_lock = threading.Lock()
_registered: tuple[Codec, ...] = ()
"""The process's codecs, replaced whole (never changed in place), so that readers need no lock."""


def register_codec(codec: Codec) -> None:
    """Register ``codec`` for every app and client of this process, after their own codecs.

    A codec of the same Content-Type registered before is replaced, so that registering again
    (a module imported twice, a notebook cell run again) changes nothing.
    """
    global _registered
    _checked(codec)
    media_type = _media_type(codec.content_type)
    with _lock:
        kept = tuple(known for known in _registered if _media_type(known.content_type) != media_type)
        _registered = (*kept, codec)


def registered_codecs() -> tuple[Codec, ...]:
    """The codecs ``register_codec`` has registered, in order."""
    return _registered


class Codecs:
    """The codecs one app or client uses: its own, then the process's."""

    __slots__ = ("_by_media", "own")

    def __init__(self, codecs: Iterable[Codec] | None = None) -> None:
        self.own = tuple(_checked(codec) for codec in codecs or ())
        self._by_media: dict[str, Codec] = {}
        for codec in self.own:
            media_type = _media_type(codec.content_type)
            if media_type in self._by_media:
                raise ValueError(
                    f"two codecs for {media_type}: {self._by_media[media_type]!r} and {codec!r}; "
                    "give each type a Content-Type of its own"
                )
            self._by_media[media_type] = codec

    def for_value(self, value: object) -> Codec | None:
        """The first codec that claims ``value``'s type, or None."""
        for codec in (*self.own, *_registered):
            if isinstance(value, codec.types):
                return codec
        return None

    def for_media(self, media_type: str) -> Codec | None:
        """The codec of ``media_type`` (lower case, without parameters), or None."""
        codec = self._by_media.get(media_type)
        if codec is not None or not _registered:
            return codec
        return next((known for known in _registered if _media_type(known.content_type) == media_type), None)

    def media_types(self) -> list[str]:
        """Every media type these codecs take, for a message."""
        return [_media_type(codec.content_type) for codec in (*self.own, *_registered)]


def encode_with(codec: Codec, value: object) -> tuple[bytes, str]:
    """The body and Content-Type of ``value`` by ``codec``; PayloadError if the codec fails."""
    try:
        body = codec.encode(value)
    except Exception as exc:
        raise PayloadError(
            f"cannot send this {type(value).__name__}: its codec {type(codec).__name__} "
            f"({codec.content_type}) failed: {type(exc).__name__}: {exc}"
        ) from exc
    if isinstance(body, (bytearray, memoryview)):
        body = bytes(body)
    if not isinstance(body, bytes):
        raise PayloadError(
            f"cannot send this {type(value).__name__}: its codec {type(codec).__name__}.encode returned "
            f"a {type(body).__name__}, not bytes; return the body as bytes (text.encode(), for text)"
        )
    return body, codec.content_type


def decode_with(codec: Codec, body: bytes | bytearray) -> Any:
    """The value ``body`` carries by ``codec``; PayloadError (400) if the codec fails."""
    try:
        return codec.decode(bytes(body))
    except Exception as exc:
        raise PayloadError(
            f"the body is not a valid {_media_type(codec.content_type)}: its codec "
            f"{type(codec).__name__} failed: {type(exc).__name__}: {exc}",
            status=400,
        ) from exc

"""Access tokens: where a token comes from, how a call carries it, and how a server checks it."""

from __future__ import annotations

import os

__all__ = ["TOKEN_ENV", "authorization", "refusal", "resolve_token"]

TOKEN_ENV = "DATASERVE_TOKEN"
"""The environment variable whose value is the token when none is given in code."""


def resolve_token(token: str | None) -> str | None:
    """The token to use: the one given, else ``$DATASERVE_TOKEN``; an empty one means none."""
    if token is None:
        token = os.environ.get(TOKEN_ENV)
    return token or None


def authorization(token: str) -> str:
    """The ``Authorization`` header value that carries ``token``."""
    return f"Bearer {token}"


def refusal(header: str | None, token: str) -> str | None:
    """Why a call with this ``Authorization`` header is refused, or None if it carries ``token``."""
    scheme, _, given = (header or "").partition(" ")
    if not header or scheme.lower() != "bearer":
        return (
            "this server needs a token: send the header 'Authorization: Bearer <token>' "
            f"(HTTPDataClient(token=...) or ${TOKEN_ENV} does)"
        )
    import hmac

    # Compared in constant time, so the time taken tells nothing about the token.
    if not hmac.compare_digest(given.strip().encode(), token.encode()):
        return f"the token is wrong: use the server's token (token=... or ${TOKEN_ENV})"
    return None

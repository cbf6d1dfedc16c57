"""A ProxyServer's authkey: given, taken from ``$DATASERVE_AUTHKEY``, or made at random and kept where
only its owner can read it.

Whoever knows the key can make the server unpickle what they send, and so run any code in it:
a key another local user can guess is no key. Without one given, the server makes a random key
and writes it to a file only its user can read (``$XDG_RUNTIME_DIR/dataserve``, else
``~/.cache/dataserve``), named after its port or socket; a client of the same user on the same
machine finds it there. Clients anywhere else must be given the key. A key given that is short
or is the class name is warned about as the server starts.
"""

from __future__ import annotations

import hashlib
import os
import secrets
import stat
import sys
from pathlib import Path

from ._errors import DataServeError

__all__ = ["AUTHKEY_ENV", "MIN_STRONG", "client_key", "forget", "keep", "server_key"]

AUTHKEY_ENV = "DATASERVE_AUTHKEY"
"""The environment variable both sides take the authkey from when none is passed."""

MIN_STRONG = 16
"""Bytes below which a key given is called weak."""

Address = tuple[str, int] | str


def server_key(authkey: bytes | str | None, name: str) -> tuple[bytes, bool]:
    """The server's key, and whether it was made here (then ``keep`` it once the port is known)."""
    given = _given(authkey)
    if given is None:
        return secrets.token_hex(32).encode(), True
    weakness = _weakness(given, name)
    if weakness:
        print(
            f"dataserve proxy: warning: the authkey is weak ({weakness}): whoever guesses it can run "
            f"any code in this server. Give a random key of {MIN_STRONG} bytes or more, or none for a "
            "random one",
            file=sys.stderr,
            flush=True,
        )
    return given, False


def keep(key: bytes, address: Address) -> Path:
    """Write a key made by the server where its clients of the same user find it; return the file."""
    path = _key_file(address)
    path.unlink(missing_ok=True)  # left by a server that died on the same port
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(descriptor, "wb") as file:
        file.write(key)
    return path


def forget(path: Path) -> None:
    """Remove a key file ``keep`` wrote, once the server has stopped."""
    path.unlink(missing_ok=True)


def client_key(authkey: bytes | str | None, address: Address) -> bytes:
    """The key a client proves it knows: given, from the environment, or the server's key file."""
    given = _given(authkey)
    if given is not None:
        return given
    path = _key_file(address, create=False)
    try:
        info = path.stat()
        if info.st_uid != os.getuid() or info.st_mode & 0o077:
            raise DataServeError(
                f"the key file {path} is readable by others: remove it and restart the server"
            )
        return path.read_bytes()
    except FileNotFoundError:
        raise DataServeError(
            f"no authkey for the proxy server at {_where(address)}: pass authkey=..., or set "
            f"{AUTHKEY_ENV}, to the server's key. (A server that made its own key keeps it in {path}, "
            "readable only by the user that runs it, on its machine.)"
        ) from None


def _given(authkey: bytes | str | None) -> bytes | None:
    if authkey is None:
        authkey = os.environ.get(AUTHKEY_ENV)
        if not authkey:
            return None
    key = authkey.encode() if isinstance(authkey, str) else bytes(authkey)
    if not key:
        raise ValueError("the authkey must not be empty")
    return key


def _weakness(key: bytes, name: str) -> str:
    if key == name.encode():
        return "it is the class name"
    if len(key) < MIN_STRONG:
        return f"{len(key)} bytes"
    return ""


def _key_file(address: Address, *, create: bool = True) -> Path:
    if isinstance(address, str):
        name = "proxy-unix-" + hashlib.sha256(os.path.abspath(address).encode()).hexdigest()[:16]
    else:
        name = f"proxy-{address[1]}"
    return _key_dir(create) / f"{name}.key"


def _key_dir(create: bool) -> Path:
    """The directory of key files: this user's only, made with mode 0700 if need be."""
    runtime = os.environ.get("XDG_RUNTIME_DIR")
    directory = Path(runtime) / "dataserve" if runtime else Path.home() / ".cache" / "dataserve"
    if create:
        directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    try:
        info = directory.stat()
    except FileNotFoundError:
        return directory
    if info.st_uid != os.getuid() or stat.S_IMODE(info.st_mode) & 0o077:
        raise DataServeError(
            f"{directory} is not this user's alone (mode {stat.S_IMODE(info.st_mode):o}): make it 0700, "
            "or remove it for the server to make it again"
        )
    return directory


def _where(address: Address) -> str:
    return f"unix socket {address}" if isinstance(address, str) else f"{address[0]}:{address[1]}"

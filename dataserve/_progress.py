"""The call of ``dataserve send``, streamed so that a terminal shows the progress of large transfers."""

from __future__ import annotations

import sys
import time
from collections.abc import Iterator
from types import TracebackType
from typing import TextIO

import httpx

from ._client import load_verify
from ._errors import status_error, unavailable
from ._httpx import Sent, Verify, make_client
from ._token import authorization, resolve_token
from ._url import Address, request_target, resource_path
from ._wire import Reply

__all__ = ["THRESHOLD", "Progress", "call"]

THRESHOLD = 1024 * 1024
"""Bytes a transfer must exceed for its bar to show."""

CHUNK = 256 * 1024
"""Bytes per piece of an upload: the bar moves on after each."""

_WIDTH = 24
"""Characters of the bar itself, between its brackets."""

_CLEAR_TO_END = "\x1b[K"
"""The terminal's code that erases the rest of the line: a drawing shorter than the last leaves
nothing of it behind."""

_REDRAW = 0.1
"""Seconds between two redraws: a fast transfer must not spend its time drawing."""


def call(
    url: str,
    resource: str,
    body: bytes,
    content_type: str,
    *,
    timeout: float | None,
    token: str | None = None,
    verify: Verify = True,
    uds: str | None = None,
    method: str = "PUT",
) -> Reply:
    """Send ``body`` to ``resource`` at ``url`` and return the reply, a 200 (any other status raises
    the error ``HTTPDataClient.send`` would): the caller decides what to make of its body.

    Uploads and downloads above THRESHOLD draw a progress bar on stderr if it is a terminal.
    With ``uds`` the call goes over that Unix socket; it travels as ``method``.
    """
    address = Address(url)
    target = request_target(address.path, resource).decode("ascii")
    origin = url[: len(url) - len(address.path)]
    server = url if uds is None else f"the Unix socket {uds}"
    token = resolve_token(token)
    headers = {"authorization": authorization(token)} if token else {}
    upload = Progress("upload", len(body), sys.stderr)
    request_headers = {"content-type": content_type, "content-length": str(len(body))}
    sent = Sent()
    try:
        with (
            upload,
            make_client(timeout, timeout, headers, load_verify(verify), uds) as http,
            http.stream(
                method,
                origin + target,
                content=chunks(body, upload),
                headers=request_headers,
                extensions={"trace": sent.trace},
            ) as response,
        ):
            content = _download(response)
    except httpx.TransportError as exc:
        timed_out = isinstance(exc, httpx.TimeoutException)
        raise unavailable(server, exc, sent=sent.complete, timed_out=timed_out) from exc
    headers = {name.lower(): value for name, value in response.headers.items()}
    reply = Reply(response.status_code, headers, content, response.reason_phrase)
    if reply.status != 200:
        where = f"{method} {origin}{target}" + ("" if uds is None else f" on {server}")
        raise status_error(reply, where, resource_path(resource))
    return reply


def _download(response: httpx.Response) -> bytes:
    length = response.headers.get("content-length", "")
    pieces = []
    with Progress("download", int(length) if length.isdigit() else None, sys.stderr) as download:
        for piece in response.iter_bytes():
            pieces.append(piece)
            download.update(response.num_bytes_downloaded - download.done)
    return b"".join(pieces)


class Progress:
    """Bytes done of ``total`` and the rate, redrawn in place on one line of ``stream``.

    It draws only if ``stream`` is a terminal and ``total`` is known and above THRESHOLD;
    otherwise it does nothing. Use it as a context manager: leaving it ends the line.
    """

    def __init__(self, label: str, total: int | None, stream: TextIO) -> None:
        self.label = label
        self.total = total or 0
        self.stream = stream
        self.shown = total is not None and total > THRESHOLD and stream.isatty()
        self.done = 0
        self.start = time.monotonic()
        self.drawn_at = float("-inf")
        self.closed = False

    def update(self, count: int) -> None:
        """Count ``count`` more bytes as done."""
        self.done += count
        now = time.monotonic()
        if self.shown and now - self.drawn_at >= _REDRAW:
            self.drawn_at = now
            self._draw(now)

    def close(self) -> None:
        """Draw the last state and end the line; closing again does nothing."""
        if self.shown and not self.closed:
            self._draw(time.monotonic())
            self.stream.write("\n")
            self.stream.flush()
        self.closed = True

    def _draw(self, now: float) -> None:
        fraction = min(self.done / self.total, 1.0)
        filled = round(fraction * _WIDTH)
        bar = "#" * filled + "." * (_WIDTH - filled)
        rate = self.done / max(now - self.start, 1e-6)
        self.stream.write(
            f"\r{self.label:<8} [{bar}] {fraction:4.0%}  "
            f"{size(self.done)} / {size(self.total)}  {size(rate)}/s{_CLEAR_TO_END}"
        )
        self.stream.flush()

    def __enter__(self) -> Progress:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


def chunks(body: bytes, progress: Progress) -> Iterator[bytes]:
    """``body`` in pieces for a streamed upload, counting each piece once it has been taken."""
    with progress:
        for start in range(0, len(body), CHUNK):
            piece = body[start : start + CHUNK]
            yield piece
            progress.update(len(piece))


def size(count: float) -> str:
    """``count`` bytes for a person: ``512 B``, ``3.4 KiB``, ``1.0 MiB``, ``2.5 GiB``."""
    for unit in ("B", "KiB", "MiB"):
        if count < 1024:
            return f"{count:.0f} {unit}" if unit == "B" else f"{count:.1f} {unit}"
        count /= 1024
    return f"{count:.1f} GiB"

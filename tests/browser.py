"""Headless Chromium for the tests that need a real browser, and a small web origin to serve its pages."""

from __future__ import annotations

import contextlib
import http.server
import json
import os
import shutil
import signal
import subprocess
import tempfile
import threading
from collections.abc import Iterator
from typing import Any

from .conftest import die_with_test, wait_for

__all__ = ["CHROMIUM", "Origin", "chromium", "chromium_command"]

CHROMIUM = next(
    (path for name in ("chromium", "chromium-browser", "google-chrome") if (path := shutil.which(name))), None
)
"""The browser found on this machine, or None (its tests are then skipped)."""

_FLAGS = [
    "--headless",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-extensions",
]
"""Quiet flags: without the background-networking ones, Chromium tries hosts a closed network refuses."""


class Origin:
    """A web origin on 127.0.0.1 that serves given pages and keeps the reports they POST to /report."""

    def __init__(self, pages: dict[str, str]) -> None:
        self.pages = pages
        self.reports: list[Any] = []
        origin = self

        class Pages(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                page = origin.pages.get(self.path)
                body = (page or "not found").encode()
                self.send_response(200 if page is not None else 404)
                self.send_header("content-type", "text/html; charset=utf-8")
                self.send_header("content-length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def do_POST(self) -> None:
                length = int(self.headers.get("content-length", 0))
                origin.reports.append(json.loads(self.rfile.read(length)))
                self.send_response(204)
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Pages)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> Origin:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(10)


def chromium_command(profile: str) -> list[str]:
    """Headless Chromium's command line, quiet, with the fresh profile folder ``profile``."""
    assert CHROMIUM is not None
    command = [CHROMIUM, *_FLAGS, f"--user-data-dir={profile}"]
    if os.geteuid() == 0:
        command.append("--no-sandbox")  # Chromium's sandbox does not run as root
    return command


@contextlib.contextmanager
def chromium(url: str) -> Iterator[subprocess.Popen[bytes]]:
    """Headless Chromium showing ``url``, with a profile of its own, killed (its process group) at the end."""
    with tempfile.TemporaryDirectory(prefix="dataserve-chromium-") as profile:
        process = subprocess.Popen(
            [*chromium_command(profile), url],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
            preexec_fn=die_with_test,
        )
        try:
            yield process
        finally:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            process.wait(30)


def wait_for_reports(origin: Origin, count: int, timeout: float = 60) -> list[Any]:
    """The first ``count`` reports the origin's pages sent, waiting up to ``timeout`` seconds."""
    wait_for(lambda: len(origin.reports) >= count, f"{count} report(s) from the browser", timeout)
    return origin.reports[:count]

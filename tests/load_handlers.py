"""The handler that the load test serves by import path, in its own (worker) processes."""

from __future__ import annotations

import hashlib
import os
import threading
import time
from typing import Any

import dataserve

SLOW_SECONDS = 0.002
"""How long a call to a resource ending in ``/slow`` sleeps, so that calls overlap in the handler."""


class LoadHandler(dataserve.HTTPDataHandler):
    """Answers each call with a reply made from its resource and payload, numbered in this process.

    ``/json/...`` takes a dict with a list of ``numbers`` and answers a dict of the pid, the
    call's number, the resource, the payload and the numbers' total. ``/text/...`` answers
    ``"PID NUMBER RESOURCE "`` and the text reversed; ``/bytes/...`` answers the same header
    encoded, the payload's SHA-256 and the payload. A resource ending in ``/slow`` sleeps
    first. ``/pid`` answers the pid and is not numbered. Numbers run from 1 in each
    process, one per load call, so that a call the handler ran twice or whose reply was
    lost leaves a gap or a repeat in them.
    """

    def __init__(self) -> None:
        self.calls = 0
        self.lock = threading.Lock()

    def handle_request(self, resource: str, payload: Any) -> Any:
        if resource == "/pid":
            return os.getpid()
        kind = resource.split("/")[1]
        if kind not in ("json", "text", "bytes"):
            return None
        if resource.endswith("/slow"):
            time.sleep(SLOW_SECONDS)
        with self.lock:
            self.calls += 1
            number = self.calls
        if kind == "json":
            total = sum(payload["numbers"])
            return {
                "pid": os.getpid(),
                "number": number,
                "resource": resource,
                "echo": payload,
                "total": total,
            }
        header = f"{os.getpid()} {number} {resource} "
        if kind == "text":
            return header + payload[::-1]
        return header.encode() + hashlib.sha256(payload).digest() + payload

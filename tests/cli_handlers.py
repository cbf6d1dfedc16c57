"""Handlers that the tests of the ``dataserve`` command serve by import path, in other processes."""

from __future__ import annotations

import os
import threading
from typing import Any

import dataserve


class PidHandler(dataserve.HTTPDataHandler):
    """Answers ``/pid`` with the id of the process that serves it, fails on ``/fail``, echoes the rest."""

    def handle_request(self, resource: str, payload: Any) -> Any:
        if resource == "/pid":
            return os.getpid()
        if resource == "/fail":
            raise ValueError(f"cannot handle {payload!r}")
        return payload


class MeetHandler(dataserve.HTTPDataHandler):
    """``/meet`` answers "met" once two calls run at the same time, "alone" if none joins it.

    The payload is how many seconds a call waits for the other.
    """

    def __init__(self) -> None:
        self.barrier = threading.Barrier(2)

    def handle_request(self, resource: str, payload: Any) -> Any:
        if resource != "/meet":
            return None
        try:
            self.barrier.wait(timeout=float(payload))
        except threading.BrokenBarrierError:
            return "alone"
        return "met"


class FailingSetupHandler(dataserve.HTTPDataHandler):
    """A handler whose ``setup()`` fails, so that its server never starts."""

    def setup(self) -> None:
        raise RuntimeError("the model file is missing")

    def handle_request(self, resource: str, payload: Any) -> Any:
        return payload


class NotAHandler:
    """A class with a ``handle_request`` that does not derive from HTTPDataHandler."""

    def handle_request(self, resource: str, payload: Any) -> Any:
        return payload

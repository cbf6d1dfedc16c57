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


class ChildHandler(dataserve.HTTPDataHandler):
    """Tells the tests of workers what the serving process is and holds.

    ``/pid`` is the id of the process that serves; ``/child-env`` the environment a program the
    handler starts is given; ``/segfault`` ends the process as a crash would; ``/hog`` opens
    files until only ``payload`` descriptors are left under the limit, ``/release`` closes them.
    """

    def __init__(self) -> None:
        self.files: list[Any] = []

    def handle_request(self, resource: str, payload: Any) -> Any:
        if resource == "/pid":
            return os.getpid()
        if resource == "/child-env":
            import subprocess
            import sys

            script = "import json, os; print(json.dumps(dict(os.environ)))"
            return subprocess.run(
                [sys.executable, "-c", script], capture_output=True, text=True, check=True
            ).stdout
        if resource == "/segfault":
            import signal

            os.kill(os.getpid(), signal.SIGSEGV)
        if resource == "/hog":
            import resource as limits

            soft, _ = limits.getrlimit(limits.RLIMIT_NOFILE)
            while len(os.listdir("/proc/self/fd")) < soft - int(payload):
                self.files.append(open(os.devnull, "rb"))  # noqa: SIM115 - held open on purpose
            return len(self.files)
        if resource == "/release":
            for file in self.files:
                file.close()
            self.files.clear()
            return 0
        return payload


class ReplicaHandler(dataserve.HTTPDataHandler):
    """One replica of a service behind a load balancer, as the scale-out tests run three.

    ``setup()`` takes ``DATASERVE_TEST_SETUP`` seconds, like a model that loads. ``/call``
    records its payload's id in ``DATASERVE_TEST_CALLS``/<pid> before it answers, so that a
    test can count how often each call ran and where; ``/slow`` records it in <pid>.started,
    waits its payload's ``delay``, then does the same; ``/size`` answers the length of its bytes.
    """

    def setup(self) -> None:
        import time

        time.sleep(float(os.environ.get("DATASERVE_TEST_SETUP", "0")))

    def handle_request(self, resource: str, payload: Any) -> Any:
        if resource == "/size":
            return len(payload)
        directory = os.environ.get("DATASERVE_TEST_CALLS", ".")
        if resource == "/slow":
            import time

            with open(os.path.join(directory, f"{os.getpid()}.started"), "a") as started:
                started.write(f"{payload['id']}\n")
            time.sleep(payload["delay"])
        if resource in ("/call", "/slow"):
            with open(os.path.join(directory, str(os.getpid())), "a") as calls:
                calls.write(f"{payload['id']}\n")
            return {"id": payload["id"], "pid": os.getpid()}
        return None

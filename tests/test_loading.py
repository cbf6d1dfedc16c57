"""``refuse_while_loading``: while the handler's ``setup()`` runs, a call is answered 503
``loading`` at once, never having reached the handler, so a balancer can send it elsewhere; once
``setup()`` has finished, calls are served. Without the option, a call waits for ``setup()``."""

from __future__ import annotations

import threading
from typing import Any

import httpx
import pytest

import dataserve
from dataserve import HTTPDataClient, ServerUnavailable
from tests.conftest import serve_app, wait_for

BOUND = 30.0


class SlowSetup(dataserve.HTTPDataHandler):
    """Loads until the test lets it; counts the calls its handler takes."""

    def __init__(self) -> None:
        self.loaded = threading.Event()
        self.calls = 0

    def setup(self) -> None:
        assert self.loaded.wait(BOUND)

    def handle_request(self, resource: str, payload: Any) -> Any:
        self.calls += 1
        return payload


def test_a_call_while_loading_is_refused_with_loading_and_did_not_run() -> None:
    handler = SlowSetup()
    app = dataserve.create_app(handler, refuse_while_loading=True)
    try:
        with serve_app(app) as port:
            response = httpx.put(f"http://127.0.0.1:{port}/echo", json=[1], timeout=BOUND)
            assert response.status_code == 503
            assert response.json()["error"] == "loading"
            assert int(response.headers["retry-after"]) >= 1
            with HTTPDataClient(port, "http://127.0.0.1:", timeout=BOUND) as client:
                with pytest.raises(ServerUnavailable) as info:
                    client.send("/echo", [2])
                assert not info.value.may_have_run
                assert handler.calls == 0
                handler.loaded.set()
                wait_for(
                    lambda: httpx.get(f"http://127.0.0.1:{port}/healthz").status_code == 200, "setup", BOUND
                )
                assert client.send("/echo", [3]) == [3]
            assert handler.calls == 1
    finally:
        handler.loaded.set()


def test_without_the_option_a_call_waits_for_setup_and_is_served() -> None:
    handler = SlowSetup()
    app = dataserve.create_app(handler)
    try:
        with serve_app(app) as port:
            timer = threading.Timer(0.3, handler.loaded.set)
            timer.start()
            with HTTPDataClient(port, "http://127.0.0.1:", timeout=BOUND) as client:
                assert client.send("/echo", "waited") == "waited"
            timer.join()
            assert handler.calls == 1
    finally:
        handler.loaded.set()

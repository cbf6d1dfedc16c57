"""setup() and teardown(): once per server process, served on its own or mounted in a host app."""

from __future__ import annotations

import asyncio
import subprocess
import textwrap
import threading
from pathlib import Path
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse
from starlette.routing import Mount, Route

import dataserve
from dataserve import DataApp, DataServeError, HTTPDataClient
from tests.conftest import free_port, serve_app, start_script, wait_for

pytestmark = pytest.mark.usefixtures("server_lane")


class Recorder(dataserve.HTTPDataHandler):
    """Writes down its setup, teardown and calls, in order."""

    def __init__(self) -> None:
        self.events: list[str] = []

    def setup(self) -> None:
        self.events.append("setup")

    def teardown(self) -> None:
        self.events.append("teardown")

    def handle_request(self, resource: str, payload: Any) -> Any:
        self.events.append(f"call {resource}")
        return resource


class AsyncRecorder(Recorder):
    """The same, with ``async def`` hooks."""

    async def setup(self) -> None:  # type: ignore[override]
        await asyncio.sleep(0)
        self.events.append("setup")

    async def teardown(self) -> None:  # type: ignore[override]
        await asyncio.sleep(0)
        self.events.append("teardown")


class FailingSetup(Recorder):
    def setup(self) -> None:
        raise FileNotFoundError("no such file: model.bin")


def _host_routes(data_app: DataApp) -> list[Route | Mount]:
    async def home(request: Request) -> PlainTextResponse:
        return PlainTextResponse("host home")

    return [Route("/", home), Mount("/data", app=data_app)]


@pytest.mark.parametrize("handler_class", [Recorder, AsyncRecorder])
def test_setup_runs_before_calls_and_teardown_after_stop(handler_class: type[Recorder]) -> None:
    handler = handler_class()
    with dataserve.serve(handler) as server, HTTPDataClient(server.port, "http://127.0.0.1:") as client:
        assert handler.events == ["setup"]
        assert client.send("/a") == "/a"
    assert handler.events == ["setup", "call /a", "teardown"]


def test_handler_without_hooks_is_ready_at_once() -> None:
    class Plain(dataserve.HTTPDataHandler):
        def handle_request(self, resource: str, payload: Any) -> Any:
            return 1

    with dataserve.serve(Plain) as server, HTTPDataClient(server.port, "http://127.0.0.1:") as client:
        assert client.ping()
        assert client.send("/x") == 1


def test_failing_setup_stops_serve_with_a_clear_error_and_frees_the_port() -> None:
    handler = FailingSetup()
    port = free_port()
    with (
        pytest.raises(DataServeError, match=r"FailingSetup\.setup\(\) failed \(FileNotFoundError: no such"),
        dataserve.serve(handler, port=port),
    ):
        pytest.fail("serve() entered its block although setup() failed")
    assert "teardown" not in handler.events
    with dataserve.serve(Recorder, port=port) as server:
        assert server.port == port


SLOW_SETUP_SCRIPT = """
import pathlib, sys, time
from dataserve import HTTPDataHandler, run_http_server

class SlowLoader(HTTPDataHandler):
    def setup(self):
        gate = pathlib.Path(sys.argv[1])
        while not gate.exists():
            time.sleep(0.01)
        self.data = [1, 2, 3]

    def handle_request(self, resource, payload):
        return self.data

run_http_server(0, SlowLoader)
"""


def _start_script(tmp_path: Path, script: str, *args: str) -> tuple[subprocess.Popen[str], int]:
    path = tmp_path / "server.py"
    path.write_text(textwrap.dedent(script))
    started = start_script(path, *args)
    return started.process, started.port


def test_health_answers_503_while_setup_runs_then_200(tmp_path: Path) -> None:
    gate = tmp_path / "gate"
    process, port = _start_script(tmp_path, SLOW_SETUP_SCRIPT, str(gate))
    try:
        url = f"http://127.0.0.1:{port}"
        with (
            httpx.Client(base_url=url, timeout=30) as http,
            HTTPDataClient(port, "http://127.0.0.1:") as client,
        ):
            starting = http.get("/healthz")
            assert (starting.status_code, starting.json()) == (503, {"status": "starting"})
            assert client.ping() is False
            replies: list[Any] = []
            waiting_call = threading.Thread(target=lambda: replies.append(client.send("/data")))
            waiting_call.start()
            gate.touch()
            wait_for(lambda: http.get("/healthz").status_code == 200, "the health check to answer 200")
            waiting_call.join(30)
            assert replies == [[1, 2, 3]]
            assert http.get("/healthz").json() == {"status": "ok"}
    finally:
        process.kill()
        process.wait(10)


FAILING_SETUP_SCRIPT = """
from dataserve import HTTPDataHandler, run_http_server


class Broken(HTTPDataHandler):
    def setup(self):
        raise FileNotFoundError("no such file: model.bin")

    def handle_request(self, resource, payload):
        return 1

try:
    run_http_server(0, Broken)
except Exception as exc:
    print(f"raised {type(exc).__name__}: {exc}", flush=True)
"""


def test_failing_setup_ends_run_http_server_with_a_clear_error(tmp_path: Path) -> None:
    process, _ = _start_script(tmp_path, FAILING_SETUP_SCRIPT)
    out, err = process.communicate(timeout=30)
    assert out == (
        "raised DataServeError: Broken.setup() failed (FileNotFoundError: no such file: model.bin); "
        "the server did not start\n"
    )
    assert "Broken.setup() failed; the server stops" in err


def test_mounted_app_serves_relative_to_its_prefix_and_leaves_host_routes_alone() -> None:
    handler = Recorder()
    data_app = dataserve.create_app(handler)
    with serve_app(Starlette(routes=_host_routes(data_app), lifespan=data_app.lifespan)) as port:
        assert httpx.get(f"http://127.0.0.1:{port}/").text == "host home"
        with HTTPDataClient(address=f"http://127.0.0.1:{port}/data") as client:
            assert client.send("/xdata") == "/xdata"
            assert client.ping()


def test_mounted_app_with_lifespan_passed_on_sets_up_at_server_start() -> None:
    handler = Recorder()
    data_app = dataserve.create_app(handler)
    with serve_app(Starlette(routes=_host_routes(data_app), lifespan=data_app.lifespan)):
        wait_for(lambda: handler.events == ["setup"], "setup() to run with no call made")
    assert handler.events == ["setup", "teardown"]


def test_mounted_app_without_lifespan_sets_up_on_first_call_and_tears_down_at_stop() -> None:
    handler = AsyncRecorder()
    with serve_app(Starlette(routes=_host_routes(dataserve.create_app(handler)))) as port:
        assert handler.events == []
        with HTTPDataClient(address=f"http://127.0.0.1:{port}/data") as client:
            assert client.send("/a") == "/a"
            assert client.send("/b") == "/b"
    assert handler.events == ["setup", "call /a", "call /b", "teardown"]


def test_app_mounted_in_fastapi_serves_and_runs_its_hooks_once() -> None:
    fastapi = pytest.importorskip("fastapi")
    handler = Recorder()
    data_app = dataserve.create_app(handler)
    host = fastapi.FastAPI(lifespan=data_app.lifespan)

    def hello() -> dict[str, str]:
        return {"hello": "world"}

    host.add_api_route("/hello", hello)
    host.mount("/data", data_app)
    with serve_app(host) as port, HTTPDataClient(address=f"http://127.0.0.1:{port}/data") as client:
        assert client.send("/xdata", [1]) == "/xdata"
        assert httpx.get(f"http://127.0.0.1:{port}/hello").json() == {"hello": "world"}
    assert handler.events == ["setup", "call /xdata", "teardown"]

"""run_http_server in a real process, and serve() in a background thread."""

from __future__ import annotations

import asyncio
import signal
import socket
import ssl
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import trustme
import uvicorn

import dataserve
from dataserve import DataServeError, HTTPDataClient, ServerUnavailable
from dataserve._handler import import_handler
from tests.conftest import EchoHandler, die_with_test, free_port, start_script, wait_for, worker_pids

pytestmark = pytest.mark.usefixtures("server_lane")

SERVER_SCRIPT = """
import sys
from dataserve import HTTPDataHandler, run_http_server

class Doubler(HTTPDataHandler):
    def handle_request(self, resource, payload):
        if resource == "/sleep":
            import time
            time.sleep(payload)
        return payload * 2

run_http_server(int(sys.argv[1]), Doubler)
"""


class ServerProcess:
    """A ``run_http_server`` script in its own process, with the port it printed."""

    def __init__(self, script_dir: Path, port: int = 0) -> None:
        script = script_dir / "server.py"
        script.write_text(textwrap.dedent(SERVER_SCRIPT))
        started = start_script(script, str(port))
        self.process, self.first_line, self.port = started.process, started.first_line, started.port

    def stop(self, sig: int) -> tuple[int, str, str]:
        self.process.send_signal(sig)
        out, err = self.process.communicate(timeout=30)
        return self.process.returncode, out, err


@pytest.fixture
def server_process(tmp_path: Path) -> Iterator[ServerProcess]:
    process = ServerProcess(tmp_path)
    yield process
    if process.process.poll() is None:
        process.process.kill()
        process.process.wait(10)


def test_port_0_prints_the_real_port_and_how_to_stop(server_process: ServerProcess) -> None:
    assert server_process.port != 0
    assert server_process.first_line == (
        f"dataserve: serving Doubler on http://127.0.0.1:{server_process.port} (press Ctrl-C to stop)\n"
    )


def test_server_process_answers_calls(server_process: ServerProcess) -> None:
    with HTTPDataClient(server_process.port) as client:
        assert client.send("/xdata", [1, 2]) == [1, 2, 1, 2]
        assert client.send("/t", "ab") == "abab"


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_signal_stops_server_cleanly(server_process: ServerProcess, sig: int) -> None:
    with HTTPDataClient(server_process.port, "http://127.0.0.1:") as client:
        assert client.send("/r", 1) == 2
    returncode, out, err = server_process.stop(sig)
    assert returncode == 0
    assert "Traceback" not in err
    assert out == "dataserve: stopped\n"


SLOW_LOADING_SERVER = """
import sys, time
from dataserve import HTTPDataHandler, run_http_server

class SlowToLoad(HTTPDataHandler):
    def __init__(self):
        time.sleep(1.5)
        self.table = {"answer": 42}

    def handle_request(self, resource, payload):
        return self.table[payload]

run_http_server(int(sys.argv[1]), SlowToLoad)
"""


def test_call_during_handler_load_is_answered_once_loaded(tmp_path: Path) -> None:
    script = tmp_path / "slow.py"
    script.write_text(textwrap.dedent(SLOW_LOADING_SERVER))
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, str(script), str(port)], stdout=subprocess.PIPE, text=True, preexec_fn=die_with_test
    )
    try:
        deadline = time.monotonic() + 30
        while True:  # wait until the port is taken, before the handler has loaded
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                assert time.monotonic() < deadline, "the server process never took its port"
                time.sleep(0.02)
        with HTTPDataClient(port, "http://127.0.0.1:", timeout=30) as client:
            assert client.send("/lookup", "answer") == 42
    finally:
        process.terminate()
        process.communicate(timeout=30)
    assert process.returncode == 0


def test_port_in_use_is_a_clear_error() -> None:
    with (
        dataserve.serve(EchoHandler) as running,
        pytest.raises(DataServeError, match=rf"cannot listen on 127\.0\.0\.1:{running.port}"),
    ):
        dataserve.run_http_server(running.port, EchoHandler)


def test_port_in_use_fails_before_the_handler_is_made() -> None:
    class SlowToLoad(EchoHandler):
        def __init__(self) -> None:
            raise AssertionError("the handler must not be made when the port is taken")

    with dataserve.serve(EchoHandler) as running, pytest.raises(DataServeError, match="cannot listen"):
        dataserve.run_http_server(running.port, SlowToLoad)


def test_serve_exposes_port_and_url() -> None:
    with dataserve.serve(EchoHandler, port=0) as running:
        assert running.port > 0
        assert running.url == f"http://127.0.0.1:{running.port}"
        with HTTPDataClient(address=running.url) as client:
            assert client.send("/r", "up") == "up"


def test_serve_stops_server_on_exit() -> None:
    with dataserve.serve(EchoHandler) as running:
        pass
    with HTTPDataClient(address=running.url, timeout=5) as client, pytest.raises(ServerUnavailable):
        client.send("/r", 1)


def test_serve_twice_on_one_port_fails_clearly() -> None:
    with (
        dataserve.serve(EchoHandler) as running,
        pytest.raises(DataServeError, match="choose another port"),
        dataserve.serve(EchoHandler, port=running.port),
    ):
        pass


def test_serve_that_does_not_start_in_time_fails_and_frees_the_port(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    startup = uvicorn.Server.startup

    async def slow_startup(self: uvicorn.Server, sockets: list[socket.socket] | None = None) -> None:
        await asyncio.sleep(0.5)
        await startup(self, sockets=sockets)

    monkeypatch.setattr(uvicorn.Server, "startup", slow_startup)
    port = free_port()
    with (
        pytest.raises(DataServeError, match=r"did not start within 0\.1 s"),
        dataserve.serve(EchoHandler, port=port, startup_timeout=0.1),
    ):
        pass  # pragma: no cover
    monkeypatch.undo()
    with dataserve.serve(EchoHandler, port=port) as running:
        assert running.port == port


def test_serve_takes_a_handler_instance() -> None:
    handler = EchoHandler()
    with dataserve.serve(handler) as running, HTTPDataClient(address=running.url) as client:
        client.send("/r", 1)
    assert handler.calls == 1


def test_serve_on_ipv6_loopback_brackets_the_host() -> None:
    try:
        context = dataserve.serve(EchoHandler, host="::1")
        running = context.__enter__()
    except DataServeError:
        pytest.skip("no IPv6 loopback on this machine")
    try:
        assert running.url == f"http://[::1]:{running.port}"
        with HTTPDataClient(address=running.url) as client:
            assert client.send("/r", 6) == 6
    finally:
        context.__exit__(None, None, None)


SERVED_MODULE = """
import os
from dataserve import HTTPDataHandler, create_app

class PidHandler(HTTPDataHandler):
    def setup(self):
        print(f"setup {os.getpid()}", flush=True)

    def teardown(self):
        print(f"teardown {os.getpid()}", flush=True)

    def handle_request(self, resource, payload):
        return os.getpid()

class Broken(HTTPDataHandler):
    def setup(self):
        raise FileNotFoundError("no such file: model.bin")

    def handle_request(self, resource, payload):
        return 1

app = create_app(PidHandler)
broken_app = create_app(Broken)
"""

WORKERS_SCRIPT = """
import sys
from dataserve import run_http_server

if __name__ == "__main__":
    run_http_server(int(sys.argv[1]), "served:PidHandler", workers=2)
"""


def _write_served(directory: Path) -> None:
    (directory / "served.py").write_text(textwrap.dedent(SERVED_MODULE))
    (directory / "workers.py").write_text(textwrap.dedent(WORKERS_SCRIPT))


def _wait_until_ready(port: int, process: subprocess.Popen[str]) -> None:
    def ready() -> bool:
        assert process.poll() is None, f"the server exited: {process.communicate()}"
        try:
            with HTTPDataClient(port, "http://127.0.0.1:", timeout=5) as client:
                return client.ping()
        except ServerUnavailable:
            return False

    wait_for(ready, "the server to answer its health check", 30)


def _stop(process: subprocess.Popen[str]) -> tuple[int, str, str]:
    process.send_signal(signal.SIGINT)
    out, err = process.communicate(timeout=30)
    return process.returncode, out, err


@pytest.fixture
def served_dir(tmp_path: Path) -> Path:
    _write_served(tmp_path)
    return tmp_path


def _popen(args: list[str], cwd: Path) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, *args],
        cwd=cwd,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        preexec_fn=die_with_test,
    )


def test_workers_share_the_port_and_each_sets_up_and_tears_down_once(served_dir: Path) -> None:
    port = free_port()
    process = _popen(["workers.py", str(port)], served_dir)
    try:
        _wait_until_ready(port, process)
        assert len(worker_pids(port)) == 2
    finally:
        code, out, err = _stop(process)
    assert code == 0, err
    lines = out.splitlines()
    assert (
        lines[0]
        == f"dataserve: serving PidHandler on http://127.0.0.1:{port} with 2 workers (press Ctrl-C to stop)"
    )
    assert len([line for line in lines if line.startswith("setup ")]) == 2
    assert len([line for line in lines if line.startswith("teardown ")]) == 2
    assert lines[-1] == "dataserve: stopped"


def test_uvicorn_command_serves_a_module_app_with_workers(served_dir: Path) -> None:
    port = free_port()
    process = _popen(["-m", "uvicorn", "served:app", "--port", str(port), "--workers", "2"], served_dir)
    try:
        _wait_until_ready(port, process)
        assert len(worker_pids(port)) == 2
    finally:
        code, out, err = _stop(process)
    assert code == 0, err
    assert len([line for line in out.splitlines() if line.startswith("teardown ")]) == 2


def test_uvicorn_command_stops_when_setup_fails(served_dir: Path) -> None:
    process = _popen(["-m", "uvicorn", "served:broken_app", "--port", str(free_port())], served_dir)
    _, err = process.communicate(timeout=30)
    assert process.returncode == 3
    assert "Broken.setup() failed; the server stops" in err
    assert "FileNotFoundError: no such file: model.bin" in err


def test_workers_need_the_handler_as_an_import_path() -> None:
    with pytest.raises(TypeError, match="import path such as 'mymodule:MyHandler'"):
        dataserve.run_http_server(0, EchoHandler, workers=2)


def test_import_handler_finds_a_class_by_its_import_path() -> None:
    assert import_handler("tests.conftest:EchoHandler") is EchoHandler


@pytest.mark.parametrize(
    ("path", "message"),
    [
        ("tests.conftest", r"is not an import path: write it as module:ClassName"),
        ("no_such_module_here:Handler", r"cannot import module 'no_such_module_here'"),
        ("tests.conftest:NoSuchHandler", r"module 'tests.conftest' has no 'NoSuchHandler'"),
        (
            "tests.conftest:free_port",
            r"is <function free_port .*>, not a subclass of dataserve.HTTPDataHandler",
        ),
    ],
)
def test_import_handler_says_what_is_wrong(path: str, message: str) -> None:
    with pytest.raises(DataServeError, match=message):
        import_handler(path)


@pytest.fixture(scope="module")
def certificate_authority() -> trustme.CA:
    return trustme.CA()


@pytest.fixture(scope="module")
def tls_files(certificate_authority: trustme.CA, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A self-signed CA, and a certificate and key it signed for 127.0.0.1 and localhost."""
    directory = tmp_path_factory.mktemp("tls")
    certificate = certificate_authority.issue_cert("127.0.0.1", "localhost")
    files = {"ca": directory / "ca.pem", "cert": directory / "cert.pem", "key": directory / "key.pem"}
    certificate_authority.cert_pem.write_to_path(str(files["ca"]))
    certificate.cert_chain_pems[0].write_to_path(str(files["cert"]))
    certificate.private_key_pem.write_to_path(str(files["key"]))
    return files


def test_serve_with_a_certificate_speaks_https(tls_files: dict[str, Path]) -> None:
    with dataserve.serve(EchoHandler, ssl_certfile=tls_files["cert"], ssl_keyfile=tls_files["key"]) as server:
        assert server.url == f"https://127.0.0.1:{server.port}"
        trusting = ssl.create_default_context(cafile=tls_files["ca"])
        with httpx.Client(base_url=server.url, verify=trusting) as http:
            assert http.put("/echo", json=[1, 2]).json() == [1, 2]
        with httpx.Client(base_url=server.url) as unverified, pytest.raises(httpx.ConnectError):
            unverified.put("/echo", json=[1])
        with pytest.raises(httpx.RemoteProtocolError):
            httpx.put(f"http://127.0.0.1:{server.port}/echo", json=[1])


IN_FLIGHT_SCRIPT = """
import sys, time
from dataserve import HTTPDataHandler, run_http_server


class Slow(HTTPDataHandler):
    def handle_request(self, resource, payload):
        print("call started", flush=True)
        time.sleep(payload)
        return "finished"

run_http_server(0, Slow, max_concurrency=4, shutdown_timeout=int(sys.argv[1]))
"""


def _start_in_flight_server(directory: Path, grace: int) -> tuple[subprocess.Popen[str], int]:
    script = directory / "in_flight.py"
    script.write_text(textwrap.dedent(IN_FLIGHT_SCRIPT))
    started = start_script(script, str(grace))
    return started.process, started.port


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_stopping_lets_calls_in_flight_finish_then_exits_0(tmp_path: Path, sig: int) -> None:
    process, port = _start_in_flight_server(tmp_path, grace=30)
    replies: list[Any] = []
    with HTTPDataClient(port, "http://127.0.0.1:", timeout=30) as client:
        call = threading.Thread(target=lambda: replies.append(client.send("/slow", 1.0)))
        call.start()
        assert process.stdout is not None
        assert process.stdout.readline() == "call started\n"
        process.send_signal(sig)
        call.join(30)
    out, err = process.communicate(timeout=30)
    assert replies == ["finished"]
    assert process.returncode == 0, err
    assert out.splitlines()[-1] == "dataserve: stopped"


def test_calls_still_running_after_the_grace_period_are_cut_off(tmp_path: Path) -> None:
    process, port = _start_in_flight_server(tmp_path, grace=1)
    errors: list[Exception] = []

    def call() -> None:
        with HTTPDataClient(port, "http://127.0.0.1:", timeout=30) as client:
            try:
                client.send("/slow", 20.0)
            except DataServeError as exc:
                errors.append(exc)

    caller = threading.Thread(target=call)
    caller.start()
    assert process.stdout is not None
    assert process.stdout.readline() == "call started\n"
    process.send_signal(signal.SIGTERM)
    caller.join(30)
    process.communicate(timeout=30)
    assert process.returncode == 0
    assert len(errors) == 1


def test_missing_certificate_files_fail_before_serving(tmp_path: Path) -> None:
    with (
        pytest.raises(DataServeError, match=r"cannot load the certificate '.*nope\.pem' with the key"),
        dataserve.serve(EchoHandler, ssl_certfile=tmp_path / "nope.pem", ssl_keyfile=tmp_path / "k.pem"),
    ):
        pass  # pragma: no cover

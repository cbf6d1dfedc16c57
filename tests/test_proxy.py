"""dataserve.proxy: the pickle-based ProxyServer, against real servers on 127.0.0.1."""

from __future__ import annotations

import os
import re
import select
import signal
import socket
import stat
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from dataserve import DataServeError, ServerUnavailable
from dataserve.proxy import RunningProxyServer, get_proxy_class, run_proxy_server, serve_proxy
from tests.conftest import die_with_test, free_port

ROOT = Path(__file__).parent.parent


class Store:
    """The served class: a list and a dict that every proxy shares."""

    def __init__(self) -> None:
        self.items: list[Any] = []
        self.table: dict[str, Any] = {}

    def echo(self, value: Any) -> Any:
        return value

    def append(self, value: Any) -> int:
        self.items.append(value)
        return len(self.items)

    def put(self, key: str, value: Any) -> None:
        self.table[key] = value

    def get(self, key: str) -> Any:
        return self.table[key]

    def fail(self, message: str) -> None:
        raise ValueError(message)


@pytest.fixture(scope="module", autouse=True)
def _no_authkey_in_environment() -> Iterator[None]:
    """The tests set DATASERVE_AUTHKEY themselves where they need it."""
    with pytest.MonkeyPatch.context() as mp:
        mp.delenv("DATASERVE_AUTHKEY", raising=False)
        yield


@pytest.fixture(scope="module")
def running() -> Iterator[RunningProxyServer]:
    with serve_proxy(Store) as server:
        yield server


@pytest.fixture(scope="module")
def store(running: RunningProxyServer) -> Any:
    return get_proxy_class("Store", running.port, "127.0.0.1")


def test_serve_proxy_says_where_it_listens(running: RunningProxyServer) -> None:
    assert running.host == "127.0.0.1"
    assert running.port != 0
    assert running.name == "Store"


@pytest.mark.parametrize(
    "value",
    [
        [1, "two", 3.0, None, [4]],
        {"a": [1, 2], "b": {"c": b"\x00"}, 3: (4, 5)},
        b"\x00\x01\xff" * 1000,
        {1, 2, 3},
        "text",
    ],
    ids=["list", "dict", "bytes", "set", "str"],
)
def test_values_round_trip(store: Any, value: Any) -> None:
    returned = store.echo(value)
    assert returned == value
    assert type(returned) is type(value)


def test_numpy_array_round_trips(store: Any) -> None:
    np = pytest.importorskip("numpy")
    array = np.arange(12, dtype=np.float32).reshape(3, 4)
    returned = store.echo(array)
    assert returned.dtype == np.float32
    assert returned.shape == (3, 4)
    np.testing.assert_array_equal(returned, array)


def test_two_proxies_share_one_instance(running: RunningProxyServer, store: Any) -> None:
    other = get_proxy_class("Store", running.port, "127.0.0.1")
    store.put("shared", [1, 2])
    assert other.get("shared") == [1, 2]
    before = store.append("x")
    assert other.append("y") == before + 1


def test_one_instance_is_made_before_any_client_connects() -> None:
    made: list[object] = []

    class Counted:
        def __init__(self) -> None:
            made.append(self)

        def ident(self) -> int:
            return id(self)

    with serve_proxy(Counted) as server:
        assert len(made) == 1
        first = get_proxy_class("Counted", server.port, "127.0.0.1")
        second = get_proxy_class("Counted", server.port, "127.0.0.1")
        assert first.ident() == second.ident() == id(made[0])
    assert len(made) == 1


def test_calls_from_threads_reach_the_same_instance(running: RunningProxyServer, store: Any) -> None:
    before = store.append("start")
    with ThreadPoolExecutor(4) as pool:
        list(pool.map(store.append, range(20)))
    assert store.append("end") == before + 21


def test_exception_in_method_is_raised_by_the_call(store: Any) -> None:
    with pytest.raises(ValueError, match="boom"):
        store.fail("boom")
    assert store.echo(1) == 1


def test_private_methods_are_not_exposed(store: Any) -> None:
    with pytest.raises(AttributeError):
        store._private()


def test_port_in_use_fails_before_the_instance_is_made(running: RunningProxyServer) -> None:
    class NeverMade:
        def __init__(self) -> None:
            raise AssertionError("the instance must not be made when the port is taken")

    with (
        pytest.raises(DataServeError, match=rf"cannot listen on 127\.0\.0\.1:{running.port}"),
        serve_proxy(NeverMade, port=running.port),
    ):
        pass  # pragma: no cover


def test_blocking_server_on_port_in_use_is_a_clear_error(running: RunningProxyServer) -> None:
    with pytest.raises(DataServeError, match="choose another port"):
        run_proxy_server(Store, running.port)


def test_failing_constructor_is_raised_and_frees_the_port() -> None:
    class Broken:
        def __init__(self) -> None:
            raise RuntimeError("cannot load")

    port = free_port()
    with pytest.raises(RuntimeError, match="cannot load"), serve_proxy(Broken, port=port):
        pass  # pragma: no cover
    with socket.create_server(("127.0.0.1", port)):
        pass


def test_client_that_connects_while_the_instance_loads_gets_it_once_loaded() -> None:
    loading = threading.Event()
    release = threading.Event()

    class SlowToLoad:
        def __init__(self) -> None:
            loading.set()
            assert release.wait(30)

        def answer(self) -> int:
            return 42

    port = free_port()
    stop = threading.Event()

    def serve() -> None:
        with serve_proxy(SlowToLoad, port=port):
            stop.wait(30)

    server = threading.Thread(target=serve)
    server.start()
    try:
        assert loading.wait(30)
        with ThreadPoolExecutor(1) as pool:
            proxy = pool.submit(get_proxy_class, "SlowToLoad", port, "127.0.0.1", connect_timeout=5)
            time.sleep(0.3)
            assert not proxy.done()
            release.set()
            assert proxy.result(30).answer() == 42
    finally:
        release.set()
        stop.set()
        server.join(30)


def test_client_waiting_for_an_instance_that_fails_to_load_gets_an_error() -> None:
    loading = threading.Event()
    release = threading.Event()

    class FailsToLoad:
        def __init__(self) -> None:
            loading.set()
            assert release.wait(30)
            raise RuntimeError("cannot load")

    port = free_port()

    def serve() -> None:
        with pytest.raises(RuntimeError, match="cannot load"), serve_proxy(FailsToLoad, port=port):
            pass  # pragma: no cover

    with ThreadPoolExecutor(2) as pool:
        server = pool.submit(serve)
        assert loading.wait(30)
        proxy = pool.submit(get_proxy_class, "FailsToLoad", port, "127.0.0.1", connect_timeout=5)
        time.sleep(0.3)
        release.set()
        # Refused or cut off, depending on whether the stop reached the connection first.
        with pytest.raises(DataServeError, match=rf"127\.0\.0\.1:{port}"):
            proxy.result(30)
        server.result(30)


@pytest.mark.parametrize("attempt", range(3))
def test_stopping_closes_proxies_and_the_port(attempt: int) -> None:
    # Stopping right after a reply once left a stray reply on the connection, which the
    # next call returned as its own (None); a few attempts catch that race.
    with serve_proxy(Store) as server:
        proxy = get_proxy_class("Store", server.port, "127.0.0.1")
        assert proxy.echo("before") == "before"
    with pytest.raises((EOFError, OSError)):
        proxy.echo("after")
    with pytest.raises(ServerUnavailable):
        get_proxy_class("Store", server.port, "127.0.0.1")


def test_authkey_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DATASERVE_AUTHKEY", "from-the-environment")
    with serve_proxy(Store) as server:
        assert get_proxy_class("Store", server.port).echo(1) == 1
        assert get_proxy_class("Store", server.port, authkey="from-the-environment").echo(2) == 2
        monkeypatch.delenv("DATASERVE_AUTHKEY")
        with pytest.raises(DataServeError, match="no authkey for the proxy server"):
            get_proxy_class("Store", server.port)
        with pytest.raises(DataServeError, match="refused the authkey"):
            get_proxy_class("Store", server.port, authkey="another-key-of-some-length")


def test_explicit_authkey_as_str_or_bytes() -> None:
    with serve_proxy(Store, authkey="a-secret-of-24-bytes-ok") as server:
        assert get_proxy_class("Store", server.port, authkey=b"a-secret-of-24-bytes-ok").echo(1) == 1
        with pytest.raises(DataServeError, match="no authkey for the proxy server"):
            get_proxy_class("Store", server.port)  # it made no key of its own to find


def test_wrong_authkey_is_a_clear_error_and_the_server_goes_on(running: RunningProxyServer) -> None:
    with pytest.raises(DataServeError, match="refused the authkey") as caught:
        get_proxy_class("Store", running.port, authkey="wrong")
    message = str(caught.value)
    assert f"localhost:{running.port}" in message
    assert "DATASERVE_AUTHKEY" in message
    assert get_proxy_class("Store", running.port, "127.0.0.1").echo("still there") == "still there"


def test_unknown_proxy_name_is_a_clear_error(running: RunningProxyServer) -> None:
    with pytest.raises(DataServeError, match="serves no class named 'Storage'"):
        get_proxy_class("Storage", running.port, "127.0.0.1")


def test_without_a_key_the_server_makes_a_random_one_only_its_user_can_read(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(tmp_path))
    with serve_proxy(Store) as server:
        [key_file] = (tmp_path / "dataserve").iterdir()
        assert key_file.name == f"proxy-{server.port}.key"
        assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
        assert stat.S_IMODE((tmp_path / "dataserve").stat().st_mode) == 0o700
        key = key_file.read_bytes()
        assert re.fullmatch(rb"[0-9a-f]{64}", key), "not 32 random bytes"
        assert key != b"Store"
        assert get_proxy_class("Store", server.port, "127.0.0.1").echo("found") == "found"
        assert get_proxy_class("Store", server.port, "127.0.0.1", authkey=key).echo("given") == "given"
        with pytest.raises(DataServeError, match="refused the authkey"):
            get_proxy_class("Store", server.port, "127.0.0.1", authkey="Store")  # the old guessable default
    assert not key_file.exists(), "the key file outlived its server"


def test_a_client_that_cannot_read_the_key_file_must_be_given_the_key(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(tmp_path / "the-servers"))
    with serve_proxy(Store) as server:
        monkeypatch.setenv("XDG_RUNTIME_DIR", str(tmp_path / "another-users"))  # as another user sees it
        with pytest.raises(
            DataServeError, match=r"no authkey for the proxy server at 127\.0\.0\.1:\d+: pass"
        ):
            get_proxy_class("Store", server.port, "127.0.0.1")


def test_a_key_file_others_could_read_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(tmp_path))
    with serve_proxy(Store) as server:
        [key_file] = (tmp_path / "dataserve").iterdir()
        key_file.chmod(0o644)
        with pytest.raises(DataServeError, match="is readable by others"):
            get_proxy_class("Store", server.port, "127.0.0.1")


@pytest.mark.parametrize(("key", "weakness"), [("s3cret", "6 bytes"), ("Store", "it is the class name")])
def test_a_weak_key_is_warned_about_as_the_server_starts(
    capfd: pytest.CaptureFixture[str], key: str, weakness: str
) -> None:
    with serve_proxy(Store, authkey=key) as server:
        assert get_proxy_class("Store", server.port, "127.0.0.1", authkey=key).echo(1) == 1
    err = capfd.readouterr().err
    assert f"dataserve proxy: warning: the authkey is weak ({weakness})" in err
    assert "can run any code in this server" in err.replace("\n", " ")


def test_unreachable_server_is_server_unavailable() -> None:
    port = free_port()
    with pytest.raises(ServerUnavailable, match=rf"127\.0\.0\.1:{port}.*run_proxy_server is running"):
        get_proxy_class("Store", port, "127.0.0.1")


def test_port_that_is_not_a_proxy_server_is_server_unavailable() -> None:
    with socket.create_server(("127.0.0.1", 0)) as silent:  # accepts, never speaks
        port = silent.getsockname()[1]
        started = time.monotonic()
        with pytest.raises(ServerUnavailable, match=r"did not answer like a proxy server within 0\.5 s"):
            get_proxy_class("Store", port, "127.0.0.1", connect_timeout=0.5)
        assert time.monotonic() - started < 5


@pytest.mark.parametrize("name", ["_Hidden", "connect", "register"])
def test_names_a_manager_cannot_serve_are_refused(name: str) -> None:
    cls = type(name, (), {})
    with pytest.raises(ValueError, match="cannot serve a class named"), serve_proxy(cls):
        pass  # pragma: no cover
    with pytest.raises(ValueError, match="cannot serve a class named"):
        get_proxy_class(name, free_port())


def test_empty_authkey_is_refused() -> None:
    with pytest.raises(ValueError, match="must not be empty"), serve_proxy(Store, authkey=""):
        pass  # pragma: no cover


SERVER_SCRIPT = """
from dataserve.proxy import run_proxy_server

class Counter:
    def __init__(self):
        self.count = 0

    def add(self, n):
        self.count += n
        return self.count

run_proxy_server(Counter, 0)
"""


class ServerProcess:
    """A ``run_proxy_server`` script in its own process, with the port it printed."""

    def __init__(self, script_dir: Path) -> None:
        script = script_dir / "proxy_server.py"
        script.write_text(textwrap.dedent(SERVER_SCRIPT))
        self.process = subprocess.Popen(
            [sys.executable, str(script)],
            cwd=script_dir,
            env={**os.environ, "PYTHONPATH": str(ROOT)},
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            preexec_fn=die_with_test,
        )
        assert self.process.stdout is not None
        ready, _, _ = select.select([self.process.stdout], [], [], 30)
        self.first_line = self.process.stdout.readline() if ready else ""
        match = re.fullmatch(
            r"dataserve proxy: serving Counter on 127\.0\.0\.1:(\d+) \(press Ctrl-C to stop\)\n",
            self.first_line,
        )
        if not match:
            self.process.kill()
            _, err = self.process.communicate(timeout=30)
            pytest.fail(f"unexpected first line {self.first_line!r}; stderr:\n{err}")
        self.port = int(match.group(1))

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
        process.process.communicate(timeout=30)


@pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals")
@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_blocking_server_serves_until_a_signal_stops_it_cleanly(
    server_process: ServerProcess, sig: int
) -> None:
    assert server_process.port != 0
    counter = get_proxy_class("Counter", server_process.port)
    other = get_proxy_class("Counter", server_process.port, "127.0.0.1")
    assert counter.add(2) == 2
    assert other.add(3) == 5
    returncode, out, err = server_process.stop(sig)
    assert returncode == 0, err
    assert out == "dataserve proxy: stopped\n"
    assert err == ""


def test_a_proxy_server_on_a_unix_socket_serves_its_instance() -> None:
    path = Path(f"/tmp/dataserve-proxy-{os.getpid()}.sock")
    try:
        with serve_proxy(Store, uds=path) as server:
            assert (server.uds, server.port) == (str(path), 0)
            store = get_proxy_class("Store", None, uds=path)
            assert store.append([1, 2]) == 1
            assert store.echo({"back": b"again"}) == {"back": b"again"}
        with pytest.raises(ServerUnavailable, match="unix socket"):
            get_proxy_class("Store", None, uds=path, connect_timeout=1)
    finally:
        path.unlink(missing_ok=True)

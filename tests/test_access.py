"""Call logs: one line per call through ``dataserve.access``, on both server lanes, off by default."""

from __future__ import annotations

import logging
import re
import threading
import time
from collections.abc import Iterator
from typing import Any, Self

import httpx
import pytest

import dataserve
from dataserve import RemoteError
from dataserve._access import ACCESS_LOGGER, peer

from .conftest import EchoHandler, Logged, wait_for


class Lines(logging.Handler):
    """The records of the ``dataserve.access`` logger while it is open."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)

    def of(self, *resources: str) -> list[logging.LogRecord]:
        """The records of calls to ``resources`` (a test's last line may come in the next test)."""
        return [record for record in self.records if getattr(record, "resource", None) in resources]

    def __enter__(self) -> Self:
        logging.getLogger(ACCESS_LOGGER).addHandler(self)
        return self

    def __exit__(self, *exc: object) -> None:
        logging.getLogger(ACCESS_LOGGER).removeHandler(self)


@pytest.fixture(scope="module")
def logged_server(server_lane: str) -> Iterator[dataserve.RunningServer]:
    with dataserve.serve(EchoHandler, port=0, access_log=True, token="s3cret") as running:
        yield running


@pytest.fixture
def lines(logged_server: dataserve.RunningServer) -> Iterator[Lines]:
    with Lines() as handler:
        yield handler


def _field(record: logging.LogRecord, name: str) -> Any:
    """A value the call log puts on its records."""
    return getattr(record, name)


def _client(server: dataserve.RunningServer, token: str | None = "s3cret") -> dataserve.HTTPDataClient:
    return dataserve.HTTPDataClient(server.port, "http://127.0.0.1:", token=token, timeout=30)


def test_a_call_logs_one_line_with_client_method_resource_status_time_and_bytes(
    logged_server: dataserve.RunningServer, lines: Lines
) -> None:
    with _client(logged_server) as client:
        assert client.send("/data/xdata", [1, 2, 3]) == [1, 2, 3]
    wait_for(lambda: len(lines.of("/data/xdata")) == 1, "the call's line")
    record = lines.of("/data/xdata")[0]
    message = record.getMessage()
    assert re.fullmatch(r'127\.0\.0\.1:\d+ "PUT /data/xdata" 200 \d+\.\d\d ms in=7 out=7', message), message
    assert record.levelno == logging.INFO
    names = ("method", "resource", "status", "bytes_in", "bytes_out")
    assert [_field(record, name) for name in names] == ["PUT", "/data/xdata", 200, 7, 7]
    assert 0 < _field(record, "duration") < 30
    assert _field(record, "client").startswith("127.0.0.1:")


class Held(Lines):
    """Holds the server as it logs a call for ``HOLD`` s, noting whether the caller had its reply by then."""

    HOLD = 0.3

    def __init__(self, replied: threading.Event) -> None:
        super().__init__()
        self.replied = replied
        self.seen: list[bool] = []

    def emit(self, record: logging.LogRecord) -> None:
        if getattr(record, "resource", None) == "/held":
            time.sleep(self.HOLD)  # a reply written before this line would be read by now
            self.seen.append(self.replied.is_set())


def test_a_call_is_logged_and_counted_before_its_reply_leaves(logged_server: dataserve.RunningServer) -> None:
    # With --workers, the caller's next request (a scrape of /metrics) may reach another worker:
    # it counts the call only if the call was counted before its reply could arrive.
    replied = threading.Event()
    with Held(replied) as held, _client(logged_server) as client:
        assert client.send("/held", "x") == "x"
        replied.set()
    assert held.seen == [False]


def test_refused_and_failed_calls_are_logged_with_their_status(
    logged_server: dataserve.RunningServer, lines: Lines
) -> None:
    with _client(logged_server) as client:
        with pytest.raises(dataserve.ResourceNotFound):
            client.send("/missing", 1)
        with pytest.raises(dataserve.RemoteError):
            client.send("/fail", 2)
    with _client(logged_server, token="wrong") as client, pytest.raises(dataserve.AuthenticationError):
        client.send("/x", 3)
    called = ("/missing", "/fail", "/x")
    wait_for(lambda: len(lines.of(*called)) == 3, "three lines")
    assert [(_field(record, "resource"), _field(record, "status")) for record in lines.of(*called)] == [
        ("/missing", 404),
        ("/fail", 500),
        ("/x", 401),
    ]


def test_a_handler_failure_keeps_its_traceback_in_the_server_log(
    logged_server: dataserve.RunningServer, lines: Lines
) -> None:
    with Logged(logging.ERROR) as logged, _client(logged_server) as client, pytest.raises(RemoteError):
        client.send("/fail", "x")
    wait_for(lambda: bool(logged.records), "the failure in the log")
    failure = logged.records[0]
    assert "EchoHandler.handle_request failed on /fail" in failure.getMessage()
    assert failure.exc_info is not None
    assert isinstance(failure.exc_info[1], ValueError)


def test_requests_through_the_app_are_logged_too_but_not_the_health_check(
    logged_server: dataserve.RunningServer, lines: Lines
) -> None:
    with httpx.Client(base_url=logged_server.url, timeout=30) as http:
        assert http.get("/healthz").status_code == 200
        assert http.get("/anything").status_code == 405
        chunked = http.put(
            "/chunked",
            content=iter([b'"a', b'b"']),
            headers={"authorization": "Bearer s3cret", "content-type": "application/json"},
        )
        assert chunked.status_code == 200
    called = ("/healthz", "/anything", "/chunked")
    wait_for(lambda: len(lines.of(*called)) == 2, "two lines")
    names = ("method", "resource", "status", "bytes_in")
    assert [tuple(_field(record, name) for name in names) for record in lines.of(*called)] == [
        ("GET", "/anything", 405, 0),
        ("PUT", "/chunked", 200, 4),
    ]


def test_the_log_is_off_by_default(server: dataserve.RunningServer) -> None:
    with Lines() as handler:
        with dataserve.HTTPDataClient(server.port, "http://127.0.0.1:", timeout=30) as client:
            assert client.send("/unlogged", 1) == 1
        with httpx.Client(base_url=server.url, timeout=30) as http:
            assert http.get("/unlogged-get").status_code == 405
    assert handler.of("/unlogged", "/unlogged-get") == []


def test_a_unix_socket_caller_is_named_unix_and_an_ipv6_one_in_brackets() -> None:
    assert peer(None) == "unix"
    assert peer(("::1", 5001)) == "[::1]:5001"
    assert peer(("10.0.0.2", 5001)) == "10.0.0.2:5001"

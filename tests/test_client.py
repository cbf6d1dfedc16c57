"""HTTPDataClient and AsyncHTTPDataClient against real uvicorn servers on 127.0.0.1."""

from __future__ import annotations

import asyncio
import contextlib
import json
import random
import re
import socket
import ssl
import subprocess
import threading
import time
from collections import Counter
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import trustme
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

import dataserve
from dataserve import (
    AsyncHTTPDataClient,
    AuthenticationError,
    HTTPDataClient,
    PayloadError,
    RemoteError,
    ResourceNotFound,
    RunningServer,
    ServerUnavailable,
)
from dataserve._client import reply_value
from dataserve._url import base_url
from dataserve._wire import Reply
from tests.conftest import AsyncEchoHandler, EchoHandler, free_port, start_script, wait_for
from tests.test_codec import json_values, same

NOT_HANDLED = (
    "EchoHandler.handle_request returned None for '/missing', which means 'not handled'; "
    "return an empty value such as [] or {} for an empty result"
)

pytestmark = pytest.mark.usefixtures("server_lane")

MiB = 2**20
network = settings(max_examples=25, suppress_health_check=[HealthCheck.function_scoped_fixture])


@pytest.fixture(autouse=True, params=["fast path", "httpx"])
def client_path(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Every test runs on HTTPDataClient's fast path and on httpx (the async client has only httpx)."""
    monkeypatch.setenv("DATASERVE_FAST_PATH", "1" if request.param == "fast path" else "0")
    return str(request.param)


def idle_connections(client: HTTPDataClient) -> list[Any]:
    """The client's pooled connections, on whichever path it takes."""
    if client._fast is not None:
        return list(client._fast._idle)
    return list(client._httpx()._transport._pool.connections)  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    ("port", "address", "expected"),
    [
        (5001, "http://localhost:", "http://localhost:5001"),
        (5001, "http://10.0.0.2:", "http://10.0.0.2:5001"),
        (5001, "http://10.0.0.2", "http://10.0.0.2:5001"),
        (5001, "10.0.0.2", "http://10.0.0.2:5001"),
        (5001, "http://10.0.0.2:8000/data/", "http://10.0.0.2:8000/data"),
        (None, "https://data.example.org", "https://data.example.org"),
    ],
)
def test_address_forms_give_base_url(port: int | None, address: str, expected: str) -> None:
    assert base_url(port, address) == expected


def test_address_ending_in_colon_needs_a_port() -> None:
    with pytest.raises(ValueError, match="pass the port"):
        base_url(None, "http://localhost:")


def test_default_address_is_localhost(server: RunningServer) -> None:
    with HTTPDataClient(server.port) as client:
        assert client.base_url == f"http://localhost:{server.port}"
        assert client.send("/r", [1]) == [1]


def test_full_base_url_is_accepted(server: RunningServer) -> None:
    with HTTPDataClient(address=server.url) as client:
        assert client.send("/r", "x") == "x"


def test_send_returns_decoded_reply_of_each_type(client: HTTPDataClient) -> None:
    assert client.send("/r", "text") == "text"
    assert client.send("/r", {"a": [1, 2.5, None, True]}) == {"a": [1, 2.5, None, True]}
    assert client.send("/r", b"\x00\x01") == b"\x00\x01"
    assert client.send("/r", 7) == 7


def test_send_without_payload_hands_handler_none(client: HTTPDataClient) -> None:
    assert client.send("/type") == "NoneType"


def test_bytearray_and_memoryview_come_back_as_bytes(client: HTTPDataClient) -> None:
    assert client.send("/r", bytearray(b"ab")) == b"ab"
    assert client.send("/r", memoryview(b"cd")) == b"cd"


def test_resource_without_leading_slash_gets_one(client: HTTPDataClient) -> None:
    assert client.send("type", "x") == "str"


def test_unhandled_resource_raises_resource_not_found(client: HTTPDataClient) -> None:
    with pytest.raises(ResourceNotFound, match=re.escape(NOT_HANDLED)) as info:
        client.send("/missing", 1)
    assert info.value.resource == "/missing"


def test_failing_handler_raises_remote_error_with_type_and_message(client: HTTPDataClient) -> None:
    expected = r"failed on PUT http://\S+/fail: ValueError: cannot handle 3"
    with pytest.raises(RemoteError, match=expected) as info:
        client.send("/fail", 3)
    assert info.value.remote_type == "ValueError"
    assert info.value.remote_message == "cannot handle 3"
    assert info.value.remote_traceback is None


def test_client_keeps_working_after_remote_errors(client: HTTPDataClient) -> None:
    for _ in range(3):
        with pytest.raises(RemoteError):
            client.send("/fail", 0)
    assert client.send("/r", "still here") == "still here"


def test_unsupported_reply_raises_remote_error(client: HTTPDataClient) -> None:
    with pytest.raises(RemoteError, match="cannot send a value of type set") as info:
        client.send("/set")
    assert info.value.remote_type == "PayloadError"


def test_unencodable_payload_is_refused_before_sending(client: HTTPDataClient) -> None:
    before = client.send("/calls")
    with pytest.raises(PayloadError, match="cannot send a value of type set") as info:
        client.send("/r", {1, 2})
    assert info.value.status is None
    assert client.send("/calls") == before + 1


WHERE = "PUT http://127.0.0.1:1/r"
"""The call a reply made up by a test answers."""


def json_reply(status: int, body: Any) -> Reply:
    return Reply(status, {"content-type": "application/json"}, json.dumps(body).encode())


def test_server_side_decode_failures_map_to_payload_error() -> None:
    for status in (400, 413, 415):
        body = {"error": "bad_payload", "message": "nope"}
        with pytest.raises(PayloadError, match="the server refused the payload: nope") as info:
            reply_value(json_reply(status, body), WHERE, "/r")
        assert info.value.status == status


def test_unexpected_status_of_a_dataserve_server_raises_dataserve_error() -> None:
    body = b'{"error": "teapot", "message": "short and stout"}'
    reply = Reply(418, {"content-type": "application/json"}, body, "I'm a Teapot")
    with pytest.raises(
        dataserve.DataServeError, match=r"unexpected 418 I.m a Teapot from .*: short and stout"
    ):
        reply_value(reply, WHERE, "/r")


@pytest.mark.parametrize("status", [500, 502, 503, 504])
def test_a_proxys_own_5xx_is_server_unavailable_and_the_call_may_have_run(status: int) -> None:
    page = b"<html><body><h1>%d Bad Gateway</h1></body></html>" % status
    reply = Reply(status, {"content-type": "text/html"}, page, "Bad Gateway")
    with pytest.raises(
        ServerUnavailable, match=f"{status} Bad Gateway from .*not from a dataserve server"
    ) as info:
        reply_value(reply, WHERE, "/r")
    assert info.value.may_have_run
    assert str(info.value).endswith("the call may have run")
    assert "<h1>" in str(info.value), "the proxy's own words are kept"


def test_a_proxys_404_is_server_unavailable_and_the_call_did_not_run() -> None:
    reply = Reply(404, {"content-type": "text/html"}, b"<html>Not Found</html>", "Not Found")
    with pytest.raises(ServerUnavailable, match="not from a dataserve server") as info:
        reply_value(reply, WHERE, "/r")
    assert not info.value.may_have_run


def test_a_proxys_413_is_a_payload_error_naming_its_limit() -> None:
    reply = Reply(413, {"content-type": "text/html"}, b"<html>413 Request Entity Too Large</html>", "")
    with pytest.raises(PayloadError, match="client_max_body_size") as info:
        reply_value(reply, WHERE, "/r")
    assert info.value.status == 413


@pytest.mark.parametrize(
    ("error", "may_have_run"),
    [("overloaded", False), ("loading", False), ("unavailable", False), ("stopped", True)],
)
def test_a_dataserve_503_says_whether_the_call_may_have_run(error: str, may_have_run: bool) -> None:
    body = json.dumps({"error": error, "message": "why"}).encode()
    reply = Reply(503, {"content-type": "application/json"}, body, "Service Unavailable")
    with pytest.raises(ServerUnavailable) as info:
        reply_value(reply, WHERE, "/r")
    assert info.value.may_have_run is may_have_run
    assert str(info.value).endswith("may have run" if may_have_run else "did not run")


def test_unreachable_server_raises_server_unavailable_naming_url() -> None:
    port = free_port()
    with (
        HTTPDataClient(port, "http://127.0.0.1:", timeout=5) as client,
        pytest.raises(
            ServerUnavailable,
            match=f"check that the server is running and listening at http://127.0.0.1:{port}",
        ),
    ):
        client.send("/r", 1)


def test_call_past_timeout_raises_server_unavailable(server: RunningServer) -> None:
    with (
        HTTPDataClient(server.port, "http://127.0.0.1:", timeout=0.2) as client,
        pytest.raises(ServerUnavailable, match=r"no reply from \S+ in time"),
    ):
        client.send("/sleep", 1.0)


def test_ping_is_true_for_running_server(client: HTTPDataClient) -> None:
    assert client.ping() is True


def test_ping_is_false_when_health_check_answers_not_ready(client: HTTPDataClient) -> None:
    def not_ready(request: httpx.Request) -> httpx.Response:
        return httpx.Response(503, json={"status": "starting"})

    client._http = httpx.Client(base_url=client.base_url, transport=httpx.MockTransport(not_ready))
    client._fast = None
    assert client.ping() is False


def test_ping_raises_server_unavailable_when_nothing_listens() -> None:
    with HTTPDataClient(free_port(), "http://127.0.0.1:") as client, pytest.raises(ServerUnavailable):
        client.ping()


def test_calls_reuse_one_pooled_connection(client: HTTPDataClient) -> None:
    for index in range(20):
        assert client.send("/r", index) == index
    assert len(idle_connections(client)) == 1


def test_closed_client_cannot_send(server: RunningServer) -> None:
    client = HTTPDataClient(server.port, "http://127.0.0.1:")
    client.close()
    with pytest.raises(dataserve.DataServeError, match="is closed; make a new client"):
        client.send("/r", 1)
    with pytest.raises(dataserve.DataServeError, match="is closed"):
        client.ping()


def test_context_manager_closes_client(server: RunningServer) -> None:
    with HTTPDataClient(server.port, "http://127.0.0.1:") as client:
        client.send("/r", 1)
    assert client.is_closed


def test_repr_shows_base_url() -> None:
    assert repr(HTTPDataClient(5001)) == "HTTPDataClient('http://localhost:5001')"


def test_threads_sharing_one_client_get_their_own_replies(client: HTTPDataClient) -> None:
    replies: dict[int, Any] = {}

    def call(index: int) -> None:
        replies[index] = client.send("/r", {"index": index})

    threads = [threading.Thread(target=call, args=(index,)) for index in range(16)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert replies == {index: {"index": index} for index in range(16)}


def test_send_many_returns_each_reply_in_order_and_runs_each_call_once_in_order(
    client: HTTPDataClient,
) -> None:
    before = client.send("/calls")
    replies = client.send_many(
        [("/calls", None)] * 40 + [("/r", "text"), ("/r", b"\x00\x01"), ("/r", {"a": [1]})]
    )
    assert replies[:40] == list(range(before + 1, before + 41))
    assert replies[40:] == ["text", b"\x00\x01", {"a": [1]}]
    assert client.send("/calls") == before + 44
    assert len(idle_connections(client)) == 1


def test_send_many_reads_every_reply_past_a_failure_and_raises_the_first(client: HTTPDataClient) -> None:
    before = client.send("/calls")
    with pytest.raises(ResourceNotFound, match="'/missing'"):
        client.send_many([("/r", 1), ("/missing", 2), ("/fail", 3), ("/r", 4)])
    assert client.send("/calls") == before + 5
    assert len(idle_connections(client)) == 1


def test_send_many_with_return_exceptions_puts_each_failure_in_its_place(client: HTTPDataClient) -> None:
    calls = [("/r", 1), ("/missing", 2), ("/fail", 3), ("/r", {1, 2}), ("/r", 4)]
    replies = client.send_many(calls, return_exceptions=True)
    assert [replies[0], replies[4]] == [1, 4]
    assert isinstance(replies[1], ResourceNotFound)
    assert isinstance(replies[2], RemoteError)
    assert replies[2].remote_message == "cannot handle 3"
    assert isinstance(replies[3], PayloadError)
    assert replies[3].status is None


def test_send_many_refuses_a_payload_it_cannot_send_before_sending_any(client: HTTPDataClient) -> None:
    before = client.send("/calls")
    with pytest.raises(PayloadError, match="type set"):
        client.send_many([("/r", 1), ("/r", {1})])
    assert client.send("/calls") == before + 1


def test_send_many_carries_large_and_small_payloads_together(client: HTTPDataClient) -> None:
    large = random.Random(7).randbytes(3 * MiB)
    calls: list[tuple[str, Any]] = [("/r", large), ("/r", 1), ("/r", large[:70_000]), ("/r", "x" * 100)] * 3
    assert client.send_many(calls) == [payload for _, payload in calls]
    assert client.send_many([]) == []


def test_send_many_on_a_closed_client_is_refused(server: RunningServer) -> None:
    client = HTTPDataClient(server.port, "http://127.0.0.1:")
    client.close()
    with pytest.raises(dataserve.DataServeError, match="is closed"):
        client.send_many([("/r", 1)])


@contextlib.contextmanager
def closing_server() -> Iterator[tuple[int, list[bytes]]]:
    """A server that answers the first request of each connection with ``Connection: close``, and closes."""
    received: list[bytes] = []
    listener = socket.create_server(("127.0.0.1", 0))

    def serve() -> None:
        with contextlib.suppress(OSError):
            while True:
                connection, _ = listener.accept()
                with connection:
                    data = b""
                    while data.count(b"\r\n\r\n") < 3:  # the three requests of the test's one window
                        data += connection.recv(65536)
                    received.append(data)
                    body = b"1"
                    connection.sendall(
                        b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\nconnection: close\r\n"
                        b"content-length: %d\r\n\r\n%s" % (len(body), body)
                    )

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield listener.getsockname()[1], received
    finally:
        listener.close()


def test_pipelined_calls_a_server_closed_the_connection_on_fail_and_are_not_sent_again(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("DATASERVE_FAST_PATH", "1")
    with (
        closing_server() as (port, received),
        HTTPDataClient(port, "http://127.0.0.1:", timeout=10) as client,
    ):
        replies = client.send_many([("/a", 1), ("/b", 2), ("/c", 3)], return_exceptions=True)
    assert replies[0] == 1
    assert all(isinstance(reply, ServerUnavailable) for reply in replies[1:])
    assert "closed the connection after the reply to an earlier call" in str(replies[1])
    assert len(received) == 1, "a call the server closed on was sent again"


@contextlib.contextmanager
def slow_call_under_way(url: str) -> Iterator[None]:
    """A 2 s call to ``/sleep`` from another thread, reaching the handler before the block runs."""
    replies: list[Any] = []

    def slow_call() -> None:
        with HTTPDataClient(address=url) as slow_client:
            replies.append(slow_client.send("/sleep", 2.0))

    thread = threading.Thread(target=slow_call)
    thread.start()
    time.sleep(0.2)  # let the slow call reach the handler first
    try:
        yield
    finally:
        thread.join(10)
    assert replies == ["slept"]


def test_slow_sync_handler_does_not_block_other_calls_with_max_concurrency() -> None:
    # max_concurrency is 1 by default, so that calls to a plain handler run one at a time.
    with (
        dataserve.serve(EchoHandler, max_concurrency=2) as running,
        slow_call_under_way(running.url),
        HTTPDataClient(address=running.url, timeout=1.0) as other,
    ):
        assert other.send("/r", "not blocked") == "not blocked"


def test_slow_sync_handler_does_not_block_health_check(server: RunningServer) -> None:
    with slow_call_under_way(server.url), HTTPDataClient(address=server.url, timeout=1.0) as other:
        assert other.ping() is True


def test_async_handler_sleeping_does_not_block_other_calls() -> None:
    with (
        dataserve.serve(AsyncEchoHandler) as running,
        slow_call_under_way(running.url),
        HTTPDataClient(address=running.url, timeout=1.0) as other,
    ):
        assert other.send("/r", [1]) == [1]


@given(st.text())
@network
def test_str_round_trips_through_server(client: HTTPDataClient, value: str) -> None:
    assert client.send("/r", value) == value


@given(json_values.filter(lambda value: value is not None))
@network
def test_json_values_round_trip_through_server(client: HTTPDataClient, value: Any) -> None:
    # A reply of None means "not handled", so None is tested inside a list here.
    assert same(client.send("/r", value), value)
    assert same(client.send("/r", [None, value]), [None, value])


@given(st.lists(st.floats(), max_size=20))
@network
def test_floats_with_nan_and_infinities_round_trip_through_server(
    client: HTTPDataClient, value: list[float]
) -> None:
    assert same(client.send("/r", value), value)


@given(
    st.one_of(
        st.binary(max_size=4096),
        st.builds(
            lambda size, seed: random.Random(seed).randbytes(size),
            st.integers(0, 64 * MiB),
            st.integers(0, 2**32),
        ),
    )
)
@example(b"")
@example(random.Random(0).randbytes(64 * MiB))
@settings(network, max_examples=8)
def test_bytes_from_0_to_64_mib_round_trip_through_server(client: HTTPDataClient, value: bytes) -> None:
    assert client.send("/r", value) == value


# AsyncHTTPDataClient: the same calls, awaited, and many of them at once on one client.


class GatheringEchoHandler(AsyncEchoHandler):
    """AsyncEchoHandler whose ``/together`` holds each call until all of its group have arrived.

    The payload is ``{"group": name, "size": n, ...}``; the reply is the payload. A client
    that sends one call at a time never gets a reply: its first call waits for the others.
    """

    def __init__(self) -> None:
        self.arrived: Counter[str] = Counter()
        self.all_in: dict[str, asyncio.Event] = {}

    async def handle_request(self, resource: str, payload: Any) -> Any:
        if resource != "/together":
            return await super().handle_request(resource, payload)
        group = payload["group"]
        all_in = self.all_in.setdefault(group, asyncio.Event())
        self.arrived[group] += 1
        if self.arrived[group] == payload["size"]:
            all_in.set()
        await all_in.wait()
        return payload


@pytest.fixture(scope="module")
def async_server(server_lane: str) -> Iterator[RunningServer]:
    """A real server of an async echo handler on 127.0.0.1, shared by the tests of this module."""
    with dataserve.serve(GatheringEchoHandler, port=0) as running:
        yield running


@pytest.fixture(params=["sync handler", "async handler"])
def any_server(request: pytest.FixtureRequest) -> RunningServer:
    """The EchoHandler server, then the async echo handler's."""
    name = "server" if request.param == "sync handler" else "async_server"
    server: RunningServer = request.getfixturevalue(name)
    return server


@pytest.fixture
async def async_client(server: RunningServer) -> AsyncIterator[AsyncHTTPDataClient]:
    async with AsyncHTTPDataClient(server.port, "http://127.0.0.1:", timeout=30) as client:
        yield client


@pytest.mark.anyio
async def test_async_default_address_is_localhost(server: RunningServer) -> None:
    async with AsyncHTTPDataClient(server.port) as client:
        assert client.base_url == f"http://localhost:{server.port}"
        assert await client.send("/r", [1]) == [1]


@pytest.mark.anyio
async def test_async_full_base_url_is_accepted(server: RunningServer) -> None:
    async with AsyncHTTPDataClient(address=server.url) as client:
        assert await client.send("/r", "x") == "x"


def test_async_address_forms_give_the_same_base_url_as_the_sync_client() -> None:
    forms: list[tuple[int | None, str]] = [
        (5001, "http://localhost:"),
        (5001, "http://10.0.0.2"),
        (5001, "10.0.0.2:"),
        (None, "http://10.0.0.2:8000/data/"),
    ]
    for port, address in forms:
        assert AsyncHTTPDataClient(port, address).base_url == HTTPDataClient(port, address).base_url
    with pytest.raises(ValueError, match="pass the port"):
        AsyncHTTPDataClient()


@pytest.mark.anyio
async def test_async_send_returns_decoded_reply_of_each_type(any_server: RunningServer) -> None:
    async with AsyncHTTPDataClient(address=any_server.url, timeout=30) as client:
        assert await client.send("/r", "text") == "text"
        assert await client.send("/r", "") == ""
        assert await client.send("/r", {"a": [1, 2.5, None, True]}) == {"a": [1, 2.5, None, True]}
        assert await client.send("/r", (1, "two")) == [1, "two"]
        assert await client.send("/r", b"\x00\x01") == b"\x00\x01"
        assert await client.send("/r", b"") == b""
        assert await client.send("/r", bytearray(b"ab")) == b"ab"
        assert await client.send("/r", memoryview(b"cd")) == b"cd"
        assert await client.send("/r", 7) == 7
        assert same(await client.send("/r", [float("nan"), float("inf")]), [float("nan"), float("inf")])
        assert await client.send("r", False) is False


@pytest.mark.anyio
async def test_async_send_without_payload_hands_handler_none(async_client: AsyncHTTPDataClient) -> None:
    assert await async_client.send("/type") == "NoneType"
    assert await async_client.send("type", "x") == "str"


@pytest.mark.anyio
async def test_async_unhandled_resource_raises_resource_not_found(async_client: AsyncHTTPDataClient) -> None:
    with pytest.raises(ResourceNotFound, match=re.escape(NOT_HANDLED)) as info:
        await async_client.send("/missing", 1)
    assert info.value.resource == "/missing"


@pytest.mark.anyio
async def test_async_failing_handler_raises_remote_error(async_client: AsyncHTTPDataClient) -> None:
    with pytest.raises(
        RemoteError, match=r"failed on PUT http://\S+/fail: ValueError: cannot handle 3"
    ) as info:
        await async_client.send("/fail", 3)
    assert info.value.remote_type == "ValueError"
    assert info.value.remote_message == "cannot handle 3"
    assert info.value.remote_traceback is None
    assert await async_client.send("/r", "still here") == "still here"


@pytest.mark.anyio
async def test_async_unsupported_reply_raises_remote_error(async_client: AsyncHTTPDataClient) -> None:
    with pytest.raises(RemoteError, match="cannot send a value of type set") as info:
        await async_client.send("/set")
    assert info.value.remote_type == "PayloadError"


@pytest.mark.anyio
async def test_async_unencodable_payload_is_refused_before_sending(
    async_client: AsyncHTTPDataClient,
) -> None:
    before = await async_client.send("/calls")
    with pytest.raises(PayloadError, match="cannot send a value of type set") as info:
        await async_client.send("/r", {1, 2})
    assert info.value.status is None
    assert await async_client.send("/calls") == before + 1


@pytest.mark.anyio
async def test_async_server_side_refusals_map_to_payload_error_and_dataserve_error() -> None:
    def refuse(request: httpx.Request) -> httpx.Response:
        status = int(request.url.path.strip("/"))
        return httpx.Response(status, json={"error": "bad_payload", "message": "nope"})

    async with AsyncHTTPDataClient(address="http://127.0.0.1:1") as client:
        await client._http.aclose()
        client._http = httpx.AsyncClient(base_url=client.base_url, transport=httpx.MockTransport(refuse))
        for status in (400, 413, 415):
            with pytest.raises(PayloadError, match=f"refused the payload: nope \\({status} from PUT") as info:
                await client.send(f"/{status}", 1)
            assert info.value.status == status
        with pytest.raises(dataserve.DataServeError, match="unexpected 502") as error:
            await client.send("/502", 1)
        assert type(error.value) is dataserve.DataServeError


@pytest.mark.anyio
async def test_async_unreachable_server_raises_server_unavailable_naming_url() -> None:
    port = free_port()
    async with AsyncHTTPDataClient(port, "http://127.0.0.1:", timeout=5) as client:
        with pytest.raises(
            ServerUnavailable,
            match=f"check that the server is running and listening at http://127.0.0.1:{port}",
        ):
            await client.send("/r", 1)
        with pytest.raises(ServerUnavailable):
            await client.ping()


@pytest.mark.anyio
async def test_async_call_past_timeout_raises_server_unavailable(server: RunningServer) -> None:
    async with AsyncHTTPDataClient(server.port, "http://127.0.0.1:", timeout=0.2) as client:
        with pytest.raises(ServerUnavailable, match=r"no reply from \S+ in time"):
            await client.send("/sleep", 1.0)


@pytest.mark.anyio
async def test_async_cancelled_send_leaves_client_usable(async_client: AsyncHTTPDataClient) -> None:
    with pytest.raises(TimeoutError):
        await asyncio.wait_for(async_client.send("/sleep", 0.5), 0.05)
    assert await async_client.send("/r", "after") == "after"


@pytest.mark.anyio
async def test_async_ping_is_true_for_running_server(any_server: RunningServer) -> None:
    async with AsyncHTTPDataClient(address=any_server.url) as client:
        assert await client.ping() is True


@pytest.mark.anyio
async def test_async_ping_is_false_when_health_check_answers_not_ready() -> None:
    def not_ready(request: httpx.Request) -> httpx.Response:
        return httpx.Response(503, json={"status": "starting"})

    async with AsyncHTTPDataClient(address="http://127.0.0.1:1") as client:
        await client._http.aclose()
        client._http = httpx.AsyncClient(base_url=client.base_url, transport=httpx.MockTransport(not_ready))
        assert await client.ping() is False


@pytest.mark.anyio
async def test_async_calls_reuse_one_pooled_connection(async_client: AsyncHTTPDataClient) -> None:
    for index in range(20):
        assert await async_client.send("/r", index) == index
    assert await async_client.ping() is True
    pool = async_client._http._transport._pool  # type: ignore[attr-defined]
    assert len(pool.connections) == 1


@pytest.mark.anyio
async def test_async_closed_client_cannot_send(server: RunningServer) -> None:
    client = AsyncHTTPDataClient(server.port, "http://127.0.0.1:")
    assert await client.send("/r", 1) == 1
    await client.aclose()
    with pytest.raises(
        dataserve.DataServeError, match=r"AsyncHTTPDataClient\('http://127.0.0.1:\d+'\) is closed"
    ):
        await client.send("/r", 1)
    with pytest.raises(dataserve.DataServeError, match="is closed; make a new client"):
        await client.ping()


@pytest.mark.anyio
async def test_async_with_closes_client_also_on_error(server: RunningServer) -> None:
    async with AsyncHTTPDataClient(server.port, "http://127.0.0.1:") as client:
        assert await client.send("/r", 1) == 1
    assert client.is_closed
    with pytest.raises(RemoteError):
        async with AsyncHTTPDataClient(server.port, "http://127.0.0.1:") as failing:
            await failing.send("/fail", 1)
    assert failing._http.is_closed


def test_async_repr_shows_base_url() -> None:
    assert repr(AsyncHTTPDataClient(5001)) == "AsyncHTTPDataClient('http://localhost:5001')"


def unique_call(index: int) -> tuple[str, Any, Any]:
    """Call ``index`` of many sent at once: its resource, its payload and the reply it expects.

    Most echo a payload no other call sends, of one of the four payload types; every tenth
    sleeps on the server so that the calls overlap; every 25th gets ResourceNotFound.
    """
    if index % 25 == 0:
        return f"/none-{index}", None, ResourceNotFound
    if index % 10 == 0:
        return "/sleep", 0.01 + index / 10_000, "slept"
    payloads = [
        f"call {index}",
        {"index": index, "items": [index, str(index), None, index / 3]},
        str(index).encode() * (index % 7 + 1),
        [index, -index],
    ]
    payload = payloads[index % len(payloads)]
    return f"/echo-{index}", payload, payload


@pytest.mark.anyio
async def test_async_many_sends_at_once_on_one_client_each_get_their_own_reply(
    any_server: RunningServer,
) -> None:
    calls = [unique_call(index) for index in range(200)]
    async with AsyncHTTPDataClient(address=any_server.url, timeout=30) as client:
        replies = await asyncio.gather(
            *(client.send(resource, payload) for resource, payload, _ in calls), return_exceptions=True
        )
        assert await client.send("/r", "after") == "after"
    assert len(replies) == len(calls)
    for (resource, _, expected), reply in zip(calls, replies, strict=True):
        if expected is ResourceNotFound:
            assert isinstance(reply, ResourceNotFound), (resource, reply)
            assert reply.resource == resource
        else:
            assert reply == expected, (resource, reply)
            assert type(reply) is type(expected), (resource, reply)


@pytest.mark.anyio
async def test_async_sends_at_once_are_in_flight_together(async_server: RunningServer) -> None:
    # Each call to /together is answered only once all 20 have reached the handler, so this
    # finishes only if the one client has all 20 in flight at once (else: ServerUnavailable).
    payloads = [{"group": "in flight", "size": 20, "index": index} for index in range(20)]
    async with AsyncHTTPDataClient(address=async_server.url, timeout=20) as client:
        replies = await asyncio.gather(*(client.send("/together", payload) for payload in payloads))
    assert replies == payloads


@pytest.mark.anyio
async def test_async_and_sync_clients_share_one_server(
    server: RunningServer, async_client: AsyncHTTPDataClient
) -> None:
    with HTTPDataClient(address=server.url) as sync_client:
        assert sync_client.send("/r", "sync") == "sync"
        assert await async_client.send("/r", "async") == "async"


@pytest.mark.anyio
async def test_async_send_many_returns_replies_in_order_and_raises_the_first_failure(
    async_client: AsyncHTTPDataClient,
) -> None:
    assert await async_client.send_many([("/r", index) for index in range(50)]) == list(range(50))
    with pytest.raises(ResourceNotFound, match="'/missing'"):
        await async_client.send_many([("/r", 1), ("/missing", 1), ("/fail", 2)])
    replies = await async_client.send_many([("/r", 1), ("/fail", 2), ("/r", {3})], return_exceptions=True)
    assert replies[0] == 1
    assert isinstance(replies[1], RemoteError)
    assert isinstance(replies[2], PayloadError)
    assert await async_client.send_many([]) == []


@pytest.mark.anyio
@given(st.lists(st.one_of(st.text(), json_values.filter(lambda value: value is not None), st.binary())))
@network
async def test_async_values_sent_at_once_round_trip_through_server(
    async_client: AsyncHTTPDataClient, values: list[Any]
) -> None:
    replies = await asyncio.gather(
        *(async_client.send(f"/r{index}", value) for index, value in enumerate(values))
    )
    assert len(replies) == len(values)
    for reply, value in zip(replies, values, strict=True):
        assert same(reply, value)


# Access tokens, TLS, timeouts, retries and faults.

TOKEN = "client-test-token"


@pytest.fixture(scope="module")
def guarded_server(server_lane: str) -> Iterator[RunningServer]:
    with dataserve.serve(EchoHandler, token=TOKEN) as running:
        yield running


def test_token_is_carried_and_the_call_answered(guarded_server: RunningServer) -> None:
    with HTTPDataClient(address=guarded_server.url, token=TOKEN) as client:
        assert client.send("/r", [1, 2]) == [1, 2]


def test_call_without_token_raises_authentication_error(guarded_server: RunningServer) -> None:
    with (
        HTTPDataClient(address=guarded_server.url) as client,
        pytest.raises(AuthenticationError, match="this server needs a token") as info,
    ):
        client.send("/r", 1)
    assert "401 from PUT" in str(info.value)


def test_call_with_wrong_token_raises_authentication_error(guarded_server: RunningServer) -> None:
    with (
        HTTPDataClient(address=guarded_server.url, token="wrong") as client,
        pytest.raises(AuthenticationError, match="the token is wrong"),
    ):
        client.send("/r", 1)


def test_client_takes_its_token_from_the_environment(
    guarded_server: RunningServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DATASERVE_TOKEN", TOKEN)
    with HTTPDataClient(address=guarded_server.url) as client:
        assert client.send("/r", "env") == "env"


@pytest.mark.anyio
async def test_async_client_carries_its_token(guarded_server: RunningServer) -> None:
    async with AsyncHTTPDataClient(address=guarded_server.url, token=TOKEN) as client:
        assert await client.send("/r", {"a": 1}) == {"a": 1}
    async with AsyncHTTPDataClient(address=guarded_server.url) as client:
        with pytest.raises(AuthenticationError):
            await client.send("/r", 1)


def test_503_raises_server_unavailable_with_the_servers_message() -> None:
    body = {
        "error": "unavailable",
        "message": "MyHandler.setup() failed (OSError: x); the server is stopping",
    }
    with pytest.raises(ServerUnavailable, match=r"cannot serve now: MyHandler\.setup\(\) failed"):
        reply_value(json_reply(503, body), WHERE, "/r")


@pytest.fixture(scope="module")
def tls_server(
    server_lane: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[RunningServer, Path]]:
    authority = trustme.CA()
    directory = tmp_path_factory.mktemp("tls")
    certificate = authority.issue_cert("127.0.0.1", "localhost")
    ca, cert, key = directory / "ca.pem", directory / "cert.pem", directory / "key.pem"
    authority.cert_pem.write_to_path(str(ca))
    certificate.cert_chain_pems[0].write_to_path(str(cert))
    certificate.private_key_pem.write_to_path(str(key))
    with dataserve.serve(EchoHandler, ssl_certfile=cert, ssl_keyfile=key) as running:
        yield running, ca


def test_client_verifies_https_against_a_ca_bundle(tls_server: tuple[RunningServer, Path]) -> None:
    server, ca = tls_server
    with HTTPDataClient(address=server.url, verify=ca) as client:
        assert client.send("/r", b"\x00secret") == b"\x00secret"
    with HTTPDataClient(address=server.url, verify=ssl.create_default_context(cafile=ca)) as client:
        assert client.send("/r", "context") == "context"


def test_client_refuses_a_certificate_it_cannot_verify(tls_server: tuple[RunningServer, Path]) -> None:
    server, _ = tls_server
    with HTTPDataClient(address=server.url) as client, pytest.raises(ServerUnavailable, match="CERTIFICATE"):
        client.send("/r", 1)


def test_verify_false_skips_the_check(tls_server: tuple[RunningServer, Path]) -> None:
    server, _ = tls_server
    with HTTPDataClient(address=server.url, verify=False) as client:
        assert client.send("/r", 1) == 1


def test_per_call_timeout_replaces_the_clients(client: HTTPDataClient) -> None:
    with pytest.raises(ServerUnavailable, match="no reply"):
        client.send("/sleep", 1.0, timeout=0.2)
    assert client.send("/sleep", 0.3, timeout=5) == "slept"


@pytest.mark.anyio
async def test_async_per_call_timeout_replaces_the_clients(async_client: AsyncHTTPDataClient) -> None:
    with pytest.raises(ServerUnavailable, match="no reply"):
        await async_client.send("/sleep", 1.0, timeout=0.2)


def test_connect_timeout_is_separate_from_the_call_timeout() -> None:
    with HTTPDataClient(5001, timeout=120, connect_timeout=2) as client:
        assert (client._httpx().timeout.connect, client._httpx().timeout.read) == (2, 120)
        waits = client._waits(None, None, None)
        assert (waits.connect, waits.timeout) == (2, 120)


def _flaky_transport(failure: type[httpx.TransportError], *, after_body_sent: bool) -> httpx.MockTransport:
    """A transport whose first request fails, before or after its body was sent, and the rest succeed."""
    attempts: list[int] = []

    def handle(request: httpx.Request) -> httpx.Response:
        attempts.append(1)
        if len(attempts) == 1:
            if after_body_sent:
                request.extensions["trace"]("http11.send_request_body.complete", {})
            raise failure("connection closed by the server", request=request)
        return httpx.Response(200, json=len(attempts))

    return httpx.MockTransport(handle)


def test_request_not_all_sent_is_retried_once_transparently() -> None:
    with HTTPDataClient(address="http://127.0.0.1:1") as client:
        client._http = httpx.Client(
            base_url=client.base_url, transport=_flaky_transport(httpx.WriteError, after_body_sent=False)
        )
        client._fast = None
        assert client.send("/r", 1) == 2


def test_request_all_sent_is_never_retried() -> None:
    with HTTPDataClient(address="http://127.0.0.1:1") as client:
        client._http = httpx.Client(
            base_url=client.base_url,
            transport=_flaky_transport(httpx.RemoteProtocolError, after_body_sent=True),
        )
        client._fast = None
        with pytest.raises(ServerUnavailable, match="connection closed by the server"):
            client.send("/r", 1)


def test_connection_the_server_closed_while_idle_is_replaced_without_error() -> None:
    with (
        dataserve.serve(EchoHandler, keep_alive_timeout=1) as server,
        HTTPDataClient(server.port, "http://127.0.0.1:") as client,
    ):
        assert client.send("/r", 1) == 1
        [first] = idle_connections(client)
        closed = (lambda: not first.fit(60)) if client._fast else first.has_expired
        wait_for(closed, "the server to close the idle connection")
        assert client.send("/r", 2) == 2
        assert idle_connections(client)[0] is not first


RESTARTABLE_SCRIPT = """
import sys, time
from dataserve import HTTPDataHandler, run_http_server


class Echo(HTTPDataHandler):
    def handle_request(self, resource, payload):
        if resource == "/hang":
            time.sleep(60)
        return payload

run_http_server(int(sys.argv[1]), Echo)
"""


def _start(script: Path, port: int) -> subprocess.Popen[str]:
    started = start_script(script, str(port))
    assert started.port == port
    return started.process


def test_server_killed_mid_call_then_restarted_is_reached_by_the_same_client(tmp_path: Path) -> None:
    script = tmp_path / "server.py"
    script.write_text(RESTARTABLE_SCRIPT)
    port = free_port()
    first = _start(script, port)
    try:
        with HTTPDataClient(port, "http://127.0.0.1:", timeout=20) as client:
            assert client.send("/r", "before") == "before"
            errors: list[Exception] = []

            def hang() -> None:
                try:
                    client.send("/hang", None)
                except ServerUnavailable as exc:
                    errors.append(exc)

            caller = threading.Thread(target=hang)
            caller.start()
            time.sleep(0.3)  # Let the call reach the handler; a call still connecting fails alike.
            first.kill()
            caller.join(20)
            assert not caller.is_alive()
            assert len(errors) == 1
            second = _start(script, port)
            try:
                assert client.send("/r", "after") == "after"
            finally:
                second.kill()
                second.wait(10)
    finally:
        first.kill()
        first.wait(10)


# The fast path's own rules.


def test_fast_path_is_taken_for_plain_http_unless_turned_off(
    server: RunningServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DATASERVE_FAST_PATH", "1")
    with HTTPDataClient(server.port, "http://127.0.0.1:") as client:
        assert client._fast is not None
    monkeypatch.setenv("DATASERVE_FAST_PATH", "0")
    with HTTPDataClient(server.port, "http://127.0.0.1:") as client:
        assert client._fast is None


def test_fast_path_leaves_https_and_proxies_to_httpx(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DATASERVE_FAST_PATH", "1")
    with HTTPDataClient(address="https://127.0.0.1:5001") as client:
        assert client._fast is None
    monkeypatch.setenv("http_proxy", "http://proxy.example:3128")
    monkeypatch.delenv("no_proxy", raising=False)
    monkeypatch.delenv("NO_PROXY", raising=False)
    with HTTPDataClient(address="http://data.example:5001") as client:
        assert client._fast is None


def test_fast_path_resends_a_request_its_pooled_connection_could_not_send(
    server: RunningServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DATASERVE_FAST_PATH", "1")
    with HTTPDataClient(server.port, "http://127.0.0.1:") as client:
        calls = client.send("/calls")
        [pooled] = idle_connections(client)
        pooled.sock.close()  # Broken under the pool's feet, after its check.
        monkeypatch.setattr(type(pooled), "fit", lambda self, expiry: True)
        assert client.send("/calls") == calls + 1


@contextlib.contextmanager
def silent_server() -> Iterator[tuple[int, list[bytes]]]:
    """A server that reads one request per connection and closes without replying."""
    requests: list[bytes] = []
    listener = socket.create_server(("127.0.0.1", 0))

    def serve() -> None:
        with contextlib.suppress(OSError):
            while True:
                connection, _ = listener.accept()
                with connection:
                    requests.append(connection.recv(65536))

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield listener.getsockname()[1], requests
    finally:
        listener.close()


def test_request_fully_sent_then_unanswered_is_not_sent_again() -> None:
    with silent_server() as (port, requests), HTTPDataClient(port, "http://127.0.0.1:", timeout=10) as client:
        with pytest.raises(ServerUnavailable):
            client.send("/once", 1)
        assert len(requests) == 1


def test_missing_ca_bundle_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(dataserve.DataServeError, match=r"cannot use '.*missing\.pem' as a CA bundle"):
        HTTPDataClient(5001, verify=tmp_path / "missing.pem")


def test_unverifiable_certificate_says_how_to_trust_it(tls_server: tuple[RunningServer, Path]) -> None:
    server, _ = tls_server
    with (
        HTTPDataClient(address=server.url) as client,
        pytest.raises(ServerUnavailable, match=r"verify='ca\.pem'"),
    ):
        client.send("/r", 1)


def test_refused_resource_says_the_call_was_refused(client: HTTPDataClient) -> None:
    with pytest.raises(PayloadError, match="the server refused the call: the resource") as info:
        client.send("/a/%2e%2e/b", 1)
    assert info.value.status == 400


def test_resource_is_resolved_and_escaped_as_a_url_path(client: HTTPDataClient) -> None:
    with pytest.raises(ResourceNotFound, match="returned None for '/missing',"):
        client.send("/a/../missing")
    with pytest.raises(ResourceNotFound, match="returned None for '/missing/café',"):
        client.send("/missing/café#fragment")
    assert client.send("/type?x=1", 1) == "int"


def test_large_array_reply_arrives_equal_and_read_only(client: HTTPDataClient) -> None:
    numpy = pytest.importorskip("numpy")
    array = numpy.arange(1 << 17, dtype=numpy.float64).reshape(256, 512)  # 1 MiB
    reply = client.send("/r", array)
    assert numpy.array_equal(reply, array)
    assert reply.dtype == array.dtype
    assert not reply.flags.writeable


def test_per_call_connect_timeout_replaces_the_clients(
    server: RunningServer, client_path: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    with HTTPDataClient(server.port, "http://127.0.0.1:", timeout=120, connect_timeout=10) as client:
        if client_path == "fast path":
            seen: list[float | None] = []
            create = socket.create_connection

            def create_connection(address: tuple[str, int], timeout: float | None = None) -> socket.socket:
                seen.append(timeout)
                return create(address, timeout=timeout)

            monkeypatch.setattr("dataserve._fastpath.socket.create_connection", create_connection)
            assert client.send("/r", 1, connect_timeout=0.5) == 1
            assert seen == [0.5]
            return

        def capture(request: httpx.Request) -> httpx.Response:
            return httpx.Response(200, json=request.extensions["timeout"])

        client._http = httpx.Client(
            base_url=client.base_url, timeout=client._httpx().timeout, transport=httpx.MockTransport(capture)
        )
        timeouts = client.send("/r", 1, connect_timeout=0.5)
        assert (timeouts["connect"], timeouts["read"]) == (0.5, 120)


def test_a_call_sent_as_post_is_served_like_put(server: RunningServer) -> None:
    with dataserve.HTTPDataClient(server.port, "http://127.0.0.1:", timeout=30, method="POST") as client:
        assert client.send("/echo", {"via": "POST"}) == {"via": "POST"}
        assert client.send("/echo", b"\x00raw") == b"\x00raw"


async def _async_post(port: int) -> object:
    async with dataserve.AsyncHTTPDataClient(port, "http://127.0.0.1:", timeout=30, method="POST") as client:
        return await client.send("/echo", ["async", "POST"])


def test_the_async_client_sends_post_too(server: RunningServer) -> None:
    assert asyncio.run(_async_post(server.port)) == ["async", "POST"]


def test_a_refused_connection_says_the_call_did_not_run() -> None:
    with socket.create_server(("127.0.0.1", 0)) as sock:
        port = sock.getsockname()[1]  # bound, then closed: nothing listens there
    with (
        dataserve.HTTPDataClient(port, "http://127.0.0.1:", timeout=30) as client,
        pytest.raises(ServerUnavailable) as info,
    ):
        client.send("/echo", "anyone?")
    assert not info.value.may_have_run
    assert str(info.value).endswith("the call did not run")


def test_a_reply_that_fails_in_dataserve_is_still_answered_and_the_connection_serves_on(
    client: dataserve.HTTPDataClient,
) -> None:
    with pytest.raises(RemoteError, match="RuntimeError: this list cannot be read") as info:
        client.send("/unencodable")
    assert info.value.remote_type == "RuntimeError"
    assert client.send("/echo", "next") == "next"

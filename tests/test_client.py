"""HTTPDataClient against a real uvicorn server on 127.0.0.1."""

from __future__ import annotations

import contextlib
import random
import threading
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

import dataserve
from dataserve import (
    HTTPDataClient,
    PayloadError,
    RemoteError,
    ResourceNotFound,
    RunningServer,
    ServerUnavailable,
)
from dataserve._client import base_url, reply_value
from tests.conftest import AsyncEchoHandler, free_port
from tests.test_codec import json_values, same

MiB = 2**20
network = settings(max_examples=25, suppress_health_check=[HealthCheck.function_scoped_fixture])


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
    with pytest.raises(ResourceNotFound, match="EchoHandler does not handle the resource '/missing'") as info:
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


def test_server_side_decode_failures_map_to_payload_error() -> None:
    request = httpx.Request("PUT", "http://127.0.0.1:1/r")
    for status in (400, 413, 415):
        body = {"error": "bad_payload", "message": "nope"}
        response = httpx.Response(status, json=body, request=request)
        with pytest.raises(PayloadError, match="the server refused the payload: nope") as info:
            reply_value(response, "/r")
        assert info.value.status == status


def test_unexpected_status_raises_dataserve_error() -> None:
    request = httpx.Request("PUT", "http://127.0.0.1:1/r")
    response = httpx.Response(502, text="Bad Gateway", request=request)
    with pytest.raises(dataserve.DataServeError, match="unexpected 502"):
        reply_value(response, "/r")


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
    assert client.ping() is False


def test_ping_raises_server_unavailable_when_nothing_listens() -> None:
    with HTTPDataClient(free_port(), "http://127.0.0.1:") as client, pytest.raises(ServerUnavailable):
        client.ping()


def test_calls_reuse_one_pooled_connection(client: HTTPDataClient) -> None:
    for index in range(20):
        assert client.send("/r", index) == index
    pool = client._http._transport._pool  # type: ignore[attr-defined]
    assert len(pool.connections) == 1


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
    assert client._http.is_closed


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


def test_slow_sync_handler_does_not_block_other_calls(server: RunningServer) -> None:
    with slow_call_under_way(server.url), HTTPDataClient(address=server.url, timeout=1.0) as other:
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

"""The app: statuses, bodies and routing through httpx's ASGI transport; concurrency on a real server."""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from collections.abc import AsyncIterator, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
import pytest

import dataserve
from dataserve import HTTPDataClient, HTTPDataHandler, create_app
from dataserve._app import DEFAULT_MAX_BODY_SIZE
from tests.conftest import AsyncEchoHandler, EchoHandler

pytestmark = [pytest.mark.anyio, pytest.mark.usefixtures("server_lane")]


def app_client_for(handler: Any, **options: Any) -> httpx.AsyncClient:
    transport = httpx.ASGITransport(app=create_app(handler, **options))
    return httpx.AsyncClient(transport=transport, base_url="http://dataserve.test")


@pytest.fixture
async def app_client() -> AsyncIterator[httpx.AsyncClient]:
    async with app_client_for(EchoHandler) as test_client:
        yield test_client


async def put(
    test_client: httpx.AsyncClient, path: str, body: bytes = b"", content_type: str | None = None
) -> httpx.Response:
    headers = {"content-type": content_type} if content_type else {}
    return await test_client.put(path, content=body, headers=headers)


async def test_json_body_reaches_handler_and_reply_is_json(app_client: httpx.AsyncClient) -> None:
    response = await put(app_client, "/xdata", b"[1, 2]", "application/json")
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json"
    assert response.json() == [1, 2]


async def test_text_reply_is_utf8_text(app_client: httpx.AsyncClient) -> None:
    response = await put(app_client, "/r", "é".encode(), "text/plain; charset=utf-8")
    assert response.headers["content-type"] == "text/plain; charset=utf-8"
    assert response.text == "é"


async def test_bytes_reply_is_octet_stream(app_client: httpx.AsyncClient) -> None:
    response = await put(app_client, "/r", b"\x00\xff", "application/octet-stream")
    assert response.headers["content-type"] == "application/octet-stream"
    assert response.content == b"\x00\xff"


async def test_empty_body_without_content_type_is_none(app_client: httpx.AsyncClient) -> None:
    assert (await put(app_client, "/type")).text == "NoneType"


async def test_handler_returning_none_is_404(app_client: httpx.AsyncClient) -> None:
    response = await put(app_client, "/missing", b"1", "application/json")
    assert response.status_code == 404
    assert response.json() == {
        "error": "not_found",
        "message": "EchoHandler.handle_request returned None for '/missing', which means 'not handled'; "
        "return an empty value such as [] or {} for an empty result",
    }


async def test_handler_raising_is_500_with_type_and_message(app_client: httpx.AsyncClient) -> None:
    response = await put(app_client, "/fail", b"7", "application/json")
    assert response.status_code == 500
    assert response.json() == {
        "error": "handler_error",
        "message": "cannot handle 7",
        "exception": "ValueError",
    }


async def test_server_keeps_serving_after_handler_raises(app_client: httpx.AsyncClient) -> None:
    await put(app_client, "/fail", b"7", "application/json")
    assert (await put(app_client, "/r", b"8", "application/json")).json() == 8


async def test_traceback_goes_back_only_in_debug_mode() -> None:
    async with app_client_for(EchoHandler, debug=True) as test_client:
        body = (await put(test_client, "/fail", b"7", "application/json")).json()
    assert "Traceback (most recent call last)" in body["traceback"]
    assert "cannot handle 7" in body["traceback"]


async def test_unsupported_reply_type_is_500(app_client: httpx.AsyncClient) -> None:
    response = await put(app_client, "/set")
    assert response.status_code == 500
    assert response.json()["exception"] == "PayloadError"
    assert "cannot send a value of type set" in response.json()["message"]


async def test_bad_json_is_400(app_client: httpx.AsyncClient) -> None:
    response = await put(app_client, "/r", b"{nope", "application/json")
    assert response.status_code == 400
    assert response.json()["error"] == "bad_payload"


async def test_bad_utf8_is_400(app_client: httpx.AsyncClient) -> None:
    response = await put(app_client, "/r", b"\xc3\x28", "text/plain; charset=utf-8")
    assert response.status_code == 400
    assert "not valid utf-8" in response.json()["message"]


async def test_unknown_content_type_is_415(app_client: httpx.AsyncClient) -> None:
    response = await put(app_client, "/r", b"<x/>", "application/xml")
    assert response.status_code == 415
    assert response.json()["error"] == "unsupported_media_type"


@pytest.mark.parametrize("method", ["GET", "DELETE", "PATCH", "OPTIONS"])
async def test_other_methods_are_405_with_allow_header(app_client: httpx.AsyncClient, method: str) -> None:
    response = await app_client.request(method, "/xdata")
    assert response.status_code == 405
    assert response.headers["allow"] == "HEAD, POST, PUT"
    assert response.json() == {
        "error": "method_not_allowed",
        "message": f"{method} is not allowed on /xdata: send HEAD, POST, PUT",
    }


async def test_post_is_a_call_as_put_is(app_client: httpx.AsyncClient) -> None:
    response = await app_client.post("/echo", json={"a": [1, 2]})
    assert response.status_code == 200
    assert response.json() == {"a": [1, 2]}


async def test_health_path_is_405_for_methods_other_than_get(app_client: httpx.AsyncClient) -> None:
    response = await app_client.delete("/healthz")
    assert response.status_code == 405
    assert response.headers["allow"] == "GET, HEAD"


@pytest.mark.parametrize("path", ["/", "/xdata", "/a/b/c"])
async def test_head_answers_200_on_any_path(app_client: httpx.AsyncClient, path: str) -> None:
    assert (await app_client.head(path)).status_code == 200


async def test_health_check_answers_200(app_client: httpx.AsyncClient) -> None:
    response = await app_client.get("/healthz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


async def test_put_to_health_path_reaches_handler(app_client: httpx.AsyncClient) -> None:
    assert (await put(app_client, "/healthz", b'"x"', "application/json")).text == "x"


async def test_resource_is_path_without_query_string() -> None:
    seen: list[str] = []

    class Recorder(HTTPDataHandler):
        def handle_request(self, resource: str, payload: Any) -> Any:
            seen.append(resource)
            return 0

    async with app_client_for(Recorder) as test_client:
        await put(test_client, "/a/b?x=1&y=2")
        await put(test_client, "/")
    assert seen == ["/a/b", "/"]


@pytest.mark.parametrize(("extra", "status"), [(0, 200), (1, 431)], ids=["at the limit", "past it"])
async def test_a_mounted_app_takes_headers_up_to_max_head_size(extra: int, status: int) -> None:
    # Whatever server runs the app: the headers' names and values are counted, as they arrived.
    limit = 1000
    async with app_client_for(EchoHandler, limits=dataserve.Limits(max_head_size=limit)) as test_client:
        request = test_client.build_request("PUT", "/echo", json=1)
        counted = sum(len(name) + len(value) for name, value in request.headers.raw)
        filler = b"f" * (limit + extra - counted - len(b"x-filler"))
        request.headers["x-filler"] = filler.decode()
        response = await test_client.send(request)
    assert response.status_code == status
    if status == 200:
        assert response.json() == 1
    else:
        assert "max_head_size" in response.json()["message"]


async def test_one_handler_instance_serves_every_call(app_client: httpx.AsyncClient) -> None:
    counts = [(await put(app_client, "/calls")).json() for _ in range(3)]
    assert counts == [1, 2, 3]


async def test_handler_instance_is_served_as_given() -> None:
    handler = EchoHandler()
    async with app_client_for(handler) as test_client:
        await put(test_client, "/r")
        await put(test_client, "/r")
    assert handler.calls == 2


async def test_async_handler_is_awaited() -> None:
    async with app_client_for(AsyncEchoHandler) as test_client:
        assert (await put(test_client, "/r", b"[1]", "application/json")).json() == [1]


async def test_class_not_derived_from_handler_is_refused() -> None:
    class NotAHandler:
        def handle_request(self, resource: str, payload: Any) -> Any:
            return payload

    with pytest.raises(TypeError, match=r"derive your class from dataserve\.HTTPDataHandler"):
        create_app(NotAHandler)  # type: ignore[arg-type]


async def test_handler_without_handle_request_is_refused() -> None:
    class Empty(HTTPDataHandler):
        pass

    with pytest.raises(TypeError, match="Empty must override handle_request"):
        create_app(Empty)


async def test_base_handle_request_says_to_override_it() -> None:
    with pytest.raises(NotImplementedError, match="must override handle_request"):
        HTTPDataHandler().handle_request("/r", None)


class Overlap(HTTPDataHandler):
    """Counts how many of its calls run at the same moment; /meet waits for a partner call."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.running = 0
        self.peak = 0
        self.partner = threading.Barrier(2, timeout=10)

    def handle_request(self, resource: str, payload: Any) -> Any:
        with self.lock:
            self.running += 1
            self.peak = max(self.peak, self.running)
        try:
            if resource == "/meet":
                self.partner.wait()
            else:
                time.sleep(0.05)
            return payload
        finally:
            with self.lock:
                self.running -= 1


def _send_at_once(port: int, resource: str, count: int) -> list[Any]:
    def call(i: int) -> Any:
        with HTTPDataClient(port, "http://127.0.0.1:") as client:
            return client.send(resource, i)

    with ThreadPoolExecutor(count) as pool:
        return list(pool.map(call, range(count)))


def test_plain_handler_runs_one_call_at_a_time_by_default() -> None:
    handler = Overlap()
    with dataserve.serve(handler) as server:
        assert _send_at_once(server.port, "/work", 6) == list(range(6))
    assert handler.peak == 1


def test_max_concurrency_lets_calls_run_at_once() -> None:
    handler = Overlap()
    with dataserve.serve(handler, max_concurrency=2) as server:
        assert _send_at_once(server.port, "/meet", 2) == [0, 1]
    assert handler.peak == 2


def test_async_handler_calls_run_at_once_on_the_event_loop() -> None:
    class Gathering(HTTPDataHandler):
        def __init__(self) -> None:
            self.arrived = 0
            self.everyone: asyncio.Event | None = None

        async def handle_request(self, resource: str, payload: Any) -> Any:
            self.everyone = self.everyone or asyncio.Event()
            self.arrived += 1
            if self.arrived == 3:
                self.everyone.set()
            await asyncio.wait_for(self.everyone.wait(), 10)
            return payload

    with dataserve.serve(Gathering) as server:
        assert _send_at_once(server.port, "/meet", 3) == [0, 1, 2]


@pytest.mark.parametrize("bad", [0, -1])
async def test_max_concurrency_below_1_is_refused(bad: int) -> None:
    with pytest.raises(ValueError, match=f"max_concurrency must be 1 or more, not {bad}"):
        create_app(EchoHandler, max_concurrency=bad)


OCTETS = {"content-type": "application/octet-stream"}


@pytest.fixture(scope="module")
def small_limit(server_lane: str) -> Iterator[dataserve.RunningServer]:
    with dataserve.serve(EchoHandler, max_body_size=1024) as server:
        yield server


def test_body_over_the_limit_is_413_and_the_server_goes_on(small_limit: dataserve.RunningServer) -> None:
    with httpx.Client(base_url=small_limit.url) as http:
        reply = http.put("/echo", content=b"x" * 1025)
        assert reply.status_code == 413
        assert reply.json()["error"] == "payload_too_large"
        assert "larger than this server takes (1,024 bytes)" in reply.json()["message"]
        assert http.put("/echo", content=b"x" * 1024, headers=OCTETS).content == b"x" * 1024


def test_streamed_body_over_the_limit_is_413(small_limit: dataserve.RunningServer) -> None:
    def chunks() -> Iterator[bytes]:
        for _ in range(10):
            yield b"y" * 200

    with httpx.Client(base_url=small_limit.url) as http:
        reply = http.put("/echo", content=chunks())
        assert "content-length" not in reply.request.headers
        assert reply.status_code == 413


def test_declared_size_over_the_limit_is_refused_before_any_body_is_read(
    small_limit: dataserve.RunningServer,
) -> None:
    with socket.create_connection(("127.0.0.1", small_limit.port), timeout=10) as sock:
        sock.sendall(b"PUT /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 1000000000\r\n\r\n")
        assert sock.recv(4096).startswith(b"HTTP/1.1 413 ")


def test_max_body_size_none_serves_large_bodies() -> None:
    with (
        dataserve.serve(EchoHandler, max_body_size=None) as server,
        httpx.Client(base_url=server.url) as http,
    ):
        body = b"z" * (DEFAULT_MAX_BODY_SIZE // 256)
        assert len(http.put("/echo", content=body, headers=OCTETS).content) == 1 << 22


async def test_negative_max_body_size_is_refused() -> None:
    with pytest.raises(ValueError, match="max_body_size must be 0 or more, or None, not -1"):
        create_app(EchoHandler, max_body_size=-1)

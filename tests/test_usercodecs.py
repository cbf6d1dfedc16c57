"""Codecs of one's own: a type taught to dataserve on both sides, without pickle, and its errors."""

from __future__ import annotations

import datetime
import json
import pickle
import re
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

import dataserve
from dataserve import (
    AsyncHTTPDataClient,
    Codec,
    HTTPDataClient,
    HTTPDataHandler,
    PayloadError,
    RemoteError,
    RunningServer,
    create_app,
    register_codec,
    serve,
)
from dataserve import _usercodecs as usercodecs
from dataserve._codec import JSON, decode, encode
from dataserve._usercodecs import Codecs

WHEN = "application/vnd.dataserve-test.datetime"
NOON = datetime.datetime(2024, 5, 1, 12, 0, tzinfo=datetime.timezone(datetime.timedelta(hours=2)))


class WhenCodec(Codec):
    """Datetimes as ISO 8601 text."""

    content_type = WHEN
    types = (datetime.datetime,)

    def encode(self, value: Any) -> bytes:
        return bytes(value.isoformat().encode())

    def decode(self, body: bytes) -> Any:
        return datetime.datetime.fromisoformat(body.decode())


class SetCodec(Codec):
    """Sets as a sorted JSON list, under a +json type of their own."""

    content_type = "application/vnd.dataserve-test.set+json"
    types = (set, frozenset)

    def encode(self, value: Any) -> bytes:
        return json.dumps(sorted(value)).encode()

    def decode(self, body: bytes) -> Any:
        return set(json.loads(body))


class BlobsCodec(Codec):
    """A dict of bytes values, as JSON of their hex: only dicts JSON cannot carry come here."""

    content_type = "application/vnd.dataserve-test.blobs"
    types = (dict,)

    def encode(self, value: Any) -> bytes:
        return json.dumps({key: blob.hex() for key, blob in value.items()}).encode()

    def decode(self, body: bytes) -> Any:
        return {key: bytes.fromhex(text) for key, text in json.loads(body).items()}


class Broken(Codec):
    """A codec that fails both ways, as a buggy one would."""

    content_type = "application/vnd.dataserve-test.broken"
    types = (complex,)

    def encode(self, value: Any) -> bytes:
        raise ValueError("cannot write this one")

    def decode(self, body: bytes) -> Any:
        raise ValueError("cannot read this one")


class TextReturner(WhenCodec):
    """A codec whose encode returns str, not bytes."""

    def encode(self, value: Any) -> bytes:
        return value.isoformat()  # type: ignore[no-any-return]


@pytest.fixture(autouse=True)
def no_process_codecs(monkeypatch: pytest.MonkeyPatch) -> None:
    """Each test starts, and leaves, with no codec registered for the process."""
    monkeypatch.setattr(usercodecs, "_registered", ())


# The codec itself


def test_a_codecs_value_round_trips_by_its_content_type() -> None:
    codecs = Codecs([WhenCodec()])
    assert encode(NOON, codecs) == (b"2024-05-01T12:00:00+02:00", WHEN)
    assert decode(b"2024-05-01T12:00:00+02:00", WHEN + "; charset=utf-8", codecs) == NOON


def test_without_the_codec_the_value_is_refused_naming_codecs() -> None:
    with pytest.raises(PayloadError, match=r"type datetime: .*dataserve\.Codec") as info:
        encode(NOON)
    assert info.value.status is None


def test_without_the_codec_its_body_is_415_naming_codecs() -> None:
    with pytest.raises(PayloadError, match=r"unsupported Content-Type.*dataserve\.Codec") as info:
        decode(b"2024-05-01", WHEN)
    assert info.value.status == 415


def test_dataserves_own_types_travel_as_they_do() -> None:
    codecs = Codecs([BlobsCodec()])
    assert encode({"a": 1}, codecs) == (b'{"a":1}', JSON), "a dict JSON carries goes as JSON"
    body, content_type = encode({"image": b"\x89PNG", "label": b"cat"}, codecs)
    assert content_type == BlobsCodec.content_type
    assert decode(body, content_type, codecs) == {"image": b"\x89PNG", "label": b"cat"}


def test_a_codecs_json_suffixed_type_is_its_own() -> None:
    codecs = Codecs([SetCodec()])
    body, content_type = encode({3, 1, 2}, codecs)
    assert body == b"[1, 2, 3]"
    assert decode(body, content_type, codecs) == {1, 2, 3}, "decoded by the codec, not as JSON"


def test_the_first_codec_that_claims_a_type_sends_it() -> None:
    class Other(WhenCodec):
        content_type = "application/vnd.dataserve-test.other"

    codecs = Codecs([Other(), WhenCodec()])
    assert encode(NOON, codecs)[1] == Other.content_type
    assert decode(b"2024-05-01T12:00:00+02:00", WHEN, codecs) == NOON, "each type decodes by its own"


def test_a_codec_that_raises_gives_payload_errors() -> None:
    codecs = Codecs([Broken()])
    with pytest.raises(PayloadError, match=r"its codec Broken .* failed: ValueError: cannot write") as sent:
        encode(1j, codecs)
    assert sent.value.status is None
    with pytest.raises(PayloadError, match=r"not a valid .*broken: its codec Broken failed") as read:
        decode(b"x", Broken.content_type, codecs)
    assert read.value.status == 400


def test_a_codec_that_returns_text_is_told_to_return_bytes() -> None:
    with pytest.raises(PayloadError, match=r"returned a str, not bytes"):
        encode(NOON, Codecs([TextReturner()]))


@pytest.mark.parametrize(
    ("make", "error", "message"),
    [
        (lambda: WhenCodec, TypeError, r"an instance of WhenCodec, not the class: WhenCodec\(\)"),
        (lambda: object(), TypeError, "is not a codec: it has no content_type"),
        (lambda: type("NoType", (WhenCodec,), {"content_type": "datetime"})(), ValueError, "a media type"),
        (
            lambda: type("Own", (WhenCodec,), {"content_type": "application/json"})(),
            ValueError,
            "dataserve's own",
        ),
        (lambda: type("Arrow", (WhenCodec,), {"content_type": "Application/X-NPY"})(), ValueError, "own"),
        (lambda: type("Untyped", (WhenCodec,), {"types": ()})(), TypeError, "a tuple of one or more classes"),
        (lambda: type("Listed", (WhenCodec,), {"types": [datetime.date]})(), TypeError, "a tuple"),
    ],
    ids=["a class", "not a codec", "bad content type", "json", "npy", "no types", "types in a list"],
)
def test_a_codec_that_cannot_be_registered_says_what_to_fix(make: Any, error: type, message: str) -> None:
    with pytest.raises(error, match=message):
        Codecs([make()])
    with pytest.raises(error, match=message):
        register_codec(make())


def test_two_codecs_of_one_content_type_are_refused() -> None:
    with pytest.raises(ValueError, match=f"two codecs for {re.escape(WHEN)}"):
        Codecs([WhenCodec(), TextReturner()])


def test_registered_codecs_serve_every_app_and_client_after_their_own() -> None:
    register_codec(WhenCodec())
    assert encode(NOON) == (b"2024-05-01T12:00:00+02:00", WHEN)
    assert decode(b"2024-05-01T12:00:00+02:00", WHEN) == NOON

    class Mine(WhenCodec):
        content_type = "application/vnd.dataserve-test.mine"

    assert encode(NOON, Codecs([Mine()]))[1] == Mine.content_type


def test_registering_a_content_type_again_replaces_its_codec() -> None:
    first, second = WhenCodec(), WhenCodec()
    register_codec(first)
    register_codec(SetCodec())
    register_codec(second)
    assert usercodecs.registered_codecs() == (usercodecs.registered_codecs()[0], second)
    assert isinstance(usercodecs.registered_codecs()[0], SetCodec)


def test_an_app_with_codecs_pickles_with_them() -> None:
    app = pickle.loads(pickle.dumps(create_app(Handler, codecs=[WhenCodec()])))
    assert [type(codec) for codec in app.core.codecs.own] == [WhenCodec]


# Through a real server


class Handler(HTTPDataHandler):
    """Adds a day to a datetime, tells what it was sent, and returns values of the codecs."""

    def handle_request(self, resource: str, payload: Any) -> Any:
        if resource == "/tomorrow":
            return payload + datetime.timedelta(days=1)
        if resource == "/type":
            return type(payload).__name__
        if resource == "/echo":
            return payload
        if resource == "/broken":
            return 1j
        if resource == "/noon":
            return NOON
        return None


@pytest.fixture(scope="module")
def codec_server(server_lane: str) -> Iterator[RunningServer]:
    with serve(Handler, port=0, codecs=[WhenCodec(), BlobsCodec(), Broken()]) as running:
        yield running


@pytest.fixture
def codec_client(codec_server: RunningServer) -> Iterator[HTTPDataClient]:
    codecs = [WhenCodec(), BlobsCodec(), Broken()]
    with HTTPDataClient(codec_server.port, "http://127.0.0.1:", timeout=30, codecs=codecs) as client:
        yield client


def test_a_codecs_value_goes_and_comes_back_through_server(codec_client: HTTPDataClient) -> None:
    assert codec_client.send("/tomorrow", NOON) == NOON + datetime.timedelta(days=1)
    assert codec_client.send("/type", NOON) == "datetime"
    blobs = {"image": bytes(range(256)), "label": b"cat"}
    assert codec_client.send("/echo", blobs) == blobs
    assert codec_client.send("/echo", {"a": [1]}) == {"a": [1]}, "JSON stays JSON"


def test_send_many_takes_the_clients_codecs(codec_client: HTTPDataClient) -> None:
    replies = codec_client.send_many([("/tomorrow", NOON), ("/type", NOON), ("/echo", 1)])
    assert replies == [NOON + datetime.timedelta(days=1), "datetime", 1]


@pytest.mark.anyio
async def test_the_async_client_takes_codecs(codec_server: RunningServer) -> None:
    async with AsyncHTTPDataClient(codec_server.port, "http://127.0.0.1:", codecs=[WhenCodec()]) as client:
        assert await client.send("/tomorrow", NOON) == NOON + datetime.timedelta(days=1)
        assert await client.send_many([("/type", NOON)]) == ["datetime"]


def test_a_codec_failing_on_a_reply_is_a_500_naming_it(codec_client: HTTPDataClient) -> None:
    with pytest.raises(RemoteError, match="its codec Broken") as info:
        codec_client.send("/broken")
    assert info.value.remote_type == "PayloadError"


def test_a_codec_failing_on_a_payload_is_a_400_naming_it(codec_server: RunningServer) -> None:
    with httpx.Client(base_url=codec_server.url) as http:
        response = http.put("/echo", content=b"x", headers={"Content-Type": Broken.content_type})
    assert response.status_code == 400
    assert response.json()["error"] == "bad_payload"
    assert "its codec Broken failed: ValueError: cannot read this one" in response.json()["message"]


def test_a_client_without_the_codec_is_refused_before_sending(codec_server: RunningServer) -> None:
    with HTTPDataClient(codec_server.port, "http://127.0.0.1:") as client:
        with pytest.raises(PayloadError, match=r"type datetime.*dataserve\.Codec") as info:
            client.send("/tomorrow", NOON)
        assert info.value.status is None


def test_a_server_without_the_codec_answers_415(server: RunningServer) -> None:
    with (
        HTTPDataClient(server.port, "http://127.0.0.1:", codecs=[WhenCodec()]) as client,
        pytest.raises(PayloadError, match=r"415 from PUT") as info,
    ):
        client.send("/echo", NOON)
    assert info.value.status == 415
    assert "dataserve.Codec" in str(info.value)


def test_a_reply_whose_codec_the_client_lacks_raises_415(codec_server: RunningServer) -> None:
    with HTTPDataClient(codec_server.port, "http://127.0.0.1:", timeout=30) as client:
        with pytest.raises(PayloadError, match=f"unsupported Content-Type '{WHEN}'") as info:
            client.send("/noon")
        assert info.value.status == 415
        assert client.send("/echo", {"x": "text"}) == {"x": "text"}


def test_dataserve_exports_the_codec_api() -> None:
    assert dataserve.Codec is Codec
    assert dataserve.register_codec is register_codec

"""What hostile or broken clients send, byte for byte over raw sockets to a real server.

Each bad request gets its status, and the server goes on serving normal calls, logging
nothing at ERROR. uvicorn logs "Invalid HTTP request received." at WARNING: that is fine.
"""

from __future__ import annotations

import json
import logging
import re
import socket
import string
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote_to_bytes

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

import dataserve
from dataserve import HTTPDataClient
from tests.conftest import EchoHandler
from tests.test_codec import json_values

pytestmark = pytest.mark.usefixtures("server_lane")

TIMEOUT = 10.0
"""Seconds a socket waits for the server: only a hang comes near it."""

INVALID_HTTP = b"Invalid HTTP request received."
"""The body of uvicorn's own 400, sent when it cannot parse a request."""

MiB = 2**20

MAX_HEADER_BYTES = dataserve.Limits().max_head_size

ONE_READ = 64 * 1024
"""Bytes the server surely takes in at once: loopback delivers up to 64 KiB in one segment."""


@dataclass(frozen=True)
class Reply:
    """One HTTP response as it came over the wire."""

    status: int
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


class ErrorLog(logging.Handler):
    """Keeps the records logged at ERROR or above."""

    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


@pytest.fixture
def errors() -> Iterator[list[logging.LogRecord]]:
    """What the server logs at ERROR during one test, on dataserve's and uvicorn's loggers.

    Set up after this module's servers start, because each start configures those loggers anew.
    """
    handler = ErrorLog()
    loggers = [logging.getLogger(name) for name in ("dataserve", "uvicorn.error")]
    for logger in loggers:
        logger.addHandler(handler)
    try:
        yield handler.records
    finally:
        for logger in loggers:
            logger.removeHandler(handler)


@pytest.fixture(scope="module")
def small_limit(server_lane: str) -> Iterator[dataserve.RunningServer]:
    with dataserve.serve(EchoHandler, max_body_size=1024) as server:
        yield server


def assert_still_serving(server: dataserve.RunningServer, errors: list[logging.LogRecord]) -> None:
    """A normal call succeeds, and nothing was logged at ERROR so far."""
    with HTTPDataClient(server.port, "http://127.0.0.1:", timeout=TIMEOUT) as client:
        assert client.send("/echo", {"still": ["serving"]}) == {"still": ["serving"]}
    assert [record.getMessage() for record in errors] == []


def put(
    path: bytes,
    body: bytes = b"",
    content_type: bytes | None = None,
    headers: Sequence[bytes] = (),
) -> bytes:
    """The bytes of a PUT with its exact Content-Length, asking the server to close afterwards."""
    lines = [b"PUT " + path + b" HTTP/1.1", b"Host: dataserve.test", *headers]
    if content_type is not None:
        lines.append(b"Content-Type: " + content_type)
    lines += [b"Content-Length: %d" % len(body), b"Connection: close"]
    return b"\r\n".join(lines) + b"\r\n\r\n" + body


def connect(server: dataserve.RunningServer) -> socket.socket:
    return socket.create_connection(("127.0.0.1", server.port), timeout=TIMEOUT)


def receive_all(sock: socket.socket) -> bytes:
    """Everything the server sends until it closes the connection."""
    chunks = []
    while chunk := sock.recv(65536):
        chunks.append(chunk)
    return b"".join(chunks)


def exchange(server: dataserve.RunningServer, request: bytes) -> bytes:
    """Send ``request`` on a new connection; return all the server sends until it closes."""
    with connect(server) as sock:
        sock.sendall(request)
        return receive_all(sock)


def call(server: dataserve.RunningServer, request: bytes) -> Reply:
    """The one reply to ``request``, after which the server closes the connection."""
    replies = parse_replies(exchange(server, request))
    assert len(replies) == 1, replies
    return replies[0]


def receive_reply(sock: socket.socket) -> Reply:
    """The next whole reply on ``sock``, leaving the connection open."""
    data = b""
    while (split := split_reply(data)) is None:
        chunk = sock.recv(65536)
        assert chunk, f"the server closed the connection mid-reply: {data[:300]!r}"
        data += chunk
    reply, rest = split
    assert rest == b"", rest[:300]
    return reply


STATUS_LINE = re.compile(rb"HTTP/1\.1 ([1-5][0-9][0-9]) [\x20-\x7e]*")
TOKEN = re.compile(rb"[!#$%&'*+.^_`|~0-9A-Za-z-]+")


def split_reply(data: bytes, *, head: bool = False) -> tuple[Reply, bytes] | None:
    """The first whole response in ``data`` and the bytes after it, or None while it is incomplete.

    Fails the test on anything but a well-formed HTTP/1.1 response. A reply to HEAD has no
    body, unless uvicorn refused the request before it knew the method.
    """
    end = data.find(b"\r\n\r\n")
    if end < 0:
        return None
    status_line, *lines = data[:end].split(b"\r\n")
    match = STATUS_LINE.fullmatch(status_line)
    assert match, f"not an HTTP/1.1 status line: {status_line!r}"
    headers = {}
    for line in lines:
        name, colon, value = line.partition(b":")
        assert colon, f"a header line without a colon in a reply: {line!r}"
        assert TOKEN.fullmatch(name), f"a malformed header name in a reply: {line!r}"
        headers[name.decode("ascii").lower()] = value.strip().decode("latin-1")
    status, rest = int(match[1]), data[end + 4 :]
    bodyless = status < 200 or (head and (not rest or rest.startswith(b"HTTP/1.1 ")))
    assert bodyless or "content-length" in headers, f"a reply without a Content-Length: {headers}"
    length = 0 if bodyless else int(headers["content-length"])
    if len(rest) < length:
        return None
    return Reply(status, headers, rest[:length]), rest[length:]


def parse_replies(data: bytes, *, head: bool = False) -> list[Reply]:
    """Every response in ``data``, which must hold whole responses and nothing else."""
    replies: list[Reply] = []
    while data:
        final_seen = any(reply.status >= 200 for reply in replies)
        split = split_reply(data, head=head and not final_seen)
        assert split is not None, f"an incomplete reply: {data[:300]!r}"
        reply, data = split
        replies.append(reply)
    return replies


def assert_error_body(reply: Reply) -> None:
    """A refusal says why: uvicorn's own text, or dataserve's ``{"error": ..., "message": ...}``."""
    if reply.body == INVALID_HTTP:
        assert reply.status == 400
        return
    assert reply.headers["content-type"] == "application/json", reply
    body = reply.json()
    assert isinstance(body["error"], str), body
    assert isinstance(body["message"], str), body


# Malformed HTTP: uvicorn refuses it before the app sees it.


@pytest.mark.parametrize(
    "request_bytes",
    [
        pytest.param(b"NONSENSE\r\n\r\n", id="garbage request line"),
        pytest.param(b"PUT /r HTTP/9.9\r\nHost: x\r\n\r\n", id="bad HTTP version"),
        pytest.param(b"put /r HTTP/1.1\r\nHost: x\r\n\r\n", id="lowercase method"),
        pytest.param(b"PUT /r HTTP/1.1\r\nHost: x\r\nContent-Length: -1\r\n\r\n", id="negative length"),
        pytest.param(b"PUT /r HTTP/1.1\r\nHost: x\r\nContent-Length: ten\r\n\r\n", id="non-numeric length"),
        pytest.param(
            b"PUT /r HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n12",
            id="two lengths",
        ),
        pytest.param(
            b"PUT /r HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
            id="length and chunked",
        ),
        pytest.param(
            b"PUT /r HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nZZ\r\n7\r\n0\r\n\r\n",
            id="bad chunk size",
        ),
        pytest.param(b"PUT /caf\xc3\xa9 HTTP/1.1\r\nHost: x\r\n\r\n", id="raw non-ASCII path"),
        pytest.param(b"PUT /r HTTP/1.1\r\nHost: x\r\nX-A: a\x00b\r\n\r\n", id="NUL in a header"),
        pytest.param(b"PUT /r HTTP/1.1\r\nHost: x\r\nX A: b\r\n\r\n", id="space in a header name"),
    ],
)
def test_malformed_http_is_400_and_the_connection_closed(
    server: dataserve.RunningServer, errors: list[logging.LogRecord], request_bytes: bytes
) -> None:
    reply = call(server, request_bytes)  # Asks for keep-alive: the server closes anyway.
    assert reply.status == 400
    assert reply.body == INVALID_HTTP
    assert reply.headers["connection"] == "close"
    assert_still_serving(server, errors)


def test_content_length_shorter_than_the_body_makes_the_rest_a_bad_next_request(
    server: dataserve.RunningServer, errors: list[logging.LogRecord]
) -> None:
    request = (
        b"PUT /r HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 2\r\n\r\n12345"
    )
    replies = parse_replies(exchange(server, request))
    # uvicorn parses "345" as soon as it arrives, so the reply to the first request may be lost.
    assert [reply.status for reply in replies] in ([400], [200, 400])
    assert replies[-1].body == INVALID_HTTP
    assert_still_serving(server, errors)


def test_content_length_longer_than_the_body_waits_for_the_rest_while_serving_others(
    server: dataserve.RunningServer, errors: list[logging.LogRecord]
) -> None:
    request = put(b"/echo", b"[1, 2, 3]", b"application/json")
    with connect(server) as sock:
        sock.sendall(request[:-4])
        assert_still_serving(server, errors)
        sock.sendall(request[-4:])
        replies = parse_replies(receive_all(sock))
    assert [(reply.status, reply.json()) for reply in replies] == [(200, [1, 2, 3])]
    assert_still_serving(server, errors)


@pytest.mark.parametrize("sent", [0, 500], ids=["headers only", "half the body"])
def test_client_closing_mid_body_breaks_nothing(
    server: dataserve.RunningServer, errors: list[logging.LogRecord], sent: int
) -> None:
    request = put(b"/echo", b"x" * 1000, b"application/octet-stream")
    with connect(server) as sock:
        sock.sendall(request[: len(request) - 1000 + sent])
    assert_still_serving(server, errors)
    assert_still_serving(server, errors)


def test_client_closing_mid_reply_breaks_nothing(
    server: dataserve.RunningServer, errors: list[logging.LogRecord]
) -> None:
    with connect(server) as sock:
        sock.sendall(put(b"/echo", b"z" * (32 * MiB), b"application/octet-stream"))
        data = b""
        while len(data) < 8192:
            chunk = sock.recv(8192)
            assert chunk, data[:300]
            data += chunk
        assert data.startswith(b"HTTP/1.1 200 OK\r\n")
    assert_still_serving(server, errors)
    assert_still_serving(server, errors)


# Bodies that do not decode as their Content-Type says.


@pytest.mark.parametrize(
    ("content_type", "body", "status", "error", "words"),
    [
        pytest.param(b"application/json", b"{nope", 400, "bad_payload", "not valid JSON", id="bad JSON"),
        pytest.param(
            b"text/plain; charset=utf-8", b"caf\xc3(", 400, "bad_payload", "not valid utf-8", id="bad UTF-8"
        ),
        pytest.param(
            b"application/json",
            b"[" * 100_000 + b"]" * 100_000,
            400,
            "bad_payload",
            "too deeply nested",
            id="JSON nested 100,000 deep",
        ),
        pytest.param(
            b"application/xml", b"<x/>", 415, "unsupported_media_type", "unsupported", id="unknown type"
        ),
        pytest.param(
            b"text/plain; charset=nope", b"x", 415, "unsupported_media_type", "charset", id="unknown charset"
        ),
        pytest.param(
            b"\xff\xfe garbage", b"x", 415, "unsupported_media_type", "unsupported", id="garbage type"
        ),
        pytest.param(None, b"x", 415, "unsupported_media_type", "without a Content-Type", id="no type"),
    ],
)
def test_body_that_does_not_decode_is_refused(
    server: dataserve.RunningServer,
    errors: list[logging.LogRecord],
    content_type: bytes | None,
    body: bytes,
    status: int,
    error: str,
    words: str,
) -> None:
    reply = call(server, put(b"/echo", body, content_type))
    assert reply.status == status
    assert reply.json()["error"] == error
    assert words in reply.json()["message"]
    assert_still_serving(server, errors)


@pytest.mark.parametrize(
    ("charset", "body"),
    [
        (b"punycode", b"xn--zz"),
        (b"idna", b"xn--a"),
        (b"utf-7", b"+2AA-"),
        (b"unicode_escape", b"\\ud800"),
        (b"punycode", b"a" * 300_000),
    ],
    ids=["punycode", "idna", "utf-7", "unicode_escape", "punycode 300 KB"],
)
def test_charsets_off_the_safe_list_are_refused_with_415_naming_them(
    server: dataserve.RunningServer, errors: list[logging.LogRecord], charset: bytes, body: bytes
) -> None:
    # Off the list: punycode decodes in time that grows with the square of the text, utf-7 and
    # unicode_escape make lone surrogates. None is decoded at all.
    began = time.monotonic()
    reply = call(server, put(b"/echo", body, b"text/plain; charset=" + charset))
    assert (reply.status, reply.headers["content-type"]) == (415, "application/json")
    assert reply.json()["error"] == "unsupported_media_type"
    assert f"charset '{charset.decode()}' is not taken; send text as utf-8" in reply.json()["message"]
    assert time.monotonic() - began < 5, "a refused charset was decoded all the same"
    assert_still_serving(server, errors)


@pytest.mark.parametrize(
    ("charset", "text"),
    [
        ("utf-8", "café"),
        ("UTF-16", "café"),
        ("utf-32-le", "café"),
        ("latin-1", "café"),
        ("windows-1252", "€ café"),
    ],
)
def test_charsets_on_the_safe_list_are_decoded(
    server: dataserve.RunningServer, errors: list[logging.LogRecord], charset: str, text: str
) -> None:
    reply = call(server, put(b"/echo", text.encode(charset), b"text/plain; charset=" + charset.encode()))
    assert (reply.status, reply.body.decode()) == (200, text)
    assert_still_serving(server, errors)


def test_json_with_a_lone_surrogate_escape_is_400(
    server: dataserve.RunningServer, errors: list[logging.LogRecord]
) -> None:
    reply = call(server, put(b"/echo", b'"\\ud800"', b"application/json"))
    assert reply.status == 400
    assert reply.json()["error"] == "bad_payload"
    assert_still_serving(server, errors)


# Headers and paths.


def filler_header(total: int) -> bytes:
    """A header that brings ``put()``'s headers to ``total`` bytes, counted as the app counts them."""
    counted = len(b"hostdataserve.test") + len(b"content-length0") + len(b"connectionclose")
    return b"X-Filler: " + b"f" * (total - counted - len(b"x-filler"))


@pytest.mark.parametrize(
    ("total", "status"), [(MAX_HEADER_BYTES - 1024, 200), (MAX_HEADER_BYTES + 1, 431)], ids=["under", "over"]
)
def test_headers_are_taken_up_to_the_limit_and_refused_past_it(
    server: dataserve.RunningServer, errors: list[logging.LogRecord], total: int, status: int
) -> None:
    reply = call(server, put(b"/type", headers=[filler_header(total)]))
    assert reply.status == status
    assert_still_serving(server, errors)


@pytest.mark.parametrize(
    "headers",
    [
        pytest.param([b"X-Big: " + b"b" * (MAX_HEADER_BYTES * 4)], id="one huge header"),
        pytest.param([b"X-Small-%05d: s" % i for i in range(10_000)], id="10,000 small headers"),
    ],
)
def test_headers_over_the_limit_are_431(
    server: dataserve.RunningServer, errors: list[logging.LogRecord], headers: list[bytes]
) -> None:
    reply = call(server, put(b"/echo", b"1", b"application/json", headers))
    assert reply.status == 431
    assert reply.json()["error"] == "headers_too_large"
    assert_still_serving(server, errors)


@pytest.mark.parametrize(
    "path", [b"/a/../b", b"/a/./b", b"/..", b"/a/%2e%2E/b", b"/a%00b", b"/%00"], ids=lambda p: p.decode()
)
def test_dot_segment_or_nul_in_the_resource_is_400(
    server: dataserve.RunningServer, errors: list[logging.LogRecord], path: bytes
) -> None:
    reply = call(server, put(path, b"1", b"application/json"))
    assert reply.status == 400
    assert reply.json()["error"] == "bad_resource"
    assert_still_serving(server, errors)


@pytest.mark.parametrize("path", [b"/caf%C3%A9", b"/caf%C3%A9?x=1"])
def test_percent_encoded_non_ascii_reaches_the_handler_decoded(
    server: dataserve.RunningServer, errors: list[logging.LogRecord], path: bytes
) -> None:
    reply = call(server, put(path))  # EchoHandler echoes the None payload: a 404 naming the resource.
    assert reply.status == 404
    message = reply.json()["message"]
    assert message.startswith("EchoHandler.handle_request returned None for '/café', which means")
    assert_still_serving(server, errors)


def test_query_string_is_not_part_of_the_resource(
    server: dataserve.RunningServer, errors: list[logging.LogRecord]
) -> None:
    reply = call(server, put(b"/type?x=1&y=%00&z=..%2F"))
    assert (reply.status, reply.body) == (200, b"NoneType")
    assert_still_serving(server, errors)


def test_declared_body_over_max_body_size_is_413_before_it_is_read(
    small_limit: dataserve.RunningServer, errors: list[logging.LogRecord]
) -> None:
    with connect(small_limit) as sock:
        sock.sendall(b"PUT /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 1000000000\r\n\r\n")
        reply = receive_reply(sock)
    assert reply.status == 413
    assert reply.json()["error"] == "payload_too_large"
    assert_still_serving(small_limit, errors)


# Fuzzing: random request lines, headers, content types, bodies and framings.

# A fuzzed request is well-formed HTTP but for at most one corrupted part, so that most of them
# reach the app; its parts are still odd: odd methods, paths, headers, Content-Types and framings.
METHODS = [b"PUT"] * 10 + [b"HEAD", b"GET", b"POST", b"DELETE", b"OPTIONS"]
BAD_METHODS = [b"BREW", b"put", b"P T", b"PUT\x00", b""]
PATHS = [
    b"/",
    b"/r",
    b"/type",
    b"/calls",
    b"/missing",
    b"/healthz",
    b"/a/b/c",
    b"/a/../b",
    b"/./r",
    b"/a/%2e%2e",
    b"/r%00",
    b"/caf%C3%A9",
    b"/type?x=1&y",
    b"/%ZZ",
    b"//r",
    b"*",
    b"http://dataserve.test/r",
    b"/" + b"a" * 3000,
    b"/r#fragment",
]
BAD_PATHS = [b"/caf\xc3\xa9", b"/r r", b"r", b"/r\x00", b"/\x7f"]
UNFUZZED = {b"/fail", b"/set", b"/sleep"}
"""EchoHandler's resources that fail or sleep on purpose."""

VERSIONS = [b"HTTP/1.1"] * 10 + [b"HTTP/1.0"]
BAD_VERSIONS = [b"HTTP/0.9", b"HTTP/2.0", b"HTTP/1.2", b"HTTP/9.9", b"http/1.1", b"HTTP/1.1 ", b""]
FRAMING_HEADERS = {b"content-length", b"transfer-encoding", b"connection", b"upgrade", b"content-type"}
"""Headers the fuzzer sets itself, so that it knows when a request is complete."""

JSON_TYPES = [b"application/json", b"application/json; charset=utf-8", b"application/problem+json"]
TEXT_TYPES = [b"text/plain", b"text/plain; charset=utf-8", b"TEXT/PLAIN; CHARSET=LATIN-1"]
CONTENT_TYPES = [
    None,
    *JSON_TYPES,
    *TEXT_TYPES,
    b"text/plain; charset=utf-16",
    b"text/plain; charset=punycode",
    b"text/plain; charset=utf-7",
    b"text/plain; charset=unicode_escape",
    b"text/plain; charset=nope",
    b"text/plain; charset=",
    b"application/octet-stream",
    b"application/xml",
    b"multipart/form-data; boundary=x",
    b"",
    b";;;",
    b"\xff\xfe",
    b"garbage",
]
BAD_LENGTHS = [b"-1", b"abc", b"1 2", b"+1", b"0x10", b"1e3", b"9" * 30, b"1\r\nContent-Length: 2"]
FRAMINGS = ["exact", "exact", "short", "none", "long", "huge", "chunked", "bad length"]
CORRUPTIONS = [None] * 8 + ["method", "target", "version", "header"]

FINAL_STATUSES = {200, 400, 404, 405, 413, 415, 431}
"""What the fuzzer's requests may legitimately get, besides a 100 Continue before the reply.

200: a call served (an echo, HEAD on any path, GET /healthz). 400: uvicorn cannot parse the
request, or the app refuses its body (bad_payload) or its resource (bad_resource). 404: the
handler returns None (EchoHandler echoes an empty body as None), or the target is no path
(``*``). 405: a method other than PUT, HEAD (and GET on /healthz). 413: only for a declared
length over the 1 GiB default limit. 415: an unknown Content-Type or charset. 431: only for
headers over MAX_HEADER_BYTES. Never 411 (a PUT without a length has an empty body), 401
(no token) or 503 (the server is ready throughout); never 500, as the resources that fail on
purpose are not fuzzed: any 500 is a bug.
"""

raw_bytes = st.binary(min_size=1, max_size=40).filter(lambda raw: b"\r" not in raw and b"\n" not in raw)
header_names = st.one_of(
    st.sampled_from([b"Accept", b"Authorization", b"Cookie", b"Expect", b"Range", b"Content-Encoding"]),
    st.text(string.ascii_letters + string.digits + "-_.!~", min_size=1, max_size=20).map(str.encode),
).filter(lambda name: name.lower() not in FRAMING_HEADERS)
header_values = st.one_of(
    st.sampled_from([b"", b"100-continue", b"*/*", b"gzip", b"bytes=0-1", b"Bearer x"]),
    # Any text without control characters: UTF-8 beyond ASCII is obs-text, allowed in values.
    st.text(st.characters(min_codepoint=0x20, exclude_categories=("Cc", "Cs")), max_size=40).map(str.encode),
)
raw_headers = st.tuples(raw_bytes, raw_bytes).filter(
    lambda header: header[0].partition(b":")[0].strip().lower() not in FRAMING_HEADERS
)
targets = st.one_of(
    st.sampled_from(PATHS),
    st.text(string.ascii_letters + string.digits + "-._~%/?=&+@:", max_size=30).map(
        lambda t: b"/" + t.encode()
    ),
)
bad_targets = st.one_of(st.sampled_from(BAD_PATHS), raw_bytes.map(lambda raw: b"/" + raw))
bodies = st.one_of(
    st.binary(max_size=600),
    json_values.map(lambda value: json.dumps(value).encode()),
    st.text(max_size=100).map(str.encode),
)
typed_bodies = st.one_of(
    st.tuples(st.sampled_from(JSON_TYPES), json_values.map(lambda value: json.dumps(value).encode())),
    st.tuples(st.sampled_from(TEXT_TYPES), st.text(max_size=100).map(str.encode)),
    st.tuples(st.just(b"application/octet-stream"), st.binary(max_size=600)),
    st.tuples(st.sampled_from(CONTENT_TYPES), bodies),  # Likely not what the type says.
)


def fuzzed(target: bytes) -> bool:
    """Whether the resource of ``target`` is one to fuzz."""
    return unquote_to_bytes(re.split(rb"[?#]", target)[0]) not in UNFUZZED


@dataclass(frozen=True)
class HostileRequest:
    """A request from the fuzzer, and what the server may answer to it."""

    start: bytes
    filler: int
    """The size of an X-Filler header between ``start`` and ``end`` (0 for none)."""
    end: bytes
    head: bool
    statuses: frozenset[int]
    answered: bool
    """False when the body falls short of its declared length: the server may wait for the rest."""

    @property
    def data(self) -> bytes:
        filler = b"X-Filler: " + b"f" * self.filler + b"\r\n" if self.filler else b""
        return self.start + filler + self.end

    @property
    def may_be_reset(self) -> bool:
        """Whether the server may refuse it before reading it all, and so reset the connection.

        uvicorn closes a connection it refuses without reading the rest of the request, and
        the kernel then resets it, dropping the reply: only a request larger than one read
        can get there.
        """
        return len(self.data) > ONE_READ


@st.composite
def hostile_requests(draw: st.DrawFn) -> HostileRequest:
    corrupt = draw(st.sampled_from(CORRUPTIONS))
    method = draw(st.sampled_from(BAD_METHODS if corrupt == "method" else METHODS))
    target = draw((bad_targets if corrupt == "target" else targets).filter(fuzzed))
    version = draw(st.sampled_from(BAD_VERSIONS if corrupt == "version" else VERSIONS))
    headers = draw(st.lists(st.tuples(header_names, header_values), max_size=5))
    if corrupt == "header":
        headers.insert(draw(st.integers(0, len(headers))), draw(raw_headers))
    start = [method + b" " + target + b" " + version, b"Host: dataserve.test"]
    start += [name + b": " + value for name, value in headers]
    filler = draw(st.sampled_from([0, 0, 0, 1000, MAX_HEADER_BYTES + 1000]))
    end = []
    content_type, body = draw(typed_bodies)
    if content_type is not None:
        end.append(b"Content-Type: " + content_type)
    framing = draw(st.sampled_from(FRAMINGS))
    if framing == "exact":
        end.append(b"Content-Length: %d" % len(body))
    elif framing == "short":
        end.append(b"Content-Length: %d" % (len(body) // 2))
    elif framing == "long":
        end.append(b"Content-Length: %d" % (len(body) + draw(st.integers(1, 10_000))))
    elif framing == "huge":
        end.append(b"Content-Length: %d" % 10**10)
    elif framing == "chunked":
        end.append(b"Transfer-Encoding: chunked")
        cut = draw(st.integers(0, len(body)))
        chunks = [chunk for chunk in (body[:cut], body[cut:]) if chunk]
        body = b"".join(b"%x\r\n%s\r\n" % (len(chunk), chunk) for chunk in chunks) + b"0\r\n\r\n"
    elif framing == "bad length":
        end.append(b"Content-Length: " + draw(st.sampled_from(BAD_LENGTHS)))
    end.append(b"Connection: close")
    statuses = set(FINAL_STATUSES)
    if framing != "huge":
        statuses.discard(413)
    if filler < MAX_HEADER_BYTES:
        statuses.discard(431)
    return HostileRequest(
        start=b"\r\n".join(start) + b"\r\n",
        filler=filler,
        end=b"\r\n".join(end) + b"\r\n\r\n" + body,
        head=method == b"HEAD",
        statuses=frozenset(statuses),
        answered=framing != "long",
    )


@settings(max_examples=150, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(request=hostile_requests())
def test_every_fuzzed_request_gets_a_well_formed_reply_and_the_server_goes_on(
    server: dataserve.RunningServer, errors: list[logging.LogRecord], request: HostileRequest
) -> None:
    errors.clear()
    try:
        with connect(server) as sock:
            sock.sendall(request.data)
            if not request.answered:
                sock.shutdown(socket.SHUT_WR)  # Gives up: the server has nobody left to answer.
            received = receive_all(sock)
    except (ConnectionResetError, BrokenPipeError):
        assert request.may_be_reset, "the server reset the connection of a request it had read whole"
        event("reset")
    else:
        replies = parse_replies(received, head=request.head)
        final = [reply for reply in replies if reply.status >= 200]
        event(f"statuses {[reply.status for reply in replies]}")
        assert {reply.status for reply in replies if reply.status < 200} <= {100}
        assert {reply.status for reply in final} <= request.statuses
        assert final or not request.answered, "no reply to a complete request"
        for reply in final:
            if reply.status != 200 and reply.body:
                assert_error_body(reply)
    assert_still_serving(server, errors)

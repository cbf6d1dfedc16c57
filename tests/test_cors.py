"""Browser callers: CORS for the origins listed, preflights included, and a real Chromium calling fetch."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

import dataserve

from .browser import CHROMIUM, Origin, chromium, wait_for_reports
from .conftest import EchoHandler

TOKEN = "s3cret"
PAGE_ORIGIN = "http://pages.example"


@pytest.fixture(scope="module")
def cors_server(server_lane: str) -> Iterator[dataserve.RunningServer]:
    with dataserve.serve(EchoHandler, port=0, cors_origins=[PAGE_ORIGIN], token=TOKEN) as running:
        yield running


def _preflight(url: str, origin: str) -> httpx.Response:
    headers = {
        "origin": origin,
        "access-control-request-method": "PUT",
        "access-control-request-headers": "authorization, content-type",
    }
    return httpx.options(url + "/echo", headers=headers, timeout=30)


def _put(url: str, origin: str | None) -> httpx.Response:
    headers = {"authorization": f"Bearer {TOKEN}", "content-type": "application/json"}
    if origin is not None:
        headers["origin"] = origin
    return httpx.put(url + "/echo", content=b'{"a": 1}', headers=headers, timeout=30)


def test_a_preflight_from_a_listed_origin_allows_put_with_the_token_header(
    cors_server: dataserve.RunningServer,
) -> None:
    response = _preflight(cors_server.url, PAGE_ORIGIN)
    assert response.status_code == 200
    assert response.headers["access-control-allow-origin"] == PAGE_ORIGIN
    assert "PUT" in response.headers["access-control-allow-methods"]
    allowed = response.headers["access-control-allow-headers"].lower()
    assert "authorization" in allowed
    assert "content-type" in allowed


def test_a_preflight_from_an_origin_not_listed_is_refused(cors_server: dataserve.RunningServer) -> None:
    response = _preflight(cors_server.url, "http://elsewhere.example")
    assert response.status_code == 400
    assert "access-control-allow-origin" not in response.headers


def test_a_call_from_a_listed_origin_is_answered_with_its_cors_header(
    cors_server: dataserve.RunningServer,
) -> None:
    response = _put(cors_server.url, PAGE_ORIGIN)
    assert response.status_code == 200
    assert response.json() == {"a": 1}
    assert response.headers["access-control-allow-origin"] == PAGE_ORIGIN


def test_a_call_from_another_origin_gets_no_cors_header(cors_server: dataserve.RunningServer) -> None:
    response = _put(cors_server.url, "http://elsewhere.example")
    assert "access-control-allow-origin" not in response.headers  # the browser keeps the reply from the page


def test_calls_without_an_origin_are_answered_as_ever(cors_server: dataserve.RunningServer) -> None:
    with dataserve.HTTPDataClient(cors_server.port, "http://127.0.0.1:", token=TOKEN, timeout=30) as client:
        assert client.send("/echo", [1, 2]) == [1, 2]
    assert "access-control-allow-origin" not in _put(cors_server.url, None).headers


def test_without_cors_origins_a_preflight_is_not_allowed(server: dataserve.RunningServer) -> None:
    assert _preflight(server.url, PAGE_ORIGIN).status_code == 405


CALL_JS = Path(__file__).parent.parent / "docs" / "examples" / "browser_call.js"
"""The docs' function that calls a server from a page: the page below uses it as it is."""

_PAGE = """<!doctype html>
<title>dataserve from a browser</title>
<script>%(call_js)s</script>
<script>
const server = %(server)s, token = %(token)s, next = %(next)s;
const bytes = new Uint8Array([0, 1, 2, 255]);
async function attempt(call) {
  try { return {value: await call()}; } catch (error) { return {error: error.name + ": " + error.message}; }
}
(async () => {
  const report = {origin: location.origin};
  report.json = await attempt(() => callDataserve(server, "/echo", {a: [1, 2]}, token));
  report.json_type = await attempt(() => callDataserve(server, "/type", {a: [1, 2]}, token));
  report.text = await attempt(() => callDataserve(server, "/echo", "h\\u00e9llo", token));
  report.text_type = await attempt(() => callDataserve(server, "/type", "h\\u00e9llo", token));
  report.bytes = await attempt(async () => Array.from(await callDataserve(server, "/echo", bytes, token)));
  report.bytes_type = await attempt(() => callDataserve(server, "/type", bytes, token));
  report.missing = await attempt(() => callDataserve(server, "/missing", 1, token));
  report.no_token = await attempt(() => callDataserve(server, "/echo", 1, null));
  await fetch("/report", {method: "POST", body: JSON.stringify(report)});
  if (next) location.href = next;
})();
</script>
"""


def _page(server: str, next_url: str | None) -> str:
    values = {"server": server, "token": TOKEN, "next": next_url}
    return _PAGE % {
        "call_js": CALL_JS.read_text(),
        **{name: json.dumps(value) for name, value in values.items()},
    }


@pytest.mark.skipif(CHROMIUM is None, reason="needs Chromium (apt-get install chromium): not found on PATH")
def test_chromium_calls_the_server_with_fetch_from_a_listed_origin_and_not_from_another() -> None:
    with (
        Origin({}) as listed,
        Origin({}) as unlisted,
        dataserve.serve(EchoHandler, port=0, cors_origins=[listed.url], token=TOKEN) as running,
    ):
        unlisted.pages["/page"] = _page(running.url, None)
        listed.pages["/page"] = _page(running.url, unlisted.url + "/page")
        with chromium(listed.url + "/page"):
            allowed = wait_for_reports(listed, 1)[0]
            refused = wait_for_reports(unlisted, 1)[0]
    assert allowed["json"] == {"value": {"a": [1, 2]}}
    assert allowed["text"] == {"value": "h\u00e9llo"}
    assert allowed["bytes"] == {"value": [0, 1, 2, 255]}
    assert [allowed[kind]["value"] for kind in ("json_type", "text_type", "bytes_type")] == [
        "dict",
        "str",
        "bytes",
    ]
    assert allowed["missing"]["error"].startswith(
        "Error: 404 from /missing: EchoHandler.handle_request returned None"
    )
    assert allowed["no_token"]["error"].startswith("Error: 401 from /echo: ")
    assert refused["origin"] == unlisted.url
    assert refused["json"] == {
        "error": "TypeError: Failed to fetch"
    }  # the browser kept the reply from the page

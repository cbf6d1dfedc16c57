"""Metrics: Prometheus text at GET /metrics, counting the calls of both lanes, behind the token."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

import dataserve

from .conftest import EchoHandler, run_in_fresh_python, serve_app, wait_for

parser = pytest.importorskip("prometheus_client.parser")

TOKEN = "s3cret"


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Each sample of the metrics ``text``: (name, sorted labels) -> value."""
    found = {}
    for family in parser.text_string_to_metric_families(text):
        for sample in family.samples:
            found[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return found


def scrape(url: str, token: str | None = TOKEN) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    headers = {"authorization": f"Bearer {token}"} if token else {}
    response = httpx.get(url + "/metrics", headers=headers, timeout=30)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/plain; version=")
    return samples(response.text)


def calls(found: dict[tuple[str, tuple[tuple[str, str], ...]], float], status: str) -> float:
    return found.get(("dataserve_calls_total", (("status", status),)), 0.0)


@pytest.fixture(scope="module")
def metered(server_lane: str) -> Iterator[dataserve.RunningServer]:
    with dataserve.serve(EchoHandler, port=0, metrics=True, token=TOKEN, max_concurrency=2) as running:
        yield running


@pytest.fixture
def client(metered: dataserve.RunningServer) -> Iterator[dataserve.HTTPDataClient]:
    with dataserve.HTTPDataClient(metered.port, "http://127.0.0.1:", token=TOKEN, timeout=30) as http_client:
        yield http_client


def test_calls_are_counted_by_status_with_their_bytes_and_durations(
    metered: dataserve.RunningServer, client: dataserve.HTTPDataClient
) -> None:
    before = scrape(metered.url)
    for _ in range(3):
        assert client.send("/echo", "abcd") == "abcd"
    with pytest.raises(dataserve.ResourceNotFound):
        client.send("/missing", 1)
    after = scrape(metered.url)
    assert calls(after, "200") - calls(before, "200") == 3
    assert calls(after, "404") - calls(before, "404") == 1
    count = ("dataserve_call_duration_seconds_count", ())
    assert after[count] - before[count] == 4
    request_bytes = ("dataserve_request_bytes_total", ())
    assert after[request_bytes] - before.get(request_bytes, 0) == 3 * 4 + 1  # "abcd" is text; 1 is JSON
    response_bytes = ("dataserve_response_bytes_total", ())
    assert after[response_bytes] - before.get(response_bytes, 0) > 3 * 4
    assert after[("dataserve_ready", ())] == 1
    assert after[("dataserve_calls_in_flight", ())] == 0


def test_a_call_under_way_is_in_flight_until_it_is_answered(
    metered: dataserve.RunningServer, client: dataserve.HTTPDataClient
) -> None:
    done = threading.Event()

    def slow() -> None:
        client.send("/sleep", 1.0)
        done.set()

    caller = threading.Thread(target=slow)
    caller.start()
    try:
        in_flight = ("dataserve_calls_in_flight", ())
        wait_for(lambda: scrape(metered.url)[in_flight] == 1, "the slow call in flight", 30)
    finally:
        caller.join(30)
    assert done.is_set()
    assert scrape(metered.url)[in_flight] == 0


def test_resources_are_not_labels(metered: dataserve.RunningServer, client: dataserve.HTTPDataClient) -> None:
    for number in range(20):
        client.send(f"/item/{number}", number)
    after = scrape(metered.url)
    assert all("/item/" not in value for _, labels in after for _, value in labels)
    assert {name for name, labels in after if labels} <= {
        "dataserve_calls_total",
        "dataserve_calls_created",
        "dataserve_call_duration_seconds_bucket",
    }


def test_metrics_need_the_token_of_a_server_that_has_one(metered: dataserve.RunningServer) -> None:
    response = httpx.get(metered.url + "/metrics", timeout=30)
    assert response.status_code == 401
    assert "open_metrics" in response.json()["message"]
    wrong = httpx.get(metered.url + "/metrics", headers={"authorization": "Bearer nope"}, timeout=30)
    assert wrong.status_code == 401


def test_open_metrics_serves_them_without_the_token(server_lane: str) -> None:
    with dataserve.serve(EchoHandler, port=0, metrics=True, open_metrics=True, token=TOKEN) as running:
        assert ("dataserve_ready", ()) in scrape(running.url, token=None)
        client = dataserve.HTTPDataClient(running.port, "http://127.0.0.1:", timeout=30)
        with client, pytest.raises(dataserve.AuthenticationError):
            client.send("/x", 1)  # calls still need it


def test_without_metrics_the_path_is_a_resource_like_any_other(server: dataserve.RunningServer) -> None:
    assert httpx.get(server.url + "/metrics", timeout=30).status_code == 405
    with dataserve.HTTPDataClient(server.port, "http://127.0.0.1:", timeout=30) as client:
        assert client.send("/metrics", "mine") == "mine"


class _SlowSetup(dataserve.HTTPDataHandler):
    def __init__(self) -> None:
        self.go = threading.Event()

    def setup(self) -> None:
        assert self.go.wait(30)

    def handle_request(self, resource: str, payload: Any) -> Any:
        return payload


def test_readiness_and_setup_time_follow_the_handlers_setup() -> None:
    handler = _SlowSetup()
    app = dataserve.create_app(handler, metrics=True)
    with serve_app(app) as port:
        url = f"http://127.0.0.1:{port}"
        loading = scrape(url, token=None)
        assert loading[("dataserve_ready", ())] == 0
        assert ("dataserve_setup_duration_seconds", ()) not in loading or loading[
            ("dataserve_setup_duration_seconds", ())
        ] == 0
        handler.go.set()
        wait_for(lambda: scrape(url, token=None)[("dataserve_ready", ())] == 1, "ready", 30)
        assert scrape(url, token=None)[("dataserve_setup_duration_seconds", ())] > 0


def test_metrics_without_prometheus_client_say_what_to_install() -> None:
    run_in_fresh_python(
        "import sys; sys.modules['prometheus_client'] = None\n"
        "import dataserve\n"
        "from tests.conftest import EchoHandler\n"
        "try:\n"
        "    dataserve.create_app(EchoHandler, metrics=True)\n"
        "except dataserve.DataServeError as exc:\n"
        "    assert 'pip install prometheus-client' in str(exc), exc\n"
        "else:\n"
        "    raise AssertionError('no error')\n"
    )

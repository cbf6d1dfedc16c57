"""Access tokens: where they come from, and a real server that answers only calls carrying its own."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

import dataserve
from dataserve._listen import warn_if_open as _warn_if_open
from dataserve._token import TOKEN_ENV, authorization, refusal, resolve_token
from tests.conftest import EchoHandler

pytestmark = pytest.mark.usefixtures("server_lane")

TOKEN = "s3cret-token"


def test_token_given_wins_over_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(TOKEN_ENV, "from-env")
    assert resolve_token("given") == "given"


def test_token_comes_from_the_environment_when_none_is_given(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(TOKEN_ENV, "from-env")
    assert resolve_token(None) == "from-env"


def test_empty_token_means_none(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(TOKEN_ENV, "from-env")
    assert resolve_token("") is None
    monkeypatch.setenv(TOKEN_ENV, "")
    assert resolve_token(None) is None


def test_refusal_accepts_only_the_bearer_token() -> None:
    assert refusal(authorization(TOKEN), TOKEN) is None
    assert refusal(f"bearer {TOKEN}", TOKEN) is None
    assert "needs a token" in str(refusal(None, TOKEN))
    assert "needs a token" in str(refusal(f"Basic {TOKEN}", TOKEN))
    assert "token is wrong" in str(refusal("Bearer nope", TOKEN))
    assert "token is wrong" in str(refusal(f"Bearer {TOKEN}x", TOKEN))


@pytest.fixture(scope="module")
def guarded(server_lane: str) -> Iterator[httpx.Client]:
    with dataserve.serve(EchoHandler, token=TOKEN) as server, httpx.Client(base_url=server.url) as http:
        yield http


def test_call_without_token_is_401_and_names_the_header(guarded: httpx.Client) -> None:
    reply = guarded.put("/echo", json=[1])
    assert reply.status_code == 401
    assert reply.headers["www-authenticate"] == "Bearer"
    assert reply.json()["error"] == "unauthorized"
    assert "Authorization: Bearer <token>" in reply.json()["message"]


def test_call_with_wrong_token_is_401(guarded: httpx.Client) -> None:
    reply = guarded.put("/echo", json=[1], headers={"authorization": "Bearer wrong"})
    assert reply.status_code == 401
    assert "the token is wrong" in reply.json()["message"]


def test_call_with_the_token_is_answered(guarded: httpx.Client) -> None:
    reply = guarded.put("/echo", json=[1], headers={"authorization": authorization(TOKEN)})
    assert (reply.status_code, reply.json()) == (200, [1])


def test_refused_call_never_reaches_the_handler(guarded: httpx.Client) -> None:
    calls = guarded.put("/calls", headers={"authorization": authorization(TOKEN)}).json()
    guarded.put("/echo", json=[1])
    assert guarded.put("/calls", headers={"authorization": authorization(TOKEN)}).json() == calls + 1


def test_health_check_needs_no_token(guarded: httpx.Client) -> None:
    assert guarded.get("/healthz").status_code == 200


def test_server_takes_its_token_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(TOKEN_ENV, TOKEN)
    with dataserve.serve(EchoHandler) as server, httpx.Client(base_url=server.url) as http:
        assert http.put("/echo", json=1).status_code == 401
        assert http.put("/echo", json=1, headers={"authorization": authorization(TOKEN)}).json() == 1


# These check the start-up warning without opening a port beyond loopback.
@pytest.mark.parametrize("host", ["0.0.0.0", "::", "10.1.2.3", "data.example.com"])
def test_serving_beyond_loopback_without_a_token_warns(host: str, capsys: pytest.CaptureFixture[str]) -> None:
    _warn_if_open(host, None)
    assert f"dataserve: warning: serving on {host} without a token" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("host", "token"), [("127.0.0.1", None), ("::1", None), ("localhost", None), ("0.0.0.0", TOKEN)]
)
def test_loopback_or_a_token_does_not_warn(
    host: str, token: str | None, capsys: pytest.CaptureFixture[str]
) -> None:
    _warn_if_open(host, token)
    assert capsys.readouterr().err == ""

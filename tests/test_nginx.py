"""Three replicas behind a real nginx, run with the recipe docs/scale-out/nginx.conf.

nginx (open source) checks no replica's health: the recipe leans on the drain, in which every
reply closes its connection, and on nginx sending a call whose connection was refused to the
next replica. Clients send POST, which nginx never resends once it went out: a PUT to a replica
killed mid-call is run again on another, as the last test shows.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from dataserve import ServerUnavailable
from tests.conftest import die_with_test, free_port
from tests.replicas import BOUND, Fleet, Load, recipe, rolling_restart, start_replicas

NGINX = shutil.which("nginx", path=os.pathsep.join([os.environ.get("PATH", ""), "/usr/sbin", "/sbin"]))

pytestmark = pytest.mark.skipif(NGINX is None, reason="nginx is not installed (apt-get install nginx)")

POST: dict[str, object] = {"method": "POST"}

_LOCAL = """
    access_log off;
    client_body_temp_path {tmp}/client_body;
    proxy_temp_path {tmp}/proxy;
    fastcgi_temp_path {tmp}/fastcgi;
    uwsgi_temp_path {tmp}/uwsgi;
    scgi_temp_path {tmp}/scgi;
"""
"""What a test's nginx needs besides the recipe: to keep its files in the test's directory."""


@pytest.fixture
def fleet(tmp_path: Path) -> Iterator[Fleet]:
    replicas = start_replicas(tmp_path, refuse_while_loading=False)
    port = free_port()
    config = tmp_path / "nginx.conf"
    text = recipe("nginx.conf", port, replicas)
    config.write_text(text.replace("http {\n", "http {\n" + _LOCAL.format(tmp=tmp_path), 1))
    directives = f"daemon off; pid {tmp_path}/nginx.pid; error_log {tmp_path}/error.log;"
    with (tmp_path / "nginx.log").open("w") as log:
        nginx = subprocess.Popen(
            [str(NGINX), "-p", str(tmp_path), "-c", str(config), "-g", directives],
            stdout=log,
            stderr=subprocess.STDOUT,
            preexec_fn=die_with_test,
        )
    running = Fleet(port, replicas, replicas[0].calls)
    try:
        running.wait_balanced(**POST)
        yield running
    finally:
        nginx.terminate()
        try:
            nginx.wait(BOUND)
        except subprocess.TimeoutExpired:
            nginx.kill()
            nginx.wait(BOUND)
        for replica in replicas:
            replica.kill()


def test_calls_spread_over_every_replica(fleet: Fleet) -> None:
    with fleet.client(**POST) as client:
        pids = [client.send("/call", {"id": f"spread-{i}"})["pid"] for i in range(30)]
    assert set(pids) == {replica.pid for replica in fleet.replicas}
    assert all(fleet.ran()[f"spread-{i}"] == 1 for i in range(30))


def test_a_rolling_restart_under_load_fails_no_call_and_runs_each_once(fleet: Fleet) -> None:
    with Load(fleet, options=POST) as load:
        new = rolling_restart(fleet, setup=1.0, up=lambda replica: fleet.ran_on(replica.pid))
        time.sleep(0.5)
    assert load.failed == []
    assert len(load.answered) > 100, "hardly any call went through during the restart"
    ran = fleet.ran()
    assert {call: count for call, count in ran.items() if count > 1} == {}
    assert all(ran[call] == 1 for call in load.answered)
    assert all(fleet.ran_on(pid) for pid in new), "a restarted replica took no call"


def test_a_post_to_a_replica_killed_mid_call_says_it_may_have_run_and_is_not_run_again(fleet: Fleet) -> None:
    error, _ = fleet.kill_mid_call("killed", delay=5, **POST)
    assert isinstance(error, ServerUnavailable)
    assert error.may_have_run
    time.sleep(1.0)  # time for a resend, were there one
    assert fleet.ran(".started")["killed"] == 1


def test_a_put_to_a_replica_killed_mid_call_is_run_again_on_another_so_clients_send_post(
    fleet: Fleet,
) -> None:
    reply, killed = fleet.kill_mid_call("put-twice", delay=1)
    assert isinstance(reply, dict)
    assert reply["pid"] != killed.pid  # nginx sent the PUT again, to another replica
    assert fleet.ran(".started")["put-twice"] == 2


def test_a_200_mib_body_goes_through(fleet: Fleet) -> None:
    with fleet.client(**POST) as client:
        assert client.send("/size", bytes(200 << 20)) == 200 << 20

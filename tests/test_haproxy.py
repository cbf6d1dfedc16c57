"""Three replicas behind a real HAProxy, run with the recipe docs/scale-out/haproxy.cfg.

Calls spread over the replicas; a rolling restart under load, each replica drained and started
again with a slow setup, fails no call and runs none twice; a replica killed in the middle of a
call gives its caller a ServerUnavailable that says the call may have run, and the call is not
run again elsewhere; a replica still loading gets no call; a 200 MiB body goes through.
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
from tests.conftest import die_with_test, free_port, wait_for
from tests.replicas import BOUND, Fleet, Load, recipe, rolling_restart, start_replicas

HAPROXY = shutil.which("haproxy", path=os.pathsep.join([os.environ.get("PATH", ""), "/usr/sbin", "/sbin"]))

pytestmark = pytest.mark.skipif(HAPROXY is None, reason="HAProxy is not installed (apt-get install haproxy)")


@pytest.fixture
def fleet(tmp_path: Path) -> Iterator[Fleet]:
    replicas = start_replicas(tmp_path)
    port = free_port()
    config = tmp_path / "haproxy.cfg"
    config.write_text(recipe("haproxy.cfg", port, replicas))
    with (tmp_path / "haproxy.log").open("w") as log:
        haproxy = subprocess.Popen(
            [str(HAPROXY), "-db", "-f", str(config)],
            stdout=log,
            stderr=subprocess.STDOUT,
            preexec_fn=die_with_test,
        )
    running = Fleet(port, replicas, replicas[0].calls)
    try:
        running.wait_balanced()
        yield running
    finally:
        haproxy.terminate()
        try:
            haproxy.wait(BOUND)
        except subprocess.TimeoutExpired:
            haproxy.kill()
            haproxy.wait(BOUND)
        for replica in replicas:
            replica.kill()


def test_calls_spread_over_every_replica(fleet: Fleet) -> None:
    with fleet.client() as client:
        pids = [client.send("/call", {"id": f"spread-{i}"})["pid"] for i in range(30)]
    assert set(pids) == {replica.pid for replica in fleet.replicas}
    assert all(fleet.ran()[f"spread-{i}"] == 1 for i in range(30))


def test_a_rolling_restart_under_load_fails_no_call_and_runs_each_once(fleet: Fleet) -> None:
    with Load(fleet) as load:
        new = rolling_restart(fleet, setup=1.0, up=lambda replica: fleet.ran_on(replica.pid))
        time.sleep(0.5)
    assert load.failed == []
    assert len(load.answered) > 100, "hardly any call went through during the restart"
    ran = fleet.ran()
    doubled = {call: count for call, count in ran.items() if count > 1}
    assert doubled == {}
    assert all(ran[call] == 1 for call in load.answered)
    assert all(fleet.ran_on(pid) for pid in new), "a restarted replica took no call"


def test_a_replica_killed_mid_call_says_it_may_have_run_and_it_is_not_run_again(fleet: Fleet) -> None:
    error, _ = fleet.kill_mid_call("killed", delay=5)
    assert isinstance(error, ServerUnavailable)
    assert error.may_have_run
    time.sleep(1.0)  # time for a resend, were there one
    assert fleet.ran(".started")["killed"] == 1
    assert fleet.ran()["killed"] == 0


def test_a_replica_still_loading_gets_no_call(fleet: Fleet) -> None:
    loading = fleet.replicas[0]
    loading.stop()
    loading.start(setup=3.0)
    with fleet.client() as client:
        for i in range(40):
            assert client.send("/call", {"id": f"while-loading-{i}"})["pid"] != loading.pid
    assert fleet.ran_on(loading.pid) == []
    wait_for(loading.ready, "the replica to load", BOUND)


def test_a_200_mib_body_goes_through(fleet: Fleet) -> None:
    body = bytes(200 << 20)
    with fleet.client() as client:
        assert client.send("/size", body) == 200 << 20

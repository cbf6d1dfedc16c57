"""The Kubernetes recipe, docs/scale-out/kubernetes.yaml: valid for the API server, consistent
with itself (the grace period covers the drain, readiness sees a drain before it ends, every
probe asks /healthz), and its container's command serves as written, probes and all."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from dataserve import HTTPDataClient
from dataserve._cli import parse
from dataserve._token import TOKEN_ENV
from tests.conftest import die_with_test, free_port, wait_for

yaml = pytest.importorskip("yaml")

ROOT = Path(__file__).resolve().parent.parent
RECIPE = ROOT / "docs" / "scale-out" / "kubernetes.yaml"
SHUTDOWN_TIMEOUT = 30
"""The server's default shutdown_timeout: what it gives calls under way once the drain ends."""
BOUND = 30.0


@pytest.fixture(scope="module")
def resources() -> dict[str, dict[str, Any]]:
    return {document["kind"]: document for document in yaml.safe_load_all(RECIPE.read_text())}


@pytest.fixture(scope="module")
def container(resources: dict[str, dict[str, Any]]) -> dict[str, Any]:
    [only] = resources["Deployment"]["spec"]["template"]["spec"]["containers"]
    return dict(only)


def test_every_resource_is_valid_for_the_api_server(resources: dict[str, dict[str, Any]]) -> None:
    kubernetes_validate = pytest.importorskip("kubernetes_validate")
    version = kubernetes_validate.latest_version()
    for resource in resources.values():
        kubernetes_validate.validate(resource, version, strict=True)  # raises on any fault


def test_the_grace_period_covers_the_drain_and_the_shutdown(
    resources: dict[str, dict[str, Any]], container: dict[str, Any]
) -> None:
    options = parse(container["command"][1:])
    grace = resources["Deployment"]["spec"]["template"]["spec"]["terminationGracePeriodSeconds"]
    assert options.drain_timeout > 0
    assert grace >= options.drain_timeout + SHUTDOWN_TIMEOUT
    readiness = container["readinessProbe"]
    assert readiness["periodSeconds"] * readiness["failureThreshold"] < options.drain_timeout
    liveness = container["livenessProbe"]
    assert liveness["periodSeconds"] * liveness["failureThreshold"] > grace  # never kills a pod that stops


def test_every_probe_asks_the_health_check_on_the_served_port(container: dict[str, Any]) -> None:
    options = parse(container["command"][1:])
    [port] = container["ports"]
    assert port["containerPort"] == options.port
    for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
        assert container[probe]["httpGet"] == {"path": "/healthz", "port": port["name"]}


def test_the_token_comes_from_the_secret_by_the_variable_dataserve_reads(
    resources: dict[str, dict[str, Any]], container: dict[str, Any]
) -> None:
    [variable] = container["env"]
    assert variable["name"] == TOKEN_ENV
    secret = resources["Secret"]
    assert variable["valueFrom"]["secretKeyRef"] == {"name": secret["metadata"]["name"], "key": "token"}
    assert "--token" not in " ".join(container["command"])


@pytest.fixture
def served(container: dict[str, Any], tmp_path: Path) -> Iterator[int]:
    """The container's command run here: this test's handler, on 127.0.0.1 at a free port."""
    port = free_port()
    command = [sys.executable, "-m", "dataserve", "serve", "tests.cli_handlers:ReplicaHandler"]
    for option in container["command"][3:]:
        if option.startswith("--host="):
            option = "--host=127.0.0.1"
        elif option.startswith("--port="):
            option = f"--port={port}"
        command.append(option)
    environment = dict(os.environ, PYTHONPATH=str(ROOT), DATASERVE_TEST_CALLS=str(tmp_path))
    environment[TOKEN_ENV] = "a-token-from-the-secret"
    with (tmp_path / "server.log").open("w") as log:
        process = subprocess.Popen(
            command,
            cwd=ROOT,
            env=environment,
            stderr=log,
            stdout=subprocess.DEVNULL,
            preexec_fn=die_with_test,
        )
    try:
        yield port
    finally:
        process.kill()
        process.wait(BOUND)


def test_the_containers_command_serves_and_answers_its_probes(served: int) -> None:
    def healthy() -> bool:
        try:
            return httpx.get(f"http://127.0.0.1:{served}/healthz", timeout=BOUND).status_code == 200
        except httpx.TransportError:
            return False

    wait_for(healthy, "the health check to answer 200", BOUND)
    with HTTPDataClient(
        served, "http://127.0.0.1:", token="a-token-from-the-secret", timeout=BOUND
    ) as client:
        assert client.send("/call", {"id": "from-the-pod"})["id"] == "from-the-pod"

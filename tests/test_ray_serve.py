"""The Ray Serve recipe, docs/scale-out/ray_serve.py, on a real local Ray: three replicas,
each with its own handler set up, answer typed calls through Ray Serve's HTTP proxy.

Opt-in (Ray is large and takes some 10 s to start): ``nox -s ray`` installs it and runs this.
"""

from __future__ import annotations

import importlib
import os
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from dataserve import HTTPDataClient, ResourceNotFound
from tests.conftest import free_port

ray = pytest.importorskip("ray", reason="Ray is opt-in: nox -s ray installs it and runs these tests")
serve = pytest.importorskip("ray.serve")

ROOT = Path(__file__).resolve().parent.parent
RECIPES = ROOT / "docs" / "scale-out"
BOUND = 30.0

HANDLER = """
import os
from dataserve import HTTPDataHandler

class Handler(HTTPDataHandler):
    def setup(self):
        self.model = {"answer": 42}

    def handle_request(self, resource, payload):
        if resource == "/pid":
            return os.getpid()
        if resource == "/model":
            return self.model.get(payload)
        return payload if resource == "/echo" else None
"""


@pytest.fixture(scope="module")
def port(tmp_path_factory: pytest.TempPathFactory) -> Iterator[int]:
    """Ray Serve on 127.0.0.1, running the recipe with a handler of this test's as mymodule."""
    modules = tmp_path_factory.mktemp("modules")
    (modules / "mymodule.py").write_text(textwrap.dedent(HANDLER))
    chosen = free_port()
    sys.path[:0] = [str(modules), str(RECIPES)]
    # The replicas import the recipe and the handler's module as the driver does.
    path = os.pathsep.join([str(modules), str(RECIPES), str(ROOT)])
    ray.init(num_cpus=2, include_dashboard=False, runtime_env={"env_vars": {"PYTHONPATH": path}})
    try:
        serve.start(http_options={"host": "127.0.0.1", "port": chosen})
        recipe = importlib.import_module("ray_serve")
        serve.run(recipe.app, route_prefix="/")
        yield chosen
    finally:
        serve.shutdown()
        ray.shutdown()
        sys.path.remove(str(modules))
        sys.path.remove(str(RECIPES))


def test_calls_reach_every_replica_each_with_its_handler_set_up(port: int) -> None:
    with HTTPDataClient(port, "http://127.0.0.1:", timeout=BOUND) as client:
        pids = {client.send("/pid", "which") for _ in range(60)}
        assert len(pids) == 3
        assert client.send("/model", "answer") == 42


def test_typed_payloads_and_errors_travel_as_they_do_without_ray(port: int) -> None:
    array = np.arange(1000, dtype=np.float32).reshape(10, 100)
    with HTTPDataClient(port, "http://127.0.0.1:", timeout=BOUND) as client:
        assert client.send("/echo", {"a": [1, 2.5, None]}) == {"a": [1, 2.5, None]}
        assert client.send("/echo", b"\x00\xff") == b"\x00\xff"
        assert np.array_equal(client.send("/echo", array), array)
        with pytest.raises(ResourceNotFound):
            client.send("/nothing", "here")

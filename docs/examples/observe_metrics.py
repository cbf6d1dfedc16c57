"""Needs prometheus-client: pip install prometheus-client (or '.[metrics]' in the dataserve checkout).

Metrics: ``metrics=True`` serves Prometheus text at GET /metrics."""

import contextlib
import sys
import urllib.request

try:
    import prometheus_client  # noqa: F401 (the server uses it)
except ImportError:
    sys.exit("this example needs prometheus-client: pip install prometheus-client")

from dataserve import HTTPDataClient, HTTPDataHandler, ResourceNotFound, serve

xdata = [1, 2, 3]


class MyDataHandler(HTTPDataHandler):
    def handle_request(self, resource, payload):
        if resource == "/xdata":
            return xdata + payload
        return None


with serve(MyDataHandler, port=0, metrics=True) as server:
    with HTTPDataClient(server.port, "http://127.0.0.1:") as client:
        for _ in range(3):
            client.send("/xdata", [4])
        with contextlib.suppress(ResourceNotFound):
            client.send("/ydata", None)
    # What Prometheus scrapes (here without the comments, the _created series and the buckets).
    with urllib.request.urlopen(server.url + "/metrics") as reply:
        text = reply.read().decode()
    shown = [
        line
        for line in text.splitlines()
        if not line.startswith("#")
        and "_created" not in line
        and "_bucket" not in line
        and "_sum" not in line
    ]
    print("\n".join(shown))
    assert 'dataserve_calls_total{status="200"} 3.0' in shown
    assert 'dataserve_calls_total{status="404"} 1.0' in shown
    assert "dataserve_ready 1.0" in shown

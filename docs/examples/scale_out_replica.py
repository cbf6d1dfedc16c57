"""A replica ready for a load balancer: a health check that says when it can take calls,
a drain before it stops, and a client that knows whether a failed call ran."""

import threading

import httpx

from dataserve import HTTPDataClient, HTTPDataHandler, ServerUnavailable, create_app, serve


class ModelHandler(HTTPDataHandler):
    """Loads its model in setup(); until then a replica with refuse_while_loading says so."""

    def __init__(self):
        self.loaded = threading.Event()

    def setup(self):
        self.loaded.wait(30)  # stands for loading a large model
        self.model = {"answer": 42}

    def handle_request(self, resource, payload):
        return self.model.get(payload)


# The app's options are those of run_http_server and `dataserve serve`:
# --drain-timeout SECONDS and --refuse-while-loading.
app = create_app(ModelHandler(), refuse_while_loading=True, drain_timeout=5)

handler = ModelHandler()
handler.loaded.set()
with serve(handler, drain_timeout=0.5) as server:
    print(httpx.get(f"{server.url}/healthz").json())  # what a balancer's health check reads
    with HTTPDataClient(server.port, method="POST") as client:  # POST: no proxy sends it twice
        print(client.send("/model", "answer"))

with HTTPDataClient(server.port, timeout=5) as client:
    try:
        client.send("/model", "answer")
    except ServerUnavailable as exc:
        print("may have run:", exc.may_have_run)  # refused: safe to send to another replica

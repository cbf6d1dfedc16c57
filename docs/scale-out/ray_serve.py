"""dataserve on Ray Serve: three replicas of one handler, each a Ray actor with its own copy
of the model, behind Ray Serve's HTTP proxy. Run it with

    serve run ray_serve:app

and call http://127.0.0.1:8000 as any dataserve server (see docs/scale-out.md). Ray Serve
balances, restarts and scales the replicas; each replica builds its own app, so its handler's
setup() runs in the replica.
"""

from ray import serve

from dataserve import create_app


def build_app():  # called in each replica
    from mymodule import Handler  # your handler

    return create_app(Handler)


Model = serve.deployment(
    serve.ingress(build_app)(),
    name="model",
    num_replicas=3,
    ray_actor_options={"num_cpus": 0.5},
)
app = Model.bind()

"""Mount a dataserve app under /data in a Starlette app, and serve it with the uvicorn command."""

import re
import signal
import subprocess
import sys
from pathlib import Path

from starlette.applications import Starlette
from starlette.responses import PlainTextResponse
from starlette.routing import Mount, Route

from dataserve import HTTPDataClient, HTTPDataHandler, create_app


class Squares(HTTPDataHandler):
    def setup(self):
        self.table = {n: n * n for n in range(1000)}

    def handle_request(self, resource, payload):
        if resource == "/square":
            return self.table[payload]
        return None


async def home(request):
    return PlainTextResponse("the host app's own page")


data_app = create_app(Squares)
# Passing the data app's lifespan on runs Squares.setup() as the server starts.
app = Starlette(routes=[Route("/", home), Mount("/data", app=data_app)], lifespan=data_app.lifespan)


if __name__ == "__main__":
    # What you would type in a shell: uvicorn deploy_mount:app --port 8000
    command = [
        sys.executable,
        "-m",
        "uvicorn",
        "deploy_mount:app",
        "--port",
        "0",
        "--log-level",
        "info",
        "--no-access-log",
    ]
    server = subprocess.Popen(command, cwd=Path(__file__).parent, stderr=subprocess.PIPE, text=True)
    try:
        for line in server.stderr:
            found = re.search(r"Uvicorn running on http://127\.0\.0\.1:(\d+)", line)
            if found:
                port = int(found.group(1))
                break
        else:
            raise SystemExit("uvicorn did not start")
        with HTTPDataClient(address=f"http://127.0.0.1:{port}/data") as client:
            print("the square of 12:", client.send("/square", 12))
            assert client.send("/square", 12) == 144
    finally:
        server.send_signal(signal.SIGINT)
        server.communicate(timeout=30)
    print("uvicorn exited with", server.returncode)
    assert server.returncode == 0

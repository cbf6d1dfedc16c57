"""Needs FastAPI: pip install fastapi.

Mount a dataserve app under /data in a FastAPI app, beside the API's own routes."""

import re
import signal
import subprocess
import sys
from pathlib import Path

try:
    from fastapi import FastAPI
except ImportError:
    sys.exit("this example needs FastAPI: pip install fastapi")

from dataserve import HTTPDataClient, HTTPDataHandler, create_app


class Inventory(HTTPDataHandler):
    async def setup(self):
        self.stock = {"apple": 12, "pear": 3}

    async def handle_request(self, resource, payload):
        if resource == "/stock":
            return self.stock.get(payload, 0)
        return None


data_app = create_app(Inventory)
app = FastAPI(lifespan=data_app.lifespan)
app.mount("/data", data_app)


@app.get("/status")
def status():
    return {"service": "shop", "data": "/data"}


if __name__ == "__main__":
    # What you would type in a shell: uvicorn deploy_fastapi:app --port 8000
    command = [
        sys.executable,
        "-m",
        "uvicorn",
        "deploy_fastapi:app",
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
            print("pears in stock:", client.send("/stock", "pear"))
            assert client.send("/stock", "pear") == 3
    finally:
        server.send_signal(signal.SIGINT)
        server.communicate(timeout=30)
    assert server.returncode == 0

"""Browser callers: ``cors_origins`` lets pages from those origins call the server with fetch.

A browser first asks the server whether a page of its origin may call (a preflight); this
asks as the browser does, for a page of a listed origin and one of another.
"""

import urllib.error
import urllib.request

from dataserve import HTTPDataHandler, serve

xdata = [1, 2, 3]


class MyDataHandler(HTTPDataHandler):
    def handle_request(self, resource, payload):
        return xdata + payload if resource == "/xdata" else None


def preflight(url, origin):
    headers = {
        "Origin": origin,
        "Access-Control-Request-Method": "PUT",
        "Access-Control-Request-Headers": "content-type, authorization",
    }
    request = urllib.request.Request(url + "/xdata", method="OPTIONS", headers=headers)
    try:
        with urllib.request.urlopen(request) as reply:
            return reply.status, reply.headers.get("Access-Control-Allow-Origin")
    except urllib.error.HTTPError as refused:
        return refused.code, refused.headers.get("Access-Control-Allow-Origin")


with serve(MyDataHandler, port=0, cors_origins=["https://app.example.com"], token="s3cret") as server:
    for origin in ["https://app.example.com", "https://elsewhere.example"]:
        status, allowed = preflight(server.url, origin)
        print(f"a page of {origin}: {status}, Access-Control-Allow-Origin: {allowed}")
    assert preflight(server.url, "https://app.example.com") == (200, "https://app.example.com")
    assert preflight(server.url, "https://elsewhere.example") == (400, None)

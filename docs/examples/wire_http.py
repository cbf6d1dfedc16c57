"""The HTTP under the calls, seen with plain httpx as any other HTTP client would see it."""

import httpx

from dataserve import HTTPDataHandler, serve


class MyDataHandler(HTTPDataHandler):
    def handle_request(self, resource, payload):
        if resource == "/xdata":
            return [1, 2, 3, *payload]
        if resource == "/echo":
            return payload
        if resource == "/type":
            return type(payload).__name__
        if resource == "/fail":
            raise KeyError(payload)
        return None


JSON = {"Content-Type": "application/json"}

print("The server logs the traceback of the failing call below to stderr.")

with serve(MyDataHandler, port=0) as server, httpx.Client(base_url=server.url) as http:
    # 200: the reply is typed by its Content-Type like the request.
    response = http.put("/xdata", content=b"[4, 5, 6]", headers=JSON)
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json"
    assert response.content == b"[1,2,3,4,5,6]"

    response = http.put("/echo", content="héllo".encode(), headers={"Content-Type": "text/plain"})
    assert response.headers["content-type"] == "text/plain; charset=utf-8"
    assert response.text == "héllo"

    response = http.put("/echo", content=b"\x00\xff", headers={"Content-Type": "application/octet-stream"})
    assert response.headers["content-type"] == "application/octet-stream"
    assert response.content == b"\x00\xff"

    # An empty body without a Content-Type is None; JSON null is None too.
    assert http.put("/type").text == "NoneType"
    assert http.put("/type", content=b"null", headers=JSON).text == "NoneType"

    # NaN and the infinities travel as the tokens Python's json module reads and writes.
    response = http.put("/echo", content=b"[NaN, Infinity, -Infinity]", headers=JSON)
    assert response.content == b"[NaN,Infinity,-Infinity]"

    # Every failure has a JSON body with "error" and "message".
    response = http.put("/nothing", content=b"1", headers=JSON)
    print(response.status_code, response.json())
    assert response.status_code == 404
    assert response.json()["error"] == "not_found"

    response = http.put("/fail", content=b"1", headers=JSON)
    print(response.status_code, response.json())
    assert response.status_code == 500
    assert response.json() == {"error": "handler_error", "message": "1", "exception": "KeyError"}

    for body, content_type in [(b"[1,", "application/json"), (b"\xff", "text/plain; charset=utf-8")]:
        response = http.put("/echo", content=body, headers={"Content-Type": content_type})
        print(response.status_code, response.json())
        assert response.status_code == 400
        assert response.json()["error"] == "bad_payload"

    # What curl sends with --data-binary unless told otherwise.
    form = {"Content-Type": "application/x-www-form-urlencoded"}
    response = http.put("/echo", content=b"a=1", headers=form)
    print(response.status_code, response.json())
    assert response.status_code == 415
    assert response.json()["error"] == "unsupported_media_type"

    response = http.delete("/xdata")
    print(response.status_code, response.json(), "Allow:", response.headers["allow"])
    assert response.status_code == 405
    assert response.json()["error"] == "method_not_allowed"
    assert response.headers["allow"] == "HEAD, POST, PUT"

    # HEAD answers 200 on any path without calling the handler; GET /healthz is the health check.
    assert http.head("/nothing").status_code == 200
    response = http.get("/healthz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}
    print("all status codes as documented")

"""The quickstart example in one process: serve the handler in the background and call it."""

from dataserve import HTTPDataClient, HTTPDataHandler, serve

xdata = [1, 2, 3]


class MyDataHandler(HTTPDataHandler):
    def handle_request(self, resource, payload):
        if resource == "/xdata":
            return xdata + payload
        elif resource == "/ydata":
            return 2
        return None


with serve(MyDataHandler, port=0) as server:
    print(f"serving on {server.url}")
    with HTTPDataClient(server.port, "http://127.0.0.1:") as client:
        ret = client.send("/xdata", [4, 5, 6])
        print("/xdata ->", ret)
        assert ret == [1, 2, 3, 4, 5, 6]

        ret = client.send("/ydata")
        print("/ydata ->", ret)
        assert ret == 2
print("server stopped")

"""A codec of one's own: datetimes as ISO 8601 text, on both sides, without pickle."""

import datetime

import httpx

import dataserve
from dataserve import HTTPDataClient, HTTPDataHandler, PayloadError, serve


class DatetimeCodec(dataserve.Codec):
    """A datetime.datetime travels as its ISO 8601 text, time zone and all."""

    content_type = "application/vnd.example.datetime"
    types = (datetime.datetime,)

    def encode(self, value):
        return value.isoformat().encode("ascii")

    def decode(self, body):
        return datetime.datetime.fromisoformat(body.decode("ascii"))


class Calendar(HTTPDataHandler):
    def handle_request(self, resource, payload):
        if resource == "/next-day":
            return payload + datetime.timedelta(days=1)
        if resource == "/weekday":
            return payload.strftime("%A")
        return None


paris = datetime.timezone(datetime.timedelta(hours=2))
when = datetime.datetime(2024, 5, 31, 18, 30, tzinfo=paris)

# The same codec on both sides: the server's (codecs=[...]) and the client's.
with (
    serve(Calendar, port=0, codecs=[DatetimeCodec()]) as server,
    HTTPDataClient(server.port, "http://127.0.0.1:", codecs=[DatetimeCodec()]) as client,
):
    tomorrow = client.send("/next-day", when)
    print("next day:", tomorrow.isoformat())
    assert tomorrow == datetime.datetime(2024, 6, 1, 18, 30, tzinfo=paris)
    assert client.send("/weekday", when) == "Friday"

    # On the wire it is text of its own Content-Type: any HTTP client can send one.
    with httpx.Client(base_url=server.url) as http:
        response = http.put(
            "/next-day",
            content=b"2024-12-31T23:00:00+00:00",
            headers={"Content-Type": DatetimeCodec.content_type},
        )
        print(response.headers["content-type"], response.text)
        assert response.text == "2025-01-01T23:00:00+00:00"

        # A body the codec cannot read is a 400, as a bad body of dataserve's own types is.
        response = http.put(
            "/next-day", content=b"tomorrow", headers={"Content-Type": DatetimeCodec.content_type}
        )
        print(response.status_code, response.json()["message"])
        assert response.status_code == 400

    # A client without the codec refuses the value before sending anything.
    with HTTPDataClient(server.port, "http://127.0.0.1:") as plain:
        try:
            plain.send("/next-day", when)
        except PayloadError as exc:
            print("without the codec:", str(exc).split(":")[0])
        else:
            raise AssertionError("expected PayloadError")

# Or register it once for every app and client of the process (for `dataserve serve`, in
# the handler's module, which each worker imports).
dataserve.register_codec(DatetimeCodec())
with serve(Calendar, port=0) as server, HTTPDataClient(server.port, "http://127.0.0.1:") as client:
    assert client.send("/next-day", when).day == 1
    print("registered for the process: ok")

"""A codec of one's own: a dict of bytes values (an image and its label) in a length-prefixed format."""

import struct

import httpx

import dataserve
from dataserve import HTTPDataClient, HTTPDataHandler, serve


class FieldsCodec(dataserve.Codec):
    """A dict of str keys to bytes values, as: a 4-byte count of fields, then for each field its
    name and its value, each a 4-byte big-endian length and that many bytes (the name in UTF-8).

    A dict JSON can carry still travels as JSON: dataserve asks a codec only for values its
    own types cannot carry, such as a dict that holds bytes.
    """

    content_type = "application/vnd.example.fields"
    types = (dict,)

    def encode(self, value):
        parts = [struct.pack(">I", len(value))]
        for name, data in value.items():
            key = name.encode("utf-8")
            parts += [struct.pack(">I", len(key)), key, struct.pack(">I", len(data)), bytes(data)]
        return b"".join(parts)

    def decode(self, body):
        view = memoryview(body)
        (count,), at = struct.unpack_from(">I", view), 4
        fields = {}
        for _ in range(count):
            (size,) = struct.unpack_from(">I", view, at)
            name = bytes(view[at + 4 : at + 4 + size]).decode("utf-8")
            at += 4 + size
            (size,) = struct.unpack_from(">I", view, at)
            if at + 4 + size > len(view):
                raise ValueError(f"field {name!r} says {size} bytes, but the body ends first")
            fields[name] = bytes(view[at + 4 : at + 4 + size])
            at += 4 + size
        if at != len(view):
            raise ValueError(f"{len(view) - at} bytes after the last field")
        return fields


class Labeller(HTTPDataHandler):
    def __init__(self):
        self.images = {}

    def handle_request(self, resource, payload):
        if resource == "/store":
            self.images[payload["label"].decode()] = payload["image"]
            return {"stored": payload["label"].decode(), "bytes": len(payload["image"])}
        if resource == "/fetch":
            return {"image": self.images[payload], "label": payload.encode()}
        return None


png = b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 4  # stands for an image file's bytes

with (
    serve(Labeller, port=0, codecs=[FieldsCodec()]) as server,
    HTTPDataClient(server.port, "http://127.0.0.1:", codecs=[FieldsCodec()]) as client,
):
    stored = client.send("/store", {"image": png, "label": b"cat"})
    print("stored:", stored)  # a dict JSON can carry comes back as JSON
    assert stored == {"stored": "cat", "bytes": len(png)}

    fetched = client.send("/fetch", "cat")
    print("fetched:", sorted(fetched), len(fetched["image"]), "bytes of image")
    assert fetched == {"image": png, "label": b"cat"}

    # A body that breaks the format is a 400 that says why.
    with httpx.Client(base_url=server.url) as http:
        response = http.put(
            "/store",
            content=b"\x00\x00\x00\x01\x00\x00\x00\x05image",
            headers={"Content-Type": FieldsCodec.content_type},
        )
        print(response.status_code, response.json()["message"])
        assert response.status_code == 400

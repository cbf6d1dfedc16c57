"""Needs NumPy: pip install '.[numpy]' (from the dataserve checkout).

NumPy arrays as payloads: what arrives, what is read-only, and what is refused."""

import io
import sys

import httpx

try:
    import numpy as np
except ImportError:
    sys.exit("this example needs NumPy: pip install numpy (or '.[numpy]' from the dataserve checkout)")

from dataserve import HTTPDataClient, HTTPDataHandler, PayloadError, RemoteError, serve


class ArrayHandler(HTTPDataHandler):
    def handle_request(self, resource, payload):
        if resource == "/echo":
            return payload
        if resource == "/describe":
            return {
                "dtype": payload.dtype.str,
                "shape": payload.shape,
                "fortran_order": payload.flags.f_contiguous and not payload.flags.c_contiguous,
                "writeable": payload.flags.writeable,
            }
        if resource == "/normalize":
            # A new array computed from the payload: the payload itself is read-only.
            return (payload - payload.mean()) / payload.std()
        if resource == "/clip":
            payload = payload.copy()  # a writable copy, to change in place
            payload[payload < 0] = 0
            return payload
        if resource == "/increment":
            payload += 1  # fails: the payload is read-only
            return payload
        if resource == "/stats":
            # NumPy scalars (float64, int64) travel as JSON numbers.
            return {"mean": payload.mean(), "max": payload.max(), "size": payload.size}
        return None


NPY = {"Content-Type": "application/x-npy"}

print("The server logs the traceback of the failing call below to stderr.")

with serve(ArrayHandler, port=0) as server, HTTPDataClient(server.port, "http://127.0.0.1:") as client:
    # An array arrives with its dtype, shape and contents: C or Fortran order, big- or
    # little-endian, 0-d or empty, and of any dtype but object.
    for array in [
        np.arange(12.0).reshape(3, 4),
        np.asfortranarray(np.arange(6, dtype=">i4").reshape(2, 3)),
        np.array(2.5),
        np.zeros((0, 3)),
        np.array(["2024-01-01", "NaT"], dtype="datetime64[D]"),
        np.array(["é", "名前"]),
        np.array([(1, 2.0)], dtype=[("id", "u2"), ("value", "f4")]),
    ]:
        reply = client.send("/echo", array)
        assert reply.dtype == array.dtype
        assert reply.shape == array.shape
        assert reply.tobytes() == array.tobytes()
    print("round trips: ok")

    description = client.send("/describe", np.asfortranarray(np.ones((3, 2), dtype="<f4")))
    print("the handler gets:", description)
    assert description == {"dtype": "<f4", "shape": [3, 2], "fortran_order": True, "writeable": False}

    # The array that arrives is a read-only view of the body, on either side: copy it to
    # change it in place.
    normalized = client.send("/normalize", np.array([1.0, 2.0, 3.0]))
    assert not normalized.flags.writeable
    mine = normalized.copy()
    mine *= 2
    assert client.send("/clip", np.array([-1, 0, 1])).tolist() == [0, 0, 1]
    try:
        client.send("/increment", np.arange(3))
    except RemoteError as exc:
        print("writing to the payload:", exc.remote_type, exc.remote_message)
        message = exc.remote_message
    else:
        raise AssertionError("expected RemoteError")
    assert "read-only" in message

    # NumPy bool, integer and float scalars travel as JSON, alone or in lists and dicts.
    stats = client.send("/stats", np.array([1, 5, 3], dtype=np.int16))
    print("stats ->", stats)
    assert stats == {"mean": 3.0, "max": 5, "size": 3}

    # Refused before sending: arrays of Python objects (they would need pickle), arrays
    # inside lists or dicts, and NumPy scalars JSON has no value for.
    for value in [np.array([1, "a", None], dtype=object), [np.arange(3)], np.complex128(1j)]:
        try:
            client.send("/echo", value)
        except PayloadError as exc:
            print(f"{type(value).__name__} refused:", str(exc).split(";")[0])
        else:
            raise AssertionError(f"expected PayloadError for {value!r}")
    # A 0-d array carries the scalar, dtype and all.
    assert client.send("/echo", np.asarray(np.complex128(1j))) == 1j

    # Without dataserve: the body is an .npy file, as numpy.save writes and numpy.load reads.
    with httpx.Client(base_url=server.url) as http:
        sent = io.BytesIO()
        np.save(sent, np.eye(2))
        response = http.put("/normalize", content=sent.getvalue(), headers=NPY)
        assert response.headers["content-type"] == "application/x-npy"
        print("numpy.load of the reply:", np.load(io.BytesIO(response.content)).tolist())

        # A body that is not a valid .npy file, or one holding pickled objects, is a 400.
        response = http.put("/echo", content=sent.getvalue()[:-8], headers=NPY)
        print(response.status_code, response.json())
        assert response.status_code == 400

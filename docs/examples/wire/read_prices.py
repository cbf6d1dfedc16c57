"""Needs pyarrow: pip install pyarrow. Reads a table from the server of tables.py, without dataserve."""

import urllib.request

import pyarrow

request = urllib.request.Request("http://127.0.0.1:5001/prices", method="PUT")
with urllib.request.urlopen(request) as response:
    print(response.headers["Content-Type"])
    table = pyarrow.ipc.open_stream(response.read()).read_all()

print(table.schema.metadata[b"dataserve.kind"])
print(table.select(["ticker", "price", "volume"]).to_pydict())
print(table.to_pandas())

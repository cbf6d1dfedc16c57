"""Needs pandas, polars and pyarrow: pip install '.[tables]' (from the dataserve checkout).

Tables as payloads: pandas, polars and pyarrow values arrive as the kind they left as."""

import sys

try:
    import pandas as pd
    import polars as pl
    import pyarrow as pa
except ImportError:
    sys.exit(
        "this example needs pandas, polars and pyarrow: pip install pandas polars pyarrow "
        "(or '.[tables]' from the dataserve checkout)"
    )

from dataserve import HTTPDataClient, HTTPDataHandler, PayloadError, serve


class TableHandler(HTTPDataHandler):
    def handle_request(self, resource, payload):
        if resource == "/echo":
            return payload
        if resource == "/describe":
            return {"type": type(payload).__name__, "dtypes": [str(dtype) for dtype in payload.dtypes]}
        if resource == "/busiest":
            # A new frame computed from the payload.
            return payload.sort_values("volume", ascending=False).head(2)
        return None


trades = pd.DataFrame(
    {
        "ticker": pd.array(["ACME", "INIT", "ACME"], dtype="string"),
        "price": [10.5, 99.0, 10.75],
        "volume": pd.array([100, None, 250], dtype="Int64"),
        "side": pd.Categorical(["buy", "sell", "buy"]),
        "when": pd.to_datetime(["2024-05-01 09:30", "2024-05-01 09:31", "2024-05-01 09:32"]).tz_localize(
            "America/New_York"
        ),
    },
    index=pd.Index([101, 102, 103], name="trade"),
)

with serve(TableHandler, port=0) as server, HTTPDataClient(server.port, "http://127.0.0.1:") as client:
    # A DataFrame arrives as a DataFrame: its columns, dtypes, index and values.
    back = client.send("/echo", trades)
    pd.testing.assert_frame_equal(back, trades, check_exact=True)
    print("the handler gets:", client.send("/describe", trades))
    print(client.send("/busiest", trades))

    # A Series, a pyarrow Table or RecordBatch and a polars DataFrame or Series do the same.
    assert client.send("/echo", trades["price"]).equals(trades["price"])
    table = pa.table({"id": [1, 2], "name": ["a", None]})
    assert client.send("/echo", table).equals(table)
    assert isinstance(client.send("/echo", table.to_batches()[0]), pa.RecordBatch)
    frame = pl.DataFrame({"id": [1, 2], "at": pl.Series([0, 1]).cast(pl.Datetime("ms", "UTC"))})
    assert client.send("/echo", frame).equals(frame)

    # Columns that arrive without a conversion are read-only views of the body, as arrays
    # are: copy the frame to change it in place.
    try:
        back.loc[101, "price"] = 11.0
    except ValueError as exc:
        print("writing to the frame that arrived:", exc)
    mine = back.copy()
    mine.loc[101, "price"] = 11.0

    # Refused before sending: a column Arrow has no type for (Python objects, which only
    # pickle could carry), and a frame inside a list or dict.
    for value in [pd.DataFrame({"mixed": [1, "a"]}), [trades]]:
        try:
            client.send("/echo", value)
        except PayloadError as exc:
            print(f"{type(value).__name__} refused:", str(exc).split(":")[0])
        else:
            raise AssertionError(f"expected PayloadError for {type(value).__name__}")

"""Needs pandas and pyarrow: pip install '.[pandas]' (from the dataserve checkout). Serve it with
``dataserve serve tables:TablesHandler`` from this folder."""

import pandas as pd

from dataserve import HTTPDataHandler


class TablesHandler(HTTPDataHandler):
    def __init__(self):
        self.prices = pd.DataFrame(
            {
                "ticker": pd.array(["ACME", "INIT", "ACME"], dtype="string"),
                "price": [10.5, 99.0, 10.75],
                "volume": pd.array([100, None, 250], dtype="Int64"),
                "when": pd.to_datetime(
                    ["2024-05-01 09:30", "2024-05-01 09:31", "2024-05-01 09:32"]
                ).tz_localize("America/New_York"),
            },
            index=pd.Index([1, 2, 3], name="trade"),
        )

    def handle_request(self, resource, payload):
        if resource == "/prices":
            return self.prices
        if resource == "/describe":
            return f"{type(payload).__name__} of {len(payload)} rows"
        return None

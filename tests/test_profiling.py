"""training_job.profiling: a profile is bounded whatever the table, and converts to the contract's message."""
from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
from google.protobuf import json_format

from segmentation.v1 import profile_pb2
from training_job.profiling import MAX_BINS, MAX_COLUMNS, MAX_CORRELATED, MAX_LEVELS, PREVIEW_ROWS, profile_table


def wide_table(rows: int = 3000, numeric: int = 120, text: int = 30, seed: int = 0) -> pd.DataFrame:
    """More columns than a profile keeps, long free text, many levels, missing values and infinities."""
    rng = np.random.default_rng(seed)
    columns: dict[str, object] = {"CustomerID": [f"C{i:06d}" for i in range(rows)]}
    for j in range(numeric):
        values = rng.lognormal(j % 7, 1.0, rows)
        values[rng.random(rows) < 0.05] = np.nan
        columns[f"amount_{j}"] = values
    columns["amount_0"][0] = np.inf
    for j in range(text):
        columns[f"text_{j}"] = [f"level {rng.integers(0, 500)} " + "x" * 200 for _ in range(rows)]
    return pd.DataFrame(columns)


def test_a_wide_table_gives_a_bounded_profile_that_converts_to_the_message() -> None:
    frame = wide_table()
    profile = profile_table(frame, name="wide.csv")
    assert profile["rows"] == 3000 and profile["column_count"] == 151 and profile["columns_truncated"]
    assert len(profile["columns"]) == MAX_COLUMNS
    assert all(len(c.get("histogram", {}).get("counts", [])) <= MAX_BINS for c in profile["columns"])
    assert all(len(c.get("top_levels", [])) <= MAX_LEVELS for c in profile["columns"])
    assert len(profile["correlation"]["columns"]) == MAX_CORRELATED
    assert len(profile["correlation"]["values"]) == MAX_CORRELATED ** 2
    assert len(profile["preview"]["rows"]) == PREVIEW_ROWS
    text = json.dumps(profile, allow_nan=False)  # the manifest is written with allow_nan=False
    assert len(text) < 400_000, len(text)
    message = json_format.ParseDict(profile, profile_pb2.DataProfile())
    assert message.columns[1].missing == profile["columns"][1]["missing"] > 0
    assert math.isfinite(message.columns[1].summary.max)  # statistics of the finite values; inf is not a number


def test_statistics_are_the_library_values() -> None:
    rng = np.random.default_rng(1)
    frame = pd.DataFrame({"id": range(500), "a": rng.normal(10, 2, 500), "b": rng.normal(0, 1, 500),
                          "c": rng.choice(["x", "y", "z"], 500, p=[0.5, 0.3, 0.2])})
    profile = profile_table(frame)
    a = next(c for c in profile["columns"] if c["name"] == "a")
    assert a["summary"]["mean"] == frame["a"].mean() and a["summary"]["std"] == frame["a"].std()
    assert a["summary"]["median"] == frame["a"].median()
    assert sum(a["histogram"]["counts"]) == 500
    c = next(col for col in profile["columns"] if col["name"] == "c")
    assert [lv["level"] for lv in c["top_levels"]] == list(frame["c"].value_counts().index)
    corr = dict(zip(profile["correlation"]["columns"], range(3)))
    assert "id" not in corr
    n = len(profile["correlation"]["columns"])
    i, j = corr["a"], corr["b"]
    assert profile["correlation"]["values"][i * n + j] == frame[["a", "b"]].corr().iloc[0, 1]

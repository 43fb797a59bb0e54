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


def test_a_date_column_is_counted_by_period_and_kept_out_of_the_correlations(datasets_dir) -> None:
    # CDNOW's YYYYMMDD dates are read as numbers; profiled as numbers they gave a mean of 1.997e+7 and a
    # histogram with a false gap between 1997 and 1998, and sat in the correlation matrix.
    from segmentation_core.tables import read_table

    frame = read_table(datasets_dir / "CDNOW_master.txt")
    profile = profile_table(frame, name="CDNOW_master.txt")
    date = next(c for c in profile["columns"] if c["name"] == "date")
    assert (date["role"], date["dtype"], date["missing"]) == ("date", "date", 0) and "summary" not in date
    months = pd.to_datetime(frame["date"].astype(str), format="%Y%m%d").dt.to_period("M").value_counts().sort_index()
    assert [(lv["level"], lv["count"]) for lv in date["top_levels"]] == [(str(m), int(c)) for m, c in months.items()]
    assert date["top_levels"][0]["level"] == "1997-01" and date["top_levels"][-1]["level"] == "1998-06"
    assert date["other_count"] == 0 and date["distinct"] == frame["date"].nunique()
    assert profile["correlation"]["columns"] == ["number_of_cds", "dollar_value"]
    message = json_format.ParseDict(profile, profile_pb2.DataProfile())
    assert message.columns[1].dtype == "date"


def test_a_long_date_range_is_counted_by_quarter_or_year() -> None:
    days = pd.Series(pd.date_range("2001-01-01", "2030-12-31", freq="7D"))
    frame = pd.DataFrame({"customer": range(len(days)), "signup": days.dt.strftime("%Y-%m-%d"),
                          "spend": np.arange(len(days), dtype=float)})
    date = next(c for c in profile_table(frame)["columns"] if c["name"] == "signup")
    assert date["dtype"] == "date" and [lv["level"] for lv in date["top_levels"]] == [str(y) for y in range(2011, 2031)]
    assert date["other_count"] + sum(lv["count"] for lv in date["top_levels"]) == len(days)
    quarters = frame.assign(signup=days.iloc[:200].dt.strftime("%Y-%m-%d")).iloc[:200]  # 200 weeks: 16 quarters
    date = next(c for c in profile_table(quarters)["columns"] if c["name"] == "signup")
    assert date["top_levels"][0]["level"] == "2001Q1" and len(date["top_levels"]) == 16


def test_the_data_page_profile_reads_na_tokens_as_the_training_job_does(tmp_path) -> None:
    """The Data page's profile (ProfileData) reads an upload with the one table reader: 'NA' among numbers is
    missing, 'NA' (North America) and 'None' (an education level) are levels, not missing."""
    from training_job.datasets import DataFolder

    folder = DataFolder(tmp_path)
    info = folder.store([b"id,income,region,edu\n1,10,NA,None\n2,NA,EU,High\n3,12,NA,None\n4,5,US,\n"], "c.csv")
    profile = profile_table(folder.frame(info.dataset_id), name="c.csv")
    columns = {c["name"]: c for c in profile["columns"]}
    assert columns["income"]["dtype"] == "number" and columns["income"]["missing"] == 1
    assert columns["region"]["missing"] == 0 and {"level": "NA", "count": 2} in columns["region"]["top_levels"]
    assert columns["edu"]["missing"] == 1 and {"level": "None", "count": 2} in columns["edu"]["top_levels"]


BUNDLED_DATASETS = {  # preset -> the files it was written for (../shared/datasets)
    "mall": ["Mall_Customers.csv"],
    "ecommerce": ["ecommerce_customer_behavior.csv"],
    "marketing-campaign": ["marketing_campaign.csv", "ml_project1_data.csv"],
    "transactions": ["online_retail.csv.gz"],
    "transactions-cdnow": ["CDNOW_sample.txt"],
}


def _bundled_table(datasets_dir, tmp_path, file: str) -> pd.DataFrame:
    from segmentation_core.tables import read_table
    from tests.test_clv import cdnow_sample_in_master_layout
    if file == "CDNOW_sample.txt":  # the sample has no header line: give it the master file's
        return read_table(cdnow_sample_in_master_layout(datasets_dir, tmp_path))
    return read_table(datasets_dir / file)


def test_each_bundled_preset_is_suggested_for_its_own_dataset_and_no_other(datasets_dir, tmp_path) -> None:
    from training_job.config import PRESETS
    from training_job.profiling import suggest_preset
    assert set(BUNDLED_DATASETS) == set(PRESETS)
    suggested = {file: suggest_preset(_bundled_table(datasets_dir, tmp_path, file))
                 for files in BUNDLED_DATASETS.values() for file in files}
    assert suggested == {file: preset for preset, files in BUNDLED_DATASETS.items() for file in files}


def test_the_marketing_profile_shows_the_presets_derived_features(datasets_dir) -> None:
    """The preset's numeric features are derived (Age from Year_Birth ...): the file holds their sources."""
    from segmentation_core.tables import read_table
    profile = profile_table(read_table(datasets_dir / "marketing_campaign.csv"), name="marketing_campaign.csv")
    assert profile["suggested_preset"] == "marketing-campaign"
    assert profile["schema"]["numeric"] == ["Age", "Income", "Total Spending", "Total Children", "Days as customer"]
    roles = {c["name"]: c["role"] for c in profile["columns"]}
    assert roles["Year_Birth"] == "dropped" and roles["Income"] == "numeric"

"""Table preparation on the real public datasets, file-format round trips, and bad-data errors."""

from __future__ import annotations

import dataclasses
import json
import logging
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from training_job.config import (
    PRESETS,
    TrainingConfig,
    apply_overrides,
    config_from_dict,
    load_config,
    load_preset,
)
from segmentation_core.tables import read_table
from training_job.errors import ConfigError, DataError
from training_job.limits import MAX_K
from training_job.schema_inference import infer_schema
from training_job.table_prep import prepare_table


def _prepare(datasets_dir: Path, name: str, preset: str):
    return prepare_table(read_table(datasets_dir / name), load_preset(preset))


@pytest.fixture(scope="module")
def online_retail(datasets_dir):
    return read_table(datasets_dir / "online_retail.csv.gz")


# --- the real datasets --------------------------------------------------------------------------------------


def test_presets_are_shipped():
    assert set(PRESETS) >= {"mall", "ecommerce", "marketing-campaign", "transactions", "transactions-cdnow"}
    for name in PRESETS:
        assert isinstance(load_preset(name), TrainingConfig)


def test_mall(datasets_dir):
    table = _prepare(datasets_dir, "Mall_Customers.csv", "mall")
    assert table.features.shape == (200, 2)
    assert table.numeric == ["Annual Income (k$)", "Spending Score (1-100)"]
    assert table.ids.iloc[0] == "0001" and table.ids.iloc[-1] == "0200"  # zero padding kept
    assert round(table.features["Annual Income (k$)"].mean(), 2) == 60.56
    assert table.features.dtypes.eq(np.float64).all()
    assert table.report.rows_in == table.report.rows_out == 200


def test_ecommerce_reports_two_missing_satisfaction_levels(datasets_dir):
    table = _prepare(datasets_dir, "ecommerce_customer_behavior.csv", "ecommerce")
    assert table.features.shape == (350, 10)
    assert table.report.missing == {
        "Satisfaction Level": {"count": 2, "action": "left missing for the feature transform to impute"}
    }
    missing_ids = set(table.ids[table.features["Satisfaction Level"].isna()])
    assert missing_ids == {"172", "244"}
    assert table.features["Satisfaction Level"].isna().sum() == 2
    assert table.features.loc[table.features["Satisfaction Level"].isna(), "Satisfaction Level"].map(
        lambda v: v is None).all()
    assert sorted(table.features["Discount Applied"].unique()) == ["FALSE", "TRUE"]
    assert table.features["Gender"].value_counts().to_dict() == {"Female": 175, "Male": 175}


@pytest.mark.parametrize("name", ["marketing_campaign.csv", "ml_project1_data.csv"], ids=["tab-dmy", "comma-iso"])
def test_marketing_campaign_catches_implausible_values(datasets_dir, name):
    table = _prepare(datasets_dir, name, "marketing-campaign")
    report = table.report
    assert table.features.shape == (2240, 7)
    assert report.implausible["Age"] == {"count": 3, "rule": "outside [16, 100]", "examples": [114.0, 115.0, 121.0]}
    assert report.implausible["Income"]["count"] == 1 and report.implausible["Income"]["examples"] == [666666.0]
    assert report.missing["Income"]["count"] == 24 + 1  # 24 blank in the file, 1 implausible
    assert report.missing["Age"]["count"] == 3
    assert report.recoded["Marital_Status"] == {"Alone -> Single": 3, "Absurd -> Single": 2, "YOLO -> Single": 2}
    assert set(table.features["Marital_Status"].dropna()) == {"Single", "Together", "Married", "Divorced", "Widow"}
    assert "Z_CostContact" in report.ignored_columns
    # Dt_Customer ends 2014-06-29, so a customer born in 1957 is 57; days as customer span 0..699.
    first = table.features.iloc[0]
    assert (table.ids.iloc[0], first["Age"], first["Total Spending"], first["Total Children"]) == ("5524", 57, 1617, 0)
    assert table.features["Days as customer"].agg(["min", "max"]).tolist() == [0.0, 699.0]


def test_both_marketing_files_give_identical_features(datasets_dir):
    tab = _prepare(datasets_dir, "marketing_campaign.csv", "marketing-campaign")
    comma = _prepare(datasets_dir, "ml_project1_data.csv", "marketing-campaign")
    pd.testing.assert_frame_equal(tab.features, comma.features)
    pd.testing.assert_series_equal(tab.ids, comma.ids)


def test_online_retail_rfm(online_retail):
    assert len(online_retail) == 541_909
    assert online_retail["CustomerID"].nunique() == 4_372  # published: distinct ids before cleaning
    table = prepare_table(online_retail, load_preset("transactions"))
    t = table.report.transactions
    # Published facts: 9,288 cancellation rows; after the usual cleaning 4,338 customers remain.
    assert t.cancellations == 9_288
    assert (t.non_positive_quantity, t.non_positive_value, t.missing_customer_id, t.duplicate_rows) == (
        1_336, 1_181, 132_220, 5_192)
    assert t.rows_used == 392_692
    assert t.customers == len(table.features) == 4_338
    assert t.snapshot_date == "2011-12-10"
    assert table.numeric == ["Recency", "Frequency", "Monetary"]
    row = table.features.iloc[table.ids.tolist().index("12347")]
    assert (row["Recency"], row["Frequency"], round(row["Monetary"], 2)) == (3.0, 7.0, 4310.0)
    assert table.features["Recency"].between(1, 374).all()
    json.dumps(table.report.to_dict())


def test_cdnow_rfm(datasets_dir):
    table = _prepare(datasets_dir, "CDNOW_master.txt", "transactions-cdnow")
    t = table.report.transactions
    assert t.customers == len(table.features) == 23_570
    assert t.rows_used == 69_659  # nothing dropped: $0 lines and same-day repeats are real purchases
    assert round(table.features["Monetary"].sum(), 2) == 2_500_315.63
    assert table.ids.iloc[0] == "00001"
    assert (t.first_date[:10], t.last_date[:10], t.snapshot_date) == ("1997-01-01", "1998-06-30", "1998-07-01")


def test_rfm_by_hand():
    log = pd.DataFrame({
        "InvoiceNo": ["1", "1", "2", "C3", "4", "5", "5"],
        "Quantity": [2, 1, 1, -1, 0, 3, 3],
        "UnitPrice": [1.5, 4.0, 10.0, 10.0, 1.0, 2.0, 2.0],
        "InvoiceDate": ["2024-01-01 10:00", "2024-01-01 10:00", "2024-01-05 09:00", "2024-01-06 09:00",
                        "2024-01-06 09:00", "2024-01-09 12:00", "2024-01-09 12:00"],
        "CustomerID": ["A", "A", "A", "A", "B", "B", "B"],
    })
    table = prepare_table(log, dataclasses.replace(
        load_preset("transactions"),
        data=dataclasses.replace(load_preset("transactions").data,
                                 numeric=("Recency", "Frequency", "Monetary", "AvgBasketValue",
                                          "AvgItemsPerPurchase", "TenureDays"))))
    t = table.report.transactions
    assert (t.cancellations, t.non_positive_quantity, t.duplicate_rows) == (1, 1, 1)
    assert table.ids.tolist() == ["A", "B"]
    assert table.features.to_dict("records") == [
        {"Recency": 5.0, "Frequency": 2.0, "Monetary": 17.0, "AvgBasketValue": 8.5, "AvgItemsPerPurchase": 2.0,
         "TenureDays": 4.0},
        {"Recency": 1.0, "Frequency": 1.0, "Monetary": 6.0, "AvgBasketValue": 6.0, "AvgItemsPerPurchase": 3.0,
         "TenureDays": 0.0},
    ]


@pytest.mark.parametrize("name", ["Mall_Customers.csv", "ecommerce_customer_behavior.csv", "ml_project1_data.csv"])
def test_auto_schema(datasets_dir, name, caplog):
    frame = read_table(datasets_dir / name)
    with caplog.at_level(logging.INFO, logger="training_job.schema_inference"):
        config = infer_schema(frame)
    assert "auto schema: id column" in caplog.text
    table = prepare_table(frame, config)
    assert len(table.features) == len(frame)
    assert config.data.id_column in {"CustomerID", "Customer ID", "ID"}
    assert "Z_CostContact" not in config.data.numeric
    if name == "ml_project1_data.csv":
        assert {"Education", "Marital_Status"} <= set(config.data.categorical)
        assert {"Z_CostContact", "Z_Revenue"} <= set(config.data.drop)


def test_an_id_column_is_never_a_feature_even_when_its_ids_repeat_or_miss(datasets_dir, caplog):
    mall = read_table(datasets_dir / "Mall_Customers.csv")
    twice = pd.concat([mall, mall], ignore_index=True)  # a file appended to itself
    blank = mall.astype({"CustomerID": "object"})
    blank.loc[10, "CustomerID"] = None  # one customer without an id
    for frame in (twice, blank):
        config = infer_schema(frame)
        assert config.data.id_column == "CustomerID" and "CustomerID" not in config.data.numeric
        table = prepare_table(frame, config)
        assert len(table.features) == (199 if frame is blank else 200)  # duplicates and the id-less row dropped
    # One row per order: the customer id repeats; it is dropped as an identifier, with a warning that names
    # the transactions route (it used to be clustered as a number: "Low-customer-id Customers").
    rng = np.random.default_rng(0)
    orders = pd.DataFrame({"order_id": np.arange(1000, 1600), "customer_id": rng.integers(1, 120, 600),
                           "amount": rng.gamma(2.0, 30.0, 600).round(2)})
    with caplog.at_level(logging.INFO, logger="training_job.schema_inference"):
        config = infer_schema(orders)
    assert config.data.id_column == "order_id" and config.data.numeric == ("amount",)
    warning = [r for r in caplog.records if r.levelno == logging.WARNING and "'customer_id'" in r.getMessage()]
    assert warning and "repeat an id" in warning[0].getMessage() and "transactions" in warning[0].getMessage()


def test_auto_schema_recognises_a_transaction_log(online_retail):
    assert infer_schema(online_retail.head(1000)).data.kind == "transactions"


# --- file formats -------------------------------------------------------------------------------------------

@pytest.mark.parametrize("suffix", [".parquet", ".xlsx"])
def test_parquet_and_excel_round_trip(tmp_path, datasets_dir, suffix):
    original = read_table(datasets_dir / "ecommerce_customer_behavior.csv")
    path = tmp_path / f"ecommerce{suffix}"
    original.to_parquet(path) if suffix == ".parquet" else original.to_excel(path, index=False)
    table = prepare_table(read_table(path), load_preset("ecommerce"))
    expected = prepare_table(original, load_preset("ecommerce"))
    pd.testing.assert_frame_equal(table.features, expected.features)
    assert table.ids.tolist() == expected.ids.tolist()


# --- bad data -----------------------------------------------------------------------------------------------


def _write(tmp_path: Path, text: str, name: str = "t.csv") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def test_text_in_numeric_column_names_value_and_line(tmp_path):
    path = _write(tmp_path, "CustomerID,Annual Income (k$),Spending Score (1-100)\n1,15,39\n2,n/a?,81\n3,16,6\n")
    with pytest.raises(DataError, match=r"'Annual Income \(k\$\)'.*'n/a\?' at line 3"):
        prepare_table(read_table(path), load_preset("mall"))


@pytest.mark.parametrize("cell", ["inf", "-Infinity"])
def test_an_infinite_value_names_its_value_and_line(tmp_path, cell):
    path = _write(tmp_path, f"CustomerID,Annual Income (k$),Spending Score (1-100)\n1,15,39\n2,16,81\n3,{cell},6\n")
    with pytest.raises(DataError, match=rf"'Annual Income \(k\$\)' has the infinite value '{cell}' at line 4"):
        prepare_table(read_table(path), load_preset("mall"))


@pytest.mark.parametrize("cell", ["1e400", "-2e308"])
def test_a_number_beyond_a_float_is_out_of_range_as_written(tmp_path, cell):
    """Was: "has the infinite value inf" for a cell that says 1e400."""
    path = _write(tmp_path, f"CustomerID,Annual Income (k$),Spending Score (1-100)\n1,15,39\n2,16,81\n3,{cell},6\n")
    with pytest.raises(DataError, match=rf"column 'Annual Income \(k\$\)': '{cell}' at line 4 is out of range "
                                        r"\(a number is at most ±1.8e308\)"):
        prepare_table(read_table(path), load_preset("mall"))


def test_missing_required_column_lists_what_is_there(tmp_path):
    path = _write(tmp_path, "CustomerID,Income,Score\n1,15,39\n")
    with pytest.raises(DataError, match=r"'Annual Income \(k\$\)'.*the table has: CustomerID, Income, Score"):
        prepare_table(read_table(path), load_preset("mall"))


def test_all_values_missing(tmp_path):
    path = _write(tmp_path, "CustomerID,Annual Income (k$),Spending Score (1-100)\n1,,39\n2,,81\n")
    with pytest.raises(DataError, match=r"'Annual Income \(k\$\)': all 2 values are missing"):
        prepare_table(read_table(path), load_preset("mall"))


def test_no_rows_after_cleaning(tmp_path):
    path = _write(tmp_path, "InvoiceNo,Quantity,InvoiceDate,UnitPrice,CustomerID\nC1,-1,2024-01-01,1.0,7\n")
    with pytest.raises(DataError, match="no transactions left after cleaning.*1 cancellations"):
        prepare_table(read_table(path), load_preset("transactions"))


def test_bad_date_names_value_and_line(tmp_path):
    path = _write(tmp_path, "InvoiceNo,Quantity,InvoiceDate,UnitPrice,CustomerID\n1,1,2024-01-01,1.0,7\n"
                            "2,1,yesterday,1.0,7\n")
    with pytest.raises(DataError, match=r"'InvoiceDate'.*'yesterday' at line 3"):
        prepare_table(read_table(path), load_preset("transactions"))


def test_duplicates_are_dropped_and_counted(tmp_path):
    path = _write(tmp_path, "CustomerID,Annual Income (k$),Spending Score (1-100)\n1,15,39\n1,15,39\n1,20,50\n"
                            "2,16,6\n")
    table = prepare_table(read_table(path), load_preset("mall"))
    assert (table.report.duplicate_rows_dropped, table.report.duplicate_ids_dropped) == (1, 1)
    assert table.ids.tolist() == ["1", "2"] and table.features.iloc[0].tolist() == [15.0, 39.0]


# --- configuration ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "key"),
    [
        ({"data": {"kind": "people"}}, "data.kind"),
        ({"data": {"numerics": ["Age"]}}, "data.numerics"),
        ({"model": {"k": 1}}, "model.k"),
        ({"model": {"k_min": 5, "k_max": 3}}, "model.k_max"),
        ({"model": {"k": MAX_K + 1}}, f"model.k: {MAX_K + 1} segments is more than the {MAX_K} a model can have"),
        ({"model": {"k_max": MAX_K + 1}}, f"model.k_max: {MAX_K + 1} segments is more than the {MAX_K}"),
        ({"cleaning": {"valid_range": {"Age": [100, 16]}}}, "cleaning.valid_range.Age"),
        ({"derived": {"Age": "__import__('os').system('x')"}}, "derived.Age"),
        ({"preprocessing": {"skew": "sqrt"}}, "preprocessing.skew"),
    ],
    ids=["kind", "typo", "k", "k-range", "k-above-max", "k-search-above-max", "range", "unsafe-expression", "skew"],
)
def test_config_errors_name_the_key(raw, key):
    with pytest.raises(ConfigError, match=key.replace(".", r"\.")):
        config = config_from_dict(raw)
        for name, expression in config.derived.items():  # expressions are checked where they are parsed
            from segmentation_core.derived import referenced_columns
            referenced_columns(name, expression)


def test_load_config_and_overrides(tmp_path):
    path = _write(tmp_path, '[data]\nnumeric = ["a"]\n[model]\nk = 4\n', "c.toml")
    config = load_config(path)
    assert config.model.k == 4 and config.data.numeric == ("a",)
    changed = apply_overrides(config, k="auto", algorithm="gmm")
    assert (changed.model.k, changed.model.algorithm, config.model.k) == ("auto", "gmm", 4)
    with pytest.raises(ConfigError, match="--k"):
        apply_overrides(config, k="1")
    with pytest.raises(ConfigError, match=f"--k: {MAX_K + 1} segments is more than the {MAX_K}"):
        apply_overrides(config, k=str(MAX_K + 1))
    assert apply_overrides(config, k=str(MAX_K)).model.k == MAX_K
    with pytest.raises(ConfigError, match="unknown preset 'nope'"):
        load_preset("nope")
    json.dumps(load_preset("marketing-campaign").to_dict())

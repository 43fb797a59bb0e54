"""The real training job on the real datasets: segments, names, manifest, determinism, bad data."""
from __future__ import annotations

import gzip
import html
import itertools
import json
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import joblib
import numpy as np
import pandas as pd
import pytest
from sklearn.datasets import make_blobs
from sklearn.metrics import adjusted_rand_score

from segmentation_core.artefact import read_artefact
from segmentation_core.store import ModelStore
from segmentation_core.artefact import MAX_MANIFEST_BYTES
from tests.store_snapshot import visible_state
from training_job.cli import main
from training_job.limits import MAX_K

REPO = Path(__file__).resolve().parents[1]
MALL_NAMES = {"Careful Spenders", "Target Group", "Sensible Customers", "Careless Customers", "Standard Customers"}
RFM_NAMES = {"Champions", "Loyal Customers", "Potential Loyalists", "New Customers", "Promising", "Need Attention",
             "At Risk", "Can't Lose Them", "Hibernating", "Lost"}


def _train(store: Path, *args: str) -> int:
    return main(["train", "--store", str(store), *args])


def assert_readable_names(art, raw_columns) -> None:
    """Names present, distinct, about three words (a two-word category level may make four) and free of
    raw column names (as written or split into words: 'MntMeatProducts', 'mnt meat products')."""
    names = art.segment_names
    assert names and all(n.strip() for n in names), names
    assert len(set(names)) == len(names), names
    assert all(len(n.split()) <= 4 for n in names), names
    for column in raw_columns:
        split = " ".join(re.sub(r"(?<=[a-z])(?=[A-Z])", " ", str(column)).replace("_", " ").lower().split())
        for name in names:
            assert str(column).lower() not in name.lower().split(), (column, name)
            assert len(split.split()) < 2 or split not in name.lower(), (column, name)


def _current(store: Path, model: str = "customers"):
    s = ModelStore(store)
    return read_artefact(s.version_dir(model, s.current(model)))


@pytest.fixture(scope="module")
def mall_store(tmp_path_factory, datasets_dir) -> Path:
    store = tmp_path_factory.mktemp("mall")
    assert _train(store, "--data", str(datasets_dir / "Mall_Customers.csv"), "--preset", "mall") == 0
    return store


def test_mall_gives_the_five_classic_segments(mall_store: Path, datasets_dir: Path, scoring_server_factory) -> None:
    art = _current(mall_store)
    m = art.manifest
    assert m["k_search"]["chosen_k"] == 5
    # ~40 customers a group: some gaps are within the density's noise, so the groups are "unproven"
    # (neither proven apart nor one continuum); the scoring service tells its clients, and the
    # dashboard's Overview, rendered from what the service answers, says what that means.
    assert m["k_search"]["structure"] == "unproven groups"
    from dash_ui.app import render_page
    from scoring_service.client import ScoringClient
    from tests.server_support import target
    from tests.test_dash_app import text_of
    from tests.test_dash_service import Dashboards

    server = scoring_server_factory(mall_store)
    with ScoringClient(target(server)) as client:
        info = client.model_info()
        assert info.segment_structure == "unproven groups"
        assert info.data_source == "Mall_Customers.csv"  # the file's name, not the training machine's path
    dashboards = Dashboards()
    try:
        overview = text_of(render_page(dashboards.service(target(server)), "/", ""))
    finally:
        dashboards.close()
    assert "unproven groups: too few customers per group to prove or rule out gaps" in overview
    assert "natural groups" not in overview and "continuum" not in overview
    assert set(art.segment_names) == MALL_NAMES
    by_name = {s["name"]: s for s in m["segments"]}
    inc, spend = "Annual Income (k$)", "Spending Score (1-100)"
    base_inc, base_spend = m["base"]["stats"][inc]["mean"], m["base"]["stats"][spend]["mean"]
    careful = by_name["Careful Spenders"]["stats"]
    assert careful[inc]["mean"] > base_inc + 15 and careful[spend]["mean"] < base_spend - 20
    careless = by_name["Careless Customers"]["stats"]
    assert careless[inc]["mean"] < base_inc - 20 and careless[spend]["mean"] > base_spend + 20
    # Ids ordered by size, largest first; sizes add up to the 200 customers.
    sizes = [s["size"] for s in m["segments"]]
    assert sizes == sorted(sizes, reverse=True) and sum(sizes) == 200
    assert [s["id"] for s in m["segments"]] == list(range(5))
    assert abs(sum(s["share"] for s in m["segments"]) - 1) < 1e-9
    # Every k tried is in the table with every metric.
    assert 0.5 < m["quality"]["silhouette"] < 0.6  # the well-known ~0.55 of the 5-segment mall answer
    assert 0 < m["quality"]["stability"] <= 1
    assert m["data"]["customers"] == 200 and m["data"]["fingerprint"].startswith("sha256:")
    assert {"numpy", "scikit-learn", "pandas"} <= set(m["libraries"])
    assert set(m["files"]) >= {"parameters.npz", "sample.npz", "pipeline.joblib", "report.html"}


def test_mall_automatic_k_finds_the_five_segments(datasets_dir: Path, tmp_path: Path) -> None:
    assert _train(tmp_path, "--data", str(datasets_dir / "Mall_Customers.csv"), "--preset", "mall", "--k", "auto") == 0
    m = _current(tmp_path).manifest
    rows = m["k_search"]["rows"]
    assert [r["k"] for r in rows] == list(range(2, 11))
    for r in rows:
        assert {"inertia", "silhouette", "calinski_harabasz", "davies_bouldin"} <= set(r)
    assert m["k_search"]["chosen_k"] == 5
    assert set(s["name"] for s in m["segments"]) == MALL_NAMES


def test_served_math_equals_the_joblib_pipeline(mall_store: Path, datasets_dir: Path) -> None:
    art = _current(mall_store)
    frame = pd.read_csv(datasets_dir / "Mall_Customers.csv")
    pipeline = joblib.load(art.path / "pipeline.joblib")
    expected = pipeline.predict(frame)
    got = art.model.score(art.schema.transform_frame(frame)).segment
    assert np.array_equal(got, expected)
    sample = art.load_sample()
    assert len(sample["segment_id"]) == 200 and len(sample["centroid_map_x"]) == 5


def test_same_data_config_and_seed_give_the_same_model(mall_store: Path, datasets_dir: Path, tmp_path: Path) -> None:
    assert _train(tmp_path, "--data", str(datasets_dir / "Mall_Customers.csv"), "--preset", "mall") == 0
    a, b = _current(mall_store), _current(tmp_path)
    np.testing.assert_array_equal(a.model.centroids, b.model.centroids)
    assert a.segment_names == b.segment_names


def test_list_promote_rollback_commands(mall_store: Path, datasets_dir: Path, capsys) -> None:
    assert _train(mall_store, "--data", str(datasets_dir / "Mall_Customers.csv"), "--preset", "mall",
                  "--algorithm", "gmm") == 0
    capsys.readouterr()
    assert main(["list", "--store", str(mall_store), "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert [(r["version"], r["current"]) for r in rows] == [("v0001", False), ("v0002", True)]
    assert rows[1]["algorithm"] == "gmm" and rows[1]["k"] == 5
    assert main(["rollback", "--store", str(mall_store)]) == 0
    assert ModelStore(mall_store).current("customers") == "v0001"
    assert main(["promote", "v0002", "--store", str(mall_store)]) == 0
    assert ModelStore(mall_store).current("customers") == "v0002"
    assert main(["promote", "v0042", "--store", str(mall_store)]) == 2
    assert "no version 'v0042'" in capsys.readouterr().err
    # `promote vN` then `rollback` undoes the promote (was: "v0001 is the oldest version kept; nothing to roll back to").
    assert main(["promote", "v0001", "--store", str(mall_store)]) == 0
    assert main(["rollback", "--store", str(mall_store)]) == 0
    assert ModelStore(mall_store).current("customers") == "v0002"
    assert "rolled back from v0001 to v0002 (the version served before it)" in capsys.readouterr().err
    main(["promote", "v0001", "--store", str(mall_store)])


def test_a_mall_retrain_over_a_served_rfm_model_is_refused_and_kept_unless_allowed(datasets_dir: Path,
                                                                                   tmp_path: Path, capsys) -> None:
    """The operator review's case (docs/deployment.md's old retrain example): the mall preset published into the
    default model, which serves an RFM model, would fail every existing caller's Predict."""
    store = tmp_path / "store"
    assert _train(store, "--data", str(REPO / "data" / "online_retail_sample.csv.gz"), "--preset", "transactions") == 0
    mall = ["--data", str(datasets_dir / "Mall_Customers.csv"), "--preset", "mall", "--k", "5"]
    capsys.readouterr()
    assert _train(store, *mall) == 2
    err = capsys.readouterr().err
    assert ("model 'customers': v0002 was not made CURRENT: its input schema would break the callers of the served "
            "v0001: numeric feature(s) 'Recency', 'Frequency', 'Monetary' removed") in err, err
    assert "the CLV inputs (RepeatPurchases, LastPurchaseTime, CustomerAge, AvgRepeatValue) no longer taken" in err
    assert "(train --model NAME)" in err and "--allow-breaking-schema" in err
    assert "model customers version v0002 was kept, not published" in err and "is now CURRENT" not in err
    s = ModelStore(store)
    assert s.versions("customers") == ["v0001", "v0002"] and s.current("customers") == "v0001"
    assert _current(store).schema.feature_names == ["Recency", "Frequency", "Monetary"]

    assert main(["promote", "v0002", "--store", str(store)]) == 2  # the same rule for every move of CURRENT
    assert "v0002 was not made CURRENT" in capsys.readouterr().err and s.current("customers") == "v0001"
    assert _train(store, *mall, "--model", "mall") == 0  # the way out the message names first
    assert s.current("mall") == "v0001" and s.current("customers") == "v0001"

    assert _train(store, *mall, "--allow-breaking-schema") == 0  # the override
    assert s.current("customers") == "v0003"
    assert _current(store).schema.feature_names == ["Annual Income (k$)", "Spending Score (1-100)"]
    assert _train(store, *mall[:-1], "4") == 0  # a compatible retrain (same features) needs no flag
    assert s.current("customers") == "v0004"
    assert main(["promote", "v0001", "--store", str(store)]) == 2  # back to RFM: callers may send mall features now
    assert main(["rollback", "--store", str(store)]) == 0 and s.current("customers") == "v0003"
    assert main(["promote", "v0001", "--store", str(store), "--allow-breaking-schema"]) == 0
    assert s.current("customers") == "v0001"


def test_ecommerce_with_categories_and_missing_values(datasets_dir: Path, tmp_path: Path) -> None:
    assert _train(tmp_path, "--data", str(datasets_dir / "ecommerce_customer_behavior.csv"),
                  "--preset", "ecommerce") == 0
    art = _current(tmp_path)
    cats = {c.name: c for c in art.schema.categorical}
    assert {"Gender", "City", "Membership Type"} <= set(cats)
    assert cats["Satisfaction Level"].impute == "Satisfied"
    assert art.manifest["cleaning"]["missing"]["Satisfaction Level"]["count"] == 2
    assert len(art.segment_names) >= 2
    assert_readable_names(art, pd.read_csv(datasets_dir / "ecommerce_customer_behavior.csv", nrows=1).columns)
    # Its five categorical columns are counted as latent classes (6, BIC in the k-search rows); the valleys
    # prove 6 groups too (7 holds only after a repair no larger k confirms), so the valley rule's k stands.
    rows = art.manifest["k_search"]["rows"]
    bic = {r["k"]: r["latent_class_bic"] for r in rows if "latent_class_bic" in r}
    assert min(bic, key=bic.__getitem__) == 6
    assert art.model.k == 6 and art.manifest["k_search"]["rule"] == "valley-merge"


def test_marketing_campaign_outliers_are_handled(datasets_dir: Path, tmp_path: Path, scoring_server_factory) -> None:
    assert _train(tmp_path, "--data", str(datasets_dir / "marketing_campaign.csv"),
                  "--preset", "marketing-campaign") == 0
    art = _current(tmp_path)
    cleaning = art.manifest["cleaning"]
    text = json.dumps(cleaning)
    assert "666666" in text.replace(",", "") or cleaning["implausible"]["Income"]["count"] == 1
    age = next(f for f in art.schema.numeric if f.name == "Age")
    assert age.maximum <= 100  # birth years 1893-1900 did not survive as ages
    income = next(f for f in art.schema.numeric if f.name == "Income")
    assert income.maximum < 666_666
    # No gaps between groups: partitioned inside the preset's business range, and it says so.
    assert 4 <= art.model.k <= 8
    assert art.manifest["k_search"]["structure"] == "partition of a continuum"
    assert art.manifest["k_search"]["business_k_range"] == [4, 8]
    # ... and the scoring service tells its clients (ModelInfo.segment_structure).
    from scoring_service.client import ScoringClient
    from tests.server_support import target

    server = scoring_server_factory(tmp_path)
    with ScoringClient(target(server)) as client:
        assert client.model_info().segment_structure == "partition of a continuum"
    # ... and the dashboard's Overview says it in words.
    from dash_ui.app import render_page
    from tests.test_dash_app import text_of
    from tests.test_dash_service import Dashboards

    dashboards = Dashboards()
    try:
        overview = text_of(render_page(dashboards.service(target(server)), "/", ""))
    finally:
        dashboards.close()
    assert "a partition of a continuum" in overview and "natural groups" not in overview
    raw = pd.read_csv(datasets_dir / "marketing_campaign.csv", sep="\t", nrows=1).columns
    assert_readable_names(art, [*raw, *art.schema.feature_names])
    # The confidence calibration was fitted (2,240 rows: two halves of 1,120) and is what both paths serve.
    fitted = art.manifest["confidence"]
    assert fitted["rows"] == 2 * (art.manifest["data"]["customers"] // 2) and 0 < fitted["agreement"] <= 1
    assert (art.model.temperature, art.model.smoothing) == (fitted["temperature"], fitted["smoothing"])
    pipeline = joblib.load(art.path / "pipeline.joblib")
    sample = art.load_sample()
    frame = pd.DataFrame({c: sample[f"num:{c}"] if f"num:{c}" in sample else sample[f"cat:{c}"]
                          for c in art.schema.feature_names})
    imputed: dict[str, np.ndarray] = {}
    x = art.schema.transform_frame(frame, imputed=imputed)
    partial = art.schema.partial_rows(imputed, len(frame))  # customers with a missing income: given the rest
    assert partial is not None and 0 < len(partial.rows) < len(frame)
    served = art.model.score(x, partial)
    np.testing.assert_allclose(served.confidence, pipeline.predict_proba(frame)[np.arange(len(frame)),
                                                                                  served.segment], rtol=1e-9)


def test_marketing_campaign_auto_names_read_as_business_terms(datasets_dir: Path, tmp_path: Path) -> None:
    # auto keeps the raw product columns (MntMeatProducts ...): names must not repeat them.
    assert _train(tmp_path, "--data", str(datasets_dir / "marketing_campaign.csv"), "--preset", "auto") == 0
    art = _current(tmp_path)
    assert "MntMeatProducts" in art.schema.feature_names
    assert_readable_names(art, art.schema.feature_names)


def test_mall_auto_leaves_out_gender_that_carries_no_segment(datasets_dir: Path, tmp_path: Path) -> None:
    assert _train(tmp_path, "--data", str(datasets_dir / "Mall_Customers.csv"), "--preset", "auto") == 0
    art = _current(tmp_path)
    assert art.schema.feature_names == ["Age", "Annual Income (k$)", "Spending Score (1-100)"]
    assert "Genre" in art.manifest["config"]["data"]["drop"]
    assert art.model.k <= 8  # 9 when every income x spending group was split by gender
    assert_readable_names(art, [*art.schema.feature_names, "Genre"])
    assert not any(w in n for n in art.segment_names for w in ("Male", "Female"))


@pytest.mark.slow
def test_online_retail_full_log_gives_rfm_segments(datasets_dir: Path, tmp_path: Path) -> None:
    started = time.monotonic()
    assert _train(tmp_path, "--data", str(datasets_dir / "online_retail.csv.gz"), "--preset", "transactions") == 0
    elapsed = time.monotonic() - started
    art = _current(tmp_path)
    assert art.manifest["data"]["rows_in"] == 541_909
    assert art.manifest["data"]["customers"] == 4_338
    # One continuum (no k shows groups apart): cut inside the RFM business range 4-8 at the elbow of
    # explained variance, the same k as the bundled 1,500-customer sample of this log.
    assert art.model.k == 6
    assert art.manifest["k_search"]["structure"] == "partition of a continuum"
    assert_readable_names(art, ["InvoiceNo", "StockCode", "Quantity", "UnitPrice", "CustomerID", "Recency",
                                "Frequency", "Monetary"])
    # Champions must be top on recency, frequency AND monetary: never a large middling group.
    for segment in (s for s in art.manifest["segments"] if s["name"] == "Champions"):
        assert segment["share"] <= 0.15, segment["share"]
        base = art.manifest["base"]["stats"]
        for column in ("Frequency", "Monetary"):
            assert segment["stats"][column]["median"] > base[column]["median"]
        assert segment["stats"]["Recency"]["median"] < base["Recency"]["median"]
    print(f"online retail trained in {elapsed:.1f} s")


def test_cdnow_transactions_give_rfm_segments(datasets_dir: Path, tmp_path: Path) -> None:
    assert _train(tmp_path, "--data", str(datasets_dir / "CDNOW_master.txt"), "--preset", "transactions-cdnow") == 0
    art = _current(tmp_path)
    assert art.manifest["data"]["customers"] == 23_570
    # Six k-means pieces merge back (no valley between them) into four groups, all apart: natural groups,
    # at the bottom of the RFM business range 4-8. (Before the corridor was filled for every neighbouring
    # pair the valleys proved only three, below the range, and the continuum was cut at 4.)
    assert art.model.k == 4
    assert art.manifest["k_search"]["structure"] == "natural groups"
    names = art.segment_names
    assert_readable_names(art, ["customer_id", "date", "number_of_cds", "dollar_value", "Recency", "Frequency",
                                "Monetary"])
    # RFM names where a segment meets an RFM archetype's rule; profile names for the others.
    assert len(set(names) & RFM_NAMES) >= min(len(names), 3)


def test_generated_table_with_known_segments_is_recovered(tmp_path: Path) -> None:
    x, truth = make_blobs(n_samples=3000, centers=4, n_features=3, cluster_std=1.0, random_state=11)
    frame = pd.DataFrame(x * [10, 5, 20] + [100, 50, 300], columns=["spend", "visits", "tenure"])
    frame.insert(0, "customer_id", [f"c{i:05d}" for i in range(len(frame))])
    path = tmp_path / "customers.csv"
    frame.to_csv(path, index=False)
    assert _train(tmp_path / "store", "--data", str(path), "--preset", "auto") == 0
    art = _current(tmp_path / "store")
    assert art.model.k == 4
    predicted = art.model.score(art.schema.transform_frame(frame)).segment
    assert adjusted_rand_score(truth, predicted) > 0.98


BAD_DATA = {
    "empty file": ("", "empty"),
    "header only": ("CustomerID,Annual Income (k$),Spending Score (1-100)\n", "no data rows"),
    "missing column": ("CustomerID,Income,Spending Score (1-100)\n1,10,20\n2,30,40\n", "Annual Income (k$)"),
    "text in a numeric column": ("CustomerID,Annual Income (k$),Spending Score (1-100)\n1,15,39\n2,lots,81\n3,16,6\n",
                                 "'lots'"),
    # Blank lines hold no row but count as lines: 'lots' is on line 5 as an editor shows it (was "line 3").
    "text after blank lines": ("CustomerID,Annual Income (k$),Spending Score (1-100)\n1,15,39\n\n\n2,lots,81\n"
                               "3,16,6\n", "'lots' at line 5 "),
}


@pytest.mark.parametrize("case", list(BAD_DATA), ids=list(BAD_DATA))
def test_bad_data_exits_2_naming_the_problem_and_publishes_nothing(case: str, mall_store: Path, tmp_path: Path,
                                                                   capsys) -> None:
    text, expected = BAD_DATA[case]
    path = tmp_path / "bad.csv"
    path.write_text(text)
    before = visible_state(mall_store)
    assert _train(mall_store, "--data", str(path), "--preset", "mall") == 2
    err = capsys.readouterr().err
    assert expected in err, err
    assert visible_state(mall_store) == before


def test_an_uploaded_table_keeps_its_line_numbers_for_the_training_service(tmp_path: Path) -> None:
    """The training service trains from an upload's cached Parquet copy: the lines an editor shows (blank lines
    counted) survive it, so a job's error names the same line as the command line's."""
    from segmentation_core.errors import RowLines
    from training_job.datasets import DataFolder

    folder = DataFolder(tmp_path)
    info = folder.store([b"id,spend\n1,10\n\n\n2,20\n\n3,30\n"], "c.csv")
    frame = folder.frame(info.dataset_id)
    assert [RowLines.of(frame.attrs).line(label) for label in frame.index] == [2, 5, 7]


def test_a_store_that_is_a_file_is_refused_before_any_work(datasets_dir: Path, tmp_path: Path, capsys) -> None:
    swapped = tmp_path / "Mall_Customers.csv"  # --data and --store swapped
    swapped.write_text("CustomerID\n1\n")
    assert _train(swapped, "--data", str(datasets_dir / "Mall_Customers.csv"), "--preset", "mall") == 2
    err = capsys.readouterr().err
    assert f"--store {swapped} is a file; the model store is a folder" in err and "Traceback" not in err
    # Refused before any work: the table was not even read (training logs each stage as it starts).
    assert "stage " not in err and "read " not in err and swapped.read_text() == "CustomerID\n1\n"


@pytest.mark.parametrize("command", [["list"], ["promote", "v0001"], ["rollback"]],
                         ids=["list", "promote", "rollback"])
def test_a_store_folder_that_does_not_exist_is_an_error_naming_it(command: list[str], tmp_path: Path,
                                                                   capsys) -> None:
    missing = tmp_path / "no-such-store"
    assert main([command[0], "--store", str(missing), "--model", "customers", *command[1:]]) == 2
    err = capsys.readouterr().err
    assert f"--store {missing}: no such folder (train creates a store; {command[0]} needs one)" in err
    assert "has no versions" not in err and "Traceback" not in err and not missing.exists()


def test_text_in_numeric_column_names_the_line(tmp_path: Path, capsys) -> None:
    path = tmp_path / "bad.csv"
    path.write_text("CustomerID,Annual Income (k$),Spending Score (1-100)\n1,15,39\n2,lots,81\n3,16,6\n")
    assert _train(tmp_path / "s", "--data", str(path), "--preset", "mall") == 2
    err = capsys.readouterr().err
    assert "Annual Income (k$)" in err and "line 3" in err


@pytest.mark.parametrize("args, expected", [
    (["--k", "7"], "--k 7 needs more than 7 customers"),
    (["--k", "1"], "--k"),
    (["--k", "auto"], "needs more than 2"),
], ids=["k above rows", "k of one", "auto k on two rows"])
def test_too_few_rows_or_senseless_k(args, expected, tmp_path: Path, capsys) -> None:
    path = tmp_path / "tiny.csv"
    path.write_text("CustomerID,Annual Income (k$),Spending Score (1-100)\n1,15,39\n2,16,81\n")
    assert _train(tmp_path / "s", "--data", str(path), "--preset", "mall", *args) == 2
    assert expected in capsys.readouterr().err
    assert visible_state(tmp_path / "s") == {}


def test_k_above_the_most_segments_is_refused_before_the_table_is_read(tmp_path: Path, capsys) -> None:
    absent = tmp_path / "absent.csv"  # never read: the refusal comes first
    assert _train(tmp_path / "s", "--data", str(absent), "--k", str(MAX_K + 1)) == 2
    err = capsys.readouterr().err
    assert f"--k: {MAX_K + 1} segments is more than the {MAX_K} a model can have; choose 2 to {MAX_K}" in err
    assert "absent.csv" not in err and visible_state(tmp_path / "s") == {}


def test_a_fixed_k_is_said_to_be_fixed_by_the_user(datasets_dir: Path, tmp_path: Path, capsys) -> None:
    assert _train(tmp_path, "--data", str(datasets_dir / "Mall_Customers.csv"), "--preset", "mall", "--k", "6") == 0
    err = capsys.readouterr().err
    assert "k=6 fixed by the user, not chosen" in err and "chosen k=" not in err and "by valley-merge" not in err
    search = _current(tmp_path).manifest["k_search"]
    assert search["rule"] == "fixed by the user"
    assert search["explanation"].startswith("k = 6 was fixed by the user (the k of the command line, the request "
                                            "or the configuration), not chosen by the valley-merge rule")
    # 200 customers (33 per segment) warn of nothing but the confidence: 100 rows per half are too few to calibrate
    # 6 segments. The training log, the manifest's warnings (so the report) say it in the same words, once.
    said = ("Confidence not calibrated (100 rows per half, fewer than 30 per segment): the model's raw posterior, "
            "often near 100%; read it as a ranking, not a probability.")
    assert _current(tmp_path).manifest["warnings"] == [said] and err.count(said) == 1
    store = ModelStore(tmp_path)
    report = (store.version_dir("customers", store.current("customers")) / "report.html").read_text()
    assert html.escape(said) in report.split('id="warnings"', 1)[1].split("</div>", 1)[0]


def test_a_presets_k_is_said_to_be_set_by_the_preset_not_by_the_user(datasets_dir: Path, tmp_path: Path,
                                                                      capsys) -> None:
    # The mall preset says k = 5: nobody gave a k, so the user fixed nothing.
    assert _train(tmp_path, "--data", str(datasets_dir / "Mall_Customers.csv"), "--preset", "mall") == 0
    err = capsys.readouterr().err
    assert "k=5 set by the preset (mall), not chosen" in err and "by the user" not in err
    search = _current(tmp_path).manifest["k_search"]
    assert search["rule"] == "set by the preset (mall)"
    assert search["explanation"].startswith("k = 5 was set by the preset (mall), not chosen by the valley-merge rule")
    store = ModelStore(tmp_path)
    report = (store.version_dir("customers", store.current("customers")) / "report.html").read_text()
    assert "<b>Rule:</b> set by the preset (mall)" in report and "by the user" not in report


@pytest.mark.slow
def test_the_most_segments_fit_the_manifest_with_a_hundred_features(datasets_dir: Path, tmp_path: Path) -> None:
    # limits.MAX_K's promise: the manifest of a search of 2..MAX_K that chose MAX_K, on 100 features, fits.
    # The valley test's pairs grow with the ks searched and the segment profiles with k x features: the
    # worst case is the search's rows spliced into the manifest of a fixed k = MAX_K.
    raw = ["Year_Birth", "Income", "Kidhome", "Teenhome", "Recency", "MntWines", "MntFruits", "MntMeatProducts",
           "MntFishProducts", "MntSweetProducts", "MntGoldProds", "NumDealsPurchases", "NumWebPurchases",
           "NumCatalogPurchases", "NumStorePurchases", "NumWebVisitsMonth", "AcceptedCmp3", "AcceptedCmp4",
           "AcceptedCmp5", "AcceptedCmp1", "AcceptedCmp2", "Complain", "Response"]
    derived = {f"Derived_feature_{i:02d}_{raw[i % len(raw)]}": f"{raw[i % len(raw)]} * {1 + (i + 1) / 1000} + {i}"
               for i in range(98 - len(raw))}
    numeric = ", ".join(f'"{c}"' for c in [*raw, *derived])
    lines = "\n".join(f'{name} = "{expression}"' for name, expression in derived.items())
    manifests = {}
    for k in (str(MAX_K), "auto"):
        config = tmp_path / f"wide-{k}.toml"
        config.write_text(f'[data]\nid_column = "ID"\nnumeric = [{numeric}]\n'
                          f'categorical = ["Education", "Marital_Status"]\n[derived]\n{lines}\n'
                          f"[model]\nk = \"{k}\"\nk_min = 2\nk_max = {MAX_K}\n")
        store = tmp_path / k
        assert _train(store, "--data", str(datasets_dir / "marketing_campaign.csv"), "--config", str(config)) == 0
        manifests[k] = _current(store).manifest
    fixed, searched = manifests[str(MAX_K)], manifests["auto"]
    assert len(fixed["feature_schema"]["numeric"]) + len(fixed["feature_schema"]["categorical"]) == 100
    assert [r["k"] for r in searched["k_search"]["rows"]] == list(range(2, MAX_K + 1))
    worst = json.dumps({**fixed, "k_search": searched["k_search"]}, indent=2, allow_nan=False).encode()
    assert 0.85 * MAX_MANIFEST_BYTES < len(worst) < MAX_MANIFEST_BYTES, len(worst)


def test_senseless_k_range_in_a_config(tmp_path: Path, capsys, datasets_dir: Path) -> None:
    config = tmp_path / "c.toml"
    config.write_text('[data]\nnumeric = ["Age"]\n[model]\nk_min = 6\nk_max = 3\n')
    assert _train(tmp_path / "s", "--data", str(datasets_dir / "Mall_Customers.csv"), "--config", str(config)) == 2
    assert "k_max" in capsys.readouterr().err


@pytest.mark.slow
def test_training_killed_at_any_moment_leaves_the_store_as_it_was(mall_store: Path, datasets_dir: Path,
                                                                 tmp_path: Path) -> None:
    """SIGKILL the real job at increasing delays: each time the store is as before or has one complete new version."""
    store = tmp_path / "store"
    assert _train(store, "--data", str(datasets_dir / "Mall_Customers.csv"), "--preset", "mall") == 0
    cmd = [sys.executable, "-m", "training_job", "train", "--data", str(datasets_dir / "Mall_Customers.csv"),
           "--preset", "mall", "--store", str(store)]
    outcomes = set()
    for delay in (0.5, 1.0, 1.5, 2.0, 2.5, 3.0, 4.0):
        before = visible_state(store)
        current_before = ModelStore(store).current("customers")
        proc = subprocess.Popen(cmd, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(delay)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        after = visible_state(store)
        s = ModelStore(store)
        if after == before:
            outcomes.add("unchanged")
            assert s.current("customers") == current_before
        else:
            # The job got as far as publishing: a complete, verifiable version is served.
            outcomes.add("published")
            read_artefact(s.version_dir("customers", s.current("customers")))
            new = set(after) - set(before)
            assert all(p.startswith("customers/versions/") or p == "customers/CURRENT" for p in new | {"customers/CURRENT"})
    assert "unchanged" in outcomes


def test_a_log_with_a_segment_of_one_time_buyers_trains_and_leaves_the_metric_out(datasets_dir: Path,
                                                                                     tmp_path: Path) -> None:
    # The first 60,000 lines of the Online Retail log: one segment is customers who bought once, who have
    # no days between purchases. Publishing used to fail (NaN in the manifest) and leave an empty model.
    with gzip.open(datasets_dir / "online_retail.csv.gz", "rt") as src:
        (tmp_path / "log.csv").write_text("".join(itertools.islice(src, 60_001)))
    assert _train(tmp_path / "store", "--data", str(tmp_path / "log.csv"), "--preset", "transactions") == 0
    m = _current(tmp_path / "store").manifest
    assert "PurchaseIntervalDays" in m["base"]["basket"]
    without = [s["name"] for s in m["segments"] if "PurchaseIntervalDays" not in s["basket"]]
    assert without, "expected a segment of one-time buyers"
    assert all("AvgBasketValue" in s["basket"] for s in m["segments"])


def test_na_tokens_are_missing_numbers_but_category_levels_as_written(tmp_path: Path, capsys) -> None:
    """'NA' in a column of numbers (as R writes a missing number) is missing, counted by the cleaning; 'None' (an
    education level) and 'NA' (North America) in text columns are levels, not imputed (pandas' default NA tokens
    made them missing). The log says per column what each token became; scoring the file reads it alike."""
    x, truth = make_blobs(n_samples=300, centers=3, n_features=2, cluster_std=0.6, random_state=5)
    frame = pd.DataFrame({"id": [f"c{i:03d}" for i in range(300)], "spend": (x[:, 0] * 10 + 100).round(2).astype(str),
                          "visits": (x[:, 1] * 3 + 40).round(1).astype(str),
                          "Education": np.array(["None", "Basic", "Graduate"])[truth],
                          "Region": np.array(["NA", "EU", "NA"])[truth]})
    frame.loc[[3, 50, 77, 120], "spend"] = "NA"
    data = tmp_path / "customers.csv"
    frame.to_csv(data, index=False)
    config = tmp_path / "c.toml"
    config.write_text('[data]\nkind = "customers"\nid_column = "id"\nnumeric = ["spend", "visits"]\n'
                      'categorical = ["Education", "Region"]\n[model]\nk = 3\n')
    assert _train(tmp_path / "store", "--data", str(data), "--config", str(config)) == 0
    err = capsys.readouterr().err
    assert "column 'spend': 'NA' (4 cells) read as missing (a column of numbers)" in err, err
    assert "column 'Education': 'None' (" in err and "kept as a value, not missing" in err, err
    art = _current(tmp_path / "store")
    levels = {c.name: set(c.levels) for c in art.schema.categorical}
    assert levels == {"Education": {"None", "Basic", "Graduate"}, "Region": {"NA", "EU"}}
    assert art.manifest["cleaning"]["missing"]["spend"]["count"] == 4
    assert "Education" not in art.manifest["cleaning"]["missing"] and "Region" not in art.manifest["cleaning"]["missing"]
    out = tmp_path / "scores.csv"
    assert main(["score", "--store", str(tmp_path / "store"), "--data", str(data), "--output", str(out)]) == 0
    scored = pd.read_csv(out, keep_default_na=False)
    assert (scored["error"] == "").all() and adjusted_rand_score(truth, scored["segment_id"]) == 1.0

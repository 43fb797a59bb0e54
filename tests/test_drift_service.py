"""Drift monitoring against real scoring servers: GetDriftReport, the gauges, row errors, hot swaps.

The done-when scenario runs on a model the real training job trains on the marketing-campaign data (not
the data the drift code was developed on: that was Mall customers), with 10 bins and 10,000 live rows.
"""
from __future__ import annotations

import json
import re
import urllib.request
from pathlib import Path

import grpc
import numpy as np
import pandas as pd
import pytest

from scoring_service.client import ScoringClient, ScoringError
from segmentation.v1 import scoring_pb2 as pb
from segmentation_core.store import ModelStore
from tests import model_factory
from tests.server_support import target, wait_for
from tests.test_drift_core import numpy_psi

LIVE_ROWS = 10_000


@pytest.fixture(scope="module")
def marketing(tmp_path_factory, datasets_dir) -> tuple[Path, pd.DataFrame]:
    """A store with the training job's marketing-campaign model, and the feature table it was trained on."""
    from training_job.cli import main
    from training_job.config import load_preset
    from training_job.table_prep import prepare_table
    from segmentation_core.tables import read_table

    store = tmp_path_factory.mktemp("marketing")
    data = datasets_dir / "marketing_campaign.csv"
    assert main(["train", "--store", str(store), "--data", str(data), "--preset", "marketing-campaign"]) == 0
    table = prepare_table(read_table(data), load_preset("marketing-campaign"))
    return store, table.features


def _live(features: pd.DataFrame, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    return features.iloc[rng.integers(0, len(features), LIVE_ROWS)].reset_index(drop=True)


def _metrics(server) -> str:
    return urllib.request.urlopen(f"http://127.0.0.1:{server.metrics_port}/metrics", timeout=5).read().decode()


def _gauge(text: str, name: str, **labels: str) -> float:
    for line in text.splitlines():
        if line.startswith(name + "{") and all(f'{k}="{v}"' in line for k, v in labels.items()):
            return float(line.rsplit(" ", 1)[1])
    raise AssertionError(f"{name} {labels} not in the metrics")


def test_rows_drawn_from_the_training_data_keep_every_psi_low(marketing, scoring_server_factory) -> None:
    store, features = marketing
    server = scoring_server_factory(store, drift_window_rows=LIVE_ROWS)
    live = _live(features, seed=11)
    with ScoringClient(target(server)) as client:
        result = client.predict_frame(live, batch_rows=1000)
        report = client.drift_report()
    assert (result["segment_id"] >= 0).all()
    assert report.has_reference and report.reference_bins == 10 and report.version == result.attrs["version"]
    assert report.rows == LIVE_ROWS and report.row_errors == 0
    assert report.sampled_rows == LIVE_ROWS  # a burst of one window's rows is binned whole
    assert {f.feature for f in report.features} == {"Age", "Income", "Total Spending", "Total Children",
                                                    "Days as customer", "Education", "Marital_Status"}
    for f in report.features:
        assert f.psi < 0.05, (f.feature, f.psi)
        assert sum(f.live_share) == pytest.approx(1.0) and sum(f.training_share) == pytest.approx(1.0)
    assert report.segment_mix.psi < 0.05
    assert report.verdict == pb.DRIFT_VERDICT_STABLE
    assert abs(report.mean_confidence - report.training_mean_confidence) < 0.02
    # the server's PSI is the textbook one, computed here from the raw columns
    for name in ("Income", "Age", "Total Spending"):
        server_psi = next(f.psi for f in report.features if f.feature == name)
        assert server_psi == pytest.approx(numpy_psi(features[name].to_numpy(float), live[name].to_numpy(float)),
                                           rel=1e-9)
    assert len(report.slices) == 10 and sum(s.rows for s in report.slices) == LIVE_ROWS


def test_one_shifted_feature_is_named_by_the_report_and_the_gauges(marketing, scoring_server_factory) -> None:
    store, features = marketing
    server = scoring_server_factory(store, drift_window_rows=LIVE_ROWS)
    live = _live(features, seed=12)
    live["Income"] = live["Income"] * 1.5
    with ScoringClient(target(server)) as client:
        client.predict_frame(live, batch_rows=2500)
        report = client.drift_report()
    psi = {f.feature: f.psi for f in report.features}
    assert psi["Income"] > 0.25
    assert max(v for k, v in psi.items() if k != "Income") < 0.1, psi
    assert report.verdict == pb.DRIFT_VERDICT_RETRAIN
    assert report.reasons[0].startswith("feature 'Income': PSI") and "major" in report.reasons[0]
    assert not any("'Age'" in r or "'Education'" in r for r in report.reasons)
    income = next(f for f in report.features if f.feature == "Income")
    assert income.band == "major" and len(income.bins) == len(income.edges) + 2  # value bins + missing
    text = _metrics(server)
    labels = {"model": "customers", "version": report.version}
    assert _gauge(text, "scoring_drift_psi", feature="Income", **labels) == pytest.approx(psi["Income"])
    assert _gauge(text, "scoring_drift_psi", feature="Age", **labels) < 0.1
    assert _gauge(text, "scoring_drift_psi", feature="segment", **labels) == pytest.approx(report.segment_mix.psi)
    assert _gauge(text, "scoring_drift_retrain_recommended", **labels) == 1.0
    assert _gauge(text, "scoring_drift_rows", **labels) == LIVE_ROWS


def test_row_errors_are_counted_as_errors_not_drift(tmp_path, scoring_server_factory) -> None:
    store = ModelStore(tmp_path)
    model_factory.publish(store, reference=True)
    server = scoring_server_factory(tmp_path, drift_window_rows=LIVE_ROWS, drift_min_rows=100, drift_sample_rate=0)
    frame = model_factory.mall().frame
    live = frame.iloc[np.arange(2000) % len(frame)].reset_index(drop=True)
    live["Annual Income (k$)"] = live["Annual Income (k$)"].astype(float)
    live.loc[::10, "Annual Income (k$)"] = np.inf  # 200 rows the server refuses, row by row
    with ScoringClient(target(server)) as client:
        result = client.predict_frame(live)
        assert (result["segment_id"] == -1).sum() == 200
        with pytest.raises(ScoringError) as err:
            client.predict({"Age": 30, "Annual Income (k$)": float("inf"), "Spending Score (1-100)": 50,
                            "Gender": "Male"})
        assert err.value.code == grpc.StatusCode.INVALID_ARGUMENT
        client.predict({"Age": 30, "Annual Income (k$)": 60, "Spending Score (1-100)": 50, "Gender": "Male"})
        report = client.drift_report()
    assert report.rows == 1801 and report.row_errors == 201
    income = next(f for f in report.features if f.feature == "Annual Income (k$)")
    assert income.live_missing_rate == 0.0 and income.psi < 0.1  # the refused values are in no bin
    assert report.verdict == pb.DRIFT_VERDICT_STABLE


def test_missing_values_and_unseen_levels_are_measured(tmp_path, scoring_server_factory) -> None:
    store = ModelStore(tmp_path)
    model_factory.publish(store, reference=True)
    server = scoring_server_factory(tmp_path, drift_window_rows=LIVE_ROWS, drift_min_rows=100, drift_sample_rate=0)
    frame = model_factory.mall().frame
    live = frame.iloc[np.arange(2000) % len(frame)].reset_index(drop=True)
    live["Age"] = live["Age"].astype(float)
    live.loc[:999, "Age"] = np.nan
    live["Gender"] = live["Gender"].astype(object)
    live.loc[:299, "Gender"] = "Nonbinary"
    with ScoringClient(target(server)) as client:
        client.predict_frame(live)
        report = client.drift_report()
    by = {f.feature: f for f in report.features}
    assert by["Age"].live_missing_rate == pytest.approx(0.5) and by["Age"].training_missing_rate == 0
    assert by["Age"].psi > 0.25 and by["Age"].live_share[-1] == pytest.approx(0.5)
    assert by["Gender"].live_unseen_rate == pytest.approx(0.15) and by["Gender"].bins[-2] == "(unseen)"
    assert report.verdict == pb.DRIFT_VERDICT_RETRAIN
    assert any("level training never saw" in r for r in report.reasons)


def test_each_version_counts_its_own_rows_across_a_hot_swap(tmp_path, scoring_server_factory) -> None:
    store = ModelStore(tmp_path)
    v1 = model_factory.publish(store, reference=True)
    server = scoring_server_factory(tmp_path, drift_min_rows=10, drift_sample_rate=0)
    frame = model_factory.mall().frame
    with ScoringClient(target(server)) as client:
        client.predict_frame(frame)
        for _, row in frame.head(50).iterrows():
            client.predict(row[model_factory.MALL_NUMERIC + ["Gender"]].to_dict())
        assert client.drift_report().rows == 250
        v2 = model_factory.publish(store, reference=True, seed=1, k=4)
        wait_for(lambda: server.registry.list_served().get("customers") == v2)
        fresh = client.drift_report()
        assert (fresh.version, fresh.rows, fresh.verdict) == (v2, 0, pb.DRIFT_VERDICT_INSUFFICIENT_DATA)
        client.predict_frame(frame.head(120))
        old, new = client.drift_report(version=v1), client.drift_report()
    assert (old.version, old.rows) == (v1, 250)
    assert (new.version, new.rows) == (v2, 120) and len(new.segment_mix.bins) == 4
    text = _metrics(server)
    assert _gauge(text, "scoring_drift_rows", model="customers", version=v1) == 250
    assert _gauge(text, "scoring_drift_rows", model="customers", version=v2) == 120


def test_a_version_without_reference_says_so(tmp_path, scoring_server_factory) -> None:
    store = ModelStore(tmp_path)
    model_factory.publish(store)  # as published before drift monitoring
    server = scoring_server_factory(tmp_path)
    with ScoringClient(target(server)) as client:
        client.predict_frame(model_factory.mall().frame)
        report = client.drift_report()
    assert not report.has_reference and report.verdict == pb.DRIFT_VERDICT_NO_REFERENCE
    assert report.reasons[0].startswith("no reference for this version")
    assert "scoring_drift_psi{" not in _metrics(server)


def test_window_limits_and_bad_requests(tmp_path, scoring_server_factory) -> None:
    store = ModelStore(tmp_path)
    model_factory.publish(store, reference=True)
    server = scoring_server_factory(tmp_path, drift_window_rows=3000, drift_min_rows=10, drift_sample_rate=0)
    frame = model_factory.mall().frame
    with ScoringClient(target(server)) as client:
        for _ in range(20):  # 4,000 rows in batches of 200: the window keeps the last 3,000 (to within a slice)
            client.predict_frame(frame)
        whole = client.drift_report()
        newest = client.drift_report(window_rows=1000)
        with pytest.raises(ScoringError) as err:
            client.drift_report(window_rows=-1)
        assert err.value.code == grpc.StatusCode.INVALID_ARGUMENT and "window_rows" in str(err.value)
        with pytest.raises(ScoringError) as err:
            client.drift_report(model="nope")
        assert err.value.code == grpc.StatusCode.NOT_FOUND
    assert 3000 <= whole.rows <= 3000 + 200 and whole.window_rows_limit == 3000
    assert newest.rows == 1000 and newest.window_start > whole.window_start


def test_accounting_off_and_model_info_leaves_the_reference_out(tmp_path, scoring_server_factory) -> None:
    store = ModelStore(tmp_path)
    model_factory.publish(store, reference=True)
    server = scoring_server_factory(tmp_path, drift_window_rows=0)
    with ScoringClient(target(server)) as client:
        client.predict_frame(model_factory.mall().frame)
        report = client.drift_report()
        stub = client._stub
        plain = stub.GetModelInfo(pb.GetModelInfoRequest())
        full = stub.GetModelInfo(pb.GetModelInfoRequest(include_reference=True))
    assert report.rows == 0 and "accounting is off" in report.reasons[0]
    assert "reference" not in json.loads(plain.manifest_json)
    assert json.loads(full.manifest_json)["reference"]["bins"] == 10


@pytest.mark.parametrize("flag, value, message", [
    ("--drift-window-rows", "-1", "drift_window_rows=-1"),
    ("--drift-window-minutes", "0", "drift_window_minutes=0.0"),
    ("--drift-min-rows", "0", "drift_min_rows=0"),
])
def test_bad_drift_flags_are_refused(flag: str, value: str, message: str, capsys) -> None:
    from scoring_service.settings import parse_settings

    with pytest.raises(SystemExit):
        parse_settings([flag, value], environ={})
    assert re.search(re.escape(message), capsys.readouterr().err)


def test_window_bins_a_sample_at_high_rates_counts_every_row_and_forgets_old_slices(tmp_path) -> None:
    from scoring_service.drift_window import MIN_SAMPLE, VersionWindow
    from segmentation_core.artefact import read_artefact

    store = ModelStore(tmp_path)
    art = read_artefact(store.version_dir("customers", model_factory.publish(store, reference=True)))
    now = [1000.0]
    window = VersionWindow(art.reference, art.schema, window_rows=5000, window_seconds=600.0, sample_rate=100.0,
                           clock=lambda: now[0])
    frame = model_factory.mall().frame

    def batch(n: int, errors: dict | None = None) -> None:
        rows = frame.iloc[np.arange(n) % len(frame)]
        numeric = {c: rows[c].to_numpy(float) for c in model_factory.MALL_NUMERIC}
        codes: dict = {}
        x, _ = art.schema.transform_columns(numeric, {"Gender": list(rows["Gender"])}, n, category_codes=codes)
        s = art.model.score(x)
        window.add_batch(numeric, codes, s.segment, s.confidence, s.distance, s.outlier, n, errors or {})

    batch(200, {3: "bad", 4: "bad", 5: "bad"})  # 5,000 tokens: every row without an error is binned
    assert (window.totals().rows, window.totals().binned, window.totals().errors) == (197, 197, 3)
    batch(2000)  # 4,803 tokens: all
    batch(4000)  # 2,803 tokens: every 2nd row
    batch(4000)  # 803 tokens, fewer than MIN_SAMPLE: none
    assert 803 < MIN_SAMPLE
    totals = window.totals()
    assert totals.rows == 197 + 2000 + 4000 + 4000 and totals.binned == 197 + 2000 + 2000
    for name, _kind, part in window.layout.slices():
        assert totals.counts[part].sum() == (totals.rows if name == "segment" else totals.binned)
    now[0] += 10  # 1,000 more tokens: 1,803, every 3rd row of the next batch
    batch(4000)
    totals = window.totals()  # 5,531 binned rows: the oldest slice (197) left the 5,000-row window
    assert totals.rows == 2000 + 4000 + 4000 + 4000
    assert totals.binned - 4000 in (1333, 1334)  # every 3rd of 4,000 rows, from a rotating start
    now[0] += 601  # ten minutes later everything has left the window
    assert window.totals().rows == 0

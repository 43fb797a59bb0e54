"""CLV over the real scoring service: Predict and PredictStream return a customer's CLV figures when the
model has them and the request carries the inputs; the same numbers as `training_job score`."""
from __future__ import annotations

import dataclasses

import time

from pathlib import Path

import grpc
import numpy as np
import pandas as pd
import pytest

from scoring_service.client import ScoringClient, ScoringError
from segmentation_core.artefact import read_artefact
from segmentation_core.clv import FIGURES, INPUTS
from segmentation_core.recipe import Recipe, aggregate
from segmentation_core.store import ModelStore
from segmentation_core.tables import read_table
from tests.server_support import target
from tests.test_clv import cdnow_store  # noqa: F401  (the shared CDNOW sample model)
from training_job.batch_score import score_frame


@pytest.fixture(scope="module")
def customers(cdnow_store: Path) -> pd.DataFrame:  # noqa: F811
    store = ModelStore(cdnow_store / "store")
    artefact = read_artefact(store.version_dir("cdnow", store.current("cdnow")))
    table, _ = aggregate(read_table(cdnow_store / "cdnow_sample.txt"), Recipe.from_dict(artefact.recipe))
    return table


@pytest.fixture()
def client(cdnow_store: Path, scoring_server_factory):  # noqa: F811
    server = scoring_server_factory(cdnow_store / "store", model="cdnow")
    with ScoringClient(target(server)) as c:
        yield c


def test_model_info_describes_the_clv_models_and_the_recipe(client: ScoringClient) -> None:
    info = client.model_info()
    assert info.clv is not None and info.clv.time_unit == "weeks" and info.clv.horizon_days == 365
    assert info.clv.bgnbd["r"] == pytest.approx(0.243, rel=0.01)
    assert info.recipe_columns == {"customer_id": "customer_id", "date": "date", "quantity": "number_of_cds",
                                   "amount": "dollar_value"}
    assert sum(s.clv.share_of_clv for s in info.segments) == pytest.approx(1.0)
    basket = {f.feature: f for f in info.segments[0].basket}
    assert {"AvgBasketValue", "AvgItemsPerPurchase", "TenureDays", "PurchaseIntervalDays"} <= set(basket)


def test_predict_returns_clv_only_when_the_inputs_come(client: ScoringClient, customers: pd.DataFrame,
                                                       cdnow_store: Path) -> None:  # noqa: F811
    row = customers.loc["00004"]
    features = {name: float(row[name]) for name in ("Recency", "Frequency", "Monetary")}
    assert client.predict(features).clv is None
    with_clv = client.predict({**features, **{name: float(row[name]) for name in INPUTS}})
    store = ModelStore(cdnow_store / "store")
    expected, _ = score_frame(read_artefact(store.version_dir("cdnow", store.current("cdnow"))),
                              read_table(cdnow_store / "cdnow_sample.txt"))
    offline = expected.set_index("customer_id").loc["00004"]
    assert with_clv.segment_id == offline["segment_id"]
    for name in FIGURES:
        assert getattr(with_clv.clv, name) == pytest.approx(offline[name], rel=1e-12)


@pytest.mark.parametrize("change, message", [
    ({"CustomerAge": None}, "RepeatPurchases, LastPurchaseTime, AvgRepeatValue given without CustomerAge"),
    ({"RepeatPurchases": 1.5}, "RepeatPurchases: 1.5 should be a whole number >= 0"),
    ({"AvgRepeatValue": -3.0}, "AvgRepeatValue: -3.0 should be a finite number >= 0"),
])
def test_bad_clv_inputs_are_refused_naming_the_field(client: ScoringClient, change: dict, message: str) -> None:
    customer = {"Recency": 10.0, "Frequency": 3.0, "Monetary": 60.0, "RepeatPurchases": 2.0,
                "LastPurchaseTime": 20.0, "CustomerAge": 30.0, "AvgRepeatValue": 25.0}
    for name, value in change.items():
        if value is None:
            del customer[name]
        else:
            customer[name] = value
    with pytest.raises(ScoringError) as err:
        client.predict(customer)
    assert err.value.code == grpc.StatusCode.INVALID_ARGUMENT and message in err.value.message


def test_predict_stream_gives_the_offline_numbers(client: ScoringClient, customers: pd.DataFrame,
                                                  cdnow_store: Path) -> None:  # noqa: F811
    frame = customers.copy()
    frame.loc[frame.index[5], "AvgRepeatValue"] = -1.0  # one invalid row: a row error, the others scored
    result = client.predict_frame(frame, batch_rows=500)
    store = ModelStore(cdnow_store / "store")
    offline, _ = score_frame(read_artefact(store.version_dir("cdnow", store.current("cdnow"))),
                             read_table(cdnow_store / "cdnow_sample.txt"))
    offline = offline.set_index("customer_id").loc[frame.index]
    ok = np.ones(len(frame), dtype=bool)
    ok[5] = False
    assert result["segment_id"].iloc[5] == -1 and "AvgRepeatValue" in result["error"].iloc[5]
    assert np.isnan(result["clv"].iloc[5])
    np.testing.assert_array_equal(result["segment_id"].to_numpy()[ok], offline["segment_id"].to_numpy()[ok])
    for name in FIGURES:
        assert result[name].dtype == np.float32 and offline[name].dtype == np.float32  # single precision
        np.testing.assert_array_equal(result[name].to_numpy()[ok], offline[name].to_numpy()[ok])
    # without the inputs, the same stream has no CLV columns
    plain = client.predict_frame(customers[["Recency", "Frequency", "Monetary"]])
    assert "clv" not in plain.columns


def test_clv_inputs_as_doubles_give_the_same_figures_and_features_must_be_doubles(
        cdnow_store: Path, scoring_server_factory, customers: pd.DataFrame) -> None:  # noqa: F811
    # what a client of another language may send: the CLV inputs as doubles (NumericColumn.values) instead of
    # single_values; the service takes them in single precision either way. A feature in single precision is
    # a batch error naming it, and the stream goes on.
    from scoring_service import wire

    server = scoring_server_factory(cdnow_store / "store", model="cdnow")
    rows = customers.head(300)
    numeric = {name: rows[name].to_numpy(np.float64) for name in ("Recency", "Frequency", "Monetary", *INPUTS)}
    # CDNOW's log has no invoices: CustomerAge and RepeatPurchases may be left out, the service derives them
    left_out = {k: v for k, v in numeric.items() if k not in ("CustomerAge", "RepeatPurchases")}
    no_recency = {k: v for k, v in left_out.items() if k != "Recency"}
    requests = [wire.encode_batch_request(numeric, batch_id="doubles"),
                wire.encode_batch_request(numeric, batch_id="singles", single=set(INPUTS)),
                wire.encode_batch_request(numeric, batch_id="feature", single={"Recency", *INPUTS}),
                wire.encode_batch_request(left_out, batch_id="left out", single=set(INPUTS)),
                wire.encode_batch_request(no_recency, batch_id="no recency", single=set(INPUTS))]
    with grpc.insecure_channel(target(server)) as channel:
        doubles, singles, feature, derived, no_source = (
            wire.decode_batch_response(r) for r in wire.predict_stream_method(channel)(iter(requests), timeout=30))
    assert doubles.clv is not None and singles.clv is not None and derived.clv is not None
    assert not doubles.row_errors and not derived.row_errors
    for name in FIGURES:
        assert doubles.clv[name].dtype == np.float32 and np.array_equal(doubles.clv[name], singles.clv[name])
        assert np.array_equal(derived.clv[name], singles.clv[name])
    assert feature.batch_error.startswith("numeric['Recency']: a feature sent in single precision")
    assert no_source.batch_error == (
        "CLV inputs: LastPurchaseTime, AvgRepeatValue given without CustomerAge; send all four (RepeatPurchases, "
        "LastPurchaseTime, CustomerAge, AvgRepeatValue) or none; CustomerAge may be left out when the batch has "
        "Recency and LastPurchaseTime")


def test_the_client_leaves_out_only_what_the_service_derives_exactly(client: ScoringClient,
                                                                     customers: pd.DataFrame) -> None:
    from scoring_service.client.frames import Schema, frame_job

    schema = Schema.from_info(client.model_info())
    assert schema.clv_derivable == {"CustomerAge", "RepeatPurchases"} and schema.clv_unit_days == 7
    job = frame_job(customers, schema, 1000)  # the recipe's own columns: both derivations hold on every row
    assert set(job.numeric) == {"Recency", "Frequency", "Monetary", "LastPurchaseTime", "AvgRepeatValue"}
    assert job.single == {"LastPurchaseTime", "AvgRepeatValue"}
    changed = customers.copy()
    changed.loc[changed.index[7], "CustomerAge"] += 0.5  # a hand-made table: no longer the recipe's derivation
    job = frame_job(changed, schema, 1000)
    assert "CustomerAge" in job.numeric and "RepeatPurchases" not in job.numeric
    assert job.numeric["CustomerAge"].dtype == np.float32
    result = client.predict_frame(changed)
    assert result["clv"].notna().all()  # served with the CustomerAge sent


def test_client_cli_scores_a_raw_log_with_the_training_labels(cdnow_store: Path, scoring_server_factory,  # noqa: F811
                                                              tmp_path: Path, capsys) -> None:
    from scoring_service.client.cli import main as client_main

    server = scoring_server_factory(cdnow_store / "store", model="cdnow")
    out = tmp_path / "scored.csv"
    assert client_main(["score", str(cdnow_store / "cdnow_sample.txt"), "-o", str(out), "--target", target(server),
                        "--model", "cdnow"]) == 0
    assert "a transaction log, aggregated to customers as of 1998-07-01" in capsys.readouterr().out
    result = pd.read_csv(out, dtype={"customer_id": str}).set_index("customer_id")
    store = ModelStore(cdnow_store / "store")
    sample = read_artefact(store.version_dir("cdnow", store.current("cdnow"))).load_sample()
    labels = pd.Series(sample["segment_id"], index=sample["id"].astype(str))
    assert np.array_equal(result["segment_id"].loc[labels.index].to_numpy(), labels.to_numpy())
    assert result["clv"].notna().all() and set(result["as_of"]) == {"1998-07-01"}
    # --as-of before the data: one line naming the problem, nothing written
    out.unlink()
    assert client_main(["score", str(cdnow_store / "cdnow_sample.txt"), "-o", str(out), "--target", target(server),
                        "--model", "cdnow", "--as-of", "1990-01-01"]) == 2
    assert "as-of date 1990-01-01 is not after the first transaction" in capsys.readouterr().err
    assert not out.exists()


def test_dashboard_scores_a_raw_log_and_shows_clv_and_basket_metrics(cdnow_store: Path,  # noqa: F811
                                                                    scoring_server_factory) -> None:
    from dash_ui.app import render_page
    from dash_ui.customer_value import basket_frame, clv_card, clv_frame
    from dash_ui.pages import batch
    from tests.test_dash_app import text_of, walk
    from tests.test_dash_service import Dashboards

    server = scoring_server_factory(cdnow_store / "store", model="cdnow")
    dashboards = Dashboards()
    try:
        service = dashboards.service(target(server))
        view = service.model_view()
        log = read_table(cdnow_store / "cdnow_sample.txt")
        assert view.recipe is not None
        # the Batch page: the log is recognised, aggregated here, and scored with the training labels
        _, report = aggregate(log, view.recipe)
        assert "as of 1998-07-01" in text_of(batch.log_report_view("log.txt", report))
        scored = service.score_log(log).result.set_index("customer_id")
        store = ModelStore(cdnow_store / "store")
        sample = read_artefact(store.version_dir("cdnow", store.current("cdnow"))).load_sample()
        labels = pd.Series(sample["segment_id"], index=sample["id"].astype(str))
        assert np.array_equal(scored["segment_id"].loc[labels.index].to_numpy(), labels.to_numpy())
        assert scored["clv"].notna().all()
        # the Batch page's pre-check of the aggregated customers against the training range: the same log a
        # year later leaves every customer silent for a year longer, beyond the training Recency
        from dash_ui.batch import validate_frame

        later, later_report = aggregate(log, view.recipe, "1999-07-01")
        text = text_of(batch.log_report_view("log.txt", later_report, validate_frame(later.reset_index(), view)))
        recency = next(f for f in view.numeric_features if f.name == "Recency")
        outside = int(((later["Recency"] < recency.minimum) | (later["Recency"] > recency.maximum)).sum())
        assert outside > len(later) // 2 and f"Recency: {outside:,} customers outside the training range" in text
        same, same_report = aggregate(log, view.recipe)
        assert "outside the training range" not in text_of(
            batch.log_report_view("log.txt", same_report, validate_frame(same.reset_index(), view)))
        # the Batch page's job counts customers, not log lines: its total is known once the log is aggregated
        from dash_ui.batch import JobRegistry

        job = JobRegistry().start(log, lambda frame, progress: service.score_log(frame, progress=progress,
                                                                                 batch_rows=500).result,
                                  unit="customers", rows_known=False)
        assert job.total in (None, len(scored)) and job.lines == len(log) > len(scored)
        deadline = time.monotonic() + 60
        while job.state == "running" and time.monotonic() < deadline:
            time.sleep(0.05)
        assert job.state == "done" and job.total == job.done == len(scored) and job.fraction == 1.0
        assert job.status.startswith(f"Scored {len(scored):,} customers from {len(log):,} log lines")
        # CLV per segment (Overview, Segments) and basket metrics (Segments)
        clv = clv_frame(view)
        assert len(clv) == view.k + 1 and clv["share_of_clv"].iloc[:-1].sum() == pytest.approx(1.0)
        note = text_of(clv_card(view, "clv"))  # CDNOW's fit sees dropout: the general note on one-time buyers only
        assert "never bought again counts as alive" in note and "almost no dropout" not in note
        assert set(basket_frame(view)["metric"]) == {"Average basket value", "Items per purchase", "Tenure (days)",
                                                     "Days between purchases"}
        for path, grid in (("/", "overview-clv-table"), ("/segments", "segments-basket-table")):
            page = render_page(service, path, "")
            assert any(getattr(c, "id", None) == grid for c in walk(page)), path
    finally:
        dashboards.close()


def test_dashboard_predict_result_shows_the_customers_clv(cdnow_store: Path, scoring_server_factory,  # noqa: F811
                                                          customers: pd.DataFrame) -> None:
    from dash_ui.pages import predict
    from tests.test_dash_app import text_of, walk
    from tests.test_dash_service import Dashboards

    server = scoring_server_factory(cdnow_store / "store", model="cdnow")
    dashboards = Dashboards()
    try:
        service = dashboards.service(target(server))
        view = service.model_view()
        assert any(getattr(c, "id", None) == "predict-clv-fields" for c in walk(predict.form(view)))
        row = customers.loc["00004"]
        lifetime, errors = predict.clv_inputs({name: row[name] for name in INPUTS})
        assert not errors
        prediction = service.predict({"Recency": row["Recency"], "Frequency": row["Frequency"],
                                      "Monetary": row["Monetary"], **lifetime})
        card = predict.result_card(prediction, "#000")
        assert f"{prediction.clv.clv:,.2f}" in text_of(card) and prediction.clv.clv > 0
        assert predict.clv_inputs({"RepeatPurchases": 2})[1] == [
            "Lifetime value: fill all four inputs or none (LastPurchaseTime, CustomerAge, AvgRepeatValue missing)."]
    finally:
        dashboards.close()


def test_a_log_model_with_derived_features_scores_a_raw_log_with_the_training_labels(
        tmp_path: Path, cdnow_store: Path, scoring_server_factory) -> None:  # noqa: F811
    # [derived] columns and valid ranges of a log model travel in its recipe: every raw-log scoring path
    # recomputes them from the aggregated customers as training did, and gets training's segments
    from scoring_service.client.logs import score_log
    from segmentation_core.errors import DataError
    from segmentation_core.recipe import check_features
    from training_job.cli import main

    config = tmp_path / "derived.toml"
    preset = (Path(__file__).resolve().parents[1] / "training_job" / "presets" / "transactions-cdnow.toml").read_text()
    config.write_text(preset.replace('numeric = ["Recency", "Frequency", "Monetary"]',
                                     'numeric = ["Recency", "Frequency", "SpendPerPurchase"]')
                      + '\n[derived]\nSpendPerPurchase = "Monetary / Frequency"\n'
                      + '\n[cleaning.valid_range]\nSpendPerPurchase = ["", 150]\n')
    store = tmp_path / "store"
    assert main(["train", "--store", str(store), "--model", "derived", "--data", str(cdnow_store / "cdnow_sample.txt"),
                 "--config", str(config), "--k", "3"]) == 0
    log = read_table(cdnow_store / "cdnow_sample.txt")
    artefact = read_artefact(ModelStore(store).version_dir("derived", "v0001"))
    recipe = Recipe.from_dict(artefact.manifest["recipe"])
    assert recipe.derived == {"SpendPerPurchase": "Monetary / Frequency"}
    assert recipe.valid_range == {"SpendPerPurchase": [None, 150.0]}
    sample = artefact.load_sample()
    labels = pd.Series(sample["segment_id"], index=sample["id"].astype(str))
    offline, _ = score_frame(artefact, log)
    offline = offline.set_index(offline["customer_id"].astype(str))
    assert np.array_equal(offline["segment_id"].loc[labels.index].to_numpy(), labels.to_numpy())
    customers, _ = aggregate(log, recipe)
    spend = customers["Monetary"] / customers["Frequency"]
    assert customers["SpendPerPurchase"].isna().sum() == int((spend > 150).sum()) > 0  # out of range: missing
    server = scoring_server_factory(store, model="derived")
    with ScoringClient(target(server)) as client:
        scored = score_log(client, log, batch_rows=500).result.set_index("customer_id")
    assert np.array_equal(scored["segment_id"].loc[labels.index].to_numpy(), labels.to_numpy())
    # a recipe without the [derived] column (a model published before recipes carried them) is refused
    with pytest.raises(DataError, match="'SpendPerPurchase' that its recipe does not compute from a log"):
        check_features(["Recency", "SpendPerPurchase"], "old v0001", Recipe())
    # an expression naming a column the customers do not have stops with the expression and the column
    with pytest.raises(DataError, match=r"derived column 'X' = 'Spend / Frequency': no column 'Spend'; the table"):
        aggregate(log, dataclasses.replace(recipe, derived={"X": "Spend / Frequency"}))

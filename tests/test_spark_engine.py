"""The Spark engine (issue 18 items 1-2) against the pandas path, on local[2] (the shared ``spark_session``).

Both engines train on the same log; the Spark path's per-customer features equal the pandas path's (1e-9,
relative to max(1, |value|): the sums run in another order), the same k is chosen, and the two models label
the customers alike (ARI >= 0.99). ``score --engine spark`` equals a real scoring server on loopback on every
row. Bad input stops with one line naming the column, value or path, exit code 2, and nothing published.
The CDNOW sample runs in the quick suite; the full Online Retail log and the full CDNOW master file are slow.
"""
from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import adjusted_rand_score

from segmentation_core.artefact import read_artefact
from segmentation_core.recipe import CUSTOMER_COLUMNS, aggregate
from segmentation_core.store import ModelStore
from segmentation_core.tables import read_table
from tests.test_clv import cdnow_sample_in_master_layout
from training_job.cli import main
from training_job.config import load_preset

TOLERANCE = 1e-9


def _train_both(spark_session, data: Path, preset: str, folder: Path) -> dict:
    """Train the pandas and the Spark engine on ``data``; the store, artefacts and the pandas features."""
    store = folder / "store"
    assert main(["train", "--store", str(store), "--model", "pandas", "--data", str(data), "--preset", preset]) == 0
    assert main(["train", "--engine", "spark", "--store", str(store), "--model", "spark", "--data", str(data),
                 "--preset", preset]) == 0
    models = ModelStore(store)
    artefacts = {name: read_artefact(models.version_dir(name, models.current(name))) for name in ("pandas", "spark")}
    recipe = load_preset(preset).recipe()
    features, _report = aggregate(read_table(data), recipe)
    return {"store": store, "data": data, "preset": preset, "artefacts": artefacts, "features": features,
            "recipe": recipe}


def _spark_features(spark_session, data: Path, recipe) -> tuple[pd.DataFrame, dict]:
    from training_job.spark import recipe as spark_recipe
    from training_job.spark.reading import read_source

    table, report = spark_recipe.aggregate(read_source(spark_session, str(data)), recipe)
    frame = table.toPandas().set_index(spark_recipe.CUSTOMER).sort_index()
    return frame, report.to_dict()


def _relative_gap(a: pd.DataFrame, b: pd.DataFrame) -> float:
    both = a.isna() & b.isna()
    assert (a.isna() == b.isna()).all().all(), "missing values differ"
    gap = ((a - b).abs() / np.maximum(1.0, b.abs())).where(~both, 0.0)
    return float(gap.to_numpy().max())


def _check_equal(spark_session, trained: dict) -> dict:
    """Features, schema, k and ARI of the two engines; returns the figures for the report."""
    features = trained["features"]
    spark_frame, spark_report = _spark_features(spark_session, trained["data"], trained["recipe"])
    _pandas_table, pandas_report = aggregate(read_table(trained["data"]), trained["recipe"])
    assert spark_report == pandas_report.to_dict()
    assert list(spark_frame.index) == list(features.index)
    gap = _relative_gap(spark_frame[list(CUSTOMER_COLUMNS)], features[list(CUSTOMER_COLUMNS)])
    assert gap <= TOLERANCE

    pandas_model, spark_model = trained["artefacts"]["pandas"], trained["artefacts"]["spark"]
    for a, b in zip(pandas_model.schema.numeric, spark_model.schema.numeric):
        assert a.name == b.name and a.skew == b.skew
        for field in ("impute", "clip_low", "clip_high", "yj_lambda", "center", "scale", "minimum", "maximum"):
            assert getattr(b, field) == pytest.approx(getattr(a, field), rel=TOLERANCE, abs=TOLERANCE), (a.name, field)
    k = {name: a.manifest["k_search"]["chosen_k"] for name, a in trained["artefacts"].items()}
    assert k["pandas"] == k["spark"]
    labels = {name: a.model.score(a.schema.transform_frame(features)).segment for name, a in trained["artefacts"].items()}
    ari = adjusted_rand_score(labels["pandas"], labels["spark"])
    assert ari >= 0.99
    sizes = [s["size"] for s in spark_model.manifest["segments"]]
    assert sum(sizes) == len(features) and spark_model.manifest["data"]["customers"] == len(features)
    return {"gap": gap, "k": k["spark"], "ari": ari}


def _check_score_equals_service(trained: dict, folder: Path) -> None:
    """``score --engine spark`` on the raw log against a real scoring server fed the pandas features."""
    from scoring_service.client import ScoringClient
    from tests.server_support import start_server

    output = folder / "scored.parquet"
    assert main(["score", "--engine", "spark", "--store", str(trained["store"]), "--model", "spark",
                 "--data", str(trained["data"]), "--output", str(output)]) == 0
    scored = pd.read_parquet(output).set_index("id")
    features = trained["features"]
    assert list(scored.index) == list(features.index)
    server = start_server(trained["store"], model="spark", metrics_port=-1)
    try:
        with ScoringClient(f"127.0.0.1:{server.port}") as client:
            served = client.predict_frame(features.reset_index(drop=True))
    finally:
        server.stop(grace=0.5)
    assert (scored["segment_id"].to_numpy() == served["segment_id"].to_numpy()).all()
    assert (scored["outlier"].to_numpy() == served["outlier"].to_numpy()).all()
    for column in ("distance", "confidence"):
        np.testing.assert_allclose(scored[column].to_numpy(), served[column].to_numpy(), rtol=1e-12, atol=1e-12)
    assert (scored["error"] == "").all()
    assert list(scored["segment_name"]) == list(served["segment_name"].astype(str))


@pytest.fixture(scope="module")
def cdnow_sample(spark_session, datasets_dir: Path, tmp_path_factory) -> dict:
    folder = tmp_path_factory.mktemp("spark-cdnow-sample")
    return _train_both(spark_session, cdnow_sample_in_master_layout(datasets_dir, folder), "transactions-cdnow",
                       folder)


def test_cdnow_sample_spark_equals_pandas(spark_session, cdnow_sample: dict) -> None:
    figures = _check_equal(spark_session, cdnow_sample)
    logging.getLogger(__name__).info("CDNOW sample: %s", figures)


def test_cdnow_sample_spark_scores_equal_the_service(cdnow_sample: dict, tmp_path: Path) -> None:
    _check_score_equals_service(cdnow_sample, tmp_path)


def _broken_logs(folder: Path, source: Path) -> dict[str, tuple[Path, str]]:
    text = source.read_text().splitlines()
    rows = text[1:50]
    no_id = folder / "no_id.csv"
    no_id.write_text("date,number_of_cds,dollar_value\n" + "\n".join(",".join(r.split()[1:]) for r in rows) + "\n")
    bad_date = folder / "bad_date.csv"
    lines = [",".join(r.split()) for r in rows]
    lines[7] = lines[7].replace(lines[7].split(",")[1], "1997-13-45", 1)
    bad_date.write_text("customer_id,date,number_of_cds,dollar_value\n" + "\n".join(lines) + "\n")
    return {
        "missing column": (no_id, "'customer_id' (transactions.customer_id)"),
        "unparsable date": (bad_date, "column 'date': '1997-13-45' is not a date"),
        "nothing matches": (folder / "nowhere" / "*.csv", "no file matches this path"),
    }


@pytest.mark.parametrize("case", ["missing column", "unparsable date", "nothing matches"])
def test_bad_input_names_the_problem_and_publishes_nothing(spark_session, cdnow_sample: dict, case: str,
                                                           tmp_path: Path, capsys) -> None:
    path, expected = _broken_logs(tmp_path, cdnow_sample["data"])[case]
    store = ModelStore(cdnow_sample["store"])
    before = store.versions("spark")
    capsys.readouterr()
    code = main(["train", "--engine", "spark", "--store", str(cdnow_sample["store"]), "--model", "spark",
                 "--data", str(path), "--preset", "transactions-cdnow"])
    assert code == 2
    errors = [line for line in capsys.readouterr().err.splitlines() if " ERROR " in line]
    assert len(errors) == 1 and expected in errors[0], errors
    assert store.versions("spark") == before
    output = tmp_path / "out.parquet"
    code = main(["score", "--engine", "spark", "--store", str(cdnow_sample["store"]), "--model", "spark",
                 "--data", str(path), "--output", str(output)])
    errors = [line for line in capsys.readouterr().err.splitlines() if " ERROR " in line]
    assert code == 2 and len(errors) == 1 and expected in errors[0], errors
    assert not output.exists() and not list(tmp_path.glob(".out.parquet*"))


@pytest.mark.slow
@pytest.mark.timeout(2400)
def test_full_online_retail_spark_equals_pandas(spark_session, datasets_dir: Path, tmp_path: Path) -> None:
    trained = _train_both(spark_session, datasets_dir / "online_retail.csv.gz", "transactions", tmp_path)
    figures = _check_equal(spark_session, trained)
    logging.getLogger(__name__).info("Online Retail: %s", figures)
    _check_score_equals_service(trained, tmp_path)


@pytest.mark.slow
@pytest.mark.timeout(2400)
def test_full_cdnow_spark_equals_pandas(spark_session, datasets_dir: Path, tmp_path: Path) -> None:
    trained = _train_both(spark_session, datasets_dir / "CDNOW_master.txt", "transactions-cdnow", tmp_path)
    figures = _check_equal(spark_session, trained)
    logging.getLogger(__name__).info("CDNOW master: %s", figures)
    _check_score_equals_service(trained, tmp_path)

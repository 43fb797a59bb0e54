"""[derived] columns of a log's model on Spark (training_job.spark.derived) equal the pandas path's, edge cases
included (division by zero, numpy's floor division and remainder, powers that overflow, whole-table
aggregates, valid ranges); a model with a [derived] feature trains on both engines alike and
``score --engine spark`` gives the scoring service's numbers. Runs on the shared ``spark_session``."""
from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from segmentation_core.errors import DataError
from segmentation_core.recipe import aggregate
from segmentation_core.tables import read_table
from tests.test_clv import cdnow_sample_in_master_layout
from tests.test_spark_engine import _check_score_equals_service, _relative_gap
from training_job.config import load_preset

PRESET = Path(__file__).resolve().parents[1] / "training_job" / "presets" / "transactions-cdnow.toml"

EDGE_CASES = {
    "PerPurchase": "Monetary / Frequency",
    "PerRepeat": "Monetary / RepeatPurchases",  # zero repeats: missing
    "Weeks": "Recency // 7",
    "NegWeeks": "-Recency // 7.5",
    "DayOfWeek": "Recency % 7",
    "SignedMod": "(Recency - 200) % -7.5",
    "ModZero": "Recency % (Frequency - Frequency)",
    "Root": "(Recency - 100) ** 0.5",  # negative base: not a number, missing
    "Huge": "Monetary ** 400",  # overflows: missing
    "Inverse": "(Frequency - 1) ** -1",  # 0 ** -1: missing
    "SinceBest": "max(Recency) - Recency",
    "Relative": "Monetary / mean(Monetary)",
    "Spread": "abs(Recency - mean(Recency)) / (max(Recency) - min(Recency))",
    "Chained": "PerPurchase * 2 + `Weeks`",  # a later expression uses earlier ones
    "OfBest": "PerRepeat / max(PerRepeat) - min(Root - mean(Root))",  # aggregates skip missing values, nested
}


@pytest.fixture(scope="module")
def cdnow_log(datasets_dir: Path, tmp_path_factory) -> Path:
    return cdnow_sample_in_master_layout(datasets_dir, tmp_path_factory.mktemp("spark-derived"))


@pytest.mark.slow
def test_derived_columns_equal_the_pandas_path_to_the_last_bit(spark_session, cdnow_log: Path) -> None:
    from dataclasses import replace

    from training_job.spark import recipe as spark_recipe
    from training_job.spark.derived import add_derived, apply_valid_ranges
    from training_job.spark.reading import read_source

    rules = replace(load_preset("transactions-cdnow").recipe(), derived=EDGE_CASES,
                    valid_range={"PerPurchase": [None, 100.0], "Weeks": [2.0, None]})
    expected, _ = aggregate(read_table(cdnow_log), rules)  # Recipe.features: derived, then valid ranges
    table, _ = spark_recipe.aggregate(read_source(spark_session, str(cdnow_log)), rules)
    got = apply_valid_ranges(add_derived(table, rules.derived), rules.valid_range).toPandas()
    got = got.set_index(spark_recipe.CUSTOMER).sort_index()
    assert list(got.index) == list(expected.index)
    names = list(EDGE_CASES)
    assert _relative_gap(got[names], expected[names]) <= 1e-12
    for name in ("Weeks", "NegWeeks", "DayOfWeek", "SignedMod"):  # numpy's rounding, exactly
        assert (got[name].dropna() == expected[name].dropna()).all(), name
    assert expected["PerRepeat"].isna().any() and expected["Root"].isna().any() and expected["Huge"].isna().mean() > 0.9
    assert expected["ModZero"].isna().all() and expected["Inverse"].isna().any()
    assert expected["PerPurchase"].isna().any() and (expected["SignedMod"] < 0).any()


def test_a_derived_expression_that_cannot_be_computed_names_itself(spark_session, cdnow_log: Path) -> None:
    from training_job.spark import recipe as spark_recipe
    from training_job.spark.derived import add_derived
    from training_job.spark.reading import read_source

    table, _ = spark_recipe.aggregate(read_source(spark_session, str(cdnow_log)),
                                      load_preset("transactions-cdnow").recipe())
    with pytest.raises(DataError, match=r"derived column 'X' = 'Spend / Frequency': no column 'Spend'"):
        add_derived(table, {"X": "Spend / Frequency"})
    with pytest.raises(DataError, match=r"derived column 'Y' = 'year\(Recency\)': year\(\) needs a date"):
        add_derived(table, {"Y": "year(Recency)"})


@pytest.mark.slow
def test_a_model_with_a_derived_feature_trains_and_scores_alike_on_both_engines(spark_session, cdnow_log: Path,
                                                                                 tmp_path: Path) -> None:
    from sklearn.metrics import adjusted_rand_score

    from segmentation_core.artefact import read_artefact
    from segmentation_core.store import ModelStore
    from training_job.cli import main
    from training_job.config import load_config

    config = tmp_path / "derived.toml"
    config.write_text(PRESET.read_text().replace(
        'numeric = ["Recency", "Frequency", "Monetary"]', 'numeric = ["Recency", "Frequency", "SpendPerWeek"]')
        + '\n[derived]\nSpendPerWeek = "Monetary / (CustomerAge + 1)"\n'
        + '\n[cleaning.valid_range]\nSpendPerWeek = ["", 2.0]\n')  # out of range: missing, on both engines
    store = tmp_path / "store"
    for engine in ("pandas", "spark"):
        assert main(["train", "--engine", engine, "--store", str(store), "--model", engine, "--data", str(cdnow_log),
                     "--config", str(config)]) == 0
    models = ModelStore(store)
    artefacts = {e: read_artefact(models.version_dir(e, models.current(e))) for e in ("pandas", "spark")}
    assert [f.name for f in artefacts["spark"].schema.numeric] == ["Recency", "Frequency", "SpendPerWeek"]
    assert artefacts["spark"].recipe["derived"] == {"SpendPerWeek": "Monetary / (CustomerAge + 1)"}
    features, _ = aggregate(read_table(cdnow_log), load_config(config).recipe())
    for a, b in zip(artefacts["pandas"].schema.numeric, artefacts["spark"].schema.numeric):
        for field in ("impute", "clip_low", "clip_high", "yj_lambda", "center", "scale"):
            assert getattr(b, field) == pytest.approx(getattr(a, field), rel=1e-9, abs=1e-9), (a.name, field)
    k = {e: a.manifest["k_search"]["chosen_k"] for e, a in artefacts.items()}
    assert k["pandas"] == k["spark"]
    labels = {e: a.model.score(a.schema.transform_frame(features)).segment for e, a in artefacts.items()}
    assert adjusted_rand_score(labels["pandas"], labels["spark"]) >= 0.99
    _check_score_equals_service({"store": store, "data": cdnow_log, "features": features}, tmp_path)
    assert 0 < features["SpendPerWeek"].isna().sum() < len(features) // 2
    scored = pd.read_parquet(tmp_path / "scored.parquet").set_index("id")["SpendPerWeek"]
    assert (scored.isna() == features["SpendPerWeek"].isna()).all()

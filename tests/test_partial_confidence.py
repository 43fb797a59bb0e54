"""Confidence of partly known customers: a row with imputed features (missing, outside the valid range, an unseen
level) keeps its imputed point's segment, but its confidence is the model's posterior given the known features
(the marginal over their columns), with the fitted temperature and smoothing. Real models from the real training
job on the shipped tables, a real scoring server, the joblib pipeline and ``training_job score``."""
from __future__ import annotations

import math
from pathlib import Path

import joblib
import numpy as np
import pandas as pd
import pytest

from scoring_service.client import ScoringClient
from segmentation_core.artefact import PIPELINE, Artefact, read_artefact
from segmentation_core.features import FeatureSchema
from segmentation_core.store import ModelStore
from tests.server_support import target
from training_job.cli import main

INCOME, SPENDING = "Annual Income (k$)", "Spending Score (1-100)"


def _train(store: Path, data: Path, *args: str) -> Artefact:
    assert main(["train", "--store", str(store), "--data", str(data), *args]) == 0
    s = ModelStore(store)
    return read_artefact(s.version_dir("customers", s.current("customers")))


@pytest.fixture(scope="module")
def mall(tmp_path_factory: pytest.TempPathFactory, datasets_dir: Path) -> tuple[Path, Artefact]:
    store = tmp_path_factory.mktemp("mall-store")
    return store, _train(store, datasets_dir / "Mall_Customers.csv", "--preset", "mall")


@pytest.fixture(scope="module")
def ecommerce_gmm(tmp_path_factory: pytest.TempPathFactory, datasets_dir: Path) -> tuple[Path, Artefact]:
    store = tmp_path_factory.mktemp("ecommerce-gmm-store")
    return store, _train(store, datasets_dir / "ecommerce_customer_behavior.csv", "--preset", "ecommerce",
                         "--algorithm", "gmm", "--k", "4")


def _served(logits: np.ndarray, segment: int, temperature: float, smoothing: float) -> float:
    """(1 - e) softmax(T * logits)[segment] + e / k, from the logits, in numpy."""
    z = temperature * logits
    p = np.exp(z - z.max())
    p /= p.sum()
    return float((1.0 - smoothing) * p[segment] + smoothing / len(p))


def test_a_customer_known_by_income_only_gets_the_marginal_posterior(mall, scoring_server_factory) -> None:
    store, art = mall
    model, income = art.model, art.schema.numeric[0]
    assert income.name == INCOME and income.skew == "none" and model.algorithm == "kmeans"
    server = scoring_server_factory(store)
    with ScoringClient(target(server)) as client:
        complete = client.predict({INCOME: 120.0, SPENDING: 85.0})
        partial = client.predict({INCOME: 120.0})
    # High income is shared by the big spenders and the careful ones: the spending score told them apart.
    assert complete.confidence > 0.95
    assert partial.confidence < 0.75 and partial.confidence < complete.confidence - 0.25
    # closed form: an equal-weight isotropic mixture on the centroids, marginal over the income column
    z = (min(max(120.0, income.clip_low), income.clip_high) - income.center) / income.scale
    logits = -(z - model.centroids[:, 0]) ** 2 / (2.0 * model.sigma2)
    assert partial.confidence == pytest.approx(_served(logits, partial.segment_id, model.temperature,
                                                       model.smoothing), rel=1e-9)
    # known by the spending score only: the imputed point (the median income) sits in the middle segment's
    # heart, 0.99 sure; what is known (a middling score, at any income) leaves more doubt
    with ScoringClient(target(server)) as client:
        by_spending = client.predict({SPENDING: 40.0})
    imputed_point = art.schema.transform_row({INCOME: income.impute, SPENDING: 40.0}, {})
    assert model.score_row(imputed_point)[2] > 0.95 and by_spending.confidence < 0.8
    z = (40.0 - art.schema.numeric[1].center) / art.schema.numeric[1].scale
    logits = -(z - model.centroids[:, 1]) ** 2 / (2.0 * model.sigma2)
    assert by_spending.confidence == pytest.approx(_served(logits, by_spending.segment_id, model.temperature,
                                                           model.smoothing), rel=1e-9)
    # the segment (and distance) are still those of the imputed point: income 120, the median spending score
    imputed_point = art.schema.transform_row({INCOME: 120.0, SPENDING: art.schema.numeric[1].impute}, {})
    segment, distance, _, _ = model.score_row(imputed_point)
    assert (partial.segment_id, partial.distance) == (segment, pytest.approx(distance, rel=1e-12))


def test_a_negative_income_is_missing_at_scoring_as_in_training(mall, scoring_server_factory,
                                                                tmp_path: Path) -> None:
    store, art = mall
    income = art.schema.numeric[0]
    assert (income.valid_low, income.valid_high) == (0.0, None)  # the mall preset's [cleaning.valid_range]
    assert income.minimum > 0  # cleaning dropped nothing here, and no training value is below 0
    server = scoring_server_factory(store)
    with ScoringClient(target(server)) as client:
        negative = client.predict({INCOME: -20.0, SPENDING: 40.0})
        missing = client.predict({SPENDING: 40.0})
        clipped = client.predict({INCOME: income.clip_low, SPENDING: 40.0})  # what scoring did before
    assert (negative.segment_id, negative.distance, negative.confidence) == \
        (missing.segment_id, missing.distance, missing.confidence)
    assert negative.confidence != pytest.approx(clipped.confidence, rel=1e-6)
    # training_job score says the same, row by row
    frame = pd.DataFrame({"CustomerID": [1, 2, 3], INCOME: [-20.0, np.nan, income.clip_low],
                          SPENDING: [40.0, 40.0, 40.0]})
    frame.to_csv(tmp_path / "in.csv", index=False)
    assert main(["score", "--store", str(store), "--data", str(tmp_path / "in.csv"),
                 "--output", str(tmp_path / "out.csv")]) == 0
    out = pd.read_csv(tmp_path / "out.csv")
    assert out["confidence"].tolist() == pytest.approx(
        [negative.confidence, missing.confidence, clipped.confidence], rel=1e-12)


def test_a_version_without_valid_ranges_still_clips(mall) -> None:
    # versions trained before the ranges were stored: the schema has none, and a negative income is clipped
    _, art = mall
    data = art.schema.to_dict()
    for feature in data["numeric"]:
        feature.pop("valid_low", None), feature.pop("valid_high", None)
    old = FeatureSchema.from_dict(data)
    low = old.numeric[0].clip_low
    imputed: list[str] = []
    assert old.transform_row({INCOME: -20.0, SPENDING: 40.0}, {}, imputed) == \
        old.transform_row({INCOME: low, SPENDING: 40.0}, {})
    assert imputed == []


def _gmm_marginal_logits(art: Artefact, row: list[float], known: np.ndarray) -> np.ndarray:
    """log weight + log density of the known columns under each component's marginal Gaussian, in numpy from
    the covariance (the inverse of the stored precision)."""
    model = art.model
    x = np.asarray(row)[known]
    out = []
    for j in range(model.k):
        chol = model.precisions_cholesky[j]
        cov = np.linalg.inv(chol @ chol.T)[np.ix_(known, known)]
        r = x - model.centroids[j, known]
        _, log_det = np.linalg.slogdet(cov)
        out.append(model.log_weights[j] - 0.5 * (known.size * math.log(2 * math.pi) + log_det
                                                 + r @ np.linalg.solve(cov, r)))
    return np.array(out)


PARTLY_KNOWN = [
    {"Age": 33.0, "Gender": "Female"},
    {"Total Spend": 1200.0, "Membership Type": "Gold", "City": "Atlantis"},  # an unseen city
    {"Age": 29.0, "Total Spend": 800.0, "Items Purchased": 14.0, "Average Rating": 4.5,
     "Days Since Last Purchase": 20.0, "Gender": "Male", "City": "Chicago", "Membership Type": "Silver",
     "Discount Applied": "TRUE"},  # all but the satisfaction level
    {"Age": 41.0, "Total Spend": -50.0, "City": "Houston"},  # a negative spend: implausible, so missing
]


def test_gmm_partly_known_rows_agree_everywhere_and_equal_the_closed_form(ecommerce_gmm, scoring_server_factory,
                                                                          tmp_path: Path) -> None:
    store, art = ecommerce_gmm
    schema, model = art.schema, art.model
    numeric = [f.name for f in schema.numeric]
    frame = pd.DataFrame([{name: np.nan for name in numeric} | {c.name: None for c in schema.categorical} | row
                          for row in PARTLY_KNOWN])
    complete = pd.read_csv(Path(__file__).resolve().parents[2] / "shared" / "datasets"
                           / "ecommerce_customer_behavior.csv").dropna().iloc[:3][schema.feature_names]
    frame = pd.concat([frame, complete], ignore_index=True)
    server = scoring_server_factory(store)
    with ScoringClient(target(server)) as client:
        single = [client.predict({k: v for k, v in row.items() if not (isinstance(v, float) and np.isnan(v))})
                  for row in frame.to_dict("records")]
        streamed = client.predict_frame(frame)
    confidence = np.array([p.confidence for p in single])
    assert (streamed["error"] == "").all()
    assert streamed["segment_id"].tolist() == [p.segment_id for p in single]
    np.testing.assert_allclose(streamed["confidence"].to_numpy(), confidence, rtol=1e-12)
    # each partly known row: the closed-form marginal posterior of its (imputed point's) segment
    for i, row in enumerate(PARTLY_KNOWN):
        unknown: list[str] = []
        point = schema.transform_row({k: v for k, v in row.items() if k in numeric},
                                     {k: v for k, v in row.items() if k not in numeric}, unknown)
        known = np.flatnonzero(schema.observed_columns(unknown))
        assert single[i].segment_id == int(model.score(np.asarray([point])).segment[0])
        logits = _gmm_marginal_logits(art, point, known)
        assert confidence[i] == pytest.approx(_served(logits, single[i].segment_id, model.temperature,
                                                      model.smoothing), rel=1e-9)
    assert "Total Spend" in unknown  # the last row's negative spend was not clipped but left out
    # a complete row is scored as before (the full posterior); the row missing one category comes close to it
    full = model.score(schema.transform_frame(complete))
    np.testing.assert_allclose(confidence[len(PARTLY_KNOWN):], full.confidence, rtol=1e-12)
    assert confidence[0] < full.confidence.min() - 0.05  # age and gender alone say little
    # the joblib pipeline (scipy's multivariate normal of its own covariances) and training_job score agree
    pipeline = joblib.load(art.path / PIPELINE)
    proba = pipeline.predict_proba(frame)
    segment = pipeline.predict(frame)
    assert segment.tolist() == [p.segment_id for p in single]
    np.testing.assert_allclose(proba[np.arange(len(frame)), segment], confidence, rtol=1e-9)
    frame.insert(0, "Customer ID", range(1, len(frame) + 1))
    frame.to_csv(tmp_path / "in.csv", index=False)
    assert main(["score", "--store", str(store), "--data", str(tmp_path / "in.csv"),
                 "--output", str(tmp_path / "out.csv")]) == 0
    np.testing.assert_allclose(pd.read_csv(tmp_path / "out.csv")["confidence"].to_numpy(), confidence, rtol=1e-12)

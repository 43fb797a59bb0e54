"""The confidence calibration fitted at training time (training_job.confidence): the smoothed tempered
posterior, fitted on held-out halves against a panel of models of other kinds."""
from __future__ import annotations

import dataclasses
import logging
from pathlib import Path

import numpy as np
import pytest
from scipy.optimize import linear_sum_assignment

from bench import bench_calibration
from bench.mixture_tables import make_mixture_table
from bench.bench_calibration import HELD_OUT
from scoring_service.client import ScoringClient
from segmentation_core.artefact import PARAMETERS, read_artefact
from segmentation_core.store import ModelStore
from tests import model_factory
from tests.server_support import target
from training_job.cli import main
from segmentation_core.segment_model import calibrate
from training_job.algorithms import algorithm_named
from training_job.confidence import calibrated_confidence, fit_temperature, panel_for


def test_calibrated_confidence_is_the_smoothed_tempered_softmax() -> None:
    logits = np.array([[0.0, -1.0, -3.0], [-2.0, -2.0, 0.0]])
    z = np.exp(0.5 * logits)
    expected = 0.8 * (z / z.sum(axis=1, keepdims=True)).max(axis=1) + 0.2 / 3
    np.testing.assert_allclose(calibrated_confidence(logits, 0.5, 0.2), expected, rtol=1e-12)


def test_well_separated_segments_keep_the_plain_posterior() -> None:
    rng = np.random.default_rng(0)
    centres = np.array([[0.0, 0.0], [12.0, 0.0], [0.0, 12.0]])
    x = np.vstack([rng.normal(c, 1.0, (800, 2)) for c in centres])
    fit = fit_temperature(x, 3, "kmeans", seed=0)
    assert fit.agreement == 1.0
    assert fit.temperature == pytest.approx(1.0, abs=1e-6) and fit.smoothing == pytest.approx(0.0, abs=1e-6)


def test_a_table_too_small_to_calibrate_is_warned_of_in_one_line(caplog: pytest.LogCaptureFixture) -> None:
    x = np.random.default_rng(0).normal(size=(350, 2))
    with caplog.at_level(logging.WARNING, logger="training_job.confidence"):
        fit = fit_temperature(x, 6, "kmeans", seed=0)
    assert fit.method == "not fitted: 175 rows per half, fewer than 30 per segment"
    assert (fit.temperature, fit.smoothing) == (1.0, 0.0)
    # The one wording (segmentation_core.wording), which the manifest's warnings, the report and the dashboard show.
    said = ("Confidence not calibrated (175 rows per half, fewer than 30 per segment): the model's raw posterior, "
            "often near 100%; read it as a ranking, not a probability.")
    assert [r.getMessage() for r in caplog.records] == [said] and fit.warning == said


@pytest.mark.parametrize("algorithm", ["kmeans", "gmm"])
def test_a_partition_refits_do_not_reproduce_gets_the_confidence_of_its_agreement(algorithm: str) -> None:
    # One uniform square cut into 6: boundaries move between refits, so assignments are often not reproduced;
    # the calibrated confidence then averages no more than what the panel reproduces (k-means' posterior,
    # at 0.85, is softened; the mixture's, below it, is left as it is: the fit never sharpens). Standardized,
    # as the transform hands every model its features.
    x = np.random.default_rng(1).uniform(0, 1, (4000, 2))
    x = (x - x.mean(axis=0)) / x.std(axis=0)
    fit = fit_temperature(x, 6, algorithm, seed=0)
    assert fit.agreement < 0.97 and fit.rows == 4000
    algo = algorithm_named(algorithm)
    estimator = algo.fit(x, 6, 0)
    model = calibrate(algorithm, x, estimator.predict(x), np.asarray(algo.centres(estimator)),
                      algo.reorder(estimator, np.arange(6)))
    raw = model.score(x).confidence.mean()
    served = dataclasses.replace(model, temperature=fit.temperature, smoothing=fit.smoothing).score(x)
    assert served.confidence.mean() <= min(raw, fit.agreement + 0.03)
    if raw > fit.agreement + 0.1:
        assert served.confidence.mean() == pytest.approx(fit.agreement, abs=0.03)


def test_too_few_rows_per_segment_are_not_fitted() -> None:
    x = np.random.default_rng(2).normal(size=(200, 2))
    fit = fit_temperature(x, 5, "kmeans", seed=0)
    assert (fit.temperature, fit.smoothing, fit.rows) == (1.0, 0.0, 0) and "not fitted" in fit.method
    assert fit.to_dict()["agreement"] is None


@pytest.mark.parametrize(("algorithm", "panel"), [("kmeans", ("kmeans", "gmm", "gmm-diag")),
                                                  ("minibatch-kmeans", ("minibatch-kmeans", "gmm", "gmm-diag")),
                                                  ("gmm", ("gmm", "kmeans", "gmm-diag"))],
                         ids=["kmeans", "minibatch", "gmm"])
def test_the_panel_is_the_served_kind_and_the_other_kinds(algorithm: str, panel: tuple[str, ...]) -> None:
    assert panel_for(algorithm) == panel


def _ece(confidence: np.ndarray, correct: np.ndarray) -> float:
    return bench_calibration.ece(confidence, correct)


def test_a_stable_partition_other_kinds_of_model_contradict_is_not_trusted() -> None:
    # A broad segment (sd 3) beside a tight one (sd 0.5): k-means puts its boundary midway and cuts the
    # broad segment, the same way on every refit, so k-means twins alone agree on ~100% of the rows
    # though it is right on ~77%; the Gaussian mixtures of the panel model the two widths and contradict it.
    rng = np.random.default_rng(3)
    n = 3000
    truth = (rng.random(2 * n) < 0.3).astype(int)
    x = np.where(truth[:, None] == 1, rng.normal(0, 0.5, (2 * n, 2)) + [6.0, 0.0], rng.normal(0, 3.0, (2 * n, 2)))
    x = (x - x.mean(axis=0)) / x.std(axis=0)
    train, test, truth_test = x[:n], x[n:], truth[n:]
    kmeans = algorithm_named("kmeans").fit(train, 2, 0)
    model = calibrate("kmeans", train, kmeans.predict(train), kmeans.cluster_centers_)
    fit = fit_temperature(train, 2, "kmeans", seed=0, centres=kmeans.cluster_centers_)
    agree = fit.agreement_by_model
    assert set(agree) == {f"{kind} {start}" for kind in ("kmeans", "gmm", "gmm-diag") for start in ("served", "fresh")}
    assert agree["kmeans served"] > 0.99
    assert max(agree[f"{kind} {start}"] for kind in ("gmm", "gmm-diag") for start in ("served", "fresh")) < 0.9
    assert fit.agreement < 0.92
    raw = model.score(test)
    served = dataclasses.replace(model, temperature=fit.temperature, smoothing=fit.smoothing).score(test)
    hit = raw.segment == truth_test
    correct = hit if hit.mean() > 0.5 else ~hit
    assert 0.7 < correct.mean() < 0.85
    assert _ece(served.confidence, correct) < _ece(raw.confidence, correct)


def test_a_run_from_the_served_centres_rescues_a_twin_stuck_in_a_poor_optimum() -> None:
    # Restarts on half the rows can miss an optimum the training job's search found; the twin started from
    # the served model's centres keeps the better fit by its own objective (inertia), so a right model is
    # not read as contradicted.
    rng = np.random.default_rng(4)
    centres = np.array([[0.0, 0.0], [8.0, 0.0], [0.0, 8.0], [8.0, 8.0]])
    x = np.vstack([rng.normal(c, 1.0, (1000, 2)) for c in centres])
    fit = fit_temperature(x, 4, "kmeans", seed=0, centres=centres)
    assert min(fit.agreement_by_model.values()) > 0.99
    assert fit.temperature == pytest.approx(1.0, abs=1e-3) and fit.smoothing < 0.01


@pytest.mark.parametrize("algorithm", ["kmeans", "gmm"])
def test_served_confidence_is_calibrated_on_held_out_rows_through_the_job_and_the_server(
        algorithm: str, tmp_path: Path, scoring_server_factory) -> None:
    # A generated table with known segments (mixture_tables: heavy-tailed and skewed segments differing on
    # some columns, irrelevant columns; seed 90 is neither a development nor a held-out seed of
    # bench_calibration): the real training job at the true k, a real scoring server, 5,000 rows neither saw.
    table = make_mixture_table(90, 6, 4_000 + HELD_OUT, separation=4.5)
    k = 6
    frame = table.data.copy()
    frame.insert(0, "customer_id", [f"c{i:05d}" for i in range(len(frame))])
    train, held_out, truth = frame.iloc[:-HELD_OUT], frame.iloc[-HELD_OUT:], table.labels[-HELD_OUT:]
    train.to_csv(tmp_path / "customers.csv", index=False)
    store = tmp_path / "store"
    assert main(["train", "--store", str(store), "--data", str(tmp_path / "customers.csv"), "--preset", "auto",
                 "--k", str(k), "--algorithm", algorithm]) == 0
    s = ModelStore(store)
    art = read_artefact(s.version_dir("customers", s.current("customers")))
    assert art.manifest["confidence"]["panel"] == list(panel_for(algorithm))
    server = scoring_server_factory(store)
    with ScoringClient(target(server)) as client:
        served = client.predict_frame(held_out.drop(columns=["customer_id"]))
    segment, confidence = served["segment_id"].to_numpy(), served["confidence"].to_numpy()
    # One implementation: the server's answers are the artefact's math.
    x = art.schema.transform_frame(held_out)
    np.testing.assert_allclose(confidence, art.model.score(x).confidence, rtol=1e-9)
    raw = dataclasses.replace(art.model, temperature=1.0, smoothing=0.0).score(x).confidence
    overlap = np.zeros((k, k))
    np.add.at(overlap, (segment, truth), 1)
    rows, cols = linear_sum_assignment(-overlap)
    mapping = np.empty(k, dtype=np.int64)
    mapping[rows] = cols
    correct = mapping[segment] == truth
    calibrated_ece, raw_ece = _ece(confidence, correct), _ece(raw, correct)
    print(f"{algorithm}: accuracy {correct.mean():.3f}, confidence {confidence.mean():.3f} (raw {raw.mean():.3f}), "
          f"ECE {calibrated_ece:.3f} (raw {raw_ece:.3f})")
    assert calibrated_ece <= 0.05 and calibrated_ece <= raw_ece + 0.005


def test_versions_published_before_load_and_score_through_a_real_server(tmp_path: Path,
                                                                        scoring_server_factory) -> None:
    # Two versions as earlier training jobs wrote them: parameters without temperature and smoothing (before
    # any calibration), and the twins-only calibration's (its manifest 'confidence' without a panel). The
    # scoring math and the artefact format did not change: both load, and score with their own T and e.
    store = ModelStore(tmp_path)
    old_twins = {"temperature": 0.5, "smoothing": 0.1, "agreement": 0.93, "rows": 200,
                 "method": "cross-fit agreement, two halves"}
    model_factory.publish(store, model="before", pre_calibration=True)
    model_factory.publish(store, model="twins", confidence=old_twins)
    with np.load(store.version_dir("before", store.current("before")) / PARAMETERS) as arrays:
        assert "temperature" not in arrays.files and "smoothing" not in arrays.files
    server = scoring_server_factory(tmp_path, model="before")
    mall = model_factory.mall()
    rows = mall.frame[mall.numeric + mall.categorical].iloc[:50]
    with ScoringClient(target(server)) as client:
        for name, (temperature, smoothing) in {"before": (1.0, 0.0), "twins": (0.5, 0.1)}.items():
            art = read_artefact(store.version_dir(name, store.current(name)))
            assert (art.model.temperature, art.model.smoothing) == (temperature, smoothing)
            served = client.predict_frame(rows, model=name)
            assert (served["error"] == "").all()
            np.testing.assert_allclose(served["confidence"].to_numpy(),
                                       art.model.score(art.schema.transform_frame(rows)).confidence, rtol=1e-9)
            logits = art.model.logits(art.schema.transform_frame(rows))
            np.testing.assert_allclose(served["confidence"].to_numpy(),
                                       calibrated_confidence(logits, temperature, smoothing), rtol=1e-9)

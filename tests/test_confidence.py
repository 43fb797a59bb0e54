"""The confidence calibration fitted at training time (training_job.confidence)."""
from __future__ import annotations

import numpy as np
import pytest

from training_job.confidence import calibrated_confidence, fit_temperature


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


@pytest.mark.parametrize("algorithm", ["kmeans", "gmm"])
def test_a_partition_refits_do_not_reproduce_is_softened(algorithm: str) -> None:
    # One uniform square cut into 6: boundaries move between refits, so assignments are often not reproduced.
    x = np.random.default_rng(1).uniform(0, 1, (4000, 2))
    fit = fit_temperature(x, 6, algorithm, seed=0)
    assert fit.agreement < 0.97 and fit.rows == 4000
    assert fit.temperature < 1.0 or fit.smoothing > 0.0


def test_too_few_rows_per_segment_are_not_fitted() -> None:
    x = np.random.default_rng(2).normal(size=(200, 2))
    fit = fit_temperature(x, 5, "kmeans", seed=0)
    assert (fit.temperature, fit.smoothing, fit.rows) == (1.0, 0.0, 0) and "not fitted" in fit.method
    assert fit.to_dict()["agreement"] is None

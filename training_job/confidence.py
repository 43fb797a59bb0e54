"""The confidence calibration: how far to soften a model's posterior so that confidence means accuracy.

A model's posterior (k-means' implicit isotropic mixture, or the Gaussian mixture's own) says how sure the
model is *given that its segments are the right ones*. It ignores that the segments themselves are an
estimate: where a refit on other customers draws the boundaries elsewhere, or merges and splits segments
differently, the model is overconfident. Two parameters soften it,

    confidence = (1 - e) * softmax(T * logits) + e / k

the temperature ``T`` (uncertainty near boundaries) and the smoothing ``e`` (a share of assignments that
a refit does not reproduce wherever the row sits: merged or split segments). Both are fitted by
cross-fitting:

1. up to ``MAX_ROWS`` training rows are drawn (seeded) and split into two halves A and B;
2. a twin model is fitted on each half, with the same algorithm, k and settings as the real model;
3. each twin scores the other half (rows it never saw); its label counts as *reproduced* when it equals
   the other twin's label there (segments matched one-to-one by the Hungarian method);
4. ``T`` and ``e`` minimise the negative log-likelihood of "reproduced" under the twins' calibrated
   confidence (a two-parameter Platt scaling), within ``T`` in ``[MIN_TEMPERATURE, 1]`` and ``e`` in
   ``[0, MAX_SMOOTHING]``: the fit may only soften the posterior, never sharpen it, because agreement
   between two fits says nothing about the true overlap of segments near a boundary.

Both are scalars: serving applies them with a multiply and an add (``segmentation_core.segment_model``).
With fewer than ``MIN_ROWS_PER_SEGMENT * k`` rows per half, or one segment, they stay 1 and 0.
"""
from __future__ import annotations

import logging
from dataclasses import asdict, dataclass

import numpy as np
from scipy.optimize import linear_sum_assignment, minimize
from threadpoolctl import threadpool_limits

from segmentation_core.segment_model import MAX_TEMPERATURE, SegmentModel, calibrate
from training_job.algorithms import algorithm_named

__all__ = ["ConfidenceFit", "fit_temperature", "calibrated_confidence"]

log = logging.getLogger(__name__)

MAX_ROWS = 20_000
MIN_ROWS_PER_SEGMENT = 30
MIN_TEMPERATURE = 0.02
MAX_SMOOTHING = 0.9


@dataclass(frozen=True)
class ConfidenceFit:
    """The fitted temperature and the evidence behind it (for the manifest)."""

    temperature: float
    smoothing: float
    agreement: float  # share of held-out rows whose segment the other twin reproduced (NaN if not fitted)
    rows: int  # held-out rows the fit used (0 if not fitted)
    method: str

    def to_dict(self) -> dict[str, object]:
        """Plain dict, for the manifest."""
        return {k: (None if isinstance(v, float) and np.isnan(v) else v) for k, v in asdict(self).items()}


def calibrated_confidence(logits: np.ndarray, temperature: float, smoothing: float) -> np.ndarray:
    """Row maximum of ``(1 - smoothing) * softmax(temperature * logits) + smoothing / k`` for (n, k) logits."""
    z = temperature * logits
    z = z - z.max(axis=1, keepdims=True)
    return (1.0 - smoothing) / np.exp(z).sum(axis=1) + smoothing / logits.shape[1]


def fit_temperature(x: np.ndarray, k: int, algorithm: str, seed: int) -> ConfidenceFit:
    """Cross-fitted confidence temperature for a model of ``algorithm`` with ``k`` segments on ``x``."""
    if k < 2:
        return ConfidenceFit(1.0, 0.0, float("nan"), 0, "not fitted: one segment")
    rng = np.random.default_rng(seed)
    rows = rng.permutation(len(x))[:MAX_ROWS]
    half = len(rows) // 2
    if half < MIN_ROWS_PER_SEGMENT * k:
        return ConfidenceFit(1.0, 0.0, float("nan"), 0,
                             f"not fitted: {half} rows per half, fewer than {MIN_ROWS_PER_SEGMENT} per segment")
    halves = (x[rows[:half]], x[rows[half:2 * half]])
    # At most 10,000 rows each: one OpenMP / BLAS thread is faster than a pool, which on a busy machine
    # spins for seconds per Lloyd pass (as in the k search).
    with threadpool_limits(limits=1):
        twins = [_twin(h, k, algorithm, seed + i) for i, h in enumerate(halves)]
    logits, reproduced = [], []
    for i, twin in enumerate(twins):
        other = halves[1 - i]
        own = twin.logits(other)
        mine = own.argmax(axis=1)
        theirs = twins[1 - i].score(other).segment
        logits.append(own)
        reproduced.append(_matched(mine, theirs, k) == theirs)
    all_logits, hit = np.vstack(logits), np.concatenate(reproduced)

    def nll(params: np.ndarray) -> float:
        c = calibrated_confidence(all_logits, float(np.exp(params[0])), float(params[1]))
        c = np.clip(c, 1e-12, 1.0 - 1e-12)
        return -float(np.mean(np.where(hit, np.log(c), np.log1p(-c))))

    bounds = [(np.log(MIN_TEMPERATURE), np.log(MAX_TEMPERATURE)), (0.0, MAX_SMOOTHING)]
    best = min((minimize(nll, np.array(start), method="L-BFGS-B", bounds=bounds)
                for start in ([0.0, 0.0], [np.log(0.2), 0.1])), key=lambda r: r.fun)
    temperature = float(np.clip(np.exp(best.x[0]), MIN_TEMPERATURE, MAX_TEMPERATURE))
    smoothing = float(np.clip(best.x[1], 0.0, MAX_SMOOTHING))
    fit = ConfidenceFit(temperature, smoothing, float(hit.mean()), int(len(hit)), "cross-fit agreement, two halves")
    log.info("confidence temperature %.3f, smoothing %.3f: twins reproduce %.1f%% of %d held-out assignments",
             temperature, smoothing, 100 * fit.agreement, fit.rows)
    return fit


def _twin(x: np.ndarray, k: int, algorithm: str, seed: int) -> SegmentModel:
    """A model of the same kind fitted on ``x`` alone, as serving math."""
    algo = algorithm_named(algorithm)
    estimator = algo.fit(x, k, seed)
    gmm_params = algo.reorder(estimator, np.arange(k))
    return calibrate(algorithm, x, estimator.predict(x), np.asarray(algo.centres(estimator)), gmm_params)


def _matched(labels: np.ndarray, reference: np.ndarray, k: int) -> np.ndarray:
    """``labels`` renamed to the reference's segment ids, one-to-one by the largest overlaps."""
    overlap = np.zeros((k, k))
    np.add.at(overlap, (labels, reference), 1)
    rows, cols = linear_sum_assignment(-overlap)
    mapping = np.empty(k, dtype=np.int64)
    mapping[rows] = cols
    return mapping[labels]

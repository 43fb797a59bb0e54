"""The confidence calibration: how far to soften a model's posterior so that confidence means accuracy.

The served confidence is meant as the probability that a customer's assigned segment is its true one.
A model's posterior (k-means' implicit isotropic mixture, or the Gaussian mixture's own) says how sure
the model is *given that its segments are the right ones and its shapes the right shapes*. It ignores
that the segments themselves are an estimate: a refit on other customers draws the boundaries
elsewhere, and a model of another kind (another inductive bias: spheres, full or axis-aligned ellipses)
may carve the same customers into other segments. Where reasonable models disagree, at least one of
them is wrong, and a posterior near 1 is overconfident. Two parameters soften it,

    confidence = (1 - e) * softmax(T * logits) + e / k

the temperature ``T`` (uncertainty near boundaries) and the smoothing ``e`` (a share of assignments
that other fits do not reproduce wherever the row sits: merged, split or differently carved segments).
Both are fitted on rows held out from the model that is calibrated:

1. up to ``MAX_ROWS`` training rows are drawn (seeded) and split into two halves A and B;
2. on each half, a *twin* of the served model (same algorithm, k and settings, started from the served
   model's centres) is fitted, and so is a *panel*: every kind in ``PANEL`` (k-means, a full-covariance
   Gaussian mixture, a diagonal one), each fitted twice (``STARTS``): started from the served segments
   (where they are an optimum that kind supports it stays; where they are not, a broad segment cut in
   two, say, it moves away) and from fresh restarts (which may find another carving altogether);
3. each twin scores the other half (rows it never saw); its label there is compared with the labels of
   every panel fit of that half (segments matched one-to-one by the Hungarian method), and the row's
   target is the share of the panel's fits that reproduce it;
4. ``T`` and ``e`` minimise the cross-entropy between the twins' calibrated confidence and these targets
   (a two-parameter Platt scaling on soft labels), within ``T`` in ``[MIN_TEMPERATURE, 1]`` and ``e`` in
   ``[0, MAX_SMOOTHING]``: the fit may only soften the posterior, never sharpen it, because agreement
   between fits says nothing about the true overlap of segments near a boundary.

The served centres are fitted on all training rows, so both halves informed the starting point of the
runs that start from them; every fit then converges on its own half, and every comparison is on rows
the scoring twin never saw. The panel was chosen on development seeds of ``bench/bench_calibration.py``
(lowest mean pooled ECE over its four generators and both algorithms) before the held-out seeds were run.

Both are scalars: serving applies them with a multiply and an add (``segmentation_core.segment_model``),
so artefacts of any age score with the same math (those written before the fit with 1 and 0).
With fewer than ``MIN_ROWS_PER_SEGMENT * k`` rows per half, or one segment, they stay 1 and 0.
What it cannot see: a partition every kind of model agrees on but the truth does not follow (see
README "Confidence" for the held-out figures).
"""
from __future__ import annotations

import logging
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
from scipy.optimize import linear_sum_assignment, minimize
from threadpoolctl import threadpool_limits

from segmentation_core.segment_model import KMEANS_FAMILY, MAX_TEMPERATURE, SegmentModel, calibrate
from segmentation_core.wording import confidence_warning
from training_job.algorithms import GMM_REG_COVAR, algorithm_named

__all__ = ["ConfidenceFit", "PANEL", "STARTS", "fit_temperature", "calibrated_confidence", "panel_for"]

log = logging.getLogger(__name__)

MAX_ROWS = 20_000
MIN_ROWS_PER_SEGMENT = 30
MIN_TEMPERATURE = 0.02
MAX_SMOOTHING = 0.9
#: The kinds of model whose agreement is the calibration target (the served kind counts as its family).
PANEL = ("kmeans", "gmm", "gmm-diag")
#: How each kind of the panel is started: from the served model's segments, and from fresh restarts.
STARTS = ("served", "fresh")


@dataclass(frozen=True)
class ConfidenceFit:
    """The fitted temperature and smoothing, and the evidence behind them (for the manifest)."""

    temperature: float
    smoothing: float
    agreement: float  # mean share of the panel's fits reproducing a held-out assignment (NaN if not fitted)
    rows: int  # held-out rows the fit used (0 if not fitted)
    method: str
    panel: tuple[str, ...] = ()
    agreement_by_model: dict[str, float] = field(default_factory=dict)  # per panel fit ("gmm fresh": share)

    def to_dict(self) -> dict[str, object]:
        """Plain dict, for the manifest."""
        out: dict[str, Any] = {k: (None if isinstance(v, float) and np.isnan(v) else v)
                               for k, v in asdict(self).items()}
        out["panel"] = list(self.panel)
        return out

    @property
    def warning(self) -> str:
        """What the analyst is told when the calibration was skipped (``segmentation_core.wording``); "" when
        it was fitted."""
        return confidence_warning({"method": self.method})


def calibrated_confidence(logits: np.ndarray, temperature: float, smoothing: float) -> np.ndarray:
    """Row maximum of ``(1 - smoothing) * softmax(temperature * logits) + smoothing / k`` for (n, k) logits."""
    z = temperature * logits
    z = z - z.max(axis=1, keepdims=True)
    return (1.0 - smoothing) / np.exp(z).sum(axis=1) + smoothing / logits.shape[1]


def panel_for(algorithm: str) -> tuple[str, ...]:
    """The panel that calibrates ``algorithm``: the served kind first (its twin), then the other kinds."""
    family = "kmeans" if algorithm in KMEANS_FAMILY else algorithm
    return (algorithm, *(kind for kind in PANEL if kind != family))


def _not_fitted(reason: str, panel: tuple[str, ...]) -> ConfidenceFit:
    """The uncalibrated fit (temperature 1, no smoothing), its warning said in the log (and kept in the manifest's
    ``warnings`` by ``build_manifest``): the confidence is then the model's raw posterior, typically far surer
    than its segments are reproducible."""
    fit = ConfidenceFit(1.0, 0.0, float("nan"), 0, f"not fitted: {reason}", panel)
    log.warning("%s", fit.warning)
    return fit


def fit_temperature(x: np.ndarray, k: int, algorithm: str, seed: int,
                    centres: np.ndarray | None = None) -> ConfidenceFit:
    """Confidence temperature and smoothing for a model of ``algorithm`` with ``k`` segments on ``x``,
    fitted on held-out halves against a panel of models of other kinds; ``centres``: the served model's
    (the twins start from them, the panel both from them and afresh; without them, all afresh)."""
    panel = panel_for(algorithm)
    if k < 2:
        return _not_fitted("one segment", panel)
    rng = np.random.default_rng(seed)
    rows = rng.permutation(len(x))[:MAX_ROWS]
    half = len(rows) // 2
    if half < MIN_ROWS_PER_SEGMENT * k:
        return _not_fitted(f"{half} rows per half, fewer than {MIN_ROWS_PER_SEGMENT} per segment", panel)
    halves = (x[rows[:half]], x[rows[half:2 * half]])
    # At most 10,000 rows each: one OpenMP / BLAS thread is faster than a pool, which on a busy machine
    # spins for seconds per Lloyd pass (as in the k search).
    with threadpool_limits(limits=1):
        twins = [_twin(h, k, algorithm, seed + i, centres) for i, h in enumerate(halves)]
        # Each half's labels by every panel fit (the served kind started from the served segments: the
        # twin's own labels).
        starts = STARTS if centres is not None else ("fresh",)
        labels = []
        for i, (twin, h) in enumerate(zip(twins, halves)):
            own = {(algorithm, starts[0]): twin.score(h).segment}
            for kind in panel:
                for start in starts:
                    if (kind, start) not in own:
                        init = centres if start == "served" else None
                        own[(kind, start)] = _fit(kind, h, k, seed + i, init).predict(h)
            labels.append(own)
    logits, targets = [], []
    by_model: dict[str, list[np.ndarray]] = {f"{kind} {start}": [] for kind in panel for start in starts}
    for i, twin in enumerate(twins):
        own = twin.logits(halves[1 - i])
        mine = own.argmax(axis=1)
        hits = []
        for (kind, start), theirs in labels[1 - i].items():
            hit = _matched(mine, theirs, k) == theirs
            by_model[f"{kind} {start}"].append(hit)
            hits.append(hit)
        logits.append(own)
        targets.append(np.mean(hits, axis=0))
    all_logits, target = np.vstack(logits), np.concatenate(targets)

    def cross_entropy(params: np.ndarray) -> float:
        c = calibrated_confidence(all_logits, float(np.exp(params[0])), float(params[1]))
        c = np.clip(c, 1e-12, 1.0 - 1e-12)
        return -float(np.mean(target * np.log(c) + (1.0 - target) * np.log1p(-c)))

    bounds = [(np.log(MIN_TEMPERATURE), np.log(MAX_TEMPERATURE)), (0.0, MAX_SMOOTHING)]
    best = min((minimize(cross_entropy, np.array(start), method="L-BFGS-B", bounds=bounds)
                for start in ([0.0, 0.0], [np.log(0.2), 0.1])), key=lambda r: r.fun)
    temperature = float(np.clip(np.exp(best.x[0]), MIN_TEMPERATURE, MAX_TEMPERATURE))
    smoothing = float(np.clip(best.x[1], 0.0, MAX_SMOOTHING))
    agreement = {kind: float(np.concatenate(v).mean()) for kind, v in by_model.items()}
    fit = ConfidenceFit(temperature, smoothing, float(target.mean()), int(len(target)),
                        "cross-fit agreement with a panel of models, two halves", panel, agreement)
    log.info("confidence temperature %.3f, smoothing %.3f: held-out assignments reproduced by %s of %d rows",
             temperature, smoothing, ", ".join(f"{k} {100 * v:.1f}%" for k, v in agreement.items()), fit.rows)
    return fit


def _twin(x: np.ndarray, k: int, algorithm: str, seed: int, centres: np.ndarray | None) -> SegmentModel:
    """A model of the same kind fitted on ``x`` alone, as serving math."""
    algo = algorithm_named(algorithm)
    estimator = _refit(algorithm, x, k, seed, centres)
    gmm_params = algo.reorder(estimator, np.arange(k))
    return calibrate(algorithm, x, estimator.predict(x), np.asarray(algo.centres(estimator)), gmm_params)


def _refit(kind: str, x: np.ndarray, k: int, seed: int, centres: np.ndarray | None) -> Any:
    """A model of ``kind`` fitted on ``x``, started from the served model's ``centres`` (fresh restarts
    without them): the twin follows the served model's optimum, not one its restarts would stop in."""
    return _fit(kind, x, k, seed, None if centres is None else np.asarray(centres, dtype=np.float64))


def _fit(kind: str, x: np.ndarray, k: int, seed: int, init: np.ndarray | None) -> Any:
    """One fit of ``kind`` on ``x``: the registry's restarts, or a run from ``init``."""
    if kind == "gmm-diag":
        from sklearn.mixture import GaussianMixture

        if init is None:
            return GaussianMixture(n_components=k, covariance_type="diag", n_init=2, reg_covar=GMM_REG_COVAR,
                                   random_state=seed).fit(x)
        return GaussianMixture(n_components=k, covariance_type="diag", means_init=init, reg_covar=GMM_REG_COVAR,
                               random_state=seed).fit(x)
    algo = algorithm_named(kind)
    return algo.fit(x, k, seed) if init is None else algo.fit_from(x, k, seed, init)


def _matched(labels: np.ndarray, reference: np.ndarray, k: int) -> np.ndarray:
    """``labels`` renamed to the reference's segment ids, one-to-one by the largest overlaps."""
    overlap = np.zeros((k, k))
    np.add.at(overlap, (labels, reference), 1)
    rows, cols = linear_sum_assignment(-overlap)
    mapping = np.empty(k, dtype=np.int64)
    mapping[rows] = cols
    return mapping[labels]

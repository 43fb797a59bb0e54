"""How findable a generated table's segments are, and the scale of separation that makes them as findable as
a stated band: the difficulty principle of the k benchmark's generators.

A generator draws the *shape* of its segments (how many, their shares, which columns they differ on, the
noise family, the direction of every difference) and one number for *how far apart* they are, ``scale``.
``calibrate`` then sets ``scale`` so that the segments are as findable as the family promises.

The principle: a table tests the *choice of k* only if its segments can be found *when k is known*;
otherwise no rule can be right but by luck, and the benchmark measures the clustering, not the choice.
So the yardstick is **recovery at the true k**: the adjusted Rand index of k-means told the true k
(``n_init=4``) against the true segments, in the space k is chosen in (the training job's transform,
``clustering_space``), on a pilot of ``PILOT_ROWS`` customers drawn with the table's parameters. The families' bands say how hard: overlapping segments are recovered only in part
(some customers sit on the wrong side of any boundary), the others well but not trivially.

Two first attempts, kept here as the reason for this one: a classifier *told the segments*
(gradient-boosted trees, 95-99% accuracy) accepted tables on which k-means at the true k reached an ARI of
0.0-0.4 (segments hidden in 2 of 18 columns: a feature-selection problem, not a k problem); the accuracy
of the nearest true centre ignores irrelevant columns altogether (they add the same to every distance);
normal scores (a rank transform) fill in every gap, so no separation made segments findable in them.

Measured on a pilot of fixed size, the segments of a 500-row and of a 200,000-row table of one family are
equally findable: a small table is harder only because it has fewer customers. No k rule is run here:
the band is fixed before any rule sees a table.
"""
from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pandas as pd
from threadpoolctl import threadpool_limits

__all__ = ["PILOT_ROWS", "calibrate", "clustering_space", "recovery_at_true_k"]

#: Customers in the pilot table the centroid accuracy is measured on.
PILOT_ROWS = 3_000

#: A draw: (scale, n rows, random generator) -> (raw table, true segment per row).
Draw = Callable[[float, int, np.random.Generator], tuple[pd.DataFrame, np.ndarray]]


def clustering_space(frame: pd.DataFrame) -> np.ndarray:
    """The training job's own transform fitted on the table (``segmentation_core.features``: clipping,
    log1p / Yeo-Johnson of skewed columns, standard scaling, weighted one-hot): the space k is chosen in."""
    from segmentation_core.features import FeatureSchema

    categorical = [c for c in frame.columns if not pd.api.types.is_numeric_dtype(frame[c])]
    numeric = [c for c in frame.columns if c not in categorical]
    return FeatureSchema.fit(frame, numeric=numeric, categorical=categorical).transform_frame(frame)


def recovery_at_true_k(frame: pd.DataFrame, labels: np.ndarray, seed: int = 0) -> float:
    """ARI of k-means told the true k against the true segments, in ``clustering_space``."""
    from sklearn.cluster import KMeans
    from sklearn.metrics import adjusted_rand_score

    X = clustering_space(frame)
    k = int(labels.max()) + 1
    with threadpool_limits(limits=1):  # on a shared machine OpenMP threads waiting at barriers cost 10x
        found = KMeans(n_clusters=k, n_init=4, random_state=seed).fit_predict(X)
    return float(adjusted_rand_score(labels, found))


def calibrate(draw: Draw, band: tuple[float, float], seed: int, max_steps: int = 6) -> tuple[float, float]:
    """The separation ``scale`` (within 1/16 to 16) whose pilot table's recovery at the true k falls inside
    ``band`` (bisection on log scale, the same pilot random numbers at every step); returns (scale, ARI)."""
    lo_band, hi_band = band

    def accuracy(scale: float) -> float:
        frame, labels = draw(scale, PILOT_ROWS, np.random.default_rng([seed, 31337]))
        return recovery_at_true_k(frame, labels, seed % 1000)

    low, high = None, None  # scales known to give too little / too much separation
    scale = 1.0
    acc = accuracy(scale)
    for _ in range(max_steps):
        if lo_band <= acc <= hi_band:
            return scale, acc
        if acc < lo_band:
            low = scale
            scale = min(16.0, scale * 1.6) if high is None else float(np.sqrt(scale * high))
        else:
            high = scale
            scale = max(1 / 16, scale / 1.6) if low is None else float(np.sqrt(scale * low))
        acc = accuracy(scale)
    return scale, acc

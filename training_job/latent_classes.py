"""How many segments the categorical columns hold: latent class analysis with BIC.

The valley test (``training_job.valleys``) sees only continuous columns: along a one-hot column every
segment is two spikes, so it cannot tell a segment by its levels. Categorical columns have their own
principle, *local independence* (Lazarsfeld's latent class model): within one segment the columns are
independent, so an association between them says the customers are a mixture of segments, and the fewest
classes that explain every association are the segments they carry. ``count_latent_classes`` fits the
latent class model with 1 to ``k_max`` classes (StepMix, ``measurement="categorical"``) and takes the number
with the lowest BIC, which is consistent for this model.

It needs at least ``MIN_COLUMNS`` categorical columns: with fewer the model is not identifiable (two
columns' cross-table is explained exactly by many class structures; Kruskal's condition needs three).

Speed: the model sees each distinct combination of levels once, weighted by how many customers hold it
(a few hundred combinations, not the customers), so the count costs about a second whatever the rows.
Development and held-out figures: README "Choosing k".
"""

from __future__ import annotations

import logging
import math
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

__all__ = ["MIN_COLUMNS", "LatentClasses", "categorical_codes", "count_latent_classes", "latent_class_explanation"]

logger = logging.getLogger(__name__)

#: Fewer categorical columns than this: the latent class model is not identifiable, no count is made.
MIN_COLUMNS = 3
#: EM restarts per number of classes (the best likelihood is kept).
N_INIT = 3


@dataclass(frozen=True)
class LatentClasses:
    """The number of latent classes the categorical columns hold, and the BIC of every count fitted."""

    k: int
    bic: dict[int, float]
    columns: int
    #: Each row's most likely class at ``k`` (rows as given to ``count_latent_classes``).
    labels: np.ndarray = field(repr=False, compare=False, default_factory=lambda: np.empty(0, np.intp))


def categorical_codes(X: np.ndarray, blocks: Sequence[slice]) -> np.ndarray:
    """Each categorical column's level per row (n x len(blocks)) from its one-hot block in the clustering
    space; a row with no level set (a level unseen in training) gets the block's width."""
    codes = np.empty((X.shape[0], len(blocks)), dtype=np.int64)
    for j, block in enumerate(blocks):
        hot = X[:, block] > 0
        codes[:, j] = np.where(hot.any(axis=1), hot.argmax(axis=1), hot.shape[1])
    return codes


def count_latent_classes(codes: np.ndarray, k_max: int, seed: int = 0) -> LatentClasses | None:
    """The BIC-best number of latent classes (1 to ``k_max``) of the categorical columns ``codes``; None with
    fewer than ``MIN_COLUMNS`` columns that vary."""
    varying = [j for j in range(codes.shape[1]) if np.unique(codes[:, j]).size > 1]
    if len(varying) < MIN_COLUMNS:
        return None
    # Levels renumbered 0..m-1 per column (StepMix's categorical model counts levels from the maximum).
    dense = np.column_stack([np.unique(codes[:, j], return_inverse=True)[1] for j in varying])
    patterns, inverse, counts = np.unique(dense, axis=0, return_inverse=True, return_counts=True)
    weights = counts.astype(np.float64)
    n = float(weights.sum())
    bic: dict[int, float] = {}
    models: dict[int, Any] = {}
    for k in range(1, min(k_max, len(patterns) - 1) + 1):
        models[k] = _fit(patterns, weights, k, seed)
        log_likelihood = float(models[k].score(patterns, sample_weight=weights)) * n
        bic[k] = -2.0 * log_likelihood + float(models[k].n_parameters) * math.log(n)
        # Two rises in a row: more classes only add parameters (the minimum is behind).
        if k >= 3 and bic[k] > bic[k - 1] > bic[k - 2]:
            break
    best = min(bic, key=bic.__getitem__)
    logger.info("latent classes of %d categorical columns: %d (BIC %s)", len(varying), best,
                ", ".join(f"{k}: {v:.0f}" for k, v in bic.items()))
    labels = np.asarray(models[best].predict(patterns), dtype=np.intp)[inverse.ravel()]
    return LatentClasses(best, bic, len(varying), labels)


def latent_class_explanation(classes: LatentClasses, valley_why: str) -> str:
    """Why the rule took the latent classes' count, in plain words (``valley_why``: the valley rule's own)."""
    return (
        f"{classes.k} segments: the {classes.columns} categorical columns go together across customers (a "
        f"customer's level in one says something about the others), and {classes.k} groups, each with its own "
        f"mix of levels and no such link within it, explain that best (latent class analysis, lowest BIC). "
        f"The numeric columns alone: {valley_why}"
    )


def _fit(patterns: np.ndarray, weights: np.ndarray, k: int, seed: int) -> Any:
    """The k-class model fitted to the weighted level combinations (best of ``N_INIT`` starts)."""
    from stepmix.stepmix import StepMix  # imported when there are categorical columns to count

    model = StepMix(n_components=k, measurement="categorical", n_init=N_INIT, max_iter=300,
                    random_state=seed, verbose=0, progress_bar=0)
    with warnings.catch_warnings():
        # EM stopping at max_iter on a flat likelihood warns; the BIC of the best start still counts.
        warnings.simplefilter("ignore", category=UserWarning)
        warnings.simplefilter("ignore", category=RuntimeWarning)
        model.fit(patterns, sample_weight=weights)
    return model

"""Choosing the number of segments k, and the stability score the manifest reports.

``search_k`` fits the algorithm (``training_job.algorithms``) at every k, records the classic indices
and the valley test's verdicts (``training_job.k_metrics``, ``training_job.valleys``), and lets the k rule
(``training_job.k_rule``) pick k. When k-means at some k cuts one segment in two and lumps two others,
the search tries a split-and-merge repair (``_split_merge``); when the rule proves k by merging a larger
k's pieces back, the model at k starts from those merged groups.

Speed: the search runs on one BLAS / OpenMP thread up to ``SINGLE_THREAD_ROWS`` rows (on small tables
thread hand-offs cost more than they save, and on a loaded machine threads spinning at barriers made
it 2-20x slower); silhouette is computed for every k in one pass over the sample's distances.

Large tables: the search runs on a fixed random subsample of ``SEARCH_ROWS`` rows (the choice of k
needs a few thousand customers per segment, not a million); only the final model at the chosen k is
fitted on every row, started from the subsample's centres. Silhouette is always computed on at most
``SILHOUETTE_ROWS`` rows (sklearn's ``sample_size``), never on an n x n matrix.
"""

from __future__ import annotations

import contextlib
import logging
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from sklearn.metrics import adjusted_rand_score
from threadpoolctl import threadpool_limits

from training_job.algorithms import Algorithm, algorithm_named
from training_job.k_metrics import row_metrics, silhouettes
from training_job.k_rule import (
    RULE_NAME,
    STATUS_MERGED,
    STRUCTURE_CONTINUUM,
    STRUCTURE_NATURAL,
    USER,
    choose_k_in_range,
    choose_k_rule,
    fixed_k_explanation,
    fixed_rule,
    merge_support,
    rule_status,
    structure_of,
)
from training_job.latent_classes import categorical_codes, count_latent_classes, latent_class_explanation
from training_job.valleys import Valleys, continuous_columns, dequantize, valley_components

__all__ = ["KSearchResult", "search_k", "stability_score"]

logger = logging.getLogger(__name__)

#: Rows the k search is fitted on when the table is larger (fixed random subsample).
SEARCH_ROWS = 30_000
#: Clusters (widest first) the split-and-merge repair tries to split.
REPAIR_TRIES = 4
#: Rows the stability score fits each round on.
STABILITY_ROWS = 10_000
#: Fits on at most this many rows run on one thread: a Lloyd pass over them is a few milliseconds, and
#: handing its 256-row chunks to OpenMP / BLAS threads costs more than it saves (on a shared machine a
#: thread spinning at a barrier while its partner is descheduled makes it erratic: 2-5x slower).
SINGLE_THREAD_ROWS = 100_000


@dataclass(frozen=True)
class KSearchResult:
    """Outcome of the k search: one JSON-able row per k, the chosen k and why."""

    rows: list[dict[str, Any]]
    chosen_k: int
    rule: str
    rule_explanation: str
    chosen_model: Any = field(default=None, repr=False, compare=False)
    #: ``k_rule.STRUCTURE_NATURAL``, ``STRUCTURE_UNPROVEN`` or ``STRUCTURE_CONTINUUM``: what the segments are.
    structure: str = STRUCTURE_NATURAL


# --------------------------------------------------------------------------------------------------
# Public entry points (validate here, then call private twins that assume valid input)


def search_k(
    X: np.ndarray,
    k_values: Sequence[int],
    algorithm: str = "kmeans",
    seed: int = 0,
    progress: Callable[[int, int], None] | None = None,
    on_row: Callable[[dict[str, Any]], None] | None = None,
    business_range: tuple[int, int] | None = None,
    categorical_blocks: Sequence[slice] = (),
    k_set_by: str = USER,
) -> KSearchResult:
    """Fit ``algorithm`` at every k, record every metric and choose k with the valley rule (within
    ``business_range`` when given: ``k_rule.choose_k_in_range``); ``on_row`` gets each k's row as soon as it
    is computed (before the silhouettes, which come in one pass at the end). ``categorical_blocks``: the
    one-hot blocks of X's categorical columns (``FeatureSchema.categorical_blocks``), whose latent classes
    the rule also counts (``training_job.latent_classes``). One k is a fixed k: nothing is chosen, the rule
    is ``k_rule.fixed_rule(k_set_by)`` ("fixed by the user", or "set by the preset (mall)")."""
    X = _check_X(X)
    ks = _check_k_values(k_values, X.shape[0])
    for block in categorical_blocks:
        if not 0 <= block.start < block.stop <= X.shape[1]:
            raise ValueError(f"categorical block {block.start}:{block.stop} lies outside X's {X.shape[1]} columns")
    if business_range is not None:
        lo, hi = business_range
        if not ks[0] <= lo <= hi <= ks[-1]:
            raise ValueError(f"business_range={lo}-{hi} must lie within the k searched, {ks[0]}-{ks[-1]}")
    return _search_k(X, ks, algorithm_named(algorithm), seed, progress, on_row, business_range,
                     list(categorical_blocks), k_set_by)


def stability_score(
    X: np.ndarray,
    k: int,
    algorithm: str = "kmeans",
    seed: int = 0,
    n_rounds: int = 5,
) -> float:
    """Mean adjusted Rand index between clusterings fitted on independent subsamples (1 = perfectly stable)."""
    X = _check_X(X)
    _check_k_values([k], X.shape[0])
    algo = algorithm_named(algorithm)
    if n_rounds < 2:
        raise ValueError(f"n_rounds={n_rounds} must be >= 2 to compare clusterings")
    return _stability_score(X, k, algo, seed, n_rounds)


# --------------------------------------------------------------------------------------------------
# Validation


def _check_X(X: np.ndarray) -> np.ndarray:
    X = np.asarray(X, dtype=np.float64)
    if X.ndim != 2:
        raise ValueError(f"X must be 2-D (n_samples, n_features), got shape {X.shape}")
    if not np.isfinite(X).all():
        raise ValueError("X contains NaN or infinite values; transform the table first")
    return X


def _check_k_values(k_values: Sequence[int], n_samples: int) -> list[int]:
    ks = sorted({int(k) for k in k_values})
    if not ks:
        raise ValueError("k_values is empty")
    k_min, k_max = ks[0], ks[-1]
    if k_min < 2:
        raise ValueError(f"k_min={k_min} must be >= 2")
    if k_max >= n_samples:
        raise ValueError(f"k_max={k_max} must be < n_samples={n_samples}")
    return ks


# --------------------------------------------------------------------------------------------------
# The search (no input validation below this line)


def _search_k(
    X: np.ndarray,
    ks: list[int],
    algo: Algorithm,
    seed: int,
    progress: Callable[[int, int], None] | None,
    on_row: Callable[[dict[str, Any]], None] | None = None,
    business_range: tuple[int, int] | None = None,
    categorical_blocks: list[slice] | None = None,
    k_set_by: str = USER,
) -> KSearchResult:
    n = X.shape[0]
    rng = np.random.default_rng(seed)
    Xs = X[np.sort(rng.choice(n, SEARCH_ROWS, replace=False))] if n > SEARCH_ROWS else X
    if n > SEARCH_ROWS:
        logger.info("k search on a random subsample of %d of %d rows", Xs.shape[0], n)
    ks = [k for k in ks if k < Xs.shape[0]]

    rows: list[dict[str, Any]] = []
    centres: dict[int, np.ndarray] = {}
    labelings: dict[int, np.ndarray] = {}
    segments_of: dict[int, dict[int, int]] = {}
    with _threads_for(Xs.shape[0]):
        # The valley test's columns, chosen once for every k, with counts and rounded values spread
        # over their rounding cells (between a column's gaps there is no one, not a valley).
        Xv = dequantize(Xs[:, continuous_columns(Xs)], seed)
        for i, k in enumerate(ks):
            model = algo.fit(Xs, k, seed)
            labels = model.predict(Xs)
            centre = algo.centres(model)
            row, valleys = row_metrics(Xs, Xv, labels, centre, k, seed)
            if valleys is not None and row["n_distinct"] == k - 1 and len(valleys.joined) == 1:
                # One pair is a segment cut in two while all else is distinct: often k-means at the
                # true k is stuck cutting a big segment and lumping two small ones. Merge the pair,
                # split the widest other cluster, rerun; keep it only if every cluster is then distinct.
                repaired = _split_merge(Xs, Xv, labels, centre, valleys.joined[0], k, algo, seed)
                if repaired is not None:
                    row, centre, labels, valleys = repaired
            row["search_rows"] = int(Xs.shape[0])
            rows.append(row)
            centres[k] = centre
            labelings[k] = labels
            segments_of[k] = valleys.segment_of if valleys is not None else {}
            logger.debug("k=%d %s", k, row)
            if on_row is not None:
                on_row(dict(row))
            if progress is not None and i + 1 < len(ks):
                progress(i + 1, len(ks))
        # Silhouette for every k in one pass over the sample's distances (they do not depend on k).
        for row, value in zip(rows, silhouettes(Xs, [labelings[r["k"]] for r in rows], seed)):
            row["silhouette"] = value
    if progress is not None:
        progress(len(ks), len(ks))

    rule = RULE_NAME
    # None unless at least latent_classes.MIN_COLUMNS categorical columns vary (and k is searched at all).
    classes = count_latent_classes(categorical_codes(Xs, categorical_blocks), ks[-1], seed) if (
        categorical_blocks and len(ks) > 1) else None
    from_classes = False
    if classes is not None:
        for row in rows:
            if row["k"] in classes.bic:  # the count stops two rises past its minimum
                row["latent_class_bic"] = classes.bic[row["k"]]
    if len(ks) == 1:
        chosen_k, rule = ks[0], fixed_rule(k_set_by)
        structure = structure_of(rows, chosen_k)
        explanation = fixed_k_explanation(chosen_k, structure, k_set_by)
    elif business_range is None:
        chosen_k, explanation = choose_k_rule(rows)
        structure = structure_of(rows, chosen_k)
        if classes is not None and classes.k in ks and (structure != STRUCTURE_NATURAL or classes.k > chosen_k):
            # The categorical columns hold more segments than the valleys prove (or the valleys prove none).
            chosen_k, structure, rule = classes.k, STRUCTURE_NATURAL, f"{RULE_NAME} + latent classes"
            from_classes = True
            explanation = latent_class_explanation(classes, explanation)
            # k-means started from the latent classes' centres finds the segments they describe.
            if np.unique(classes.labels).size == chosen_k:
                init = np.vstack([Xs[classes.labels == c].mean(axis=0) for c in range(chosen_k)])
                with _threads_for(Xs.shape[0]):
                    centres[chosen_k] = algo.centres(algo.fit_from(Xs, chosen_k, seed, init))
    else:
        chosen_k, explanation, structure = choose_k_in_range(rows, business_range)
        if structure == STRUCTURE_CONTINUUM:
            rule = f"{RULE_NAME}, explained-variance elbow in {business_range[0]}-{business_range[1]}"
    status = rule_status(rows)
    for row in rows:
        row["rule_status"] = status[row["k"]]
    if status[chosen_k] == STATUS_MERGED and not from_classes:
        # k-means asked for chosen_k groups cuts a segment; start it from the merged groups instead.
        larger = merge_support(sorted(rows, key=lambda r: r["k"]))[chosen_k]
        segment = np.zeros(max(segments_of[larger]) + 1, dtype=np.intp)
        for c, g in segments_of[larger].items():
            segment[c] = g
        groups = segment[labelings[larger]]
        init = np.vstack([Xs[groups == g].mean(axis=0) for g in range(chosen_k)])
        with _threads_for(Xs.shape[0]):
            centres[chosen_k] = algo.centres(algo.fit_from(Xs, chosen_k, seed, init))
    # The model at the chosen k on every row, started from the search's centres: they may be a
    # split-and-merge repair restarts would miss, and on a subsampled search Lloyd converges from them
    # in a few passes over all rows to the optimum the restarts found (ten fresh restarts cost 10x).
    with _threads_for(X.shape[0]):
        chosen_model = algo.fit_from(X, chosen_k, seed, centres[chosen_k])
    if len(ks) == 1:
        logger.info("k=%d %s, not chosen (%s at that k)", chosen_k, rule, structure)
    else:
        logger.info("chosen k=%d by %s (%s)", chosen_k, rule, structure)
    return KSearchResult(rows, chosen_k, rule, explanation, chosen_model, structure)


def _threads_for(n_rows: int) -> Any:
    """One BLAS / OpenMP thread for work on up to ``SINGLE_THREAD_ROWS`` rows; the default above."""
    if n_rows <= SINGLE_THREAD_ROWS:
        return threadpool_limits(limits=1)
    return contextlib.nullcontext()


def _split_merge(
    X: np.ndarray,
    Xv: np.ndarray,
    labels: np.ndarray,
    centres: np.ndarray,
    pair: tuple[int, int],
    k: int,
    algo: Algorithm,
    seed: int,
) -> tuple[dict[str, Any], np.ndarray, np.ndarray, Valleys] | None:
    """Merge the valley-less pair, split the widest other cluster; the repaired row (and its centres,
    labels and valley test) if all k are then distinct."""
    a, b = pair
    merged = X[(labels == a) | (labels == b)].mean(axis=0)
    others = [c for c in range(k) if c not in pair and (labels == c).sum() > 2]
    sse = {c: float(((X[labels == c] - centres[c]) ** 2).sum()) for c in others}
    for c in sorted(others, key=sse.get, reverse=True)[:REPAIR_TRIES]:
        Xc = X[labels == c]
        eigval, eigvec = np.linalg.eigh(np.cov(Xc, rowvar=False))
        # Halves of a blob have their means ~0.8 sd either side of the centre on the main axis.
        step = 0.8 * math.sqrt(max(float(eigval[-1]), 0.0)) * eigvec[:, -1]
        keep = [centres[o] for o in others if o != c]
        init = np.vstack([*keep, merged, centres[c] - step, centres[c] + step])
        model = algo.fit_from(X, k, seed, init)
        new_labels = model.predict(X)
        new_centres = algo.centres(model)
        # The valley test first: the other metrics are wasted on a try that fails.
        valleys = valley_components(Xv, new_labels, new_centres, seed)
        if valleys.n_distinct == k:
            row, _ = row_metrics(X, Xv, new_labels, new_centres, k, seed, valleys)
            row["split_merge_repaired"] = True
            return row, new_centres, new_labels, valleys
    return None


# --------------------------------------------------------------------------------------------------
# Stability


def _stability_score(X: np.ndarray, k: int, algo: Algorithm, seed: int, n_rounds: int) -> float:
    """Fit on ``n_rounds`` random subsamples, label one common evaluation set, mean pairwise ARI."""
    n = X.shape[0]
    rng = np.random.default_rng(seed)
    # Half-samples (Lange et al. 2004, Ben-Hur et al. 2002): independent enough to disagree where the
    # clustering is arbitrary, capped so the score stays cheap on millions of rows.
    fit_rows = min(STABILITY_ROWS, max(k + 1, n // 2))
    eval_idx = rng.choice(n, min(n, STABILITY_ROWS), replace=False)
    X_eval = X[eval_idx]
    predictions = []
    with _threads_for(max(fit_rows, X_eval.shape[0])):
        for r in range(n_rounds):
            idx = rng.choice(n, fit_rows, replace=False)
            model = algo.fit_quick(X[idx], k, seed + r)
            predictions.append(model.predict(X_eval))
    scores = [
        adjusted_rand_score(predictions[i], predictions[j])
        for i in range(n_rounds)
        for j in range(i + 1, n_rounds)
    ]
    return float(np.mean(scores))


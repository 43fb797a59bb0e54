"""The per-k numbers of the k search: the classic indices and what the valley test saw.

``row_metrics`` builds one JSON-able row per k (inertia, Calinski-Harabasz, Davies-Bouldin, spherical
BIC, the valley test's verdicts and counts); ``silhouettes`` fills in silhouette for every k in one pass
over the sample's distances, equal to scikit-learn's ``silhouette_score`` with ``sample_size`` (a test
checks it).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
from sklearn.metrics import calinski_harabasz_score, davies_bouldin_score
from sklearn.metrics.pairwise import euclidean_distances

from training_job.valleys import Valleys, valley_components

__all__ = ["SILHOUETTE_ROWS", "row_metrics", "silhouettes"]

#: Rows sklearn's silhouette_score samples (its cost is quadratic in this number).
SILHOUETTE_ROWS = 4_000
#: Sample rows per block of the silhouette's distance matrix (a block is this x SILHOUETTE_ROWS doubles).
SILHOUETTE_BLOCK = 512


def row_metrics(
    X: np.ndarray,
    Xv: np.ndarray,
    labels: np.ndarray,
    centres: np.ndarray,
    k: int,
    seed: int,
    valleys: Valleys | None = None,
) -> tuple[dict[str, Any], Valleys | None]:
    """Every per-k number for the manifest (silhouette is filled in by the caller, for all ks at once),
    and what the valley test saw (``Xv``: the valley test's columns, dequantized)."""
    present = np.unique(labels)
    inertia = float(((X - centres[labels]) ** 2).sum())
    row: dict[str, Any] = {"k": k, "inertia": inertia, "n_nonempty": int(present.size)}
    # The share of the customers' variation the partition explains (R^2 = 1 - within / total).
    total = float(((X - X.mean(axis=0)) ** 2).sum())
    row["explained_variance"] = 1.0 - inertia / total if total > 0 else 0.0
    sizes = np.bincount(labels, minlength=k)
    row["smallest_share"] = float(sizes.min() / labels.size)
    if present.size < 2:
        row.update(silhouette=float("nan"), calinski_harabasz=float("nan"))
        row.update(davies_bouldin=float("nan"), n_distinct=1, n_distinct_possible=1, min_valley_ratio=1.0)
        row["smallest_segment_share"] = 1.0
        return row, None
    row["silhouette"] = float("nan")  # filled in by silhouettes, in this place of the row
    row["silhouette_rows"] = min(SILHOUETTE_ROWS, X.shape[0])
    # CH and DB are O(n k d): cheap on the (sub)sample the search runs on.
    row["calinski_harabasz"] = float(calinski_harabasz_score(X, labels))
    row["davies_bouldin"] = float(davies_bouldin_score(X, labels))
    # Spherical-Gaussian BIC of the k-means partition (X-means, Pelleg & Moore 2000), lower is better.
    row["bic_spherical"] = _spherical_bic(X, labels, inertia, k)
    if valleys is None:
        valleys = valley_components(Xv, labels, centres, seed)
    ratios = [p["valley_ratio"] for p in valleys.pairs]
    row["n_distinct"] = valleys.n_distinct
    row["n_distinct_possible"] = valleys.n_distinct_possible
    # The groups left once the valley-less pairs are merged: their smallest share of the customers.
    lut = np.zeros(centres.shape[0], dtype=np.intp)
    for c, g in valleys.segment_of.items():
        lut[c] = g
    row["smallest_segment_share"] = float(np.bincount(lut[labels]).min() / labels.size)
    for verdict in ("apart", "together", "untested"):
        row[f"pairs_{verdict}"] = sum(p["verdict"] == verdict for p in valleys.pairs)
    row["min_valley_ratio"] = min(ratios) if ratios else 1.0
    row["max_valley_ratio"] = max(ratios) if ratios else 0.0
    row["split_merge_repaired"] = False
    row["valley_pairs"] = valleys.pairs
    return row, valleys


def silhouettes(X: np.ndarray, labelings: Sequence[np.ndarray], seed: int) -> list[float]:
    """``silhouette_score(X, labels, sample_size=SILHOUETTE_ROWS, random_state=seed)`` for every labelling.

    The same rows as sklearn's (its permutation draw), the same distances (its ``euclidean_distances``,
    zero diagonal), but each block of the distance matrix is computed once for all labellings, and the
    per-cluster sums are one product with the labels' indicator matrix instead of a bincount per row.
    """
    n = X.shape[0]
    m = min(SILHOUETTE_ROWS, n)
    idx = np.random.RandomState(seed).permutation(n)[:m]
    Xm = X[idx]
    plans = []  # per labelling: codes 0..L-1, cluster sizes, indicator matrix (or None: undefined)
    for labels in labelings:
        uniq, codes = np.unique(labels[idx], return_inverse=True)
        if not 2 <= uniq.size <= m - 1:
            plans.append(None)
            continue
        indicator = np.zeros((m, uniq.size))
        indicator[np.arange(m), codes] = 1.0
        plans.append((codes, np.bincount(codes).astype(float), indicator))
    intra = [np.empty(m) for _ in plans]
    inter = [np.empty(m) for _ in plans]
    sq_norms = np.einsum("ij,ij->i", Xm, Xm)
    for start in range(0, m, SILHOUETTE_BLOCK):
        stop = min(start + SILHOUETTE_BLOCK, m)
        D = euclidean_distances(Xm[start:stop], Xm, Y_norm_squared=sq_norms)
        D[np.arange(stop - start), np.arange(start, stop)] = 0.0
        rows = np.arange(stop - start)
        for plan, a, b in zip(plans, intra, inter):
            if plan is None:
                continue
            codes, freqs, indicator = plan
            sums = D @ indicator
            own = codes[start:stop]
            a[start:stop] = sums[rows, own]
            sums[rows, own] = np.inf
            b[start:stop] = (sums / freqs).min(axis=1)
    out = []
    for plan, a, b in zip(plans, intra, inter):
        if plan is None:
            out.append(float("nan"))
            continue
        codes, freqs, _ = plan
        with np.errstate(divide="ignore", invalid="ignore"):
            a = a / (freqs - 1)[codes]
            s = (b - a) / np.maximum(a, b)
        out.append(float(np.mean(np.nan_to_num(s))))
    return out


def _spherical_bic(X: np.ndarray, labels: np.ndarray, inertia: float, k: int) -> float:
    """Spherical-Gaussian BIC of a hard partition (lower is better)."""
    n, d = X.shape
    variance = max(inertia / max(n - k, 1) / d, 1e-12)
    sizes = np.bincount(labels, minlength=k)
    sizes = sizes[sizes > 0]
    loglik = float(
        (sizes * np.log(sizes / n)).sum()
        - n * d / 2 * math.log(2 * math.pi * variance)
        - (n - k) * d / 2
    )
    n_params = k * d + (k - 1) + 1
    return float(-2 * loglik + n_params * math.log(n))

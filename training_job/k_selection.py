"""Choosing the number of segments k, and the stability score the manifest reports.

``search_k`` fits the algorithm at every k, records the classic indices (inertia, silhouette,
Calinski-Harabasz, Davies-Bouldin) and the quantities of the rule that actually picks k,
``choose_k_rule``: the *valley rule*, a split-and-merge check in the spirit of dip-means
(Kalogeratos & Likas 2012) and of the merge step of split-and-merge k-means.

The valley rule. For the clustering at each k, every pair of clusters is projected on the line joining
their centres (one-hot columns left out) and the 1-D density of the pair is smoothed. Two real
segments leave a valley in that density between them; two halves of one segment do not (any 1-D
projection of one blob is unimodal, whatever its skew or correlation). A valley counts when it is
below ``VALLEY_RATIO`` of the lower peak and ``VALLEY_Z`` standard errors deep. When the inner half
of the pair (the customers nearest the centre line) has the power to show a valley, its verdict wins,
either way: the density *along* the line (a ridgeline, Ray & Lindsay 2005) has no dip between two
pieces of one segment, while the projection of their whole wedge-shaped cells can; and it keeps the
valley between two elongated, overlapping segments that their off-line customers fill in the whole
projection. Counts and rounded values are spread over their rounding cells first (``_dequantize``):
a segment buying 1-4 times sits on a few lattice points with no one between them, and those empty
gaps are not valleys. Pairs without one
are merged (connected components), and what remains at k is the number of *distinct* segments
``n_distinct(k)`` the clustering at k really has. Below the true k every cluster is distinct
(``n_distinct = k``); above it some cluster is one segment cut in two. The rule picks the largest
k whose clusters are all distinct. Unlike silhouette or Calinski-Harabasz it does not reward merging
two overlapping segments, and unlike GMM BIC it does not split a skewed segment to model its shape.

Four guards make it hold up on real tables:

- *Split-and-merge repair*: when k-means at k cuts one segment in two and lumps two others (one
  valley-less pair, everything else distinct), the pair is merged and the widest other clusters are
  split in turn; a repaired k counts only if some larger k, unaided, also holds k distinct segments.
- *Merging back*: k-means at the true k can also be stuck with no single repair in reach. A larger k
  then cuts every segment into pieces, and the pieces merged (valley-less pairs joined) are the true
  groups, all apart. When some larger k's clusters merge into m groups of at least
  ``MIN_SEGMENT_SHARE`` each, m counts as proven (``rule_status`` "... merge into this many ...", the
  row's ``smallest_segment_share``), and the model at m is started from those groups' means.
- *Tiny groups*: a k whose smallest cluster holds under ``MIN_SEGMENT_SHARE`` of the customers does
  not count (a handful of extreme spenders leave a real gap but are not a segment).
- *Power*: a pair's test records the z-score a valley half as deep as the lower peak would reach. When
  even that is below ``VALLEY_Z`` (a few dozen customers per cluster, e.g. the 200-customer mall table)
  the test's silence means "too few customers", not "one segment": the pair is *untested*. A k whose
  pairs are only apart or untested, and whose untested pairs all show a valley below ``VALLEY_RATIO``
  (the effect is there, its significance out of reach), counts as apart (``STATUS_LIKELY``). A k
  larger than the proven one with an untested pair showing no such valley stays open, and silhouette
  (reliable on small, clean tables) arbitrates among the open ks and the proven one, taking the
  smallest k within ``SILHOUETTE_TOLERANCE`` of the best.

Every row records what the rule saw at its k: each pair's valley ratio, z-score, power and verdict
and whether the near-line test decided it (``valley_pairs``), the counts per verdict, ``n_distinct`` /
``n_distinct_possible``, the smallest merged group's share and the rule's conclusion (``rule_status``).

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
from scipy.ndimage import gaussian_filter1d
from sklearn.cluster import KMeans, MiniBatchKMeans
from sklearn.metrics import (
    adjusted_rand_score,
    calinski_harabasz_score,
    davies_bouldin_score,
)
from sklearn.metrics.pairwise import euclidean_distances
from sklearn.mixture import GaussianMixture
from threadpoolctl import threadpool_limits

__all__ = [
    "ALGORITHMS",
    "KSearchResult",
    "choose_k_rule",
    "search_k",
    "stability_score",
]

logger = logging.getLogger(__name__)

ALGORITHMS = ("kmeans", "minibatch-kmeans", "gmm")

#: Rows the k search is fitted on when the table is larger (fixed random subsample).
SEARCH_ROWS = 30_000
#: Rows sklearn's silhouette_score samples (its cost is quadratic in this number).
SILHOUETTE_ROWS = 4_000
#: Rows per cluster pair in the valley test (more adds nothing to a 1-D density).
VALLEY_ROWS = 4_000
#: A pair is two segments when the density between them falls below this share of the lower peak ...
VALLEY_RATIO = 0.8
#: ... and that dip is this many standard errors deep (so a small, noisy pair needs a deeper valley).
VALLEY_Z = 4.0
#: Clusters (widest first) the split-and-merge repair tries to split.
REPAIR_TRIES = 4
#: A group holding under this share of the customers is not a segment (a handful of extreme spenders).
MIN_SEGMENT_SHARE = 0.025
#: Fallback when the valley test lacks rows: the smallest k within this of the best silhouette.
SILHOUETTE_TOLERANCE = 0.02
#: Rows the stability score fits each round on.
STABILITY_ROWS = 10_000
#: Fits on at most this many rows run on one thread: a Lloyd pass over them is a few milliseconds, and
#: handing its 256-row chunks to OpenMP / BLAS threads costs more than it saves (on a shared machine a
#: thread spinning at a barrier while its partner is descheduled makes it erratic: 2-5x slower).
SINGLE_THREAD_ROWS = 100_000
#: Sample rows per block of the silhouette's distance matrix (a block is this x SILHOUETTE_ROWS doubles).
SILHOUETTE_BLOCK = 512

RULE_NAME = "valley-merge"


@dataclass(frozen=True)
class KSearchResult:
    """Outcome of the k search: one JSON-able row per k, the chosen k and why."""

    rows: list[dict[str, Any]]
    chosen_k: int
    rule: str
    rule_explanation: str
    chosen_model: Any = field(default=None, repr=False, compare=False)


# --------------------------------------------------------------------------------------------------
# Public entry points (validate here, then call private twins that assume valid input)


def search_k(
    X: np.ndarray,
    k_values: Sequence[int],
    algorithm: str = "kmeans",
    seed: int = 0,
    progress: Callable[[int, int], None] | None = None,
) -> KSearchResult:
    """Fit ``algorithm`` at every k, record every metric and choose k with the valley rule."""
    X = _check_X(X)
    ks = _check_k_values(k_values, X.shape[0])
    _check_algorithm(algorithm)
    return _search_k(X, ks, algorithm, seed, progress)


def choose_k_rule(rows: Sequence[dict[str, Any]]) -> tuple[int, str]:
    """The valley rule on search rows, with its small-table fallback; returns (k, a plain-words why)."""
    if not rows:
        raise ValueError("rows is empty: nothing to choose from")
    by_k = sorted(rows, key=lambda r: r["k"])
    status = _rule_status(by_k)
    proven = [r for r in by_k if status[r["k"]] in (STATUS_APART, STATUS_MERGED, STATUS_LIKELY)]
    k_valley = proven[-1]["k"] if proven else None
    # Too few customers to prove or disprove the gaps: a larger k that no pair contradicts stays open,
    # and silhouette (reliable on small, clean tables) arbitrates, preferring the smaller k on near ties.
    open_ = [r for r in by_k if status[r["k"]] == STATUS_UNTESTED and (k_valley is None or r["k"] > k_valley)]
    if open_:
        candidates = open_ + proven[-1:]
        best = max(r["silhouette"] for r in candidates)
        pick = min((r for r in candidates if r["silhouette"] >= best - SILHOUETTE_TOLERANCE),
                   key=lambda r: r["k"])
        k = pick["k"]
        if k != k_valley:
            ks = sorted(r["k"] for r in candidates)
            span = ", ".join(map(str, ks)) if ks != list(range(ks[0], ks[-1] + 1)) else (
                str(ks[0]) if len(ks) == 1 else f"{ks[0]} to {ks[-1]}")
            return k, (
                f"{k} segments: there are too few customers per group to prove the gaps between groups. "
                f"The valley test leaves k = {span} open; among them, {k} groups keep customers most "
                f"clearly closer to their own group than to any other (silhouette {pick['silhouette']:.2f})."
            )
    if k_valley is None:
        k = by_k[0]["k"]
        return k, (
            f"No k tried gave groups clearly apart from each other, so the smallest, k={k}, is used: "
            f"read these segments as slices of one continuous customer base."
        )
    # Below the true k every cluster is distinct; above it some cluster is one segment cut in two.
    # The largest all-distinct k is therefore the true k (at large k, small pieces can show chance
    # dips; the z-score test keeps those rare).
    k = k_valley
    if status[k] == STATUS_MERGED:
        return k, (
            f"{k} segments: asked for more groups, k-means cuts segments into pieces, and once the pieces "
            f"with no gap between them are put back together, {k} groups remain, each separated from every "
            f"other by a gap in the data; asked for exactly {k} groups, k-means cuts one segment and lumps "
            f"two, so the model starts from the groups put back together."
        )
    why = f"{k} segments: with {k} groups every group is separated from every other by a gap in the data"
    if status[k] == STATUS_LIKELY:
        why += " (some gaps are seen in too few customers to be proven)"
    larger = {status[r["k"]] for r in by_k if r["k"] > k}
    tails = []
    if larger & {STATUS_CUT, STATUS_UNREPAIRED}:
        tails.append("only cuts an existing group in two")
    if STATUS_TINY in larger:
        share = f"{MIN_SEGMENT_SHARE:.1%}".replace(".0%", "%")
        tails.append(f"splits off a group of under {share} of customers, too few to be a segment")
    if STATUS_UNTESTED in larger:
        tails.append("gives groups that are less clearly apart")
    if tails:
        return k, f"{why}, while asking for more {' or '.join(tails)}."
    return k, f"{why}; no larger number was tried."


#: Per-k verdicts of the rule (``rule_status`` in the rows).
STATUS_APART = "all groups apart"
STATUS_CUT = "a group cut in two"
STATUS_UNREPAIRED = "all apart only after a repair no larger k confirms"
STATUS_TINY = "a group too small to be a segment"
STATUS_LIKELY = "all groups apart, some gaps seen but too few customers to prove them"
STATUS_UNTESTED = "undecided: too few customers to test every gap"
STATUS_MERGED = "a group cut in two here, but a larger k's groups merge into this many, all apart"


def _merge_support(by_k: Sequence[dict[str, Any]]) -> dict[int, int]:
    """m -> the smallest larger k whose clusters, valley-less pairs merged, are m segments of at least
    ``MIN_SEGMENT_SHARE`` each: the merge step of split-and-merge, over-cluster and merge back."""
    support: dict[int, int] = {}
    for r in by_k:
        m = r["n_distinct"]
        if m < r["k"] and r.get("smallest_segment_share", 0.0) >= MIN_SEGMENT_SHARE:
            support.setdefault(m, r["k"])
    return support


def _rule_status(by_k: Sequence[dict[str, Any]]) -> dict[int, str]:
    """What the rule concludes at each k, from that k's row (and, for a repair, the larger ks')."""
    status = {}
    for r in by_k:
        k = r["k"]
        if r.get("smallest_share", 1.0) < MIN_SEGMENT_SHARE:
            status[k] = STATUS_TINY
        elif r["n_distinct"] >= k:
            # A k made all-distinct only by the split-and-merge repair must be confirmed: some larger
            # k, unaided (not itself repaired), must also hold at least k distinct segments (else the repair
            # cut one in two).
            confirmed = not r.get("split_merge_repaired", False) or any(
                o["k"] > k and o["n_distinct"] >= k and not o.get("split_merge_repaired", False) for o in by_k
            )
            status[k] = STATUS_APART if confirmed else STATUS_UNREPAIRED
        elif (r.get("n_distinct_possible", r["n_distinct"]) >= k and r.get("pairs_untested", 0) > 0
              and math.isfinite(r.get("silhouette", math.nan))):
            # Too few customers to prove some gap. When every such pair still shows a valley as deep
            # as a proven one must be (below VALLEY_RATIO), the data leans to "apart": the effect is
            # there, only its significance is out of reach, so the k counts; a pair with no valley
            # to speak of leaves it undecided.
            weak = [p for p in r.get("valley_pairs") or [] if p["verdict"] == "untested"]
            deep = bool(weak) and all(p["valley_ratio"] < VALLEY_RATIO for p in weak)
            status[k] = STATUS_LIKELY if deep else STATUS_UNTESTED
        else:
            status[k] = STATUS_CUT
    # k-means at the true k can be stuck cutting a big segment and lumping two close ones, while a
    # larger k cuts every segment and the pieces merge back (no valley between them) into the true
    # groups, all apart. That larger k sees the segments the k itself missed.
    for m in _merge_support(by_k):
        if m in status and status[m] != STATUS_APART:
            status[m] = STATUS_MERGED
    return status


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
    _check_algorithm(algorithm)
    if n_rounds < 2:
        raise ValueError(f"n_rounds={n_rounds} must be >= 2 to compare clusterings")
    return _stability_score(X, k, algorithm, seed, n_rounds)


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


def _check_algorithm(algorithm: str) -> None:
    if algorithm not in ALGORITHMS:
        raise ValueError(f"algorithm={algorithm!r} must be one of {ALGORITHMS}")


# --------------------------------------------------------------------------------------------------
# The search (no input validation below this line)


def _search_k(
    X: np.ndarray,
    ks: list[int],
    algorithm: str,
    seed: int,
    progress: Callable[[int, int], None] | None,
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
        Xv = _dequantize(Xs[:, _continuous_columns(Xs)], seed)
        for i, k in enumerate(ks):
            model = _fit(Xs, k, algorithm, seed)
            labels = model.predict(Xs)
            row, centre, valleys = _metrics(Xs, Xv, labels, model, k, algorithm, seed)
            if valleys is not None and row["n_distinct"] == k - 1 and len(valleys.joined) == 1:
                # One pair is a segment cut in two while all else is distinct: often k-means at the
                # true k is stuck cutting a big segment and lumping two small ones. Merge the pair,
                # split the widest other cluster, rerun; keep it only if every cluster is then distinct.
                repaired = _split_merge(Xs, Xv, labels, centre, valleys.joined[0], k, algorithm, seed)
                if repaired is not None:
                    row, centre, labels, valleys = repaired
            row["search_rows"] = int(Xs.shape[0])
            rows.append(row)
            centres[k] = centre
            labelings[k] = labels
            segments_of[k] = valleys.segment_of if valleys is not None else {}
            logger.debug("k=%d %s", k, row)
            if progress is not None and i + 1 < len(ks):
                progress(i + 1, len(ks))
        # Silhouette for every k in one pass over the sample's distances (they do not depend on k).
        for row, value in zip(rows, _silhouettes(Xs, [labelings[r["k"]] for r in rows], seed)):
            row["silhouette"] = value
    if progress is not None:
        progress(len(ks), len(ks))

    chosen_k, explanation = choose_k_rule(rows)
    status = _rule_status(rows)
    for row in rows:
        row["rule_status"] = status[row["k"]]
    if status[chosen_k] == STATUS_MERGED:
        # k-means asked for chosen_k groups cuts a segment; start it from the merged groups instead.
        larger = _merge_support(sorted(rows, key=lambda r: r["k"]))[chosen_k]
        segment = np.zeros(max(segments_of[larger]) + 1, dtype=np.intp)
        for c, g in segments_of[larger].items():
            segment[c] = g
        groups = segment[labelings[larger]]
        init = np.vstack([Xs[groups == g].mean(axis=0) for g in range(chosen_k)])
        with _threads_for(Xs.shape[0]):
            centres[chosen_k] = _centres_of(_fit_from(Xs, chosen_k, algorithm, seed, init), algorithm)
    with _threads_for(X.shape[0]):
        chosen_model = _fit_final(X, Xs, chosen_k, algorithm, seed, centres[chosen_k])
    logger.info("chosen k=%d by %s", chosen_k, RULE_NAME)
    return KSearchResult(rows, chosen_k, RULE_NAME, explanation, chosen_model)


def _threads_for(n_rows: int) -> Any:
    """One BLAS / OpenMP thread for work on up to ``SINGLE_THREAD_ROWS`` rows; the default above."""
    if n_rows <= SINGLE_THREAD_ROWS:
        return threadpool_limits(limits=1)
    return contextlib.nullcontext()


def _fit(X: np.ndarray, k: int, algorithm: str, seed: int) -> Any:
    if algorithm == "kmeans":
        # 4 k-means++ restarts: on segment-shaped data the best of 4 matches the best of 10 nearly
        # always, and the search fits 9 values of k.
        return KMeans(n_clusters=k, n_init=4, random_state=seed).fit(X)
    if algorithm == "minibatch-kmeans":
        return MiniBatchKMeans(
            n_clusters=k, n_init=3, batch_size=2048, random_state=seed
        ).fit(X)
    return GaussianMixture(
        n_components=k, covariance_type="full", n_init=2, reg_covar=1e-4, random_state=seed
    ).fit(X)


def _fit_from(X: np.ndarray, k: int, algorithm: str, seed: int, centres: np.ndarray) -> Any:
    """The algorithm started from given centres (one run, no restarts)."""
    if algorithm == "kmeans":
        return KMeans(n_clusters=k, init=centres, n_init=1, random_state=seed).fit(X)
    if algorithm == "minibatch-kmeans":
        return MiniBatchKMeans(
            n_clusters=k, init=centres, n_init=1, batch_size=4096, random_state=seed
        ).fit(X)
    return GaussianMixture(
        n_components=k,
        covariance_type="full",
        means_init=centres,
        reg_covar=1e-4,
        max_iter=50,
        random_state=seed,
    ).fit(X)


def _split_merge(
    X: np.ndarray,
    Xv: np.ndarray,
    labels: np.ndarray,
    centres: np.ndarray,
    pair: tuple[int, int],
    k: int,
    algorithm: str,
    seed: int,
) -> tuple[dict[str, Any], np.ndarray, np.ndarray, _Valleys] | None:
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
        model = _fit_from(X, k, algorithm, seed, init)
        new_labels = model.predict(X)
        # The valley test first: the other metrics are wasted on a try that fails.
        valleys = _valley_components(Xv, new_labels, _centres_of(model, algorithm), seed)
        if valleys.n_distinct == k:
            row, new_centres, _ = _metrics(X, Xv, new_labels, model, k, algorithm, seed, valleys)
            row["split_merge_repaired"] = True
            return row, new_centres, new_labels, valleys
    return None


def _fit_final(
    X: np.ndarray, Xs: np.ndarray, k: int, algorithm: str, seed: int, centres: np.ndarray
) -> Any:
    """The model at the chosen k on every row, started from the search's centres when subsampled."""
    if Xs is X:
        # Refit from the search's centres: they may be a split-and-merge repair restarts would miss.
        return _fit_from(X, k, algorithm, seed, centres)
    # Starting from the subsample's centres, Lloyd converges in a few passes over all rows and lands
    # on the same optimum the restarts found on the subsample; ten fresh restarts would cost 10x.
    return _fit_from(X, k, algorithm, seed, centres)


def _centres_of(model: Any, algorithm: str) -> np.ndarray:
    return model.means_ if algorithm == "gmm" else model.cluster_centers_


def _metrics(
    X: np.ndarray,
    Xv: np.ndarray,
    labels: np.ndarray,
    model: Any,
    k: int,
    algorithm: str,
    seed: int,
    valleys: _Valleys | None = None,
) -> tuple[dict[str, Any], np.ndarray, _Valleys | None]:
    """Every per-k number for the manifest (silhouette is filled in by the caller, for all ks at once),
    the cluster centres and what the valley test saw."""
    present = np.unique(labels)
    centres = _centres_of(model, algorithm)
    inertia = float(((X - centres[labels]) ** 2).sum())
    row: dict[str, Any] = {"k": k, "inertia": inertia, "n_nonempty": int(present.size)}
    sizes = np.bincount(labels, minlength=k)
    row["smallest_share"] = float(sizes.min() / labels.size)
    if present.size < 2:
        row.update(silhouette=float("nan"), calinski_harabasz=float("nan"))
        row.update(davies_bouldin=float("nan"), n_distinct=1, n_distinct_possible=1, min_valley_ratio=1.0)
        row["smallest_segment_share"] = 1.0
        return row, centres, None
    row["silhouette"] = float("nan")  # filled in by _silhouettes, in this place of the row
    row["silhouette_rows"] = min(SILHOUETTE_ROWS, X.shape[0])
    # CH and DB are O(n k d): cheap on the (sub)sample the search runs on.
    row["calinski_harabasz"] = float(calinski_harabasz_score(X, labels))
    row["davies_bouldin"] = float(davies_bouldin_score(X, labels))
    # Spherical-Gaussian BIC of the k-means partition (X-means, Pelleg & Moore 2000), lower is better.
    row["bic_spherical"] = _spherical_bic(X, labels, inertia, k)
    if valleys is None:
        valleys = _valley_components(Xv, labels, centres, seed)
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
    return row, centres, valleys


def _silhouettes(X: np.ndarray, labelings: Sequence[np.ndarray], seed: int) -> list[float]:
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


# --------------------------------------------------------------------------------------------------
# The valley rule


def _continuous_columns(X: np.ndarray) -> np.ndarray:
    """Columns taking more than two values: one-hot columns are left out of the valley test."""
    # A one-hot column is two spikes: along it any segment "splits" into two with an empty valley
    # between, which says nothing about segments (k-means would cut a segment by channel or region).
    head = X[: min(X.shape[0], 2_000)]
    cols = np.flatnonzero([np.unique(head[:, j]).size > 2 for j in range(X.shape[1])])
    return cols if cols.size else np.arange(X.shape[1])


def _dequantize(X: np.ndarray, seed: int) -> np.ndarray:
    """Each value spread uniformly over its rounding cell: between the midpoints to the column's
    neighbouring observed values (the ends mirror their one neighbour).

    Counts and rounded days are a continuous quantity read on a lattice: a segment that buys 1 to 4
    times has customers on a handful of points (after log1p, log(3/2) to log 2 apart), and
    between two points there is no one. Projected on a pair's centre line those spikes leave "valleys"
    inside one segment, so k-means' cut through it looks like a gap. Uniform dequantization (the
    histogram of a rounded variable over its cells; Theis, van den Oord & Bethge 2016) estimates the
    density of the quantity itself. A continuous column has as many values as rows and barely moves.
    A value no customer holds, between two that some do, is shared by their cells."""
    rng = np.random.default_rng(seed)
    out = np.empty_like(X)
    for j in range(X.shape[1]):
        values, inverse = np.unique(X[:, j], return_inverse=True)
        if values.size < 2:
            out[:, j] = X[:, j]
            continue
        mids = (values[1:] + values[:-1]) / 2
        lower = np.concatenate([[2 * values[0] - mids[0]], mids])
        upper = np.concatenate([mids, [2 * values[-1] - mids[-1]]])
        out[:, j] = lower[inverse] + rng.random(X.shape[0]) * (upper - lower)[inverse]
    return out


@dataclass(frozen=True)
class _Valleys:
    """What the valley test saw at one k."""

    n_distinct: int  # groups once every pair without a proven valley is merged
    n_distinct_possible: int  # groups once only the pairs proven to be one segment are merged
    joined: list[tuple[int, int]]  # the pairs without a proven valley
    segment_of: dict[int, int]  # cluster -> its group once every pair without a proven valley is merged
    pairs: list[dict[str, Any]]  # per pair: clusters, valley ratio, z, power, verdict


def _valley_components(X: np.ndarray, labels: np.ndarray, centres: np.ndarray, seed: int) -> _Valleys:
    """Every cluster pair's valley verdict and the distinct segments they leave at this k.

    ``X`` holds only the columns the test looks at (``_continuous_columns``)."""
    rng = np.random.default_rng(seed)
    clusters = [c for c in range(centres.shape[0]) if (labels == c).any()]
    members = {c: np.flatnonzero(labels == c) for c in clusters}
    # Cap the rows per cluster so a pair costs O(VALLEY_ROWS) whatever n is.
    cap = VALLEY_ROWS // 2
    rows = {
        c: X[rng.choice(idx, cap, replace=False) if idx.size > cap else idx]
        for c, idx in members.items()
    }
    means = {c: Xc.mean(axis=0) for c, Xc in rows.items()}
    strict = _Components(clusters)  # merges every pair without a proven valley
    proven = _Components(clusters)  # merges only the pairs proven to be one segment
    joined = []
    pairs = []
    for a_pos, a in enumerate(clusters):
        for b in clusters[a_pos + 1 :]:
            r, z, power, near_line = _valley_ratio(rows[a], rows[b], means[a], means[b])
            if r < VALLEY_RATIO and z > VALLEY_Z:
                verdict = "apart"
            else:  # no clear valley: one segment cut in two, unless the test had too few rows to tell
                verdict = "untested" if power <= VALLEY_Z else "together"
                strict.union(a, b)
                joined.append((a, b))
                if verdict == "together":
                    proven.union(a, b)
            pairs.append(
                {"a": int(a), "b": int(b), "valley_ratio": round(float(r), 4), "z": round(float(z), 2),
                 "power_z": round(float(min(power, 1e6)), 2), "near_line": near_line, "verdict": verdict}
            )
    roots = {c: strict.find(c) for c in clusters}
    group = {root: i for i, root in enumerate(sorted(set(roots.values())))}
    segment_of = {c: group[root] for c, root in roots.items()}
    return _Valleys(strict.count(), proven.count(), joined, segment_of, pairs)


class _Components:
    """Union-find over cluster ids."""

    def __init__(self, items: Sequence[int]) -> None:
        self.parent = {c: c for c in items}

    def find(self, c: int) -> int:
        while self.parent[c] != c:
            self.parent[c] = self.parent[self.parent[c]]
            c = self.parent[c]
        return c

    def union(self, a: int, b: int) -> None:
        self.parent[self.find(a)] = self.find(b)

    def count(self) -> int:
        return len({self.find(c) for c in self.parent})


def _valley_ratio(
    Xa: np.ndarray, Xb: np.ndarray, mean_a: np.ndarray, mean_b: np.ndarray
) -> tuple[float, float, float, bool]:
    """Deepest density between two clusters over the lower peak (1 = no valley), the dip's z-score, the
    test's power (the z-score a valley half as deep as the lower peak would have), and whether these
    come from the customers near the centre line (else from the whole clusters' projection)."""
    # The centroid line: the direction k-means itself cuts along (its boundaries are perpendicular
    # to it). A Fisher direction separated true pairs no better on the benchmark and needs care with
    # near-singular covariances.
    w = mean_b - mean_a
    ta, tb = Xa @ w, Xb @ w
    lo, hi = float(mean_a @ w), float(mean_b @ w)
    if not hi > lo:
        return 1.0, 0.0, math.inf, False
    whole = _valley_1d(ta, tb, lo, hi)
    # Projecting whole clusters can show a dip that is not in the data: when k-means cuts one segment
    # into many pieces, two pieces' cells are wedges whose union is not convex, and the projection of
    # the union thins out between them. The density *along* the line (the ridgeline of Ray & Lindsay
    # 2005; Hennig 2010 merges mixture components on it) has no such dip: it is measured on the
    # customers nearest the line, the inner half of the pair by distance to it.
    off_a = np.einsum("ij,ij->i", Xa - mean_a, Xa - mean_a) - (ta - lo) ** 2 / float(w @ w)
    off_b = np.einsum("ij,ij->i", Xb - mean_a, Xb - mean_a) - (tb - lo) ** 2 / float(w @ w)
    radius = float(np.median(np.concatenate([off_a, off_b])))
    near_a, near_b = off_a <= radius, off_b <= radius
    if near_a.sum() < 3 or near_b.sum() < 3:
        return (*whole, False)
    near = _valley_1d(ta[near_a], tb[near_b], lo, hi)
    # Half the rows: the near-line test has less power. When it has the power it decides, both ways:
    # a dip in the projection that it does not see was the wedges'; a valley it sees that the
    # projection does not was filled by off-line customers of two elongated segments. When it lacks
    # power, the projection's verdict stands.
    if near[2] > VALLEY_Z:
        return (*near, True)
    return (*whole, False)


def _valley_1d(ta: np.ndarray, tb: np.ndarray, lo: float, hi: float) -> tuple[float, float, float]:
    """The valley test on the two clusters' projections (``lo``, ``hi``: their centres' projections)."""
    ta, tb = (ta - lo) / (hi - lo), (tb - lo) / (hi - lo)  # cluster a at 0, cluster b at 1
    t = np.concatenate([ta, tb])
    # Smoothing: Silverman's bandwidth of the *tighter* cluster, so a real valley is not smoothed over.
    h = min(_silverman(ta), _silverman(tb))
    left, right = (float(q) for q in np.quantile(t, [0.005, 0.995]))
    left, right = min(left, -0.5), max(right, 1.5)
    bins = 256
    width = (right - left) / bins
    hist, _ = np.histogram(t, bins=bins, range=(left, right))
    sigma = max(h / width, 1.0)
    dens = gaussian_filter1d(hist.astype(float), sigma=sigma, mode="constant")
    grid = left + (np.arange(bins) + 0.5) * width
    between = np.flatnonzero((grid >= 0.0) & (grid <= 1.0))
    if between.size == 0:
        return 1.0, 0.0, math.inf
    i_min = between[np.argmin(dens[between])]
    lower_peak = min(dens[: i_min + 1].max(), dens[i_min:].max())
    if lower_peak <= 0:
        return 1.0, 0.0, math.inf
    valley = float(dens[i_min])
    # A Gaussian-smoothed count has variance ~ count / (2 sqrt(pi) sigma): the dip must exceed noise.
    kernel = 2 * math.sqrt(math.pi) * sigma
    noise = math.sqrt((lower_peak + valley) / kernel)
    z = float((lower_peak - valley) / max(noise, 1e-12))
    # Power: the z a valley half as deep as the lower peak would reach with these counts. Below
    # VALLEY_Z the test could not have found even a clear valley: its silence means "too few customers".
    power = float(0.5 * lower_peak / math.sqrt(1.5 * lower_peak / kernel))
    return valley / float(lower_peak), z, power


def _silverman(t: np.ndarray) -> float:
    sd = float(t.std())
    iqr = float(np.subtract(*np.quantile(t, [0.75, 0.25]))) / 1.349
    spread = min(sd, iqr) if iqr > 0 else sd
    return 0.9 * max(spread, 1e-6) * t.size ** (-0.2)


# --------------------------------------------------------------------------------------------------
# Stability


def _stability_score(X: np.ndarray, k: int, algorithm: str, seed: int, n_rounds: int) -> float:
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
            model = _fit_quick(X[idx], k, algorithm, seed + r)
            predictions.append(model.predict(X_eval))
    scores = [
        adjusted_rand_score(predictions[i], predictions[j])
        for i in range(n_rounds)
        for j in range(i + 1, n_rounds)
    ]
    return float(np.mean(scores))


def _fit_quick(X: np.ndarray, k: int, algorithm: str, seed: int) -> Any:
    if algorithm == "gmm":
        return GaussianMixture(
            n_components=k, covariance_type="full", reg_covar=1e-4, random_state=seed
        ).fit(X)
    if algorithm == "minibatch-kmeans":
        return MiniBatchKMeans(n_clusters=k, n_init=3, batch_size=2048, random_state=seed).fit(X)
    return KMeans(n_clusters=k, n_init=3, random_state=seed).fit(X)

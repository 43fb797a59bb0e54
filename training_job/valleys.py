"""The valley statistics of the k rule: does a pair of clusters have a density valley between them?

For the clustering at some k, every pair of clusters is projected on the line joining their centres in
the pair's whitened space (its pooled within-cluster covariance made the identity, so the line is
Fisher's discriminant direction; one-hot columns left out) and the 1-D density of the pair is smoothed.
Two real segments leave a valley in that density between them; two halves of one segment do not (any 1-D
projection of one blob is unimodal, whatever its skew or correlation). A valley counts when it is below
``VALLEY_RATIO`` of the lower peak and ``VALLEY_Z`` standard errors deep. When the inner half of the
pair (the customers nearest the centre line) has the power to show a valley, its verdict wins, either
way: the density *along* the line (a ridgeline, Ray & Lindsay 2005) has no dip between two pieces of one
segment, while the projection of their whole wedge-shaped cells can; and it keeps the valley between two
elongated, overlapping segments that their off-line customers fill in the whole projection. Counts and
rounded values are spread over their rounding cells first (``dequantize``): a segment buying 1-4 times
sits on a few lattice points with no one between them, and those empty gaps are not valleys. Pairs
without a proven valley are merged (connected components): what remains is the number of *distinct*
segments at that k.

The corridor: cut into many pieces, one population leaves wedge-shaped cells whose pairwise
projections thin out between them (a dip of 0.4-0.6 of the lower peak on 6-10 columns, and even the
near-line cylinder loses customers to the other pieces where several cells meet). For every pair of
neighbours (Gabriel: no other centre inside the sphere on their centre line) the other clusters'
customers nearer the segment joining the pair's centres than their own centre are counted too, in the
whole projection and in the near-line cylinder (``_corridor``): the neighbouring pieces occupy exactly
that thinning and fill it, while between two real segments the corridor is empty whatever the cut.
With the wedges' dips filled, one uniform box of 500-6,000 rows in 3-6 columns is no longer called
"natural groups" (it was 4-10), and the z threshold could come down from 4 to 3.5, so real valleys
between overlapping segments count.

Power: a pair's test records the z-score a valley half as deep as the lower peak would reach. When even
that is below ``VALLEY_Z`` the pair is *untested* (too few customers to tell), not "one segment"; the k
rule counts a k whose untested pairs all show a valley below ``VALLEY_RATIO`` beyond noise
(``k_rule.LIKELY_Z``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy.linalg import solve_triangular
from scipy.ndimage import gaussian_filter1d
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components

__all__ = ["VALLEY_RATIO", "VALLEY_Z", "Valleys", "continuous_columns", "dequantize", "valley_components"]

#: Rows per cluster pair in the valley test (more adds nothing to a 1-D density).
VALLEY_ROWS = 4_000
#: A pair is two segments when the density between them falls below this share of the lower peak ...
VALLEY_RATIO = 0.8
#: ... and that dip is this many standard errors deep (so a small, noisy pair needs a deeper valley).
#: 4.0 before the corridor was filled for every neighbouring pair; with the wedges' dips filled, real
#: valleys of overlapping segments at 3.5-4 standard errors count (development seeds 0-9 and 10-24:
#: 3.0 -> 82% / 81% exact, 3.5 -> 83% / 83%, 4.0 -> 81% / 81%).
VALLEY_Z = 3.5
#: The corridor's other customers count in the whole projection when nearer the centre line than this
#: quantile of the pair's own customers' distances to it (and in the near-line test when inside its
#: cylinder, the median of those distances).
CORRIDOR_QUANTILE = 0.9


def continuous_columns(X: np.ndarray) -> np.ndarray:
    """Columns taking more than two values: one-hot columns are left out of the valley test."""
    # A one-hot column is two spikes: along it any segment "splits" into two with an empty valley
    # between, which says nothing about segments (k-means would cut a segment by channel or region).
    head = X[: min(X.shape[0], 2_000)]
    cols = np.flatnonzero([np.unique(head[:, j]).size > 2 for j in range(X.shape[1])])
    return cols if cols.size else np.arange(X.shape[1])


def dequantize(X: np.ndarray, seed: int) -> np.ndarray:
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
class Valleys:
    """What the valley test saw at one k."""

    n_distinct: int  # groups once every pair without a proven valley is merged
    n_distinct_possible: int  # groups once only the pairs proven to be one segment are merged
    joined: list[tuple[int, int]]  # the pairs without a proven valley
    segment_of: dict[int, int]  # cluster -> its group once every pair without a proven valley is merged
    pairs: list[dict[str, Any]]  # per pair: clusters, valley ratio, z, power, verdict


def valley_components(X: np.ndarray, labels: np.ndarray, centres: np.ndarray, seed: int) -> Valleys:
    """Every cluster pair's valley verdict and the distinct segments they leave at this k.

    ``X`` holds only the columns the test looks at (``continuous_columns``)."""
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
    pooled = np.concatenate([rows[c] for c in clusters])
    owner = np.concatenate([np.full(rows[c].shape[0], c) for c in clusters])
    own_d2 = np.concatenate([np.einsum("ij,ij->i", rows[c] - means[c], rows[c] - means[c]) for c in clusters])
    joined = []  # pairs without a proven valley
    together = []  # pairs proven to be one segment
    pairs = []
    for a_pos, a in enumerate(clusters):
        for b in clusters[a_pos + 1 :]:
            # Neighbours are seen with their corridor filled: a wedge's dip is filled by the neighbouring
            # pieces, a gap between two segments is not. (A pair with a cluster between them is apart by
            # that cluster's place; filling it would join them through it.)
            corridor = None
            if _gabriel(a, b, means):
                others = (owner != a) & (owner != b)
                corridor = _corridor(pooled[others], own_d2[others], means[a], means[b])
            r, z, power, near_line = _valley_ratio(rows[a], rows[b], means[a], means[b], corridor)
            if r < VALLEY_RATIO and z > VALLEY_Z:
                verdict = "apart"
            else:  # no clear valley: one segment cut in two, unless the test had too few rows to tell
                verdict = "untested" if power <= VALLEY_Z else "together"
                joined.append((a, b))
                if verdict == "together":
                    together.append((a, b))
            pairs.append(
                {"a": int(a), "b": int(b), "valley_ratio": round(float(r), 4), "z": round(float(z), 2),
                 "power_z": round(float(min(power, 1e6)), 2), "near_line": near_line, "verdict": verdict}
            )
    segment_of = _components(clusters, joined)  # every pair without a proven valley merged
    n_possible = len(set(_components(clusters, together).values()))  # only the proven-together pairs
    return Valleys(len(set(segment_of.values())), n_possible, joined, segment_of, pairs)


def _components(clusters: list[int], edges: list[tuple[int, int]]) -> dict[int, int]:
    """cluster -> its connected component (numbered in order of each component's smallest cluster)."""
    pos = {c: i for i, c in enumerate(clusters)}
    rows = [pos[a] for a, _ in edges]
    cols = [pos[b] for _, b in edges]
    graph = coo_matrix((np.ones(len(edges)), (rows, cols)), shape=(len(clusters), len(clusters)))
    _, component = connected_components(graph, directed=False)
    # connected_components numbers components in order of their first node: the smallest cluster.
    return {c: int(component[pos[c]]) for c in clusters}


def _gabriel(a: int, b: int, means: dict[int, np.ndarray]) -> bool:
    """No other cluster's centre inside the sphere whose diameter joins a's and b's centres (a and b are
    neighbours; else a cluster lies between them and their gap is that cluster's place, not a valley)."""
    mid = (means[a] + means[b]) / 2
    r2 = float((means[b] - means[a]) @ (means[b] - means[a])) / 4
    return all(float((m - mid) @ (m - mid)) >= r2 for c, m in means.items() if c not in (a, b))


def _corridor(X: np.ndarray, own_d2: np.ndarray, mean_a: np.ndarray, mean_b: np.ndarray) -> np.ndarray:
    """The rows of ``X`` (other clusters' customers, ``own_d2`` their squared distances to their own
    centre) nearer the segment joining ``mean_a`` and ``mean_b`` than their own centre."""
    w = mean_b - mean_a
    s = np.clip((X - mean_a) @ w / float(w @ w), 0.0, 1.0)
    off = X - mean_a - s[:, None] * w
    return X[np.einsum("ij,ij->i", off, off) < own_d2]


def _valley_ratio(
    Xa: np.ndarray, Xb: np.ndarray, mean_a: np.ndarray, mean_b: np.ndarray, corridor: np.ndarray | None = None
) -> tuple[float, float, float, bool]:
    """Deepest density between two clusters over the lower peak (1 = no valley), the dip's z-score, the
    test's power (the z-score a valley half as deep as the lower peak would have), and whether these
    come from the customers near the centre line (else from the whole clusters' projection). ``corridor``:
    other clusters' customers counted in the whole projection when as near the line as the pair's own
    (``CORRIDOR_QUANTILE``), and in the near-line test when inside its cylinder."""
    # The pair is seen in its own whitened space (the pooled within-pair covariance made the identity):
    # the line between the whitened centres is Fisher's discriminant direction, along which two
    # segments stand furthest apart. Segments whose columns are correlated, or spread more on some
    # columns than on others, overlap less there than along the raw centroid line (on the development
    # tables: overlap family 44% -> 57-62% exact), and one segment's projection stays unimodal.
    root = _pair_whitener(Xa - mean_a, Xb - mean_b)
    if root is not None:
        Xa, Xb, mean_a, mean_b = (_whiten(root, v) for v in (Xa, Xb, mean_a, mean_b))
        corridor = None if corridor is None else _whiten(root, corridor)
    w = mean_b - mean_a
    ta, tb = Xa @ w, Xb @ w
    lo, hi = float(mean_a @ w), float(mean_b @ w)
    if not hi > lo:
        return 1.0, 0.0, math.inf, False
    # Projecting whole clusters can show a dip that is not in the data: when k-means cuts one segment
    # into many pieces, two pieces' cells are wedges whose union is not convex, and the projection of
    # the union thins out between them. The density *along* the line (the ridgeline of Ray & Lindsay
    # 2005; Hennig 2010 merges mixture components on it) has no such dip: it is measured on the
    # customers nearest the line, the inner half of the pair by distance to it.
    off_a = np.einsum("ij,ij->i", Xa - mean_a, Xa - mean_a) - (ta - lo) ** 2 / float(w @ w)
    off_b = np.einsum("ij,ij->i", Xb - mean_a, Xb - mean_a) - (tb - lo) ** 2 / float(w @ w)
    radius = float(np.median(np.concatenate([off_a, off_b])))
    fill = near_fill = None
    if corridor is not None and corridor.shape[0]:
        tc = corridor @ w
        off_c = np.einsum("ij,ij->i", corridor - mean_a, corridor - mean_a) - (tc - lo) ** 2 / float(w @ w)
        fill = tc[off_c <= float(np.quantile(np.concatenate([off_a, off_b]), CORRIDOR_QUANTILE))]
        near_fill = tc[off_c <= radius]  # the cylinder of the near-line test holds them too
    whole = _valley_1d(ta, tb, lo, hi, fill)
    near_a, near_b = off_a <= radius, off_b <= radius
    if near_a.sum() < 3 or near_b.sum() < 3:
        return (*whole, False)
    near = _valley_1d(ta[near_a], tb[near_b], lo, hi, near_fill)
    # Half the rows: the near-line test has less power. When it has the power it decides, both ways:
    # a dip in the projection that it does not see was the wedges'; a valley it sees that the
    # projection does not was filled by off-line customers of two elongated segments. When it lacks
    # power, the projection's verdict stands.
    if near[2] > VALLEY_Z:
        return (*near, True)
    return (*whole, False)


#: Before whitening, the pair's covariance is shrunk this far toward its mean variance times the identity
#: (Ledoit-Wolf style): a column nearly constant within the pair is not blown up into the whole test.
WHITEN_SHRINK = 0.05


def _pair_whitener(Da: np.ndarray, Db: np.ndarray) -> np.ndarray | None:
    """The lower Cholesky factor of two clusters' pooled covariance (``Da``, ``Db``: rows minus their
    cluster's mean), shrunk by ``WHITEN_SHRINK``; None when the pair has no spread to whiten by."""
    dof = Da.shape[0] + Db.shape[0] - 2
    if dof < 1:
        return None
    pooled = (Da.T @ Da + Db.T @ Db) / dof
    spread = float(np.trace(pooled)) / pooled.shape[0]
    if not spread > 0 or not math.isfinite(spread):
        return None
    pooled = (1 - WHITEN_SHRINK) * pooled + WHITEN_SHRINK * spread * np.eye(pooled.shape[0])
    return np.linalg.cholesky(pooled)


def _whiten(root: np.ndarray, X: np.ndarray) -> np.ndarray:
    """Rows (or one point) of ``X`` in the whitened space of ``root`` (solves root @ y = x)."""
    return solve_triangular(root, X.T, lower=True, check_finite=False).T


def _valley_1d(
    ta: np.ndarray, tb: np.ndarray, lo: float, hi: float, fill: np.ndarray | None = None
) -> tuple[float, float, float]:
    """The valley test on the two clusters' projections (``lo``, ``hi``: their centres' projections;
    ``fill``: other customers' projections counted in the density, not in the bandwidth)."""
    ta, tb = (ta - lo) / (hi - lo), (tb - lo) / (hi - lo)  # cluster a at 0, cluster b at 1
    t = np.concatenate([ta, tb])
    # Smoothing: Silverman's bandwidth of the *tighter* cluster, so a real valley is not smoothed over.
    h = min(_silverman(ta), _silverman(tb))
    left, right = (float(q) for q in np.quantile(t, [0.005, 0.995]))
    left, right = min(left, -0.5), max(right, 1.5)
    bins = 256
    width = (right - left) / bins
    hist, _ = np.histogram(t, bins=bins, range=(left, right))
    if fill is not None and fill.size:
        hist = hist + np.histogram((fill - lo) / (hi - lo), bins=bins, range=(left, right))[0]
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


"""Generator 1 of the k benchmark: latent-profile mixtures, designed apart from ``segment_tables``.

A table is a mixture of k segments in a latent space; each observed column is a monotone map of one
latent coordinate (money: exp, counts: Poisson of exp, scores: clipped linear, days: gamma-like) so a
table arrives raw. What varies per family (``FAMILIES``):

- ``overlap``: every segment differs on every informative column, centres on a turning chain (nearest
  neighbours about equally far apart), so neighbouring segments overlap with little or no density valley;
- ``subset``: segments differ on only 2-4 of the 6-10 columns (2 + k // 3); the other columns have one
  distribution for the whole base.
- ``irrelevant``: 3-5 informative columns (3 + k // 3) and 3-6 irrelevant ones (uniform, lognormal, counts,
  a categorical with 4 levels) drawn the same for everyone.
- ``categorical``: segments differ only by their levels of 3-4 categorical columns; the 2 numeric
  columns are one population (with 3 numeric columns and 2 categorical ones, k-means on the training
  transform, whose one-hot blocks weigh half a numeric column, could not find 3 segments at any dominance).
- ``sizes``: 500, 2,000, 20,000 and 200,000 rows.

Noise within a segment is one of four families per table: Gaussian, Student t (4 degrees of freedom),
skew-normal-like (a squared Gaussian mixed in) and uniform, with a random correlation per segment.
Segment shares are drawn from a Dirichlet (smallest at least 4%). Same ``(family, seed, index)``, same
table.

**Difficulty, on principle** (``bench/separation.py``): a table tests the choice of k only if its
segments can be found when k is known. The shape of a table is drawn first; then the one number that
sets how far apart its segments are (the latent gap in within-segment deviations, or the odds of a
segment's own category levels) is calibrated so that k-means *told the true k* recovers the segments to
the family's band (``BANDS``, adjusted Rand index on a 3,000-customer pilot in the training job's own
transform): 0.70-0.85 for ``overlap`` (overlapping: part of the customers sit on the wrong side of any
boundary; distinct: most are recovered), 0.85-0.97 for ``subset``, ``irrelevant`` and ``categorical``,
0.80-0.95 for ``sizes``. A shape no separation makes findable (7 segments told apart by 2 of 8 columns)
is drawn again, then k. The pilot is of fixed size, so a 500-row and a 200,000-row table of one family
have equally distinct segments.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from bench.separation import calibrate

FAMILIES = ("overlap", "subset", "irrelevant", "categorical", "sizes")
NOISES = ("gaussian", "student-t", "skewed", "uniform")
SIZES = (500, 2_000, 20_000, 200_000)
#: Recovery at the true k (``bench.separation``: ARI of k-means told k) each family's tables are set to.
BANDS = {"overlap": (0.70, 0.85), "subset": (0.85, 0.97), "irrelevant": (0.85, 0.97),
         "categorical": (0.85, 0.97), "sizes": (0.80, 0.95)}


@dataclass(frozen=True)
class GeneratedTable:
    """One table with known segments."""

    name: str
    family: str
    data: pd.DataFrame
    labels: np.ndarray
    k: int
    params: dict = field(default_factory=dict)


def _shares(rng: np.random.Generator, k: int) -> np.ndarray:
    while True:
        p = rng.dirichlet(np.full(k, 4.0))
        if p.min() >= 0.04:
            return p


def _noise(rng: np.random.Generator, kind: str, n: int, d: int) -> np.ndarray:
    """Unit-variance noise of one family."""
    if kind == "gaussian":
        return rng.standard_normal((n, d))
    if kind == "student-t":
        return rng.standard_t(4, size=(n, d)) / np.sqrt(2.0)
    if kind == "skewed":
        z = rng.standard_normal((n, d))
        s = 0.6 * z + 0.55 * (rng.standard_normal((n, d)) ** 2 - 1)
        return s / np.sqrt(0.36 + 0.55 ** 2 * 2)
    return rng.uniform(-np.sqrt(3), np.sqrt(3), size=(n, d))


def _correlation_root(rng: np.random.Generator, d: int) -> np.ndarray:
    """The Cholesky factor of a random correlation matrix (one per segment)."""
    a = rng.normal(0, 0.35, size=(d, d))
    cov = np.eye(d) + a @ a.T * 0.5
    sd = np.sqrt(np.diag(cov))
    return np.linalg.cholesky(cov / np.outer(sd, sd))


def _chain_centres(rng: np.random.Generator, k: int, d: int) -> np.ndarray:
    """Unit-gap centres: a random walk with turning steps of 1.0-1.3, re-drawn until no two
    non-neighbours come closer than the smallest step (the gap is set by the calibrated scale)."""
    for _ in range(2_000):
        c = np.zeros((k, d))
        for i in range(1, k):
            step = rng.standard_normal(d)
            step *= rng.uniform(1.0, 1.3) / np.linalg.norm(step)
            c[i] = c[i - 1] + step
        dist = np.linalg.norm(c[:, None] - c[None], axis=-1)
        dist[np.diag_indices(k)] = np.inf
        if dist.min() >= 0.98:
            return c
    raise RuntimeError("could not place centres")  # pragma: no cover


def _observe(rng: np.random.Generator, latent: np.ndarray, kinds: list[str], prefix: str = "") -> dict[str, np.ndarray]:
    """Raw columns from latent coordinates of unit variance over the whole base (each column its own
    scale and kind; counts and rounding lose some of the latent detail, as real columns do)."""
    out = {}
    for j, kind in enumerate(kinds):
        z = latent[:, j]
        if kind == "money":
            out[f"{prefix}money_{j}"] = np.round(np.exp(3.5 + 0.9 * z), 2)
        elif kind == "count":
            out[f"{prefix}count_{j}"] = rng.poisson(np.exp(1.8 + 0.6 * z)).astype(np.int64)
        elif kind == "score":
            out[f"{prefix}score_{j}"] = np.clip(np.round(50 + 15 * z), 0, 100)
        else:  # days
            out[f"{prefix}days_{j}"] = np.round(np.exp(4.0 + 0.6 * z))
    return out


def _parameters(family: str, k: int, rng: np.random.Generator) -> dict:
    """Everything about a table of k segments but its separation scale and its rows."""
    p: dict = {"family": family, "k": k, "noise": NOISES[int(rng.integers(len(NOISES)))], "shares": _shares(rng, k)}
    # Few segments can differ on 2 columns; more need a few more (7 segments on 2 of 8 columns are not
    # findable even when k is known: k-means cuts the one-population columns instead).
    d_info = {"categorical": 0, "irrelevant": 3 + k // 3, "subset": 2 + k // 3}.get(family, int(rng.integers(3, 6)))
    p["d_info"] = d_info
    if d_info:
        p["centres"] = _chain_centres(rng, k, d_info)
        p["roots"] = [_correlation_root(rng, d_info) for _ in range(k)]
        p["kinds"] = [str(x) for x in rng.choice(["money", "count", "score", "days"], size=d_info)]
    p["shared"] = {"subset": int(rng.integers(4, 7)), "irrelevant": int(rng.integers(3, 7)),
                   "categorical": 2}.get(family, 0)
    if family == "categorical":
        n_levels = [int(rng.integers(3, 6)) for _ in range(int(rng.integers(3, 5)))]
        # Each segment has its own pattern of dominant levels (one per column); no two share the whole pattern.
        patterns: list[tuple[int, ...]] = []
        while len(patterns) < k:
            pattern = tuple(int(rng.integers(m)) for m in n_levels)
            if pattern not in patterns:
                patterns.append(pattern)
        p["n_levels"], p["patterns"] = n_levels, patterns
        p["dominance"] = [rng.uniform(0.6, 1.4, size=k) for _ in n_levels]
    return p


def _draw(p: dict, scale: float, n: int, rng: np.random.Generator) -> tuple[pd.DataFrame, np.ndarray]:
    """A table of ``n`` rows with the parameters ``p``, segments ``scale`` apart."""
    k = p["k"]
    labels = rng.choice(k, size=n, p=p["shares"])
    columns: dict[str, np.ndarray] = {}
    if p["d_info"]:
        # Centres `scale` within-segment deviations per unit gap; each latent column then standardized
        # over the whole base (known from the parameters), so the observed columns keep their range.
        centres = scale * p["centres"]
        centre = p["shares"] @ centres
        sd = np.sqrt(1.0 + p["shares"] @ (centres - centre) ** 2)
        latent = np.empty((n, p["d_info"]))
        for s in range(k):
            idx = np.flatnonzero(labels == s)
            latent[idx] = centres[s] + _noise(rng, p["noise"], idx.size, p["d_info"]) @ p["roots"][s].T
        columns.update(_observe(rng, (latent - centre) / sd, p["kinds"]))
    # Columns every segment shares (one population): the rest of "subset", the noise of "irrelevant",
    # all numeric columns of "categorical".
    for j in range(p["shared"]):
        kind = ["money", "count", "score", "days", "uniform"][j % 5]
        if kind == "uniform":
            columns[f"shared_uniform_{j}"] = np.round(rng.uniform(0, 1000, n))
            continue
        z = _noise(rng, p["noise"], n, 1)
        (value,) = _observe(rng, z, [kind]).values()
        columns[f"shared_{kind}_{j}"] = value
    if p["family"] == "irrelevant":
        columns["region"] = rng.choice(["north", "south", "east", "west"], size=n)
    if p["family"] == "categorical":
        for c, m in enumerate(p["n_levels"]):
            # A segment's own level has odds exp(scale x dominance) against each other level.
            probs = np.ones((k, m))
            for s_, pattern in enumerate(p["patterns"]):
                probs[s_, pattern[c]] = np.exp(scale * p["dominance"][c][s_])
            probs /= probs.sum(axis=1, keepdims=True)
            draw = (rng.random(n)[:, None] > np.cumsum(probs[labels], axis=1)).sum(axis=1)
            columns[f"category_{c}"] = np.array([f"L{c}{i}" for i in range(m)])[np.minimum(draw, m - 1)]
    return pd.DataFrame(columns), labels


def make_table(family: str, seed: int, index: int = 0, n: int | None = None) -> GeneratedTable:
    """One table of ``family``; ``(family, seed, index)`` fixes it."""
    if family not in FAMILIES:
        raise ValueError(f"family={family!r} must be one of {FAMILIES}")
    rng = np.random.default_rng([seed, index, FAMILIES.index(family), 7919])
    if n is None:
        n = SIZES[index % len(SIZES)] if family == "sizes" else int(rng.choice([1_500, 3_000, 6_000]))
    # Latent gaps start at 4 within-segment deviations, category odds at e^2.5; calibrate rescales them.
    # A shape whose segments no separation makes findable at the true k is drawn again (4 shapes
    # per k, then a new k; 3 ks at most: a table still outside its band says so in params).
    unit = 2.5 if family == "categorical" else 4.0
    for attempt in range(12):
        if attempt % 4 == 0:
            k = int(rng.integers(2, 8))
        p = _parameters(family, k, rng)
        scale, oracle = calibrate(lambda s, m, r, p=p: _draw(p, unit * s, m, r), BANDS[family],
                                  seed=int(rng.integers(2**31)))
        if oracle >= BANDS[family][0]:
            break
    data, labels = _draw(p, unit * scale, n, rng)
    return GeneratedTable(f"latent-{family}-s{seed}-{index}-k{p['k']}-n{n}", family, data, labels, p["k"],
                          {"noise": p["noise"], "shares": p["shares"].round(3).tolist(),
                           "scale": round(unit * scale, 3), "recovery_at_true_k": round(oracle, 3),
                           "findable": bool(oracle >= BANDS[family][0])})


def make_suite(seed: int, per_family: int = 4, families: tuple[str, ...] = FAMILIES,
               max_rows: int | None = None) -> list[GeneratedTable]:
    """``per_family`` tables of every family for one suite seed (``max_rows`` caps the sizes family)."""
    out = []
    for family in families:
        for index in range(per_family):
            n = None
            if family == "sizes" and max_rows is not None and SIZES[index % len(SIZES)] > max_rows:
                n = max_rows
            out.append(make_table(family, seed, index, n))
    return out

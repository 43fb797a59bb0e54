"""Generator 1 of the k benchmark: latent-profile mixtures, designed apart from ``segment_tables``.

A table is a mixture of k segments in a latent space; each observed column is a monotone map of one
latent coordinate (money: exp, counts: Poisson of exp, scores: clipped linear, days: gamma-like) so a
table arrives raw. What varies per family (``FAMILIES``):

- ``overlap``: every segment differs on every informative column, but neighbouring segments sit only
  2.4-3.2 within-segment deviations apart along the line joining them: distinct (a Gaussian mixture
  tells them apart) yet with little or no density valley between them.
- ``subset``: segments differ on only 2 of the 6-8 columns; the other columns have one distribution
  for the whole base.
- ``irrelevant``: 3 informative columns and 3-6 irrelevant ones (uniform, lognormal, counts,
  a categorical with 4 levels) drawn the same for everyone.
- ``categorical``: segments differ only by their levels of 2-3 categorical columns; the numeric columns
  are one population.
- ``sizes``: moderate separation at 500, 2,000, 20,000 and 200,000 rows.

Noise within a segment is one of four families per table: Gaussian, Student t (4 degrees of freedom),
skew-normal-like (a squared Gaussian mixed in) and uniform, with a random correlation per segment.
Segment shares are drawn from a Dirichlet (smallest at least 4%). Same ``(family, seed, index)``, same
table.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

FAMILIES = ("overlap", "subset", "irrelevant", "categorical", "sizes")
NOISES = ("gaussian", "student-t", "skewed", "uniform")
SIZES = (500, 2_000, 20_000, 200_000)


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


def _correlate(rng: np.random.Generator, z: np.ndarray) -> np.ndarray:
    d = z.shape[1]
    a = rng.normal(0, 0.35, size=(d, d))
    cov = np.eye(d) + a @ a.T * 0.5
    sd = np.sqrt(np.diag(cov))
    corr = cov / np.outer(sd, sd)
    return z @ np.linalg.cholesky(corr).T


def _chain_centres(rng: np.random.Generator, k: int, d: int, gap: tuple[float, float]) -> np.ndarray:
    """Centres whose nearest neighbours are gap[0]..gap[1] apart: a random walk with turning steps,
    re-drawn until no two non-neighbours come closer than the smallest gap."""
    for _ in range(2_000):
        c = np.zeros((k, d))
        for i in range(1, k):
            step = rng.standard_normal(d)
            step *= rng.uniform(*gap) / np.linalg.norm(step)
            c[i] = c[i - 1] + step
        dist = np.linalg.norm(c[:, None] - c[None], axis=-1)
        dist[np.diag_indices(k)] = np.inf
        if dist.min() >= gap[0] * 0.98:
            return c
    raise RuntimeError("could not place centres")  # pragma: no cover


def _observe(rng: np.random.Generator, latent: np.ndarray, kinds: list[str]) -> dict[str, np.ndarray]:
    """Raw columns from latent coordinates (each column its own scale and kind)."""
    out = {}
    for j, kind in enumerate(kinds):
        z = latent[:, j]
        if kind == "money":
            out[f"money_{j}"] = np.round(np.exp(3.5 + 0.45 * z), 2)
        elif kind == "count":
            out[f"count_{j}"] = rng.poisson(np.exp(1.4 + 0.35 * z)).astype(np.int64)
        elif kind == "score":
            out[f"score_{j}"] = np.clip(np.round(50 + 12 * z), 0, 100)
        else:  # days
            out[f"days_{j}"] = np.round(np.exp(4.0 + 0.35 * z))
    return out


def make_table(family: str, seed: int, index: int = 0, n: int | None = None) -> GeneratedTable:
    """One table of ``family``; ``(family, seed, index)`` fixes it."""
    if family not in FAMILIES:
        raise ValueError(f"family={family!r} must be one of {FAMILIES}")
    rng = np.random.default_rng([seed, index, FAMILIES.index(family), 7919])
    k = int(rng.integers(2, 8))
    noise = NOISES[int(rng.integers(len(NOISES)))]
    if n is None:
        n = SIZES[index % len(SIZES)] if family == "sizes" else int(rng.choice([1_500, 3_000, 6_000]))
    shares = _shares(rng, k)
    labels = rng.choice(k, size=n, p=shares)
    columns: dict[str, np.ndarray] = {}
    if family == "categorical":
        d_info = 0
    elif family == "irrelevant":
        d_info = 3
    elif family == "subset":
        d_info = 2
    else:
        d_info = int(rng.integers(3, 6))
    if d_info:
        gap = (2.4, 3.2) if family == "overlap" else (4.5, 6.0)
        centres = _chain_centres(rng, k, d_info, gap)
        latent = np.empty((n, d_info))
        for s in range(k):
            idx = np.flatnonzero(labels == s)
            latent[idx] = centres[s] + _correlate(rng, _noise(rng, noise, idx.size, d_info))
        kinds = list(rng.choice(["money", "count", "score", "days"], size=d_info))
        columns.update(_observe(rng, latent, kinds))
    # Columns every segment shares (one population): the rest of "subset", the noise of "irrelevant",
    # all numeric columns of "categorical".
    shared = {"subset": int(rng.integers(4, 7)), "irrelevant": int(rng.integers(3, 7)),
              "categorical": 3}.get(family, 0)
    for j in range(shared):
        kind = ["money", "count", "score", "days", "uniform"][j % 5]
        if kind == "uniform":
            columns[f"shared_uniform_{j}"] = np.round(rng.uniform(0, 1000, n))
            continue
        z = _noise(rng, noise, n, 1)
        (value,) = _observe(rng, z, [kind]).values()
        columns[f"shared_{kind}_{j}"] = value
    if family == "irrelevant":
        columns["region"] = rng.choice(["north", "south", "east", "west"], size=n)
    if family == "categorical":
        n_cat = int(rng.integers(2, 4))
        n_levels = [int(rng.integers(3, 6)) for _ in range(n_cat)]
        # Each segment has its own pattern of dominant levels (one per column, 70-85% of its customers
        # on it); no two segments share the whole pattern.
        patterns: list[tuple[int, ...]] = []
        while len(patterns) < k:
            p = tuple(int(rng.integers(m)) for m in n_levels)
            if p not in patterns:
                patterns.append(p)
        for c, m in enumerate(n_levels):
            probs = np.full((k, m), 1.0)
            for s_, p in enumerate(patterns):
                probs[s_, p[c]] = rng.uniform(12, 25)
            probs /= probs.sum(axis=1, keepdims=True)
            draw = (rng.random(n)[:, None] > np.cumsum(probs[labels], axis=1)).sum(axis=1)
            columns[f"category_{c}"] = np.array([f"L{c}{i}" for i in range(m)])[np.minimum(draw, m - 1)]
    return GeneratedTable(f"latent-{family}-s{seed}-{index}-k{k}-n{n}", family, pd.DataFrame(columns), labels, k,
                          {"noise": noise, "shares": shares.round(3).tolist()})


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

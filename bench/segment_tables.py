"""Realistic synthetic customer tables with known segments, for benchmarking the choice of k.

Each table is raw and untransformed (money in currency, counts as integers, days, ages), the way a
customer table arrives at the training job. The difficulties the automatic k must survive:

- heavily skewed money and count columns (lognormal / gamma-Poisson within a segment);
- a few extreme spenders (0.5-2% of rows spend 10-20x their segment);
- unequal segment sizes (smallest segment about 5% of the base on "unequal" tables);
- overlap: the closest pair of segments sits only a few within-segment deviations apart;
- correlated noise within a segment (a random correlation matrix per segment, e.g. spend with orders);
- optionally one or two categorical columns correlated with the segment, plus one that is pure noise.

Everything is drawn from ``numpy.random.default_rng(seed)``: same seed, same table.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

# Latent dimensions: one per numeric column, in the column's "natural" scale (log for money/counts).
_NUMERIC_COLUMNS = (
    "total_spend",  # lognormal money
    "orders",  # gamma-Poisson count
    "avg_basket",  # lognormal money, correlated with total_spend within a segment
    "days_since_last",  # gamma days
    "tenure_days",  # gamma days
    "web_visits",  # Poisson count
    "age",  # roughly normal years
)
_MONEY = ("total_spend", "avg_basket")


@dataclass(frozen=True)
class SegmentTable:
    """One generated table: raw data, true labels and how it was made."""

    name: str
    data: pd.DataFrame
    labels: np.ndarray
    k: int
    params: dict = field(default_factory=dict)


def _centres(rng: np.random.Generator, k: int, dim: int, min_sep: float) -> np.ndarray:
    """Segment centres in latent units (within-segment sd ~1) whose closest pair is ~min_sep apart."""
    # Rejection sampling in a box that grows with k, then pull the closest pair to exactly min_sep so
    # every table has one overlapping pair, the realistic hard case.
    box = 1.6 * min_sep * k ** (1.0 / dim) + min_sep
    for _ in range(10_000):
        c = rng.uniform(0.0, box, size=(k, dim))
        d = np.linalg.norm(c[:, None, :] - c[None, :, :], axis=-1)
        d[np.diag_indices(k)] = np.inf
        if d.min() >= min_sep:
            break
    else:  # pragma: no cover - box is generous enough
        raise RuntimeError(f"could not place k={k} centres {min_sep=}")
    i, j = np.unravel_index(np.argmin(d), d.shape)
    mid = (c[i] + c[j]) / 2
    u = (c[j] - c[i]) / d[i, j]
    c[i], c[j] = mid - u * min_sep / 2, mid + u * min_sep / 2
    return c


def _sizes(rng: np.random.Generator, k: int, n: int, unequal: bool) -> np.ndarray:
    """Segment sizes summing to n; on unequal tables the smallest is ~5% and the largest several times bigger."""
    if unequal:
        # Smallest segment ~5% of the base from k=6 up; with few segments a 5% one next to a 95% blob is
        # not a segment k-means can find at all (it splits the blob), so the floor is 0.3/k there.
        smallest = max(0.05, 0.3 / k)
        w = rng.dirichlet(np.full(k, 1.2))
        w = np.maximum(w, smallest)
        w /= w.sum()
        w[np.argmin(w)] = smallest
        rest = np.arange(k) != np.argmin(w)
        w[rest] *= (1.0 - smallest) / w[rest].sum()
    else:
        w = rng.dirichlet(np.full(k, 8.0))
    sizes = np.floor(w * n).astype(int)
    sizes[np.argmax(sizes)] += n - sizes.sum()
    return sizes


def _random_correlation(rng: np.random.Generator, dim: int, strength: float) -> np.ndarray:
    """A random correlation matrix with a couple of strong factors (strength 0 = identity)."""
    loadings = rng.normal(size=(dim, 2)) * strength
    cov = loadings @ loadings.T + np.eye(dim)
    sd = np.sqrt(np.diag(cov))
    return cov / np.outer(sd, sd)


def make_table(
    seed: int,
    k: int,
    n: int,
    *,
    separation: float = 4.0,
    unequal: bool = True,
    correlation: float = 0.8,
    extreme_share: float = 0.01,
    categorical: bool = True,
) -> SegmentTable:
    """One raw customer table with k segments; ``separation`` is the closest pair's distance in within-sd units."""
    rng = np.random.default_rng(seed)
    dim = len(_NUMERIC_COLUMNS)
    centres = _centres(rng, k, dim, separation)
    sizes = _sizes(rng, k, n, unequal)
    labels = np.repeat(np.arange(k), sizes)
    latent = np.empty((n, dim))
    for s in range(k):
        rows = labels == s
        corr = _random_correlation(rng, dim, correlation)
        # Unequal spreads: some segments are tight, some diffuse (a scale per segment and per column).
        scale = rng.uniform(0.7, 1.15) * rng.uniform(0.85, 1.15, size=dim)
        cov = corr * np.outer(scale, scale)
        latent[rows] = rng.multivariate_normal(centres[s], cov, size=rows.sum())

    # Latent -> raw units. Each column's latent sd ~1 within a segment; the coefficients map that to a
    # realistic within-segment spread in the raw unit (e.g. a factor ~e^0.45 on money).
    z = latent - latent.mean(axis=0)
    data: dict[str, np.ndarray] = {}
    data["total_spend"] = np.round(np.exp(6.0 + 0.45 * z[:, 0]), 2)
    mean_orders = np.exp(2.0 + 0.35 * z[:, 1])
    data["orders"] = rng.poisson(rng.gamma(20.0, mean_orders / 20.0)) + 1
    data["avg_basket"] = np.round(np.exp(3.5 + 0.4 * z[:, 2]), 2)
    data["days_since_last"] = np.round(rng.gamma(30.0, np.exp(3.5 + 0.3 * z[:, 3]) / 30.0)).astype(int)
    data["tenure_days"] = np.round(np.exp(6.0 + 0.3 * z[:, 4])).astype(int) + 1
    data["web_visits"] = rng.poisson(np.exp(2.5 + 0.3 * z[:, 5]))
    data["age"] = np.clip(np.round(42.0 + 5.0 * z[:, 6]), 18, 95).astype(int)

    # A few extreme spenders, 10-20x their segment: the whales every real base has.
    n_extreme = int(round(extreme_share * n))
    whales = rng.choice(n, size=n_extreme, replace=False)
    for col in _MONEY:
        data[col][whales] = np.round(data[col][whales] * rng.uniform(10.0, 20.0, size=n_extreme), 2)

    frame = pd.DataFrame(data)
    if categorical:
        # Channel depends on the segment (a soft signal); region is noise the transform must not split on.
        channels = np.array(["store", "web", "app"])
        probs = rng.dirichlet(np.full(3, 1.5), size=k)
        frame["channel"] = channels[[rng.choice(3, p=probs[s]) for s in labels]]
        frame["region"] = rng.choice(np.array(["north", "south", "east", "west"]), size=n)

    order = rng.permutation(n)  # real tables are not sorted by segment
    frame = frame.iloc[order].reset_index(drop=True)
    params = dict(
        seed=seed,
        k=k,
        n=n,
        separation=separation,
        unequal=unequal,
        correlation=correlation,
        extreme_share=extreme_share,
        categorical=categorical,
        sizes=sorted(int(x) for x in sizes),
    )
    return SegmentTable(f"t{seed}-k{k}-n{n}", frame, labels[order], k, params)


def make_suite(n_tables: int = 30, seed: int = 0) -> list[SegmentTable]:
    """A benchmark suite: true k 2..9 cycled, 1,000-20,000 rows, mixed difficulties, deterministic."""
    rng = np.random.default_rng(seed)
    tables = []
    for t in range(n_tables):
        k = 2 + t % 8
        n = int(np.exp(rng.uniform(np.log(1_000), np.log(20_000))))
        tables.append(
            make_table(
                seed=1_000 * seed + t,
                k=k,
                n=n,
                separation=float(rng.uniform(5.0, 7.5)),
                unequal=bool(t % 3 != 2),  # two tables in three have a ~5% segment
                correlation=float(rng.uniform(0.2, 0.8)),
                extreme_share=float(rng.uniform(0.005, 0.02)),
                categorical=bool(t % 4 != 3),
            )
        )
    return tables

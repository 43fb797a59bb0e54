"""A second generator of customer tables with known segments, built independently of ``segment_tables``.

Where ``segment_tables`` draws correlated Gaussian latents mapped to lognormal money and Poisson counts,
this one varies what that one keeps fixed:

- noise family per segment: Student-t (heavy tails, 3-8 degrees of freedom), skewed (centred gamma) or
  uniform boxes;
- segments that differ on only some columns: each segment moves away from the base on 2-4 of the
  "signal" columns and equals the base elsewhere;
- irrelevant columns (pure noise, same for every segment);
- bounded scores (1-100), money (lognormal) and counts (negative binomial) as raw columns;
- one categorical column tied to the segment for some tables, none for others;
- segment sizes from a Dirichlet(1.0): sometimes very unequal.

Everything is drawn from ``numpy.random.default_rng(seed)``.
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from bench.segment_tables import SegmentTable

_SIGNAL = ("monthly_spend", "visits", "basket_items", "loyalty_score", "recency_days", "support_calls")
_NOISE = ("account_number_digits", "signup_hour")


def make_mixture_table(seed: int, k: int, n: int, *, separation: float = 5.0) -> SegmentTable:
    """One raw table with k segments; ``separation`` is the typical shift (in within-segment sd) of a
    segment on each of the columns it differs on."""
    rng = np.random.default_rng(seed)
    dim = len(_SIGNAL)
    w = np.maximum(rng.dirichlet(np.ones(k)), 0.6 / (k * 3))  # no segment below ~20% of an equal share
    sizes = np.floor(w / w.sum() * n).astype(int)
    sizes[np.argmax(sizes)] += n - sizes.sum()
    labels = np.repeat(np.arange(k), sizes)
    centres = np.zeros((k, dim))
    for s in range(1, k):  # segment 0 is the base; every other one differs on 2-4 columns
        for _ in range(1000):
            cols = rng.choice(dim, size=rng.integers(2, 5), replace=False)
            c = np.zeros(dim)
            c[cols] = rng.choice([-1.0, 1.0], size=len(cols)) * separation * rng.uniform(0.8, 1.3, len(cols))
            if all(np.linalg.norm(c - centres[j]) >= separation for j in range(s)):
                break
        centres[s] = c
    latent = np.empty((n, dim))
    families = rng.choice(["t", "gamma", "uniform"], size=k)
    for s in range(k):
        rows = labels == s
        m = int(rows.sum())
        if families[s] == "t":
            noise = rng.standard_t(rng.integers(3, 9), size=(m, dim)) * 0.8
        elif families[s] == "gamma":
            shape = rng.uniform(1.5, 4.0)
            noise = (rng.gamma(shape, 1.0, size=(m, dim)) - shape) / np.sqrt(shape)
        else:
            noise = rng.uniform(-np.sqrt(3), np.sqrt(3), size=(m, dim))
        latent[rows] = centres[s] + noise * rng.uniform(0.8, 1.2, size=dim)
    z = (latent - latent.mean(axis=0)) / latent.std(axis=0)
    data = {
        "monthly_spend": np.round(np.exp(4.0 + 0.6 * z[:, 0]), 2),
        "visits": rng.negative_binomial(10, 10 / (10 + np.exp(1.5 + 0.5 * z[:, 1]))),
        "basket_items": np.round(np.exp(1.2 + 0.35 * z[:, 2]), 1),
        "loyalty_score": np.clip(np.round(50 + 15 * z[:, 3]), 1, 100),
        "recency_days": np.round(np.exp(3.0 + 0.5 * z[:, 4])).astype(int),
        "support_calls": np.round(np.clip(2 + 1.2 * z[:, 5], 0, None), 1),
        "account_number_digits": rng.integers(0, 10, n),
        "signup_hour": rng.integers(0, 24, n),
    }
    frame = pd.DataFrame(data)
    if seed % 2 == 0:
        tiers = np.array(["basic", "plus", "premium"])
        probs = rng.dirichlet(np.full(3, 0.7), size=k)
        frame["plan"] = tiers[[rng.choice(3, p=probs[s]) for s in labels]]
    order = rng.permutation(n)
    params = dict(seed=seed, k=k, n=n, separation=separation, families=families.tolist(),
                  sizes=sorted(int(x) for x in sizes))
    return SegmentTable(f"m{seed}-k{k}-n{n}", frame.iloc[order].reset_index(drop=True), labels[order], k, params)

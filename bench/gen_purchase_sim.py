"""Generator 2 of the k benchmark: customers simulated from purchase behaviour, designed apart from
``segment_tables`` and ``gen_latent_profiles``.

No latent Gaussian space: each segment is a set of behaviour parameters, and each customer's columns
come out of a small simulation of a year of purchases:

- tenure in days (uniform over the segment's span), a purchase rate (gamma around the segment's rate),
  the number of orders (Poisson of rate x active time), basket values (gamma per order, summed to
  the spend), the days since the last order (from the simulated order times, or the whole tenure
  for a customer who never ordered), web visits (negative binomial, linked to the rate), returns
  (binomial of the orders);
- the average order value (spend / orders);
- categorical habits: channel (store / web / app), favourite category and payment method, drawn from
  the segment's probabilities.

Families (``FAMILIES``): ``overlap`` (rates and baskets of neighbouring segments only 1.8-2.4x apart),
``subset`` (segments differ only in basket value and channel; frequency, tenure and recency are one
population), ``categorical`` (segments differ only in channel, favourite category and payment method;
three behaviour columns are one population), ``irrelevant``
(clearly different behaviour plus age, a customer number-like column, a 0-10 satisfaction score and a
region, all independent of the segment), ``sizes`` (500 to 200,000 customers). Same
``(family, seed, index)``, same table.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

FAMILIES = ("overlap", "subset", "irrelevant", "categorical", "sizes")
SIZES = (500, 2_000, 20_000, 200_000)
CHANNELS = np.array(["store", "web", "app"])
CATEGORIES = np.array(["grocery", "fashion", "electronics", "home", "beauty"])
PAYMENTS = np.array(["card", "cash", "invoice", "wallet"])


@dataclass(frozen=True)
class SimulatedTable:
    """One table with known segments."""

    name: str
    family: str
    data: pd.DataFrame
    labels: np.ndarray
    k: int
    params: dict = field(default_factory=dict)


def _ladder(rng: np.random.Generator, k: int, low: float, factor: tuple[float, float]) -> np.ndarray:
    """k values, each a random factor above the previous one, in shuffled order."""
    steps = rng.uniform(*factor, size=k - 1)
    values = low * np.concatenate([[1.0], np.cumprod(steps)])
    return rng.permutation(values)


def _draw_categorical(rng: np.random.Generator, probs: np.ndarray, labels: np.ndarray, names: np.ndarray) -> np.ndarray:
    cum = np.cumsum(probs[labels], axis=1)
    pick = (rng.random(labels.size)[:, None] > cum).sum(axis=1)
    return names[np.minimum(pick, names.size - 1)]


def _habit(rng: np.random.Generator, k: int, m: int, strength: float) -> np.ndarray:
    """Per segment, a probability vector over m levels with its own favourite(s)."""
    probs = rng.dirichlet(np.full(m, 2.0), size=k)
    favourite = rng.permutation(np.resize(np.arange(m), k)) if k <= m else rng.integers(m, size=k)
    probs[np.arange(k), favourite] += strength
    return probs / probs.sum(axis=1, keepdims=True)


def make_table(family: str, seed: int, index: int = 0, n: int | None = None) -> SimulatedTable:
    """One simulated customer table of ``family``."""
    if family not in FAMILIES:
        raise ValueError(f"family={family!r} must be one of {FAMILIES}")
    rng = np.random.default_rng([seed, index, FAMILIES.index(family), 104729])
    k = int(rng.integers(2, 7)) if family != "categorical" else int(rng.integers(2, 5))
    if n is None:
        n = SIZES[index % len(SIZES)] if family == "sizes" else int(rng.choice([1_000, 2_500, 5_000]))
    while True:
        shares = rng.dirichlet(np.full(k, 3.0))
        if shares.min() >= 0.05:
            break
    labels = rng.choice(k, size=n, p=shares)
    if family == "overlap":
        rate = _ladder(rng, k, 2.0, (1.8, 2.4))  # orders per year
        basket = _ladder(rng, k, 20.0, (1.8, 2.4))
        span = rng.uniform(200, 1500, size=k)
        churn = rng.uniform(0.0, 0.6, size=k)
    elif family in ("subset", "categorical"):
        rate = np.full(k, 6.0)
        basket = _ladder(rng, k, 25.0, (2.6, 3.4)) if family == "subset" else np.full(k, 40.0)
        span = np.full(k, 900.0)
        churn = np.full(k, 0.25)
    else:
        rate = _ladder(rng, k, 1.5, (2.8, 3.8))
        basket = _ladder(rng, k, 15.0, (2.2, 3.0))
        span = rng.uniform(150, 2000, size=k)
        churn = rng.uniform(0.0, 0.7, size=k)
    s = labels
    tenure = rng.uniform(0.3, 1.0, n) * span[s] + 30
    # A churned customer stopped buying some time ago: active only over part of the tenure.
    churned = rng.random(n) < churn[s]
    active = np.where(churned, tenure * rng.uniform(0.2, 0.7, n), tenure)
    own_rate = rng.gamma(6.0, rate[s] / 6.0)
    orders = rng.poisson(own_rate * active / 365.0)
    spend = np.where(orders > 0, rng.gamma(np.maximum(orders, 1) * 3.0, basket[s] / 3.0), 0.0)
    last_gap = np.where(orders > 0, rng.exponential(365.0 / np.maximum(own_rate, 0.1)), tenure)
    recency = np.minimum(tenure, (tenure - active) + np.minimum(last_gap, active))
    visits = rng.negative_binomial(3, 3 / (3 + 2.0 * own_rate))
    returns = rng.binomial(orders, 0.08)
    columns: dict[str, np.ndarray] = {
        "tenure_days": np.round(tenure), "orders": orders, "total_spend": np.round(spend, 2),
        "avg_order_value": np.round(np.where(orders > 0, spend / np.maximum(orders, 1), 0.0), 2),
        "days_since_last_order": np.round(recency), "web_visits": visits, "returns": returns,
    }
    if family == "subset":
        columns["channel"] = _draw_categorical(rng, _habit(rng, k, 3, 1.5), s, CHANNELS)
    elif family == "categorical":
        # A table of habits: a few behaviour columns (one population) and three habit columns that
        # carry the segments.
        columns = {key: columns[key] for key in ("orders", "total_spend", "days_since_last_order")}
        columns["channel"] = _draw_categorical(rng, _habit(rng, k, 3, 10.0), s, CHANNELS)
        columns["favourite_category"] = _draw_categorical(rng, _habit(rng, k, 5, 10.0), s, CATEGORIES)
        columns["payment"] = _draw_categorical(rng, _habit(rng, k, 4, 10.0), s, PAYMENTS)
    else:
        # Habits only loosely tied to the segment (no signal of their own worth a segment).
        columns["channel"] = _draw_categorical(rng, _habit(rng, k, 3, 0.2), s, CHANNELS)
    if family == "irrelevant":
        columns["age"] = np.clip(np.round(rng.normal(42, 13, n)), 18, 90)
        columns["member_number"] = rng.permutation(n) + 100_000
        columns["satisfaction_0_10"] = rng.integers(0, 11, n)
        columns["region"] = rng.choice(["north", "south", "east", "west", "centre"], size=n)
    return SimulatedTable(f"purchase-{family}-s{seed}-{index}-k{k}-n{n}", family, pd.DataFrame(columns), labels, k,
                          {"shares": shares.round(3).tolist()})


def make_suite(seed: int, per_family: int = 4, families: tuple[str, ...] = FAMILIES,
               max_rows: int | None = None) -> list[SimulatedTable]:
    """``per_family`` tables of every family for one suite seed (``max_rows`` caps the sizes family)."""
    out = []
    for family in families:
        for index in range(per_family):
            n = None
            if family == "sizes" and max_rows is not None and SIZES[index % len(SIZES)] > max_rows:
                n = max_rows
            out.append(make_table(family, seed, index, n))
    return out

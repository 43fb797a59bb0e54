"""Generator 2 of the k benchmark: customers simulated from purchase behaviour, designed apart from
``segment_tables`` and ``gen_latent_profiles``.

No latent Gaussian space: each segment is a set of behaviour parameters, and each customer's columns
come out of a small simulation of a year of purchases:

- tenure in days (uniform over the segment's span), the share of it the customer stays active (Beta
  around the segment's 1 - churn), a purchase rate (gamma around the segment's rate), the number of
  orders (the first plus a Poisson of rate x active time), basket values (gamma per order, summed to
  the spend), the days since the last order (from the simulated order times), web visits (negative binomial, linked to the rate), returns
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

**Difficulty, on principle** (``bench/separation.py``): a table tests the choice of k only if its
segments can be found when k is known, and a segment is *one* group. The segments' behaviour is drawn
first; then one number, ``scale``, moves every segment's rate, basket, tenure span and churn toward or
away from the base (geometrically), and sharpens the habits that carry segments, until k-means *told the
true k* recovers the segments to the family's band (``BANDS``: adjusted Rand index 0.70-0.85 for
``overlap``, 0.85-0.97 for the others, 0.80-0.95 for ``sizes``, on a 3,000-customer pilot in the training
job's transform). Nothing inside a segment splits it into groups of its own: churn is a continuum (the
share of the tenure a customer stays active), and every customer has at least one order (a table of
customers lists buyers; the never-ordered of every segment were a group of their own, as were the
churned, in the first version of this generator).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from bench.separation import calibrate

FAMILIES = ("overlap", "subset", "irrelevant", "categorical", "sizes")
SIZES = (500, 2_000, 20_000, 200_000)
#: Recovery at the true k (``bench.separation``: ARI of k-means told k) each family's tables are set to.
BANDS = {"overlap": (0.70, 0.85), "subset": (0.85, 0.97), "irrelevant": (0.85, 0.97),
         "categorical": (0.85, 0.97), "sizes": (0.80, 0.95)}
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


def _parameters(family: str, k: int, rng: np.random.Generator) -> dict:
    """Everything about a table of k segments but its separation scale and its rows: the segments'
    behaviour on a log scale around the base (``scale`` 1 gives the ladders' own spread)."""
    while True:
        shares = rng.dirichlet(np.full(k, 3.0))
        if shares.min() >= 0.05:
            break
    p: dict = {"family": family, "k": k, "shares": shares}
    if family == "overlap":
        p["rate"], p["basket"] = _ladder(rng, k, 2.0, (1.8, 2.4)), _ladder(rng, k, 20.0, (1.8, 2.4))
        p["span"], p["churn"] = rng.uniform(200, 1500, size=k), rng.uniform(0.0, 0.6, size=k)
    elif family in ("subset", "categorical"):
        p["rate"], p["span"], p["churn"] = np.full(k, 6.0), np.full(k, 900.0), np.full(k, 0.25)
        p["basket"] = _ladder(rng, k, 25.0, (2.6, 3.4)) if family == "subset" else np.full(k, 40.0)
    else:
        p["rate"], p["basket"] = _ladder(rng, k, 1.5, (2.8, 3.8)), _ladder(rng, k, 15.0, (2.2, 3.0))
        p["span"], p["churn"] = rng.uniform(150, 2000, size=k), rng.uniform(0.0, 0.7, size=k)
    if family == "subset":
        p["habits"] = {"channel": _habit(rng, k, 3, 1.5)}
    elif family == "categorical":
        p["habits"] = {"channel": _habit(rng, k, 3, 10.0), "favourite_category": _habit(rng, k, 5, 10.0),
                       "payment": _habit(rng, k, 4, 10.0)}
    else:
        # Habits only loosely tied to the segment (no signal of their own worth a segment).
        p["habits"] = {"channel": _habit(rng, k, 3, 0.2)}
    return p


def _toward(values: np.ndarray, scale: float, shares: np.ndarray, log: bool = True) -> np.ndarray:
    """Per-segment values moved ``scale`` times their distance from the base (geometric for rates)."""
    if log:
        centre = shares @ np.log(values)
        return np.exp(centre + np.clip(scale * (np.log(values) - centre), -5.0, 5.0))
    centre = shares @ values
    return np.clip(centre + scale * (values - centre), 0.0, 0.95)


def _draw(p: dict, scale: float, n: int, rng: np.random.Generator) -> tuple[pd.DataFrame, np.ndarray]:
    """A table of ``n`` customers with the parameters ``p``, segments ``scale`` apart."""
    k, family, shares = p["k"], p["family"], p["shares"]
    labels = rng.choice(k, size=n, p=shares)
    rate, basket = _toward(p["rate"], scale, shares), _toward(p["basket"], scale, shares)
    span, churn = _toward(p["span"], scale, shares), _toward(p["churn"], scale, shares, log=False)
    s = labels
    tenure = rng.uniform(0.3, 1.0, n) * span[s] + 30
    # A segment's churn is how much of their tenure its customers stay active, a continuum (Beta around
    # 1 - churn): a churned / active switch inside a segment would make it two groups of its own.
    keep = np.clip(1.0 - churn[s], 0.25, 0.95)
    active = tenure * rng.beta(12.0 * keep, 12.0 * (1.0 - keep))
    own_rate = rng.gamma(6.0, rate[s] / 6.0)
    # A customer table lists buyers: the first order makes the customer, the rest follow the rate (else
    # the never-ordered of every segment would form a group of their own).
    orders = 1 + rng.poisson(own_rate * active / 365.0)
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
    if family == "categorical":
        # A table of habits: a few behaviour columns (one population) and three habit columns that
        # carry the segments.
        columns = {key: columns[key] for key in ("orders", "total_spend", "days_since_last_order")}
    names = {"channel": CHANNELS, "favourite_category": CATEGORIES, "payment": PAYMENTS}
    for column, probs in p["habits"].items():
        # Habit odds sharpened by `scale` where habits carry the segments; fixed where they are loose.
        sharp = probs ** scale if family in ("subset", "categorical") else probs
        columns[column] = _draw_categorical(rng, sharp / sharp.sum(axis=1, keepdims=True), s, names[column])
    if family == "irrelevant":
        columns["age"] = np.clip(np.round(rng.normal(42, 13, n)), 18, 90)
        columns["member_number"] = rng.permutation(n) + 100_000
        columns["satisfaction_0_10"] = rng.integers(0, 11, n)
        columns["region"] = rng.choice(["north", "south", "east", "west", "centre"], size=n)
    return pd.DataFrame(columns), labels


def make_table(family: str, seed: int, index: int = 0, n: int | None = None) -> SimulatedTable:
    """One simulated customer table of ``family``; ``(family, seed, index)`` fixes it."""
    if family not in FAMILIES:
        raise ValueError(f"family={family!r} must be one of {FAMILIES}")
    rng = np.random.default_rng([seed, index, FAMILIES.index(family), 104729])
    if n is None:
        n = SIZES[index % len(SIZES)] if family == "sizes" else int(rng.choice([1_000, 2_500, 5_000]))
    # A shape whose segments no separation makes findable at the true k is drawn again (4 shapes
    # per k, then a new k; 3 ks at most: a table still outside its band says so in params).
    # Segments told apart by 2 columns and a habit: at most 4 (more are not findable even when k is known).
    for attempt in range(12):
        if attempt % 4 == 0:
            k = int(rng.integers(2, 7)) if family not in ("categorical", "subset") else int(rng.integers(2, 5))
        p = _parameters(family, k, rng)
        scale, oracle = calibrate(lambda s_, m, r, p=p: _draw(p, s_, m, r), BANDS[family], seed=int(rng.integers(2**31)))
        if oracle >= BANDS[family][0]:
            break
    data, labels = _draw(p, scale, n, rng)
    return SimulatedTable(f"purchase-{family}-s{seed}-{index}-k{p['k']}-n{n}", family, data, labels, p["k"],
                          {"shares": p["shares"].round(3).tolist(), "scale": round(scale, 3),
                           "recovery_at_true_k": round(oracle, 3),
                           "findable": bool(oracle >= BANDS[family][0])})


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

"""Customer lifetime value from a fitted BG/NBD + Gamma-Gamma pair, in numpy only (the scoring server uses it).

Models (Fader, Hardie and Lee 2005, "Counting your customers the easy way"; Fader and Hardie 2013, "The
Gamma-Gamma model of monetary value"): while alive a customer buys at rate lambda ~ Gamma(r, alpha); after
each purchase they drop out with probability p ~ Beta(a, b); the spend per purchase is Gamma(p, nu) with
nu ~ Gamma(q, v). A customer is described by BG/NBD's x (repeat purchases), t_x (time of the last purchase,
from the first), T (age: first purchase to the end of observation) and m_x (mean spend per repeat purchase),
times in the model's time unit. Per customer:

- ``p_alive``: P(alive | x, t_x, T);
- ``expected_purchases``: E[purchases in the next ``horizon_days``] (FHL 2005, eq. 10);
- ``expected_order_value``: E[spend per purchase | m_x, x] = (v + m_x x) p / (p x + q - 1);
- ``clv``: expected_order_value x the purchases expected in each 30-day step of the horizon (the last step
  may be shorter), each step discounted at ``discount_rate_annual`` to the step's end:
  sum_k (E[Y(t_k)] - E[Y(t_k-1)]) (1 + d)^(-t_k / 365).

E[Y(t)] = P(alive) G(x, t / (alpha + T)), where G needs the Gauss hypergeometric function. scipy is not in
the scoring image, so the training job tabulates G (exactly, with scipy) for x < ``TABLE_X`` on a grid of
w = alpha / (alpha + T) in [0, 1] and stores the tables in the artefact (clv.npz); scoring interpolates
linearly in w (relative error below 1e-6, tested). For x >= ``TABLE_X`` the Euler-transformed series
2F1(a+b-1-r, a-1; a+b+x-1; z) converges in a few terms, and numpy sums it directly.

Precision: :meth:`ClvModel.predict` takes its inputs and gives the figures in single precision (``PRECISION``),
the form they travel in on PredictStream; P(alive) (an exponent) and the table positions are computed in
double, the interpolation and the order value in single (within 3e-7 of double). Single precision holds 7 significant digits
(whole numbers up to 2**24 exactly), far below the model's own error and the tables' interpolation error, and
every path (Predict, PredictStream, ``training_job score``) thus gives the same numbers.
"""
from __future__ import annotations

import functools
import math
from dataclasses import dataclass, field
from typing import Any, Collection, Mapping, NamedTuple

import numpy as np

__all__ = [
    "DERIVED_FROM", "FIGURES", "INPUTS", "NEGLIGIBLE_DROPOUT", "PRECISION", "TABLE_W", "TABLE_X", "ClvFigures",
    "ClvModel", "all_valid", "derivable_inputs", "derive_input", "describe_problem", "dropout_caveat", "g_series",
    "horizon_steps", "input_problems",
]

TABLE_X = 64
"""Repeat-purchase counts 0..TABLE_X-1 are tabulated; larger counts use the series."""
TABLE_W = 1025
"""Grid points of w = alpha / (alpha + T) in [0, 1]."""
STEP_DAYS = 30
TIME_UNIT_DAYS = {"days": 1, "weeks": 7}
FIGURES = ("expected_purchases", "p_alive", "expected_order_value", "clv")
"""The per-customer CLV figures, in the order every output lists them."""
INPUTS = ("RepeatPurchases", "LastPurchaseTime", "CustomerAge", "AvgRepeatValue")
"""The per-customer CLV inputs (x, t_x, T, m_x), as a transactions recipe names its columns."""
DERIVED_FROM = {"CustomerAge": ("Recency", "LastPurchaseTime"), "RepeatPurchases": ("Frequency",)}
"""CLV inputs a PredictStream batch may leave out, and the columns the service then derives them from, exactly
as the recipe defines them (see :func:`derive_input`; which apply to a model: :func:`derivable_inputs`)."""
PRECISION = np.dtype(np.float32)
"""CLV inputs are taken, and the figures given, in single precision (7 significant digits; whole numbers up to
2**24 exactly; the CLV columns of PredictStream travel so): every path gives the same numbers."""


class ClvFigures(NamedTuple):
    """Per-customer CLV figures (arrays, one value per customer)."""

    expected_purchases: np.ndarray
    p_alive: np.ndarray
    expected_order_value: np.ndarray
    clv: np.ndarray


def horizon_steps(horizon_days: int) -> np.ndarray:
    """Ends of the discounting steps, in days: 30, 60, ... and the horizon itself."""
    ends = list(range(STEP_DAYS, int(horizon_days), STEP_DAYS)) + [int(horizon_days)]
    return np.asarray(ends, dtype=np.float64)


def g_series(x: np.ndarray, u: np.ndarray, r: float, a: float, b: float, max_terms: int = 100_000) -> np.ndarray:
    """G(x, u) = E[Y(t) | alive] / 1 with u = t / (alpha + T), by the Euler-transformed 2F1 series.

    Fast when a + b + x - 1 is large (x >= TABLE_X); correct but slow for small x and u >> 1.
    """
    x = np.asarray(x, dtype=np.float64)
    u = np.asarray(u, dtype=np.float64)
    z = u / (1.0 + u)
    c = a + b + x - 1.0
    pp, qq = a + b - 1.0 - r, a - 1.0
    term = np.ones(np.broadcast(x, u).shape)
    total = term.copy()
    for n in range(max_terms):
        term = term * ((pp + n) * (qq + n) / ((c + n) * (n + 1.0)) * z)
        total += term
        if not np.any(np.abs(term) > 1e-16 * np.abs(total)):
            break
    return (c / (a - 1.0)) * (1.0 - (1.0 / (1.0 + u)) ** (a - 1.0) * total)


@dataclass(frozen=True, eq=False)
class ClvModel:
    """A fitted BG/NBD + Gamma-Gamma pair and what CLV means for it (horizon, discount, time unit)."""

    r: float
    alpha: float
    a: float
    b: float
    p: float
    q: float
    v: float
    time_unit: str = "days"
    horizon_days: int = 365
    discount_rate_annual: float = 0.1
    calibration_end: str | None = None
    summary: Mapping[str, Any] = field(default_factory=dict)
    """Per-segment and base CLV statistics, fit details (JSON-able; stored as is)."""
    tables: Mapping[str, np.ndarray] | None = None
    """``expected`` and ``discounted``: G tabulated on (x < TABLE_X, w grid); see the module docstring."""

    @property
    def unit_days(self) -> int:
        """Days per time unit."""
        return TIME_UNIT_DAYS[self.time_unit]

    def to_dict(self) -> dict[str, Any]:
        """The manifest's ``clv`` value."""
        return {"time_unit": self.time_unit, "calibration_end": self.calibration_end,
                "horizon_days": int(self.horizon_days), "discount_rate_annual": float(self.discount_rate_annual),
                "bgnbd": {"r": self.r, "alpha": self.alpha, "a": self.a, "b": self.b},
                "gamma_gamma": {"p": self.p, "q": self.q, "v": self.v}, **dict(self.summary)}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], tables: Mapping[str, np.ndarray] | None = None) -> "ClvModel":
        """Rebuild from the manifest's ``clv`` (and the tables of clv.npz); a malformed one raises ValueError."""
        try:
            bg, gg = data["bgnbd"], data["gamma_gamma"]
            known = {"time_unit", "calibration_end", "horizon_days", "discount_rate_annual", "bgnbd", "gamma_gamma"}
            model = cls(r=float(bg["r"]), alpha=float(bg["alpha"]), a=float(bg["a"]), b=float(bg["b"]),
                        p=float(gg["p"]), q=float(gg["q"]), v=float(gg["v"]), time_unit=str(data["time_unit"]),
                        horizon_days=int(data["horizon_days"]),
                        discount_rate_annual=float(data["discount_rate_annual"]),
                        calibration_end=data.get("calibration_end"),
                        summary={k: v for k, v in data.items() if k not in known}, tables=tables)
        except (KeyError, TypeError) as exc:
            raise ValueError(f"malformed clv section: {exc!r}") from exc
        if model.time_unit not in TIME_UNIT_DAYS:
            raise ValueError(f"malformed clv section: time_unit {model.time_unit!r}")
        if tables is not None:
            for name in ("expected", "discounted"):
                if name not in tables or tables[name].shape != (TABLE_X, TABLE_W):
                    raise ValueError(f"clv tables: {name!r} missing or not of shape {(TABLE_X, TABLE_W)}")
        return model

    # ---- the per-customer figures ---------------------------------------------------------------------
    def p_alive(self, x: np.ndarray, t_x: np.ndarray, T: np.ndarray) -> np.ndarray:
        """P(alive | x, t_x, T) (FHL 2005, eq. 11), in double precision."""
        x, t_x, T = (np.asarray(v, dtype=np.float64) for v in (x, t_x, T))
        return self._p_alive(x, t_x, T + self.alpha, self._odds(x, x.astype(np.intp)))

    def _odds(self, x: np.ndarray, row: np.ndarray) -> np.ndarray:
        """a / (b + x - 1) for x > 0, 0 for x = 0 (``row``: x as an index; tabulated below TABLE_X)."""
        return _tabulated(self._odds_table, x, row, lambda big: self.a / (self.b + big - 1.0))

    def _p_alive(self, x: np.ndarray, t_x: np.ndarray, alpha_T: np.ndarray, odds: np.ndarray,
                 out: np.ndarray | None = None) -> np.ndarray:
        # 1 / (1 + odds(x) ((alpha + T) / (alpha + t_x))^(r + x)) in double (into ``out``, of any float type);
        # the power may overflow to inf for a long-silent frequent buyer, giving 0; x = 0 has odds 0, giving 1
        z = np.add(t_x, self.alpha, dtype=np.float64)
        np.divide(alpha_T, z, out=z)
        np.log(z, out=z)
        z *= np.add(x, self.r, dtype=np.float64)
        with np.errstate(over="ignore"):
            np.exp(z, out=z)
        z *= odds
        z += 1.0
        return np.divide(1.0, z, out=z if out is None else out, casting="same_kind")

    def expected_order_value(self, x: np.ndarray, m: np.ndarray) -> np.ndarray:
        """E[spend per purchase | x repeat purchases of mean m] (Gamma-Gamma), in double precision."""
        x, m = np.asarray(x, dtype=np.float64), np.asarray(m, dtype=np.float64)
        return self._order_value(x, m, self._value_factor(x, x.astype(np.intp)))

    def _value_factor(self, x: np.ndarray, row: np.ndarray) -> np.ndarray:
        """p / (p x + q - 1) (tabulated below TABLE_X)."""
        return _tabulated(self._value_factor_table, x, row, lambda big: self.p / (big * self.p + (self.q - 1.0)))

    def _order_value(self, x: np.ndarray, m: np.ndarray, factor: np.ndarray) -> np.ndarray:
        # (v + m x) p / (p x + q - 1)
        value = np.multiply(m, x, dtype=np.float64)
        value += self.v
        value *= factor
        return value

    def predict(self, x: np.ndarray, t_x: np.ndarray, T: np.ndarray, m: np.ndarray) -> ClvFigures:
        """The four CLV figures of customers given as arrays, taken and given in single precision (PRECISION:
        float32 arrays in, float32 arrays out). P(alive) and the table positions are computed in double (an
        exponent and an index need it), the rest in single (within 3e-7 of double). Valid inputs: see
        :func:`input_problems`."""
        x, t_x, T, m = (np.asarray(v, dtype=PRECISION) for v in (x, t_x, T, m))
        if x.size and x.max() < TABLE_X and T.min() >= 0:
            return self._predict_tabulated(x, t_x, T, m)
        n = x.size
        row = x.astype(np.intp)
        alpha_T = np.add(T, self.alpha, dtype=np.float64)
        out = np.empty((4, n), dtype=PRECISION)  # rows: the figures, each contiguous
        self._p_alive(x, t_x, alpha_T, self._odds(x, row), out=out[1])
        self._single_value(x, m, self._value_factor(x, row).astype(PRECISION), out[2])
        small = x < TABLE_X
        found = np.zeros((n, 4), dtype=PRECISION)  # as the tabulated path gathers; step 0 beyond the table
        if not small.all():  # the series, in double
            large = ~small
            found[large, 0], found[large, 2] = self.exact_g(x[large].astype(np.float64), self.alpha / alpha_T[large])
        cell, frac = self._grid_cells(alpha_T)
        np.minimum(cell, TABLE_W - 1, out=cell)
        found[small] = self._cell_table_single.take(row[small] * TABLE_W + cell[small], axis=0)
        return self._interpolated(found, frac, out)

    def _predict_tabulated(self, x: np.ndarray, t_x: np.ndarray, T: np.ndarray, m: np.ndarray) -> ClvFigures:
        """:meth:`predict` when every x is tabulated and T >= 0 (the usual batch): the same operations on the
        same values in fewer numpy passes (shared terms computed once, in place; one gather fetches both
        tables' value and step at a grid cell), which is what a scoring server spends per row."""
        n = x.size
        row = x.astype(np.intp)
        alpha_T = np.add(T, self.alpha, dtype=np.float64)
        out = np.empty((4, n), dtype=PRECISION)  # rows: the figures, each contiguous
        self._p_alive(x, t_x, alpha_T, self._odds_table.take(row), out=out[1])
        self._single_value(x, m, self._value_factor_single.take(row), out[2])
        # G by linear interpolation in w = alpha / (alpha + T) in [0, 1] on the grid (w = 1 lands on the
        # last grid point, whose step is 0: no clamp)
        cell, frac = self._grid_cells(alpha_T)
        row *= TABLE_W
        row += cell
        return self._interpolated(self._cell_table_single.take(row, axis=0), frac, out)

    def _single_value(self, x: np.ndarray, m: np.ndarray, factor: np.ndarray, out: np.ndarray) -> None:
        # (v + m x) p / (p x + q - 1) in single precision, into ``out``
        np.multiply(m, x, out=out)
        out += PRECISION.type(self.v)
        out *= factor

    def _grid_cells(self, alpha_T: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The grid cell of w = alpha / (alpha + T) and the fraction of the way to the next grid point (single;
        ``alpha_T`` is overwritten)."""
        pos = np.divide(self.alpha * (TABLE_W - 1), alpha_T, out=alpha_T)
        cell = pos.astype(np.intp)
        frac = np.empty(pos.shape, dtype=PRECISION)
        np.subtract(pos, cell, out=frac, casting="same_kind")
        return cell, frac

    @staticmethod
    def _interpolated(found: np.ndarray, frac: np.ndarray, out: np.ndarray) -> ClvFigures:
        """The figures from each row's table cell ``found`` (G, its step, the discounted G, its step), ``frac``
        and P(alive) and the order value already in ``out`` rows 1 and 2."""
        alive, value, expected, discounted = out[1], out[2], out[0], out[3]
        np.multiply(found[:, 1], frac, out=expected)
        expected += found[:, 0]
        expected *= alive
        np.multiply(found[:, 3], frac, out=discounted)
        discounted += found[:, 2]
        discounted *= alive
        discounted *= value
        return ClvFigures(expected, alive, value, discounted)

    @functools.cached_property
    def _odds_table(self) -> np.ndarray:
        x = np.arange(TABLE_X, dtype=np.float64)
        with np.errstate(divide="ignore", invalid="ignore"):
            table = np.where(x > 0, self.a / (self.b + x - 1.0), 0.0)
        return table

    @functools.cached_property
    def _value_factor_table(self) -> np.ndarray:
        x = np.arange(TABLE_X, dtype=np.float64)
        return self.p / (x * self.p + (self.q - 1.0))

    @functools.cached_property
    def _value_factor_single(self) -> np.ndarray:
        return self._value_factor_table.astype(PRECISION)

    @functools.cached_property
    def _cell_table_single(self) -> np.ndarray:
        """:attr:`_cell_table` in single precision (the figures' own; the tables' interpolation error is 5e-5)."""
        return self._cell_table.astype(PRECISION)

    @functools.cached_property
    def _lerp_table(self) -> tuple[np.ndarray, ...]:
        """Per grid cell (flat): G and its step to the next grid point, for both tables (4 flat arrays)."""
        if self.tables is None:
            raise ValueError("this CLV model has no tables (clv.npz)")
        parts = []
        for name in ("expected", "discounted"):
            values = np.asarray(self.tables[name], dtype=np.float64)
            step = np.zeros_like(values)
            step[:, :-1] = values[:, 1:] - values[:, :-1]
            parts += [values.reshape(-1), step.reshape(-1)]
        return tuple(np.ascontiguousarray(part) for part in parts)

    @functools.cached_property
    def _cell_table(self) -> np.ndarray:
        """(TABLE_X * TABLE_W, 4): per grid point of each tabulated x, G, its step to the next point, the
        discounted G and its step (0 at the last point)."""
        g, g_step, d, d_step = self._lerp_table
        return np.ascontiguousarray(np.stack([g, g_step, d, d_step], axis=1))

    def exact_g(self, x: np.ndarray, w: np.ndarray, g: Any = None) -> tuple[np.ndarray, np.ndarray]:
        """G over the horizon and its discounted sum at (x, w), computed by ``g(x, u)`` (default: the series)."""
        g = g or (lambda xx, uu: g_series(xx, uu, self.r, self.a, self.b))
        steps = horizon_steps(self.horizon_days)
        unit = self.unit_days
        factors = (1.0 + self.discount_rate_annual) ** (-steps / 365.0)
        previous = np.zeros(np.broadcast(x, w).shape)
        discounted = np.zeros_like(previous)
        for end, factor in zip(steps, factors):
            current = g(x, (end / unit / self.alpha) * w)
            discounted += (current - previous) * factor
            previous = current
        return previous, discounted

    def build_tables(self, g: Any) -> "ClvModel":
        """A copy with the tables computed by ``g(x, u)`` (the training job passes an exact, scipy-based G)."""
        x = np.arange(TABLE_X, dtype=np.float64)[:, None]
        w = np.linspace(0.0, 1.0, TABLE_W)[None, :]
        expected, discounted = self.exact_g(np.broadcast_to(x, (TABLE_X, TABLE_W)),
                                            np.broadcast_to(w, (TABLE_X, TABLE_W)), g)
        return ClvModel(**{**self.__dict__, "tables": {"expected": np.ascontiguousarray(expected),
                                                       "discounted": np.ascontiguousarray(discounted)}})


def input_problems(x: np.ndarray, t_x: np.ndarray, T: np.ndarray, m: np.ndarray) -> np.ndarray:
    """Per customer, the index into INPUTS of the first invalid CLV input (as taken: in single precision), or -1
    when all are valid."""
    x, t_x, T, m = (np.asarray(v, dtype=PRECISION) for v in (x, t_x, T, m))
    checks = (
        ~((x >= 0) & (x == np.floor(x))),   # a whole number of repeat purchases
        ~((t_x >= 0) & (t_x <= T)),          # last purchase within the customer's age (NaN T fails here)
        ~(T >= 0) | ~np.isfinite(T),
        ~(m >= 0) | ~np.isfinite(m),
    )
    problem = np.full(x.shape, -1, dtype=np.int64)
    for i in range(len(checks) - 1, -1, -1):
        problem[checks[i]] = i
    return problem


def all_valid(x: np.ndarray, t_x: np.ndarray, T: np.ndarray, m: np.ndarray) -> bool:
    """True when :func:`input_problems` would find no problem in these arrays (single precision, as
    :meth:`ClvModel.predict` takes them; a NaN anywhere gives False): the batch's fast path, a few reductions
    instead of per-row checks."""
    if not x.size:
        return True
    low, high = np.minimum.reduce, np.maximum.reduce  # NaN propagates: every comparison below is then False
    return bool(low(x) >= 0 and low(T) >= 0 and high(T) < math.inf and low(m) >= 0 and high(m) < math.inf
                and low(t_x) >= 0 and np.less_equal(t_x, T).all() and np.equal(np.floor(x), x).all())


def describe_problem(index: int, value: float) -> str:
    """The message for a CLV input problem found by :func:`input_problems` (``value``: the offending one, shown
    as the single-precision number it was taken as)."""
    rules = ("a whole number >= 0", f"between 0 and {INPUTS[2]}", "a finite number >= 0", "a finite number >= 0")
    return f"{INPUTS[index]}: {PRECISION.type(value)} should be {rules[index]}"


def derivable_inputs(features: Collection[str], counts_days: bool) -> frozenset[str]:
    """The CLV inputs a batch may leave out for a model with these numeric ``features`` (``counts_days``: its
    recipe has no invoice column, so a purchase is a purchase day): CustomerAge with the feature Recency,
    RepeatPurchases with Frequency on such a log."""
    out = set()
    if "Recency" in features:
        out.add("CustomerAge")
    if counts_days and "Frequency" in features:
        out.add("RepeatPurchases")
    return frozenset(out)


def derive_input(name: str, numeric: Mapping[str, np.ndarray], unit_days: int) -> np.ndarray:
    """A left-out CLV input (single precision) from the batch's columns, as the recipe computes it from whole
    days: CustomerAge = (Recency - 1 + LastPurchaseTime x unit_days, rounded to whole days) / unit_days (the
    customer's first purchase day to the day before the as-of date); RepeatPurchases = Frequency - 1.

    Computed in single precision, which holds whole days exactly (the one rounding is the division's); the
    Python client leaves an input out only where this gives its column's values exactly."""
    if name == "CustomerAge":
        age = np.multiply(numeric["LastPurchaseTime"], unit_days, dtype=PRECISION)
        np.rint(age, out=age)  # the tenure in whole days
        age += np.subtract(numeric["Recency"], 1.0, dtype=PRECISION)
        if unit_days != 1:
            age /= PRECISION.type(unit_days)
        return age
    if name == "RepeatPurchases":
        return np.subtract(numeric["Frequency"], 1.0, dtype=PRECISION)
    raise ValueError(f"{name!r} is not derivable (derivable: {', '.join(DERIVED_FROM)})")


def _tabulated(table: np.ndarray, x: np.ndarray, row: np.ndarray, formula: Any) -> np.ndarray:
    """``table[row]`` where x < TABLE_X (the tabulated counts), ``formula(x)`` for the larger ones."""
    small = x < TABLE_X
    if small.all():
        return table.take(row)
    out = np.empty_like(x, dtype=np.float64)
    out[small] = table.take(row[small])
    out[~small] = formula(x[~small])
    return out


#: Below this mean chance of dropping out after a repeat purchase (the fitted beta's mean, a / (a + b)), the
#: BG/NBD fit sees almost no dropout in the history, and P(alive) says next to nothing about churn.
NEGLIGIBLE_DROPOUT = 0.01


def dropout_caveat(bgnbd: Mapping[str, float]) -> str:
    """What the pages say next to P(alive): BG/NBD's reading of one-time buyers, and a warning when the fit
    sees almost no dropout (``NEGLIGIBLE_DROPOUT``); parameters ``a`` and ``b`` of the fit."""
    note = ("Under BG/NBD a customer who never bought again counts as alive (P(alive) 100%): dropping out "
            "happens only after a repeat purchase.")
    a, b = bgnbd.get("a"), bgnbd.get("b")
    if a is None or b is None or not a + b > 0 or a / (a + b) >= NEGLIGIBLE_DROPOUT:
        return note
    return (f"{note} This history shows almost no dropout (after a purchase a customer leaves with probability "
            f"{a / (a + b):.2%}), so P(alive) is near 100% in every segment and says little about churn here: "
            "the segments' recency says more.")

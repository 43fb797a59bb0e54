"""Fit BG/NBD and Gamma-Gamma by maximum likelihood (scipy), and summarise CLV per segment.

The likelihoods are the published ones: BG/NBD, Fader, Hardie and Lee (2005), eq. (6); Gamma-Gamma, Fader
and Hardie (2013), "The Gamma-Gamma model of monetary value", eq. (3) (here with nu's scale called v). Both
are minimised over the log of the parameters with L-BFGS-B, identical customers counted once with a weight.
The scoring side (segmentation_core.clv) is numpy only; this module is where scipy computes the exact G
that its tables hold. Checked against the published CDNOW figures in tests/test_clv.py.
"""
from __future__ import annotations

import logging
import time
from typing import Any

import numpy as np
import pandas as pd
from scipy.optimize import minimize
from scipy.special import betaln, digamma, gammaln, hyp2f1

from segmentation_core.clv import FIGURES, ClvModel
from segmentation_core.errors import DataError

__all__ = ["exact_g", "fit_bgnbd", "fit_clv", "fit_gamma_gamma", "segment_summary"]

log = logging.getLogger(__name__)

MIN_REPEAT_CUSTOMERS = 10


def _grouped(*columns: np.ndarray) -> tuple[list[np.ndarray], np.ndarray]:
    """Distinct rows of the columns and how many customers each stands for."""
    stacked = np.column_stack(columns)
    unique, counts = np.unique(stacked, axis=0, return_counts=True)
    return [unique[:, i] for i in range(unique.shape[1])], counts.astype(np.float64)


def bgnbd_log_likelihood(params: np.ndarray, x: np.ndarray, t_x: np.ndarray, T: np.ndarray) -> np.ndarray:
    """Per-customer BG/NBD log-likelihood (FHL 2005, eq. 6) at params (r, alpha, a, b)."""
    r, alpha, a, b = params
    a1 = gammaln(r + x) - gammaln(r) + r * np.log(alpha)
    a2 = betaln(a, b + x) - betaln(a, b)
    a3 = -(r + x) * np.log(alpha + T)
    with np.errstate(divide="ignore"):
        a4 = np.where(x > 0, np.log(a) - np.log(np.maximum(b + x - 1, 1e-300)) - (r + x) * np.log(alpha + t_x),
                      -np.inf)
    return a1 + a2 + np.logaddexp(a3, a4)


def gamma_gamma_log_likelihood(params: np.ndarray, x: np.ndarray, m: np.ndarray) -> np.ndarray:
    """Per-customer Gamma-Gamma log-likelihood of mean spend m over x >= 1 purchases at params (p, q, v)."""
    p, q, v = params
    return (gammaln(p * x + q) - gammaln(p * x) - gammaln(q) + q * np.log(v) + (p * x - 1) * np.log(m)
            + p * x * np.log(x) - (p * x + q) * np.log(v + m * x))


def bgnbd_gradient(params: np.ndarray, x: np.ndarray, t_x: np.ndarray, T: np.ndarray) -> np.ndarray:
    """Per-customer gradient of :func:`bgnbd_log_likelihood` with respect to (r, alpha, a, b): shape (4, n)."""
    r, alpha, a, b = params
    a3 = -(r + x) * np.log(alpha + T)
    with np.errstate(divide="ignore"):
        a4 = np.where(x > 0, np.log(a) - np.log(np.maximum(b + x - 1, 1e-300)) - (r + x) * np.log(alpha + t_x),
                      -np.inf)
    total = np.logaddexp(a3, a4)
    s3, s4 = np.exp(a3 - total), np.exp(a4 - total)
    d_r = digamma(r + x) - digamma(r) + np.log(alpha) - s3 * np.log(alpha + T) - s4 * np.log(alpha + t_x)
    d_alpha = r / alpha - s3 * (r + x) / (alpha + T) - s4 * (r + x) / (alpha + t_x)
    d_a = digamma(a + b) - digamma(a + b + x) + s4 / a
    d_b = (digamma(b + x) - digamma(a + b + x) - digamma(b) + digamma(a + b)
           - s4 / np.maximum(b + x - 1, 1e-300))
    return np.vstack([d_r, d_alpha, d_a, d_b])


def gamma_gamma_gradient(params: np.ndarray, x: np.ndarray, m: np.ndarray) -> np.ndarray:
    """Per-customer gradient of :func:`gamma_gamma_log_likelihood` with respect to (p, q, v): shape (3, n)."""
    p, q, v = params
    common = digamma(p * x + q)
    d_p = x * (common - digamma(p * x) + np.log(m) + np.log(x) - np.log(v + m * x))
    d_q = common - digamma(q) + np.log(v) - np.log(v + m * x)
    d_v = q / v - (p * x + q) / (v + m * x)
    return np.vstack([d_p, d_q, d_v])


def _fit(objective, start: np.ndarray, name: str) -> np.ndarray:
    """Minimise objective(params) -> (value, gradient) over log(params)."""
    def in_logs(log_params: np.ndarray) -> tuple[float, np.ndarray]:
        params = np.exp(log_params)
        value, gradient = objective(params)
        return value, gradient * params

    result = minimize(in_logs, np.log(start), jac=True, method="L-BFGS-B",
                      options={"maxiter": 1000, "ftol": 1e-14, "gtol": 1e-10})
    params = np.exp(result.x)
    if not np.all(np.isfinite(params)) or not np.isfinite(result.fun):
        raise DataError(f"the {name} fit did not converge ({result.message})")
    return params


def fit_bgnbd(x: np.ndarray, t_x: np.ndarray, T: np.ndarray) -> dict[str, float]:
    """Maximum-likelihood BG/NBD parameters {r, alpha, a, b}."""
    (xs, ts, Ts), w = _grouped(x, t_x, T)
    scale = float(np.mean(T)) or 1.0

    def neg_ll(params: np.ndarray) -> tuple[float, np.ndarray]:
        value = -float(np.dot(w, bgnbd_log_likelihood(params, xs, ts, Ts))) / w.sum()
        return value, -(bgnbd_gradient(params, xs, ts, Ts) @ w) / w.sum()

    r, alpha, a, b = _fit(neg_ll, np.array([1.0, scale, 1.0, 1.0]), "BG/NBD")
    return {"r": float(r), "alpha": float(alpha), "a": float(a), "b": float(b)}


def fit_gamma_gamma(x: np.ndarray, m: np.ndarray) -> dict[str, float]:
    """Maximum-likelihood Gamma-Gamma parameters {p, q, v}, from customers with x >= 1 and m > 0."""
    keep = (x > 0) & (m > 0)
    if keep.sum() < MIN_REPEAT_CUSTOMERS:
        raise DataError(f"only {int(keep.sum())} customers bought more than once (with a positive spend); the "
                        f"Gamma-Gamma spend model needs at least {MIN_REPEAT_CUSTOMERS}")
    (xs, ms), w = _grouped(x[keep], m[keep])

    def neg_ll(params: np.ndarray) -> tuple[float, np.ndarray]:
        value = -float(np.dot(w, gamma_gamma_log_likelihood(params, xs, ms))) / w.sum()
        return value, -(gamma_gamma_gradient(params, xs, ms) @ w) / w.sum()

    p, q, v = _fit(neg_ll, np.array([1.0, 1.0, float(np.mean(ms))]), "Gamma-Gamma")
    return {"p": float(p), "q": float(q), "v": float(v)}


def exact_g(r: float, a: float, b: float):
    """G(x, u) through scipy's hyp2f1 (the Euler-transformed form; see segmentation_core.clv)."""
    def g(x: np.ndarray, u: np.ndarray) -> np.ndarray:
        z = u / (1.0 + u)
        c = a + b + x - 1.0
        return (c / (a - 1.0)) * (1.0 - (1.0 / (1.0 + u)) ** (a - 1.0) * hyp2f1(a + b - 1.0 - r, a - 1.0, c, z))
    return g


def fit_clv(calibration: pd.DataFrame, *, time_unit: str, horizon_days: int, discount_rate_annual: float,
            calibration_end: str | None) -> ClvModel:
    """Fit both models on per-customer CLV inputs (the recipe's columns) and tabulate G for scoring."""
    started = time.perf_counter()
    x = calibration["RepeatPurchases"].to_numpy(np.float64)
    t_x = calibration["LastPurchaseTime"].to_numpy(np.float64)
    T = calibration["CustomerAge"].to_numpy(np.float64)
    m = calibration["AvgRepeatValue"].to_numpy(np.float64)
    if not (x > 0).any():
        raise DataError("no customer bought on more than one day: BG/NBD cannot be fitted")
    bg = fit_bgnbd(x, t_x, T)
    gg = fit_gamma_gamma(x, m)
    fitted = time.perf_counter() - started
    model = ClvModel(**bg, **gg, time_unit=time_unit, horizon_days=horizon_days,
                     discount_rate_annual=discount_rate_annual, calibration_end=calibration_end)
    model = model.build_tables(exact_g(model.r, model.a, model.b))
    log.info("CLV: BG/NBD r=%.4g alpha=%.4g a=%.4g b=%.4g; Gamma-Gamma p=%.4g q=%.4g v=%.4g (%d customers, "
             "%d repeat; fit %.2f s, tables %.2f s)", bg["r"], bg["alpha"], bg["a"], bg["b"], gg["p"], gg["q"],
             gg["v"], len(x), int((x > 0).sum()), fitted, time.perf_counter() - started - fitted)
    return model


def customer_figures(model: ClvModel, customers: pd.DataFrame) -> pd.DataFrame:
    """The CLV figures of customers given as the recipe's per-customer columns (the served single-precision
    values, held in double so that sums over many customers keep their digits)."""
    figures = model.predict(*(customers[c].to_numpy(np.float64) for c in
                              ("RepeatPurchases", "LastPurchaseTime", "CustomerAge", "AvgRepeatValue")))
    return pd.DataFrame({name: values.astype(np.float64) for name, values in figures._asdict().items()},
                        index=customers.index)


def segment_summary(figures: pd.DataFrame, segment: np.ndarray, k: int) -> dict[str, Any]:
    """Per segment and for the base: mean and total CLV, the share of the base's CLV, mean P(alive) etc."""
    total = float(figures["clv"].sum())

    def stats(frame: pd.DataFrame) -> dict[str, float]:
        out = {f"mean_{name}": float(frame[name].mean()) if len(frame) else 0.0 for name in FIGURES}
        out["total_clv"] = float(frame["clv"].sum())
        out["share_of_clv"] = out["total_clv"] / total if total > 0 else 0.0
        return out

    return {"base": stats(figures),
            "segments": [{"id": j, **stats(figures[segment == j])} for j in range(k)]}

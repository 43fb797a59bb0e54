"""CLV: the published CDNOW figures reproduced by the real training job, and the scoring side's numpy math
checked against scipy (the fitting library)."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from segmentation_core.artefact import read_artefact
from segmentation_core.clv import (
    PRECISION, TABLE_X, ClvModel, all_valid, derivable_inputs, derive_input, g_series, input_problems,
)
from segmentation_core.store import ModelStore
from training_job.cli import main
from training_job.clv_fit import bgnbd_gradient, bgnbd_log_likelihood, exact_g, gamma_gamma_gradient, \
    gamma_gamma_log_likelihood

REPO = Path(__file__).resolve().parents[1]
# Fader, Hardie and Lee (2005), CDNOW 1/10 sample, calibration 1997-01-01..1997-09-30, weeks.
PUBLISHED_BGNBD = {"r": 0.243, "alpha": 4.414, "a": 0.793, "b": 2.426}
# Fader and Hardie (2013), the 946 repeat customers' mean spend per repeat transaction.
PUBLISHED_GAMMA_GAMMA = {"p": 6.25, "q": 3.74, "v": 15.44}


def cdnow_sample_in_master_layout(datasets_dir: Path, folder: Path) -> Path:
    """CDNOW_sample.txt with the master file's header and without the sample's running-id column."""
    header = (datasets_dir / "CDNOW_master.txt").read_text().splitlines()[0]
    lines = [header]
    for line in (datasets_dir / "CDNOW_sample.txt").read_text().splitlines():
        customer, _running_id, day, cds, dollars = line.split()
        lines.append(f" {customer} {day} {cds:>3} {dollars:>8}")
    path = folder / "cdnow_sample.txt"
    path.write_text("\n".join(lines) + "\n")
    return path


def cdnow_clv_config(folder: Path) -> Path:
    """The transactions-cdnow preset plus the reference's [clv] section."""
    preset = (REPO / "training_job" / "presets" / "transactions-cdnow.toml").read_text()
    path = folder / "cdnow-clv.toml"
    path.write_text(preset + '\n[clv]\ncalibration_end = "1997-09-30"\ntime_unit = "weeks"\n')
    return path


@pytest.fixture(scope="module")
def cdnow_store(tmp_path_factory, datasets_dir) -> Path:
    folder = tmp_path_factory.mktemp("cdnow")
    data = cdnow_sample_in_master_layout(datasets_dir, folder)
    code = main(["train", "--store", str(folder / "store"), "--model", "cdnow", "--data", str(data),
                 "--config", str(cdnow_clv_config(folder)), "--k", "4"])
    assert code == 0
    return folder


def _artefact(folder: Path):
    store = ModelStore(folder / "store")
    return read_artefact(store.version_dir("cdnow", store.current("cdnow")))


def test_cdnow_parameters_match_the_published_ones_within_one_percent(cdnow_store: Path) -> None:
    clv = _artefact(cdnow_store).manifest["clv"]
    assert clv["time_unit"] == "weeks" and clv["calibration_end"] == "1997-09-30"
    for name, published in PUBLISHED_BGNBD.items():
        assert clv["bgnbd"][name] == pytest.approx(published, rel=0.01), name
    for name, published in PUBLISHED_GAMMA_GAMMA.items():
        assert clv["gamma_gamma"][name] == pytest.approx(published, rel=0.01), name
    assert clv["calibration_customers"] == 2357


def test_segment_clv_figures_add_up_to_the_base(cdnow_store: Path) -> None:
    manifest = _artefact(cdnow_store).manifest
    segments = [s["clv"] for s in manifest["segments"]]
    base = manifest["clv"]["base"]
    assert sum(s["total_clv"] for s in segments) == pytest.approx(base["total_clv"], rel=1e-9)
    assert sum(s["share_of_clv"] for s in segments) == pytest.approx(1.0, rel=1e-9)
    sizes = [s["size"] for s in manifest["segments"]]
    assert sum(n * s["mean_clv"] for n, s in zip(sizes, segments)) == pytest.approx(base["total_clv"], rel=1e-9)
    assert all(0 < s["mean_p_alive"] <= 1 for s in segments)


def test_scoring_math_equals_the_exact_formulas_of_scipy(cdnow_store: Path) -> None:
    model: ClvModel = _artefact(cdnow_store).clv
    rng = np.random.default_rng(7)  # not the data the model was fitted on: any customer the service may see
    n = 3000
    x = np.concatenate([rng.integers(0, TABLE_X, n - 200), rng.integers(TABLE_X, 400, 200)]).astype(float)
    T = rng.uniform(0, 120, n)
    t_x = np.where(x > 0, T * rng.uniform(0, 1, n), 0.0)
    m = rng.gamma(2.0, 20.0, n)
    got = model.predict(x, t_x, T, m)
    # the inputs as predict takes them (single precision), the exact formulas in double; figures below single
    # precision's smallest normal number (1.2e-38) come out as 0 or subnormal
    x, t_x, T, m = (v.astype(PRECISION).astype(np.float64) for v in (x, t_x, T, m))
    tiny = np.finfo(PRECISION).tiny
    expected_g, discounted_g = model.exact_g(x, model.alpha / (model.alpha + T), exact_g(model.r, model.a, model.b))
    alive = model.p_alive(x, t_x, T)
    assert got.clv.dtype == PRECISION
    np.testing.assert_allclose(got.expected_purchases, alive * expected_g, rtol=5e-5, atol=tiny)
    np.testing.assert_allclose(got.p_alive, alive, rtol=2e-7, atol=tiny)  # single precision's rounding
    np.testing.assert_allclose(got.clv, alive * discounted_g * model.expected_order_value(x, m), rtol=5e-5, atol=tiny)
    # the series the service sums for x >= TABLE_X, against scipy's hyp2f1
    u = rng.uniform(0, 30, 200)
    big = rng.integers(TABLE_X, 2000, 200).astype(float)
    np.testing.assert_allclose(g_series(big, u, model.r, model.a, model.b),
                               exact_g(model.r, model.a, model.b)(big, u), rtol=1e-10)


def test_the_tabulated_fast_path_equals_the_general_path(cdnow_store: Path) -> None:
    # a batch whose x are all tabulated takes predict's fused path; one x beyond the table sends the same
    # customers down the general path (per-figure functions, series for the large x)
    model: ClvModel = _artefact(cdnow_store).clv
    rng = np.random.default_rng(11)
    n = 5000
    x = rng.integers(0, TABLE_X, n).astype(float)
    T = rng.uniform(0, 150, n)
    T[:3] = 0.0  # w = 1: the table's last grid point
    t_x = np.where(x > 0, T * rng.uniform(0, 1, n), 0.0)
    t_x[3] = T[3]  # a purchase on the last day
    m = rng.gamma(2.0, 20.0, n)
    fast = model.predict(x, t_x, T, m)
    general = model.predict(*(np.append(v, extra) for v, extra in ((x, TABLE_X), (t_x, 1.0), (T, 2.0), (m, 5.0))))
    for name, a, b in zip(fast._fields, fast, general):
        np.testing.assert_allclose(a, b[:-1], rtol=1e-12, atol=1e-300, err_msg=name)
    assert np.isfinite(fast.clv).all() and (fast.p_alive >= 0).all() and (fast.p_alive <= 1).all()


def test_the_batch_validity_shortcut_agrees_with_the_row_checks() -> None:
    rng = np.random.default_rng(12)
    n = 50
    x = rng.integers(0, 30, n).astype(float)
    T = rng.uniform(1, 50, n)
    t_x = T * rng.uniform(0, 1, n)
    m = rng.gamma(2.0, 10.0, n)
    assert all_valid(x, t_x, T, m) and (input_problems(x, t_x, T, m) < 0).all()
    bad_values = [(0, 1.5), (0, -1.0), (0, np.nan), (1, np.nan), (1, -0.5), (1, 1e9), (2, np.nan), (2, np.inf),
                  (2, -1.0), (3, -1.0), (3, np.nan), (3, np.inf)]
    for column, value in bad_values:
        columns = [c.copy() for c in (x, t_x, T, m)]
        columns[column][7] = value
        assert not all_valid(*columns), (column, value)
        assert input_problems(*columns)[7] >= 0, (column, value)


def test_p_alive_and_order_value_are_the_published_formulas() -> None:
    model = ClvModel(r=0.243, alpha=4.414, a=0.793, b=2.426, p=6.25, q=3.74, v=15.44)
    # FHL 2005: a customer with no repeat purchase is alive for sure; x=2, t_x=30.43, T=38.86 (their example)
    assert model.p_alive(np.array([0.0]), np.array([0.0]), np.array([38.86]))[0] == 1.0
    expected = 1 / (1 + 0.793 / (2.426 + 2 - 1) * ((4.414 + 38.86) / (4.414 + 30.43)) ** (0.243 + 2))
    assert model.p_alive(np.array([2.0]), np.array([30.43]), np.array([38.86]))[0] == pytest.approx(expected)
    assert model.expected_order_value(np.array([0.0]), np.array([0.0]))[0] == pytest.approx(15.44 * 6.25 / 2.74)


@pytest.mark.parametrize("which", ["bgnbd", "gamma_gamma"])
def test_likelihood_gradients_match_finite_differences(which: str) -> None:
    from scipy.optimize import approx_fprime

    rng = np.random.default_rng(3)
    x = rng.integers(1 if which == "gamma_gamma" else 0, 20, 50).astype(float)
    if which == "bgnbd":
        T = rng.uniform(1, 40, 50)
        t_x = np.where(x > 0, T * rng.uniform(0, 1, 50), 0.0)
        params = np.array([0.3, 5.0, 0.8, 2.5])
        value = lambda p: bgnbd_log_likelihood(p, x, t_x, T).sum()  # noqa: E731
        gradient = bgnbd_gradient(params, x, t_x, T).sum(axis=1)
    else:
        m = rng.gamma(2.0, 20.0, 50)
        params = np.array([6.0, 3.5, 15.0])
        value = lambda p: gamma_gamma_log_likelihood(p, x, m).sum()  # noqa: E731
        gradient = gamma_gamma_gradient(params, x, m).sum(axis=1)
    np.testing.assert_allclose(gradient, approx_fprime(params, value, 1e-7), rtol=1e-4, atol=1e-4)


def test_invalid_clv_inputs_are_named() -> None:
    x = np.array([1.0, 1.5, 2.0, 1.0, 1.0])
    t_x = np.array([1.0, 1.0, 9.0, 1.0, 1.0])
    T = np.array([5.0, 5.0, 5.0, np.nan, 5.0])
    m = np.array([3.0, 3.0, 3.0, 3.0, -1.0])
    assert input_problems(x, t_x, T, m).tolist() == [-1, 0, 1, 1, 3]


def test_training_report_shows_clv_and_basket_metrics(cdnow_store: Path) -> None:
    html = (_artefact(cdnow_store).path / "report.html").read_text()
    assert "<h2>Customer lifetime value</h2>" in html and "fitted on purchases up to 1997-09-30" in html
    assert "<h2>Basket metrics</h2>" in html and "Days between purchases" in html


@pytest.mark.parametrize("unit", ["days", "weeks"])
def test_left_out_inputs_are_derived_exactly_as_the_recipe_computes_them(cdnow_store: Path, unit: str) -> None:
    # CustomerAge from Recency and LastPurchaseTime (any log); RepeatPurchases from Frequency only for a log
    # without invoices (CDNOW: a purchase is a purchase day), not for Online Retail (invoices)
    import dataclasses

    from segmentation_core.recipe import Recipe, aggregate
    from segmentation_core.tables import read_table
    from training_job.config import load_preset

    logs = {"cdnow": (cdnow_store / "cdnow_sample.txt", Recipe.from_dict(_artefact(cdnow_store).recipe)),
            "online retail": (REPO / "data" / "online_retail_sample.csv.gz", load_preset("transactions").recipe())}
    for name, (path, recipe) in logs.items():
        table, _ = aggregate(read_table(path), dataclasses.replace(recipe, time_unit=unit))
        numeric = {c: table[c].to_numpy(np.float64) for c in ("Recency", "Frequency")}
        numeric |= {c: table[c].to_numpy(PRECISION) for c in ("LastPurchaseTime", "CustomerAge", "RepeatPurchases")}
        days = {"days": 1, "weeks": 7}[unit]
        counts_days = not recipe.invoice
        assert derivable_inputs(("Recency", "Frequency", "Monetary"), counts_days) == (
            {"CustomerAge", "RepeatPurchases"} if counts_days else {"CustomerAge"}), name
        assert np.array_equal(derive_input("CustomerAge", numeric, days), numeric["CustomerAge"]), name
        repeats_equal = np.array_equal(derive_input("RepeatPurchases", numeric, days), numeric["RepeatPurchases"])
        assert repeats_equal == counts_days, name
    assert derivable_inputs(("Monetary",), True) == frozenset()


def test_a_fit_that_sees_no_dropout_says_p_alive_tells_little() -> None:
    # The bundled Online Retail sample (one year): BG/NBD's maximum likelihood puts the chance of leaving after
    # a purchase near zero, so every segment's mean P(alive) is ~100% (a "Lost" segment too). CDNOW's published
    # fit (a 20% chance) gets only the general note on one-time buyers.
    import numpy as np

    from segmentation_core.clv import NEGLIGIBLE_DROPOUT, dropout_caveat
    from segmentation_core.recipe import aggregate
    from segmentation_core.tables import read_table
    from training_job.clv_fit import fit_bgnbd
    from training_job.config import load_preset

    table, _ = aggregate(read_table(REPO / "data" / "online_retail_sample.csv.gz"), load_preset("transactions").recipe())
    fitted = fit_bgnbd(*(table[c].to_numpy(np.float64) for c in ("RepeatPurchases", "LastPurchaseTime", "CustomerAge")))
    assert fitted["a"] / (fitted["a"] + fitted["b"]) < NEGLIGIBLE_DROPOUT
    retail = dropout_caveat(fitted)
    assert "almost no dropout" in retail and "says little about churn" in retail and "never bought again" in retail
    cdnow = dropout_caveat(PUBLISHED_BGNBD)
    assert "never bought again" in cdnow and "almost no dropout" not in cdnow

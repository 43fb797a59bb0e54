"""CLV bench: fit time on Online Retail, the CDNOW hold-out check of Fader, Hardie and Lee (2005), and
PredictStream throughput with and without the CLV figures.

    python bench/bench_clv.py [--quick]

1. Fit: BG/NBD + Gamma-Gamma on the full Online Retail log's 4,338 customers (days), best of 3, and the
   tables the scoring side interpolates.
2. Hold-out: CDNOW 1/10 sample, calibrated on 1997-01-01..09-30 (weeks 1-39), BG/NBD's expected repeat
   purchases in weeks 40-78 per customer (exact, scipy's hyp2f1), against the purchases the customers
   made, averaged per number of calibration repeat purchases (0..7+) as in the paper's figure.
3. Throughput: the CDNOW sample model served by ``python -m scoring_service`` (a subprocess); one stream of
   the customers repeated to 200,000 rows (10,000-row batches), sent with the four CLV input columns (the
   answer has the CLV columns) and without them; rows/s and the server's CPU per batch, best of 3.
Every figure is printed with the machine's load average (``os.getloadavg``).
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # also runnable as a plain script
    sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from bench.bench_scoring import _stream_once, start_server  # noqa: E402
from segmentation_core.clv import INPUTS  # noqa: E402
from segmentation_core.recipe import clean_log, customer_table  # noqa: E402
from segmentation_core.store import ModelStore  # noqa: E402
from segmentation_core.tables import read_table  # noqa: E402
from training_job.clv_fit import exact_g, fit_bgnbd, fit_clv, fit_gamma_gamma  # noqa: E402
from training_job.config import load_config, load_preset  # noqa: E402
from training_job.train import train  # noqa: E402

DATASETS = ROOT.parent / "shared" / "datasets"


def load() -> str:
    """The 1-minute load average, for every printed figure."""
    return f"load {os.getloadavg()[0]:.2f}"


def cdnow_sample(folder: Path) -> Path:
    """CDNOW_sample.txt in the master file's layout (its header; the sample's running id dropped)."""
    header = (DATASETS / "CDNOW_master.txt").read_text().splitlines()[0]
    rows = [header] + [" ".join(line.split()[i] for i in (0, 2, 3, 4))
                       for line in (DATASETS / "CDNOW_sample.txt").read_text().splitlines()]
    path = folder / "cdnow_sample.txt"
    path.write_text("\n".join(rows) + "\n")
    return path


def cdnow_config(folder: Path) -> Path:
    """The transactions-cdnow preset plus the reference's [clv] section."""
    path = folder / "cdnow.toml"
    path.write_text((ROOT / "training_job" / "presets" / "transactions-cdnow.toml").read_text()
                    + '\n[clv]\ncalibration_end = "1997-09-30"\ntime_unit = "weeks"\n')
    return path


def bench_fit(repeats: int) -> None:
    """Fit time on the full Online Retail log."""
    log = clean_log(read_table(DATASETS / "online_retail.csv.gz"), load_preset("transactions").recipe())
    customers, _ = customer_table(log)
    x, t_x, T, m = (customers[c].to_numpy() for c in INPUTS)
    times = {"bgnbd": [], "gamma_gamma": [], "all": []}
    for _ in range(repeats):
        started = time.perf_counter()
        fit_bgnbd(x, t_x, T)
        times["bgnbd"].append(time.perf_counter() - started)
        started = time.perf_counter()
        fit_gamma_gamma(x, m)
        times["gamma_gamma"].append(time.perf_counter() - started)
        started = time.perf_counter()
        model = fit_clv(customers, time_unit="days", horizon_days=365, discount_rate_annual=0.1,
                        calibration_end=None)
        times["all"].append(time.perf_counter() - started)
    print(f"\n## CLV fit, Online Retail ({len(customers):,} customers, {int((x > 0).sum()):,} repeat), best of "
          f"{repeats}")
    print(f"BG/NBD {min(times['bgnbd']):.2f} s, Gamma-Gamma {min(times['gamma_gamma']):.2f} s, both + scoring "
          f"tables {min(times['all']):.2f} s ({load()})")
    print(f"BG/NBD r={model.r:.4g} alpha={model.alpha:.4g} a={model.a:.4g} b={model.b:.4g}; "
          f"Gamma-Gamma p={model.p:.4g} q={model.q:.4g} v={model.v:.4g}")


def bench_holdout(folder: Path) -> None:
    """The paper's hold-out check: weeks 40-78, per calibration frequency."""
    config = load_config(cdnow_config(folder))
    log = clean_log(read_table(cdnow_sample(folder)), config.recipe())
    calibration, _ = customer_table(log, "1997-10-01")
    model = fit_clv(calibration, time_unit="weeks", horizon_days=273, discount_rate_annual=0.0,
                    calibration_end="1997-09-30")
    x, t_x, T = (calibration[c].to_numpy() for c in INPUTS[:3])
    alive = model.p_alive(x, t_x, T)
    predicted = alive * exact_g(model.r, model.a, model.b)(x, 39.0 / (model.alpha + T))
    lines = log.lines
    holdout = lines[(lines["day"] >= "1997-10-01") & (lines["day"] <= "1998-06-30")]
    actual = holdout.drop_duplicates(["customer", "day"]).groupby("customer").size()
    actual = actual.reindex(calibration.index, fill_value=0).to_numpy()
    group = np.minimum(x, 7).astype(int)
    print(f"\n## CDNOW hold-out (weeks 40-78), {len(x):,} customers; r={model.r:.3f} alpha={model.alpha:.3f} "
          f"a={model.a:.3f} b={model.b:.3f}")
    print("| repeat purchases in weeks 1-39 | customers | actual, weeks 40-78 | BG/NBD | ")
    print("|---|---|---|---|")
    for g in range(8):
        pick = group == g
        label = f"{g}+" if g == 7 else str(g)
        print(f"| {label} | {int(pick.sum())} | {actual[pick].mean():.2f} | {predicted[pick].mean():.2f} |")
    print(f"| all | {len(x)} | {actual.sum():,} total | {predicted.sum():,.0f} total |")


def bench_throughput(folder: Path, rows: int, repeats: int) -> None:
    """PredictStream rows/s with and without the CLV inputs (and so figures)."""
    store = ModelStore(folder / "store")
    config = load_config(cdnow_config(folder))
    train(cdnow_sample(folder), config, store, model_name="customers")
    customers, _ = customer_table(clean_log(read_table(folder / "cdnow_sample.txt"), config.recipe()))
    frame = pd.concat([customers.reset_index(drop=True)] * (-(-rows // len(customers))), ignore_index=True).head(rows)
    features = list(config.data.numeric)
    with_clv, without = frame[features + list(INPUTS)], frame[features]
    server = start_server(store.root, folder)
    try:
        results = {"with CLV": [], "without CLV": []}
        for _ in range(repeats):  # interleaved, so that a load change hits both alike
            results["with CLV"].append(_stream_once(server.target, with_clv, 10_000, server.proc.pid))
            results["without CLV"].append(_stream_once(server.target, without, 10_000, server.proc.pid))
    finally:
        server.stop()
    print(f"\n## PredictStream, {rows:,} rows in 10,000-row batches, CDNOW sample model, best of {repeats}")
    print("| request | rows/s | server CPU per batch | client CPU per batch |")
    print("|---|---|---|---|")
    best = {}
    for name, runs in results.items():
        rate, server_cpu, client_cpu = max(runs, key=lambda r: r[0])
        best[name] = rate
        print(f"| {name} | {rate:,.0f} | {min(r[1] for r in runs):,.0f} us | {min(r[2] for r in runs):,.0f} us |")
    print(f"with CLV / without: {best['with CLV'] / best['without CLV']:.3f} ({load()})")


def main() -> None:
    """Run the three parts."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="1 repeat, 100,000 rows")
    args = parser.parse_args()
    repeats = 1 if args.quick else 3
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        bench_fit(repeats)
        bench_holdout(folder)
        bench_throughput(folder, 100_000 if args.quick else 200_000, repeats)


if __name__ == "__main__":
    main()

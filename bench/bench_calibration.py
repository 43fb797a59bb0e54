"""Does the served confidence mean what it says? Calibration on generated tables with known segments.

    python -m bench.bench_calibration                 # both generators, 8 tables each, k-means and GMM
    python -m bench.bench_calibration --tables 4 --algorithms kmeans

Per table: the project's transform is fitted on the training rows; the model is fitted at the true k with
the training job's own algorithm settings (``training_job.algorithms``), its confidence temperature with
the training job's own cross-fit (``training_job.confidence``); then 5,000 held-out rows are scored by the
serving math (``SegmentModel.score``). Segments are matched one-to-one to the true segments (Hungarian, on
the held-out rows) and a row counts as correct when its matched segment is its true one. Expected
calibration error (ECE) = sum over 10 equal-width confidence bins of (rows in bin / rows) * |accuracy -
mean confidence|, before (the plain posterior, the old confidence) and after the fitted temperature and
smoothing.

Generators and seeds: ``segment_tables.make_suite(seed=0)`` was used while developing the temperature fit
("dev"); ``make_suite(seed=1)`` and ``mixture_tables`` (seeds from 100) were not looked at until the fit
was settled ("held-out").
"""
from __future__ import annotations

import argparse
import dataclasses
import os
import sys
import time

import numpy as np
import pandas as pd
from scipy.optimize import linear_sum_assignment

from bench.mixture_tables import make_mixture_table
from bench.segment_tables import SegmentTable, make_suite, make_table
from segmentation_core.features import FeatureSchema
from segmentation_core.segment_model import calibrate
from training_job.algorithms import algorithm_named
from training_job.confidence import fit_temperature

HELD_OUT = 5_000
BINS = 10


def ece(confidence: np.ndarray, correct: np.ndarray, bins: int = BINS) -> float:
    """Expected calibration error over equal-width confidence bins."""
    idx = np.minimum((confidence * bins).astype(int), bins - 1)
    total = 0.0
    for b in range(bins):
        m = idx == b
        if m.any():
            total += m.mean() * abs(correct[m].mean() - confidence[m].mean())
    return float(total)


def reliability(confidence: np.ndarray, correct: np.ndarray, bins: int = BINS) -> str:
    """The reliability diagram as a text table: per bin, rows, mean confidence, accuracy, gap, a bar."""
    idx = np.minimum((confidence * bins).astype(int), bins - 1)
    lines = ["  bin          rows   confidence  accuracy    gap   accuracy (#) vs confidence (|)"]
    for b in range(bins):
        m = idx == b
        if not m.any():
            lines.append(f"  [{b / bins:.1f}, {(b + 1) / bins:.1f})  {0:>7}")
            continue
        conf, acc = confidence[m].mean(), correct[m].mean()
        bar = list("#" * int(round(acc * 30)) + " " * (31 - int(round(acc * 30))))
        bar[min(30, int(round(conf * 30)))] = "|"
        lines.append(f"  [{b / bins:.1f}, {(b + 1) / bins:.1f})  {int(m.sum()):>7}   {conf:10.3f}  {acc:8.3f} "
                     f"{acc - conf:+7.3f}   {''.join(bar)}")
    return "\n".join(lines)


def _tables(generator: str, count: int) -> list[SegmentTable]:
    """``count`` tables of one generator, each with HELD_OUT extra rows at the end of a random order."""
    out = []
    if generator.startswith("segment_tables"):
        suite_seed = int(generator.rsplit(":", 1)[1])
        for t in make_suite(30, seed=suite_seed)[:count]:
            p = dict(t.params)
            p.pop("sizes")
            seed, k, n = p.pop("seed"), p.pop("k"), p.pop("n")
            out.append(make_table(seed, k, n + HELD_OUT, **p))
    else:
        rng = np.random.default_rng(100)
        for i in range(count):
            k = 2 + i % 8
            n = int(np.exp(rng.uniform(np.log(1_500), np.log(15_000))))
            out.append(make_mixture_table(100 + i, k, n + HELD_OUT, separation=float(rng.uniform(4.0, 6.0))))
    return out


def evaluate(table: SegmentTable, algorithm: str, seed: int = 0) -> dict:
    """Fit at the true k on the training rows, score the held-out rows; confidences and correctness."""
    frame, truth = table.data, table.labels
    n_train = len(frame) - HELD_OUT
    categorical = [c for c in frame.columns if not pd.api.types.is_numeric_dtype(frame[c])]
    numeric = [c for c in frame.columns if c not in categorical]
    schema = FeatureSchema.fit(frame.iloc[:n_train], numeric, categorical)
    x = schema.transform_frame(frame)
    x_train, x_test = x[:n_train], x[n_train:]
    algo = algorithm_named(algorithm)
    started = time.monotonic()
    estimator = algo.fit(x_train, table.k, seed)
    model = calibrate(algorithm, x_train, estimator.predict(x_train), np.asarray(algo.centres(estimator)),
                      algo.reorder(estimator, np.arange(table.k)))
    fit = fit_temperature(x_train, table.k, algorithm, seed)
    seconds = time.monotonic() - started
    before = model.score(x_test)
    after = dataclasses.replace(model, temperature=fit.temperature, smoothing=fit.smoothing).score(x_test)
    assert np.array_equal(before.segment, after.segment)
    k = table.k
    overlap = np.zeros((k, k))
    np.add.at(overlap, (before.segment, truth[n_train:]), 1)
    rows, cols = linear_sum_assignment(-overlap)
    mapping = np.empty(k, dtype=np.int64)
    mapping[rows] = cols
    correct = mapping[before.segment] == truth[n_train:]
    return {"table": table.name, "k": k, "n_train": n_train, "algorithm": algorithm, "seconds": seconds,
            "temperature": fit.temperature, "smoothing": fit.smoothing, "agreement": fit.agreement, "accuracy": float(correct.mean()),
            "conf_before": before.confidence, "conf_after": after.confidence, "correct": correct}


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark and print per-table figures and pooled reliability diagrams."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tables", type=int, default=8, help="tables per generator (default 8)")
    parser.add_argument("--algorithms", default="kmeans,gmm")
    parser.add_argument("--generators", default="segment_tables:0,segment_tables:1,mixture_tables",
                        help="segment_tables:<suite seed> (0 = dev) and/or mixture_tables (held-out)")
    args = parser.parse_args(argv)
    print(f"load before: {os.getloadavg()[0]:.2f} (1-min average, {os.cpu_count()} CPUs)")
    for generator in args.generators.split(","):
        role = "dev" if generator == "segment_tables:0" else "held-out"
        tables = _tables(generator, args.tables)
        for algorithm in args.algorithms.split(","):
            print(f"\n== {generator} ({role}), {algorithm}: {len(tables)} tables, {HELD_OUT:,} held-out rows each")
            print(f"  {'table':<18} {'k':>2} {'train':>6} {'acc':>6} {'conf':>6} {'ECE':>6}   {'T':>6} {'eps':>5} {'agree':>6} "
                  f"{'conf':>6} {'ECE':>6} {'fit s':>6}")
            results = []
            for table in tables:
                r = evaluate(table, algorithm)
                results.append(r)
                print(f"  {r['table']:<18} {r['k']:>2} {r['n_train']:>6} {r['accuracy']:6.3f} "
                      f"{r['conf_before'].mean():6.3f} {ece(r['conf_before'], r['correct']):6.3f}   "
                      f"{r['temperature']:6.3f} {r['smoothing']:5.3f} {r['agreement']:6.3f} {r['conf_after'].mean():6.3f} "
                      f"{ece(r['conf_after'], r['correct']):6.3f} {r['seconds']:6.1f}", flush=True)
            correct = np.concatenate([r["correct"] for r in results])
            before = np.concatenate([r["conf_before"] for r in results])
            after = np.concatenate([r["conf_after"] for r in results])
            per_table = [ece(r["conf_after"], r["correct"]) for r in results]
            print(f"  pooled ECE: {ece(before, correct):.3f} before -> {ece(after, correct):.3f} after; "
                  f"tables with ECE <= 0.05 after: {sum(e <= 0.05 for e in per_table)}/{len(per_table)}; "
                  f"median table ECE {np.median(per_table):.3f}")
            print("  reliability (pooled, after):")
            print(reliability(after, correct))
    print(f"\nload after: {os.getloadavg()[0]:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

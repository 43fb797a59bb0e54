"""The batch scoring function on complete and on partly known rows (the marginal confidence path).

    python -m bench.bench_partial [--rows 1000000] [--repeats 5]

Trains the e-commerce table (5 numeric, 5 categorical features) with the real training job, k-means and the
Gaussian mixture at k = 4, and the mall table (2 numeric features) with its preset, into a temporary store.
Then times what PredictStream and ``training_job score`` run per batch, ``FeatureSchema.transform_columns``
(asking which features were imputed) and ``SegmentModel.score`` with those rows, on ``--rows`` rows drawn
within the training ranges: all complete, and with 10% of the rows missing one feature each (a number or a
category, uniformly). Prints CPU (process time, steadier than wall on a shared machine) and wall seconds,
best and median of ``--repeats``, and the load average before and after.
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

from segmentation_core.artefact import read_artefact  # noqa: E402
from segmentation_core.store import ModelStore  # noqa: E402
from training_job.cli import main as training_main  # noqa: E402

DATASETS = ROOT.parent / "shared" / "datasets"
MODELS = {
    "ecommerce k-means": ("ecommerce_customer_behavior.csv", ["--preset", "ecommerce", "--k", "4"]),
    "ecommerce GMM": ("ecommerce_customer_behavior.csv", ["--preset", "ecommerce", "--k", "4", "--algorithm", "gmm"]),
    "mall k-means": ("Mall_Customers.csv", ["--preset", "mall"]),
}


def _columns(schema, n: int, rng: np.random.Generator, partial_share: float):
    numeric = {f.name: rng.uniform(f.clip_low, f.clip_high, n) for f in schema.numeric}
    categorical = {c.name: list(rng.choice(np.array(c.levels, dtype=object), n)) for c in schema.categorical}
    rows = rng.choice(n, int(n * partial_share), replace=False)
    names = schema.feature_names
    for row, which in zip(rows.tolist(), rng.integers(0, len(names), rows.size).tolist()):
        if names[which] in numeric:
            numeric[names[which]][row] = np.nan
        else:
            categorical[names[which]][row] = ""
    return numeric, categorical


def _time(schema, model, numeric, categorical, n: int) -> tuple[float, float]:
    wall, cpu = time.perf_counter(), time.process_time()
    imputed: dict[str, np.ndarray] = {}
    x, errors = schema.transform_columns(numeric, categorical, n, imputed=imputed)
    model.score(x, schema.partial_rows(imputed, n, errors))
    return time.process_time() - cpu, time.perf_counter() - wall


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    load_before = os.getloadavg()
    rng = np.random.default_rng(0)
    with tempfile.TemporaryDirectory() as folder:
        for label, (data, flags) in MODELS.items():
            store = Path(folder) / label.replace(" ", "-")
            assert training_main(["train", "--store", str(store), "--data", str(DATASETS / data), *flags]) == 0
            s = ModelStore(store)
            art = read_artefact(s.version_dir("customers", s.current("customers")))
            for share in (0.0, 0.1):
                numeric, categorical = _columns(art.schema, args.rows, rng, share)
                runs = sorted(_time(art.schema, art.model, numeric, categorical, args.rows)
                              for _ in range(args.repeats))
                cpu, wall = [r[0] for r in runs], sorted(r[1] for r in runs)
                print(f"{label:18} {'complete' if not share else '10% partly known':17} "
                      f"CPU best {cpu[0]:.3f} s, median {cpu[len(cpu) // 2]:.3f} s; "
                      f"wall best {wall[0]:.3f} s, median {wall[len(wall) // 2]:.3f} s per {args.rows:,} rows")
    print(f"load average before / after: {load_before[0]:.1f} / {os.getloadavg()[0]:.1f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

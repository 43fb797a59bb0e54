"""Training job speed and memory against issue 2's targets, measured in one run.

1. The whole training job (read, features, k search over 2..10, final fit, stability, naming, report,
   publish) on 1,000,000 customers x 7 numeric features, against one sklearn
   ``KMeans(n_clusters=6, n_init=10)`` fit on the same matrix in the same run: ratio <= 5x; the job's peak
   memory (max RSS of its own process) < 2 GB.
2. The full Online Retail log (541,909 rows, ../shared/datasets) to a published RFM model: < 60 s.

Each measured job runs in a fresh subprocess, so its max RSS is its own.
    .venv/bin/python bench/bench_training.py [--rows 1000000] [--skip-retail]
"""
from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd

REPO = Path(__file__).resolve().parents[1]
RETAIL = REPO.parent / "shared" / "datasets" / "online_retail.csv.gz"

_CHILD = r"""
import json, resource, sys, time
sys.path.insert(0, {repo!r})
kind = sys.argv[1]
t0 = time.perf_counter()
if kind == "kmeans":
    import numpy as np, pandas as pd
    from sklearn.cluster import KMeans
    x = pd.read_parquet(sys.argv[2]).drop(columns=["customer_id"]).to_numpy()
    x = (x - x.mean(0)) / x.std(0)
    t0 = time.perf_counter()
    KMeans(n_clusters=6, n_init=10, random_state=0).fit(x)
else:
    from training_job.cli import main
    code = main(sys.argv[2:])
    assert code == 0, code
print(json.dumps({{"seconds": time.perf_counter() - t0,
                  "max_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}}))
"""


def _run(*args: str) -> dict:
    """Run the child script in a fresh interpreter; returns its seconds and max RSS."""
    code = _CHILD.format(repo=str(REPO))
    out = subprocess.run([sys.executable, "-c", code, *args], cwd=REPO, capture_output=True, text=True)
    if out.returncode != 0:
        raise SystemExit(f"{args[0]} failed:\n{out.stderr[-3000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def _customers(rows: int, path: Path) -> None:
    """A 1M-customer table: 6 segments in 7 numeric features, some skewed like money and counts."""
    rng = np.random.default_rng(0)
    centres = rng.uniform(-6, 6, size=(6, 7))
    label = rng.integers(0, 6, rows)
    x = centres[label] + rng.normal(0, 1, size=(rows, 7))
    frame = pd.DataFrame(x, columns=[f"f{i}" for i in range(7)])
    frame["f0"] = np.exp(frame["f0"] / 3) * 100  # spend-like, skewed
    frame["f1"] = np.round(np.exp(frame["f1"] / 4) * 5)  # count-like
    frame.insert(0, "customer_id", np.arange(rows).astype(str))
    frame.to_parquet(path, index=False)


def main() -> int:
    """Measure and print the figures and ratios."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--skip-retail", action="store_true")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp) / "customers.parquet"
        _customers(args.rows, data)
        kmeans = _run("kmeans", str(data))
        job = _run("train", "train", "--data", str(data), "--preset", "auto", "--store", str(Path(tmp) / "s"))
        rows = [("KMeans(6, n_init=10) fit", f"{kmeans['seconds']:.2f} s", ""),
                (f"training job, {args.rows:,} x 7, k 2..10", f"{job['seconds']:.2f} s", ""),
                ("  ratio", f"{job['seconds'] / kmeans['seconds']:.2f}x", "<= 5x",
                 job["seconds"] / kmeans["seconds"] <= 5),
                ("  peak memory (max RSS)", f"{job['max_rss_mb']:.0f} MB", "< 2048 MB", job["max_rss_mb"] < 2048)]
        if not args.skip_retail and RETAIL.exists():
            retail = _run("train", "train", "--data", str(RETAIL), "--preset", "transactions",
                          "--store", str(Path(tmp) / "r"))
            rows.append(("Online Retail 541,909 rows -> published", f"{retail['seconds']:.1f} s", "< 60 s",
                         retail["seconds"] < 60))
    for row in rows:
        verdict = "" if len(row) < 4 else ("PASS" if row[3] else "MISS")
        print(f"{row[0]:45s} {row[1]:>12s}  {row[2]:10s} {verdict}")
    print(f"load average: {resource.getrusage(resource.RUSAGE_CHILDREN).ru_utime:.0f} s child CPU; "
          f"{open('/proc/loadavg').read().split()[0]} (1 min)")
    return 0


if __name__ == "__main__":
    sys.exit(main())

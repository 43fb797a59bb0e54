"""Study: can a k selector *learned* from the k search's curves beat the valley rule on another generator?

    python -m bench.bench_k_rule --generator latent --seeds 0,1,2 --dump /tmp/latent-dev.jsonl
    python -m bench.bench_k_rule --generator purchase --seeds 0,1,2 --dump /tmp/purchase-dev.jsonl
    python -m bench.study_k_selector --train /tmp/latent-dev.jsonl --test /tmp/purchase-dev.jsonl
    python -m bench.study_k_selector --train /tmp/latent-dev.jsonl,/tmp/purchase-dev.jsonl --test /tmp/held-out.jsonl
    python -m bench.study_k_selector --summary /tmp/held-out.jsonl      # the valley rule's figures per family

The selector (in the spirit of meta-learned cluster-count selection, Pimentel & de Carvalho 2020) scores
every k of a table from scale-free features of that k's search row (silhouette, Calinski-Harabasz and
Davies-Bouldin relative to the table's best, the explained-variance gain and its elbow, the valley test's
distinct segments, unproven and together pairs, the smallest cluster, the valley rule's own pick) and picks
the best-scoring k: a conditional logit (one softmax over the ks of a table), L2-penalised, fitted on
tables with known segments. The principle: a rule learned on one generator must hold on a generator
designed apart from it (train on one, test on the other) before it can be trusted on customer data.
Only the dumps' search rows are used, so the comparison with the valley rule is on the same fits.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import defaultdict
from typing import Any

import numpy as np
from scipy.optimize import minimize

from training_job.k_rule import STATUS_APART, STATUS_LIKELY, STATUS_MERGED, STATUS_TINY, choose_k_rule, rule_status

#: L2 penalty on the standardised weights.
PENALTY = 1.0


def k_features(rows: list[dict[str, Any]]) -> tuple[list[int], np.ndarray, list[str]]:
    """Per searched k (rows sorted by k): the selector's scale-free features, and their names."""
    by = sorted(rows, key=lambda r: r["k"])
    ks = np.array([r["k"] for r in by])
    status = rule_status(by)
    k_rule = choose_k_rule(by)[0]
    sil = np.nan_to_num(np.array([r["silhouette"] for r in by], dtype=float), nan=-1.0)
    log_ch = np.log(np.maximum([r["calinski_harabasz"] for r in by], 1e-9))
    db = np.array([r["davies_bouldin"] for r in by], dtype=float)
    ev = np.array([r["explained_variance"] for r in by], dtype=float)
    gain = ev - np.concatenate([[0.0], ev[:-1]])
    gain_next = np.concatenate([gain[1:], [gain[-1]]])
    pairs = [r.get("valley_pairs") or [] for r in by]
    n_pairs = np.array([max(len(p), 1) for p in pairs], dtype=float)
    features = {
        "silhouette": sil,
        "silhouette below best": sil - sil.max(),
        "log CH below best": log_ch - log_ch.max(),
        "DB above best": db - db.min(),
        "explained-variance gain": gain,
        "gain elbow (log gain / next)": np.log(np.maximum(gain, 1e-6) / np.maximum(gain_next, 1e-6)),
        "distinct segments / k": np.array([r["n_distinct"] for r in by]) / ks,
        "all apart (rule)": np.array([status[k] in (STATUS_APART, STATUS_MERGED, STATUS_LIKELY) for k in ks], float),
        "tiny group": np.array([status[k] == STATUS_TINY for k in ks], float),
        "log smallest share": np.log(np.maximum([r["smallest_share"] for r in by], 1e-4)),
        "pairs together share": np.array([sum(q["verdict"] == "together" for q in p) for p in pairs]) / n_pairs,
        "pairs untested share": np.array([sum(q["verdict"] == "untested" for q in p) for p in pairs]) / n_pairs,
        "is the valley rule's k": (ks == k_rule).astype(float),
        "distance to the rule's k": np.abs(ks - k_rule).astype(float),
        "above the rule's k": (ks > k_rule).astype(float),
        "log k": np.log(ks),
        "largest k searched": (ks == ks.max()).astype(float),
    }
    return [int(k) for k in ks], np.column_stack(list(features.values())), list(features)


def fit(tables: list[dict[str, Any]], penalty: float = PENALTY) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The conditional logit's (weights, feature means, feature scales) from tables with known k."""
    data = [(k_features(t["rows"]), t["k"]) for t in tables]
    stacked = np.vstack([F for (_, F, _), _ in data])
    mu, sd = stacked.mean(axis=0), stacked.std(axis=0) + 1e-9
    cases = [((F - mu) / sd, ks.index(k)) for (ks, F, _), k in data if k in ks]

    def loss(w: np.ndarray) -> tuple[float, np.ndarray]:
        value, grad = penalty * float(w @ w), 2 * penalty * w
        for Z, truth in cases:
            s = Z @ w
            p = np.exp(s - s.max())
            p /= p.sum()
            value -= float(np.log(p[truth] + 1e-300))
            grad = grad - (Z[truth] - p @ Z)
        return value, grad

    w = minimize(loss, np.zeros(stacked.shape[1]), jac=True, method="L-BFGS-B").x
    return w, mu, sd


def pick(model: tuple[np.ndarray, np.ndarray, np.ndarray], rows: list[dict[str, Any]]) -> int:
    """The selector's k for one table's search rows."""
    w, mu, sd = model
    ks, F, _ = k_features(rows)
    return ks[int(np.argmax(((F - mu) / sd) @ w))]


def report(tables: list[dict[str, Any]], model: tuple[np.ndarray, np.ndarray, np.ndarray], label: str) -> None:
    """Exact k, within one and mean ARI per family, for the selector and the valley rule."""
    stats: dict[str, list[tuple[bool, bool, float, bool, bool, float, float]]] = defaultdict(list)
    for t in tables:
        if not t.get("findable", True):
            continue
        k, rule_k = pick(model, t["rows"]), t["chosen"]
        ari = {int(a): v for a, v in t["ari_at_k"].items()}
        entry = (k == t["k"], abs(k - t["k"]) <= 1, ari.get(k, np.nan), rule_k == t["k"], abs(rule_k - t["k"]) <= 1,
                 ari.get(rule_k, np.nan), ari.get(t["k"], np.nan))
        stats[f"{t['name'].split('-')[0]} {t['family']}"].append(entry)
        stats["all"].append(entry)
    print(f"\n{label}")
    print(f"{'family':<24} {'tables':>6} {'selector exact / within 1 / ARI':>34} {'valley rule exact / within 1 / ARI':>38} "
          f"{'ARI at true k':>14}")
    for family, entries in sorted(stats.items(), key=lambda kv: (kv[0] == "all", kv[0])):
        a = np.array(entries, dtype=float)
        print(f"{family:<24} {len(a):>6} {a[:, 0].mean():>14.0%} {a[:, 1].mean():>9.0%} {np.nanmean(a[:, 2]):>9.3f} "
              f"{a[:, 3].mean():>18.0%} {a[:, 4].mean():>9.0%} {np.nanmean(a[:, 5]):>9.3f} {np.nanmean(a[:, 6]):>14.3f}")


def summarise(tables: list[dict[str, Any]]) -> None:
    """The valley rule's figures per generator and family from dumps (as bench_k_rule prints them per run):
    exact k, within one, mean ARI of its model, k-means told the true k, a third's k within one."""
    groups: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for t in tables:
        generator = t["name"].split("-")[0]
        key = f"{generator} {t['family']}" if t.get("findable", True) else "not findable (not counted)"
        groups[key].append(t)
        if t.get("findable", True):
            groups[f"{generator} all counted"].append(t)
            groups["both generators, all counted"].append(t)
    print(f"{'generator / family':<30} {'tables':>6} {'exact k':>8} {'within 1':>9} {'mean ARI':>9} {'k-means@true k':>15} "
          f"{'third within 1':>15}")
    for key, ts in sorted(groups.items(), key=lambda kv: ("both" in kv[0], "not findable" in kv[0], kv[0])):
        k, chosen = np.array([t["k"] for t in ts]), np.array([t["chosen"] for t in ts])
        third = np.array([t["k_third"] for t in ts])
        print(f"{key:<30} {len(ts):>6} {np.mean(chosen == k):>8.0%} {np.mean(abs(chosen - k) <= 1):>9.0%} "
              f"{np.mean([t['ari'] for t in ts]):>9.3f} {np.mean([t['ceiling'] for t in ts]):>15.3f} "
              f"{np.mean(abs(third - chosen) <= 1):>15.0%}")


def load(paths: str) -> list[dict[str, Any]]:
    """Tables from comma-separated JSON-lines dumps of ``bench_k_rule --dump``."""
    return [json.loads(line) for path in paths.split(",") for line in open(path, encoding="utf-8") if line.strip()]


def main(argv: list[str] | None = None) -> int:
    """Command-line entry."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--train", help="comma-separated dumps to fit the selector on")
    parser.add_argument("--test", help="comma-separated dumps to score it on")
    parser.add_argument("--summary", help="comma-separated dumps: only the valley rule's figures per family")
    parser.add_argument("--penalty", type=float, default=PENALTY, help=f"L2 penalty (default {PENALTY})")
    args = parser.parse_args(argv)
    if args.summary:
        summarise(load(args.summary))
        return 0
    if not (args.train and args.test):
        parser.error("--train and --test are required (or --summary)")
    train, test = load(args.train), load(args.test)
    model = fit(train, args.penalty)
    report(test, model, f"selector fitted on {len(train)} tables ({args.train}), scored on {len(test)} ({args.test})")
    _, _, names = k_features(train[0]["rows"])
    print("\nweights (standardised features, largest first):")
    for name, w in sorted(zip(names, model[0]), key=lambda nw: -abs(nw[1])):
        print(f"  {name:<32} {w:+.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

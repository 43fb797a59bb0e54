"""Benchmark of the automatic choice of k against the classic criteria, on generated customer tables.

    python -m bench.bench_k_rule            # 30 tables, about a minute on 2 cores
    python -m bench.bench_k_rule --quick    # 8 tables
    python -m bench.bench_k_rule --big      # times search_k on 1,000,000 x 7 against one KMeans(6, n_init=10)
    python -m bench.bench_k_rule --generator latent --seeds 1000,1001 --per-family 2
    python -m bench.bench_k_rule --generator purchase --seeds 1000,1001 --per-family 2 --max-rows 20000

The two independent generators (``bench/gen_latent_profiles.py``, ``bench/gen_purchase_sim.py``) are
reported per family (overlap, subset, irrelevant, categorical, sizes). Their tables' difficulty is set on
a stated principle (``bench/separation.py``: segments findable when k is known, to a band per family;
the "pilot" column is that recovery, measured apart from the table). Seeds 0-199 are development seeds;
7000 and above are held out (the README says which were run, once).

Every table is transformed by the project's own transform (``segmentation_core.features.FeatureSchema``:
clip, log1p / Yeo-Johnson on skewed columns, standard scaling, weighted one-hot), then every rule picks
a k from the *same* search rows, and each pick is scored by the ARI of k-means at that k against the
true segments. "k-means @ true k" is the ceiling: the ARI k-means reaches when told the true k.
"""

from __future__ import annotations

import argparse
import json
import logging
import resource
import sys
import time
import tracemalloc
from collections.abc import Callable
from typing import Any

import numpy as np
import pandas as pd
from kneed import KneeLocator
from sklearn.cluster import KMeans
from sklearn.metrics import adjusted_rand_score

from bench import gen_latent_profiles, gen_purchase_sim
from bench.segment_tables import SegmentTable, make_suite, make_table
from segmentation_core.features import FeatureSchema
from training_job.k_selection import choose_k_rule, search_k

K_VALUES = list(range(2, 11))

logger = logging.getLogger("bench_k_rule")


def transform(table: SegmentTable) -> tuple[np.ndarray, list[slice]]:
    """The training job's transform, fitted on the table itself, and its categorical columns' one-hot blocks."""
    frame = table.data
    categorical = [c for c in frame.columns if not pd.api.types.is_numeric_dtype(frame[c])]
    numeric = [c for c in frame.columns if c not in categorical]
    schema = FeatureSchema.fit(frame, numeric=numeric, categorical=categorical)
    return schema.transform_frame(frame), schema.categorical_blocks


def _elbow(rows: list[dict[str, Any]]) -> int:
    ks = [r["k"] for r in rows]
    knee = KneeLocator(ks, [r["inertia"] for r in rows], curve="convex", direction="decreasing").knee
    return int(knee) if knee is not None else ks[0]


BASELINES: dict[str, Callable[[list[dict[str, Any]]], int]] = {
    "silhouette argmax": lambda rows: max(rows, key=lambda r: r["silhouette"])["k"],
    "elbow (kneed)": _elbow,
    "Calinski-Harabasz argmax": lambda rows: max(rows, key=lambda r: r["calinski_harabasz"])["k"],
    "Davies-Bouldin argmin": lambda rows: min(rows, key=lambda r: r["davies_bouldin"])["k"],
    "spherical BIC argmin": lambda rows: min(rows, key=lambda r: r["bic_spherical"])["k"],
}


def run_suite(tables: list[SegmentTable]) -> None:
    """Print exact / within-one / mean ARI for the valley rule, the baselines and the true-k ceiling."""
    names = ["valley rule (search_k)", *BASELINES, "k-means @ true k (ceiling)"]
    picks: dict[str, list[int]] = {name: [] for name in names}
    aris: dict[str, list[float]] = {name: [] for name in names}
    started = time.perf_counter()
    misses: list[str] = []
    for table in tables:
        X, blocks = transform(table)
        t0 = time.perf_counter()
        result = search_k(X, K_VALUES, seed=0, categorical_blocks=blocks)
        search_seconds = time.perf_counter() - t0
        cache: dict[int, np.ndarray] = {}

        def labels_at(k: int, cache: dict[int, np.ndarray] = cache, X: np.ndarray = X) -> np.ndarray:
            if k not in cache:
                cache[k] = KMeans(n_clusters=k, n_init=10, random_state=0).fit_predict(X)
            return cache[k]

        picks["valley rule (search_k)"].append(result.chosen_k)
        aris["valley rule (search_k)"].append(
            adjusted_rand_score(table.labels, result.chosen_model.predict(X))
        )
        for name, rule in BASELINES.items():
            k = rule(result.rows)
            picks[name].append(k)
            aris[name].append(adjusted_rand_score(table.labels, labels_at(k)))
        picks["k-means @ true k (ceiling)"].append(table.k)
        aris["k-means @ true k (ceiling)"].append(adjusted_rand_score(table.labels, labels_at(table.k)))
        distinct = " ".join(str(r["n_distinct"]) for r in result.rows)
        if result.chosen_k != table.k:
            at = {r["k"]: r["rule_status"] for r in result.rows}
            misses.append(
                f"{table.name}: true k={table.k}, chose {result.chosen_k} "
                f"(k={table.k}: {at.get(table.k, 'not searched')}; "
                f"ARI {aris['valley rule (search_k)'][-1]:.3f} vs {aris['k-means @ true k (ceiling)'][-1]:.3f} "
                f"at the true k)"
            )
        print(
            f"{table.name:<18} d={X.shape[1]:<2} true k={table.k} valley={result.chosen_k} "
            f"sil={picks['silhouette argmax'][-1]} DB={picks['Davies-Bouldin argmin'][-1]} "
            f"ARI={aris['valley rule (search_k)'][-1]:.3f}/{aris['k-means @ true k (ceiling)'][-1]:.3f} "
            f"n_distinct(k=2..10)=[{distinct}] search {search_seconds:.1f}s",
            flush=True,
        )
    truth = np.array([t.k for t in tables])
    print(f"\n{len(tables)} tables, true k {truth.min()}..{truth.max()}, "
          f"{min(len(t.labels) for t in tables)}-{max(len(t.labels) for t in tables)} rows, "
          f"{time.perf_counter() - started:.0f}s")
    print(f"{'rule':<28} {'exact k':>8} {'within 1':>9} {'mean ARI':>9}")
    for name in names:
        k = np.array(picks[name])
        print(f"{name:<28} {np.mean(k == truth):>8.0%} {np.mean(np.abs(k - truth) <= 1):>9.0%} "
              f"{np.mean(aris[name]):>9.3f}")
    print(f"\nvalley rule misses ({len(misses)}):" if misses else "\nvalley rule misses: none")
    for line in misses:
        print(f"  {line}")
    _ = choose_k_rule  # the rule search_k applies; named here so readers find it


def run_families(tables: list[Any], business_range: tuple[int, int] | None = None,
                 dump: str | None = None) -> dict[str, dict[str, float]]:
    """Per generator family: exact k, within one, mean ARI of the rule's model and of k-means at the true k
    (``dump``: also write one JSON line per table with its search rows, for studying rules offline)."""
    by_family: dict[str, list[tuple[int, int, float, float, bool]]] = {}
    out = open(dump, "a", encoding="utf-8") if dump else None
    baseline_hits: dict[str, dict[str, list[bool]]] = {}
    thirds: dict[str, list[bool]] = {}
    pilots: dict[str, list[float]] = {}
    started = time.perf_counter()
    apart = [t for t in tables if not t.params.get("findable", True)]
    if apart:
        print(f"{len(apart)} tables whose segments k-means told the true k does not find to their family's band "
              f"(no separation made them findable): run, shown, not counted")
    for table in tables:
        X, blocks = transform(table)
        t0 = time.perf_counter()
        result = search_k(X, K_VALUES, seed=0, business_range=business_range, categorical_blocks=blocks)
        seconds = time.perf_counter() - t0
        ari = adjusted_rand_score(table.labels, result.chosen_model.predict(X))
        # The ceiling: k-means told the true k (fitted on at most 30,000 rows, like the search).
        fit_rows = X if len(X) <= 30_000 else X[np.random.default_rng(0).choice(len(X), 30_000, replace=False)]
        ceiling_model = KMeans(n_clusters=table.k, n_init=10, random_state=0).fit(fit_rows)
        ceiling = adjusted_rand_score(table.labels, ceiling_model.predict(X))
        # The same search on a random third of the customers: the k should agree within one.
        third = X[np.random.default_rng(1).choice(len(X), len(X) // 3, replace=False)]
        k_third = search_k(third, [k for k in K_VALUES if k < len(third)], seed=0,
                           business_range=business_range, categorical_blocks=blocks).chosen_k
        # How identifiable the true k is: k-means (4 starts, as the search fits) at every k searched, against the
        # truth. When another k's partition matches the truth better than the true k's, no rule that picks
        # the best partition can pick the true k (and any other pick scores what it scores here).
        ari_at_k = {r["k"]: float(adjusted_rand_score(table.labels, KMeans(n_clusters=r["k"], n_init=4, random_state=0)
                                                      .fit(fit_rows).predict(X))) for r in result.rows}
        best_is_true = max(ari_at_k, key=lambda k: ari_at_k[k]) == table.k
        family = table.family if table.params.get("findable", True) else f"({table.family}: not findable)"
        thirds.setdefault(family, []).append(abs(k_third - result.chosen_k) <= 1)
        by_family.setdefault(family, []).append((table.k, result.chosen_k, ari, ceiling, best_is_true))
        for name, rule in BASELINES.items():
            baseline_hits.setdefault(family, {}).setdefault(name, []).append(rule(result.rows) == table.k)
        pilot = table.params.get("recovery_at_true_k", float("nan"))
        pilots.setdefault(family, []).append(pilot)
        if out is not None:
            out.write(json.dumps({"name": table.name, "family": table.family, "k": table.k, "n": len(X), "d": X.shape[1],
                                  "findable": bool(table.params.get("findable", True)), "chosen": result.chosen_k,
                                  "ari": ari, "ceiling": ceiling, "k_third": k_third, "ari_at_k": ari_at_k,
                                  "rows": result.rows},
                                 default=float) + "\n")
            out.flush()
        print(f"{table.name:<40} d={X.shape[1]:<2} true k={table.k} chose {result.chosen_k} ({result.structure}; "
              f"a third: {k_third}) "
              f"ARI {ari:.3f} / k-means@true k {ceiling:.3f} (pilot {pilot:.2f})  search {seconds:.1f}s", flush=True)
    if out is not None:
        out.close()
    print(f"\n{len(tables)} tables, {time.perf_counter() - started:.0f}s")
    print(f"{'family':<30} {'tables':>6} {'exact k':>8} {'within 1':>9} {'mean ARI':>9} {'k-means@true k':>15} "
          f"{'third within 1':>15} {'pilot':>6} {'too few/many':>13} {'ARI-best k = true k':>20}")
    summary: dict[str, dict[str, float]] = {}
    counted = [f for f in by_family if not f.startswith("(")]
    rows = [r for family in counted for r in by_family[family]]
    thirds["all"] = [hit for family in counted for hit in thirds[family]]
    pilots["all"] = [p for family in counted for p in pilots[family]]
    for family, results in [*by_family.items(), ("all", rows)]:
        truth = np.array([r[0] for r in results])
        chosen = np.array([r[1] for r in results])
        summary[family] = {"exact": float(np.mean(chosen == truth)), "within1": float(np.mean(abs(chosen - truth) <= 1)),
                           "ari": float(np.mean([r[2] for r in results])),
                           "ceiling": float(np.mean([r[3] for r in results]))}
        f = summary[family]
        f["third_within1"] = float(np.mean(thirds[family]))
        f["pilot"] = float(np.mean(pilots[family]))
        # Which way the misses go: too few segments (merged) or too many (split).
        f["too_few"], f["too_many"] = float(np.mean(chosen < truth)), float(np.mean(chosen > truth))
        f["best_is_true"] = float(np.mean([r[4] for r in results]))
        print(f"{family:<30} {len(results):>6} {f['exact']:>8.0%} {f['within1']:>9.0%} {f['ari']:>9.3f} "
              f"{f['ceiling']:>15.3f} {f['third_within1']:>15.0%} {f['pilot']:>6.2f} "
              f"{f['too_few']:>6.0%}/{f['too_many']:<6.0%} {f['best_is_true']:>20.0%}")
    # The classic criteria on the same search rows (exact k only).
    print(f"\nexact k of the classic criteria: {' / '.join(BASELINES)}")
    for family, hits in baseline_hits.items():
        print(f"{family:<30} " + " / ".join(f"{np.mean(h):.0%}" for h in hits.values()))
    return summary


def run_big(n: int = 1_000_000) -> None:
    """Time search_k over k=2..10 on n x 7 against one KMeans(6, n_init=10) fit, and report peak memory."""
    table = make_table(seed=7, k=6, n=n, separation=4.5, categorical=False)
    X, _ = transform(table)
    del table
    t0, c0 = time.perf_counter(), time.process_time()
    KMeans(n_clusters=6, n_init=10, random_state=0).fit(X)
    kmeans_seconds, kmeans_cpu = time.perf_counter() - t0, time.process_time() - c0
    rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    tracemalloc.start()
    t0, c0 = time.perf_counter(), time.process_time()
    result = search_k(X, K_VALUES, seed=0)
    search_seconds, search_cpu = time.perf_counter() - t0, time.process_time() - c0
    _, traced_peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    rss_after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(f"X: {X.shape[0]:,} x {X.shape[1]} ({X.nbytes / 2**20:.0f} MiB), chosen k={result.chosen_k}")
    print(f"KMeans(6, n_init=10).fit: {kmeans_seconds:.2f}s")
    print(f"search_k(k=2..10):        {search_seconds:.2f}s   ratio {search_seconds / kmeans_seconds:.2f}x "
          f"(budget 5x)")
    # CPU seconds (all threads) are steadier than wall time on a machine shared with other jobs.
    print(f"CPU time: KMeans {kmeans_cpu:.2f}s, search_k {search_cpu:.2f}s, ratio {search_cpu / kmeans_cpu:.2f}x")
    print(f"peak memory: numpy/python allocations during search_k {traced_peak / 2**20:.0f} MiB; "
          f"process max RSS {rss_after / 1024:.0f} MiB (before search_k {rss_before / 1024:.0f} MiB)")


def main(argv: list[str] | None = None) -> int:
    """Command-line entry."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="8 tables instead of 30")
    parser.add_argument("--big", action="store_true", help="time search_k on 1,000,000 x 7")
    parser.add_argument("--tables", type=int, default=30, help="number of tables (default 30)")
    parser.add_argument("--seed", type=int, default=0, help="suite seed")
    parser.add_argument("--generator", choices=("segment-tables", "latent", "purchase"), default="segment-tables",
                        help="segment-tables (the generator the rule was studied on), or one of the two "
                             "independent generators, reported per family")
    parser.add_argument("--per-family", type=int, default=2, help="tables per family and seed (default 2)")
    parser.add_argument("--seeds", default="", help="comma-separated suite seeds for --generator latent|purchase")
    parser.add_argument("--families", default="", help="comma-separated families (default all)")
    parser.add_argument("--max-rows", type=int, default=None, help="cap the sizes family (default 200,000)")
    parser.add_argument("--dump", default=None, help="append one JSON line per table (search rows, truth, picks) "
                                                     "to this file, for bench/study_k_selector.py")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    if args.big:
        run_big()
        return 0
    if args.generator != "segment-tables":
        module = gen_latent_profiles if args.generator == "latent" else gen_purchase_sim
        families = tuple(args.families.split(",")) if args.families else module.FAMILIES
        seeds = [int(s) for s in args.seeds.split(",")] if args.seeds else [args.seed]
        tables = [t for seed in seeds for t in module.make_suite(seed, args.per_family, families, args.max_rows)]
        run_families(tables, dump=args.dump)
        return 0
    tables = make_suite(n_tables=8 if args.quick else args.tables, seed=args.seed)
    run_suite(tables)
    return 0


if __name__ == "__main__":
    sys.exit(main())

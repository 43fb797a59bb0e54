"""Regression tests of the automatic choice of k (training_job.k_selection)."""

from __future__ import annotations

import time

import numpy as np
import pandas as pd
import pytest
from sklearn.cluster import KMeans
from sklearn.datasets import make_blobs
from sklearn.metrics import adjusted_rand_score

from bench.segment_tables import make_table
from segmentation_core.features import FeatureSchema, FitOptions
from training_job import k_metrics, k_rule, k_selection, valleys
from training_job.algorithms import ALGORITHMS
from training_job.config import load_preset
from segmentation_core.tables import read_table
from training_job.k_selection import KSearchResult, choose_k_rule, search_k, stability_score
from training_job.table_prep import prepare_table

K_VALUES = list(range(2, 11))


def _transform(frame: pd.DataFrame) -> np.ndarray:
    categorical = [c for c in frame.columns if not pd.api.types.is_numeric_dtype(frame[c])]
    numeric = [c for c in frame.columns if c not in categorical]
    return FeatureSchema.fit(frame, numeric=numeric, categorical=categorical).transform_frame(frame)


# Small generated customer tables (skewed money, whales, a ~5-15% segment, one overlapping pair,
# correlated noise, categorical columns) on which the rule must find the true k.
CUSTOMER_TABLES = [
    dict(seed=101, k=3, n=2500, separation=6.0),
    dict(seed=102, k=4, n=2000, separation=6.5, categorical=False),
    dict(seed=103, k=5, n=3000, separation=6.5),
    dict(seed=106, k=7, n=3000, separation=7.0, unequal=False),
]


@pytest.mark.parametrize("params", CUSTOMER_TABLES, ids=lambda p: f"k{p['k']}-n{p['n']}")
def test_customer_tables_exact_k_and_ari_at_true_k_ceiling(params: dict) -> None:
    table = make_table(**params)
    X = _transform(table.data)
    result = search_k(X, K_VALUES, seed=0)
    assert result.chosen_k == table.k, [(r["k"], r["n_distinct"], r["rule_status"]) for r in result.rows]
    _assert_rows_report_what_the_rule_saw(result)
    ari = adjusted_rand_score(table.labels, result.chosen_model.predict(X))
    ceiling = adjusted_rand_score(
        table.labels, KMeans(n_clusters=table.k, n_init=10, random_state=0).fit_predict(X)
    )
    assert ari >= ceiling - 0.02


def _assert_rows_report_what_the_rule_saw(result: KSearchResult) -> None:
    statuses = {
        k_rule.STATUS_APART, k_rule.STATUS_CUT, k_rule.STATUS_UNREPAIRED,
        k_rule.STATUS_TINY, k_rule.STATUS_UNTESTED, k_rule.STATUS_MERGED,
        k_rule.STATUS_LIKELY,
    }
    for row in result.rows:
        assert row["rule_status"] in statuses
        assert len(row["valley_pairs"]) == row["n_nonempty"] * (row["n_nonempty"] - 1) // 2
        assert {p["verdict"] for p in row["valley_pairs"]} <= {"apart", "together", "untested"}
        assert row["pairs_apart"] + row["pairs_together"] + row["pairs_untested"] == len(row["valley_pairs"])
        # A merged group holds at least its smallest cluster.
        assert row["smallest_share"] <= row["smallest_segment_share"] <= 1.0
    chosen = next(r for r in result.rows if r["k"] == result.chosen_k)
    assert chosen["rule_status"] in (
        k_rule.STATUS_APART, k_rule.STATUS_MERGED, k_rule.STATUS_LIKELY,
    )


@pytest.mark.parametrize("k", [2, 4, 6, 9], ids=lambda k: f"k{k}")
def test_blobs_known_k_recovered(k: int) -> None:
    X, y = make_blobs(n_samples=3000, centers=k, n_features=5, cluster_std=1.0,
                      center_box=(-15, 15), random_state=k)
    result = search_k(X, K_VALUES, seed=0)
    assert result.chosen_k == k
    assert adjusted_rand_score(y, result.chosen_model.predict(X)) > 0.95


def test_result_rows_are_complete_and_json_able() -> None:
    import json

    X, _ = make_blobs(n_samples=1500, centers=3, n_features=4, random_state=0)
    seen: list[tuple[int, int]] = []
    result = search_k(X, [2, 3, 4, 5], seed=0, progress=lambda i, n: seen.append((i, n)))
    assert isinstance(result, KSearchResult)
    assert [r["k"] for r in result.rows] == [2, 3, 4, 5]
    assert seen == [(1, 4), (2, 4), (3, 4), (4, 4)]
    for key in ("inertia", "silhouette", "calinski_harabasz", "davies_bouldin", "n_distinct"):
        assert all(key in r for r in result.rows), key
    json.dumps(result.rows)  # the manifest stores them as they are
    assert result.rule == "valley-merge" and result.rule_explanation
    # The rule is a pure function of the rows: the bench and the manifest can re-derive it.
    assert choose_k_rule(result.rows)[0] == result.chosen_k


@pytest.mark.parametrize("k, structure", [(3, k_rule.STRUCTURE_NATURAL), (7, k_rule.STRUCTURE_CONTINUUM)],
                         ids=["the true k", "more than the true k"])
def test_k_selection_of_one_fixed_k_says_the_user_fixed_it(k: int, structure: str) -> None:
    X, _ = make_blobs(n_samples=1500, centers=3, n_features=4, random_state=0)
    result = search_k(X, [k], seed=0)
    assert (result.chosen_k, result.rule, result.structure) == (k, "fixed by the user", structure)
    assert result.rule_explanation.startswith(f"k = {k} was fixed by the user (the k of the command line, the "
                                              f"request or the configuration), not chosen by the valley-merge "
                                              f"rule: no other k was tried. At k = {k}, ")
    assert "is used" not in result.rule_explanation  # the rule's "the smallest, k=7, is used" was wrong


def test_deterministic() -> None:
    table = make_table(seed=5, k=4, n=2000, separation=6.0)
    X = _transform(table.data)
    a = search_k(X, K_VALUES, seed=3)
    b = search_k(X, K_VALUES, seed=3)
    assert a.rows == b.rows and a.chosen_k == b.chosen_k
    np.testing.assert_array_equal(a.chosen_model.predict(X), b.chosen_model.predict(X))
    assert stability_score(X, 4, seed=3) == stability_score(X, 4, seed=3)


@pytest.mark.parametrize(
    "k_values, message",
    [
        ([1, 2, 3], "k_min=1 must be >= 2"),
        ([], "k_values is empty"),
        ([2, 50], "k_max=50 must be < n_samples=50"),
        ([2, 60], "k_max=60 must be < n_samples=50"),
    ],
    ids=["k_min<2", "empty", "k_max=n", "k_max>n"],
)
def test_senseless_k_range_raises(k_values: list[int], message: str) -> None:
    X = np.random.default_rng(0).normal(size=(50, 3))
    with pytest.raises(ValueError, match=message):
        search_k(X, k_values)


def test_bad_algorithm_and_input_raise() -> None:
    X = np.random.default_rng(0).normal(size=(50, 3))
    with pytest.raises(ValueError, match="algorithm='dbscan'"):
        search_k(X, [2, 3], algorithm="dbscan")
    X[0, 0] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        search_k(X, [2, 3])


def test_large_n_subsamples_and_never_builds_n_by_n() -> None:
    # 200k x 5: an n x n silhouette would need 320 GB; the search must stay on its subsample.
    X, _ = make_blobs(n_samples=200_000, centers=3, n_features=5, random_state=1)
    started = time.perf_counter()
    result = search_k(X, [2, 3, 4], seed=0)
    elapsed = time.perf_counter() - started
    assert result.chosen_k == 3
    assert all(r["silhouette_rows"] == k_metrics.SILHOUETTE_ROWS for r in result.rows)
    assert all(r["search_rows"] == k_selection.SEARCH_ROWS for r in result.rows)
    # The final model is fitted on every row.
    assert result.chosen_model.predict(X[:10]).shape == (10,)
    assert elapsed < 30, elapsed


@pytest.mark.parametrize("algorithm", ["minibatch-kmeans", "gmm"])
def test_other_algorithms(algorithm: str) -> None:
    X, y = make_blobs(n_samples=2000, centers=4, n_features=4, center_box=(-12, 12), random_state=2)
    result = search_k(X, [2, 3, 4, 5, 6], algorithm=algorithm, seed=0)
    assert result.chosen_k == 4
    assert adjusted_rand_score(y, result.chosen_model.predict(X)) > 0.95


def test_stability_high_on_blobs_lower_on_noise() -> None:
    X, _ = make_blobs(n_samples=4000, centers=4, n_features=4, center_box=(-12, 12), random_state=3)
    assert stability_score(X, 4, seed=0) > 0.95
    noise = np.random.default_rng(0).normal(size=(4000, 4))
    assert stability_score(noise, 7, seed=0) < stability_score(X, 4, seed=0)
    with pytest.raises(ValueError, match="n_rounds=1"):
        stability_score(X, 4, n_rounds=1)


def _rows(n_distinct: list[int], repaired: tuple[int, ...] = (), **columns: list) -> list[dict]:
    rows = [
        {"k": k, "n_distinct": d, "split_merge_repaired": k in repaired}
        for k, d in zip(range(2, 2 + len(n_distinct)), n_distinct)
    ]
    for name, values in columns.items():
        for row, value in zip(rows, values):
            row[name] = value
    return rows


@pytest.mark.parametrize(
    "n_distinct, repaired, expected",
    [
        ([2, 3, 4, 4, 4, 4], (), 4),  # plateau after the true k
        ([2, 3, 4, 5, 4, 7], (), 7),  # a later k whose clusters are all distinct wins
        ([1, 1, 1], (), 2),  # nothing separated anywhere: the smallest k
        ([2, 3, 4, 5, 5], (5,), 5),  # repaired k=5 confirmed by k=6 holding 5 distinct
        ([2, 3, 4, 5, 4], (5,), 4),  # repaired k=5 not confirmed: fall back to k=4
    ],
    ids=["plateau", "later-full", "none", "repair-confirmed", "repair-unconfirmed"],
)
def test_choose_k_rule_by_hand(n_distinct: list[int], repaired: tuple[int, ...], expected: int) -> None:
    k, why = choose_k_rule(_rows(n_distinct, repaired))
    assert k == expected
    assert str(k) in why


def test_choose_k_rule_tiny_group_is_not_a_segment() -> None:
    # k=4 is all distinct only because a 1% group of extreme spenders splits off.
    rows = _rows([2, 3, 4, 4], smallest_share=[0.3, 0.1, 0.01, 0.01])
    k, why = choose_k_rule(rows)
    assert k == 3
    assert "3 segments" in why and "under 2.5%" in why and "cut" not in why


def test_choose_k_rule_small_table_falls_back_to_silhouette() -> None:
    # Too few customers to prove any gap (mall-like): no k is all-distinct, k=3..6 are undecided, and
    # silhouette, preferring the smaller k on a near tie, arbitrates among them.
    rows = _rows(
        [1, 1, 1, 1, 1, 1],
        n_distinct_possible=[1, 3, 4, 5, 6, 5],
        pairs_untested=[0, 2, 5, 9, 15, 18],
        silhouette=[0.31, 0.47, 0.49, 0.553, 0.538, 0.45],
    )
    k, why = choose_k_rule(rows)
    assert k == 5
    assert why.startswith("5 segments") and "silhouette 0.55" in why
    # A proven k keeps its place unless an undecided larger k separates clearly better.
    rows = _rows(
        [2, 3, 3, 3],
        n_distinct_possible=[2, 3, 4, 3],
        pairs_untested=[0, 0, 1, 2],
        silhouette=[0.40, 0.50, 0.51, 0.30],
    )
    k, why = choose_k_rule(rows)
    assert k == 3 and "gap" in why


def test_choose_k_rule_underpowered_pairs_with_deep_valleys_count() -> None:
    # k=5 is undecided: one pair lacks the customers to prove its gap. When that pair still shows a
    # valley as deep as a proven one must be and beyond noise (LIKELY_Z), k=5 counts; when it shows
    # none, or one noise alone could draw, silhouette arbitrates.
    def pairs(ratio: float, z: float) -> list[dict]:
        return [{"a": 0, "b": 1, "valley_ratio": ratio, "z": z, "power_z": 2.0, "verdict": "untested"}]

    for ratio, z, expected in ((0.3, 3.0, 5), (0.95, 3.0, 4), (0.3, 1.5, 4)):
        rows = _rows([2, 3, 4, 4], n_distinct_possible=[2, 3, 4, 5], pairs_untested=[0, 0, 0, 1],
                     silhouette=[0.40, 0.50, 0.60, 0.59], valley_pairs=[[], [], [], pairs(ratio, z)])
        k, why = choose_k_rule(rows)
        assert k == expected, (ratio, z)
        status = k_rule.rule_status(rows)[5]
        assert status == (k_rule.STATUS_LIKELY if expected == 5 else k_rule.STATUS_UNTESTED)
        assert why.startswith(f"{expected} segments")


def test_dequantize_spreads_counts_over_their_cells() -> None:
    rng = np.random.default_rng(0)
    counts = np.log1p(rng.poisson(2.0, size=5000)).astype(float)
    smooth = rng.normal(size=5000)
    out = valleys.dequantize(np.column_stack([counts, smooth]), seed=0)
    values = np.unique(counts)
    mids = (values[1:] + values[:-1]) / 2
    # Every count stays inside its cell, between the midpoints to its neighbours ...
    cell = np.searchsorted(mids, out[:, 0])
    assert np.array_equal(values[cell], counts)
    # ... and fills it: no spikes left. A continuous column barely moves (only in its sparse tails).
    assert np.unique(out[:, 0]).size == counts.size
    assert np.median(np.abs(out[:, 1] - smooth)) < 0.001


def test_choose_k_rule_merges_a_larger_ks_pieces_back() -> None:
    # k-means at k=5 cuts a segment and lumps two (4 distinct); at k=8..10 every segment is cut, and the
    # pieces merge back into 5 groups, all apart, none tiny: 5 segments.
    rows = _rows([2, 3, 4, 4, 4, 4, 5, 5, 5],
                 smallest_segment_share=[0.48, 0.17, 0.06, 0.06, 0.06, 0.06, 0.059, 0.059, 0.059])
    k, why = choose_k_rule(rows)
    assert k == 5 and why.startswith("5 segments") and "put back together" in why
    assert k_rule.rule_status(rows)[5] == k_rule.STATUS_MERGED
    # The same, but the fifth group is a handful of big spenders: not a segment, k=4 stays.
    rows = _rows([2, 3, 4, 4, 4, 4, 5, 5, 5],
                 smallest_segment_share=[0.48, 0.17, 0.06, 0.06, 0.06, 0.06, 0.01, 0.01, 0.01])
    assert choose_k_rule(rows)[0] == 4


def test_search_starts_a_merged_k_from_the_merged_groups() -> None:
    # seed 0's suite table t3 (k=5, 13k rows): k-means at k=5 cuts the biggest segment and lumps the
    # two closest; the rule must still find 5, via the larger ks' merged pieces, and the model started
    # from them must beat k-means at the true k.
    table = make_table(seed=3, k=5, n=13046, separation=5.084, correlation=0.638, extreme_share=0.0076,
                       categorical=False)
    X = _transform(table.data)
    result = search_k(X, K_VALUES, seed=0)
    by_k = {r["k"]: r for r in result.rows}
    assert result.chosen_k == 5, [(r["k"], r["n_distinct"], r["rule_status"]) for r in result.rows]
    _assert_rows_report_what_the_rule_saw(result)
    ari = adjusted_rand_score(table.labels, result.chosen_model.predict(X))
    ceiling = adjusted_rand_score(table.labels, KMeans(n_clusters=5, n_init=10, random_state=0).fit_predict(X))
    assert ari >= ceiling - 0.02
    assert by_k[5]["rule_status"] in (k_rule.STATUS_MERGED, k_rule.STATUS_APART)


def test_explanation_names_only_the_chosen_k() -> None:
    for rows in (_rows([2, 3, 4, 4, 4]), _rows([2, 3, 4, 5, 4], repaired=(5,)), _rows([1, 1, 1])):
        k, why = choose_k_rule(rows)
        numbers = {int(tok) for tok in why.replace("=", " ").replace(",", " ").split() if tok.isdigit()}
        assert numbers == {k}, (k, why)


def test_real_mall_data_gives_the_classic_five(datasets_dir) -> None:
    # 200 customers, income x spending: ~40 per segment is too few for the valley test to prove the
    # gaps, so the small-table fallback must still find the five classic groups.
    config = load_preset("mall")
    table = prepare_table(read_table(datasets_dir / "Mall_Customers.csv"), config)
    pre = config.preprocessing
    options = FitOptions(skew=pre.skew, outliers=pre.outliers, categorical_weight=pre.categorical_weight)
    schema = FeatureSchema.fit(table.features, list(table.numeric), list(table.categorical), options)
    X = schema.transform_frame(table.features)
    result = search_k(X, K_VALUES, seed=0)
    assert result.chosen_k == 5, [(r["k"], r["rule_status"], round(r["silhouette"], 3)) for r in result.rows]
    assert result.rule_explanation.startswith("5 segments")
    assert choose_k_rule(result.rows)[0] == 5
    # Some of the five groups' gaps are within the density's noise at ~40 customers (LIKELY_Z): the
    # segments are labelled for what the test saw, neither proven apart nor one continuum.
    assert result.structure == k_rule.STRUCTURE_UNPROVEN == "unproven groups"
    assert "too few customers" in result.rule_explanation


@pytest.mark.parametrize("n", [900, 6_000], ids=["all-rows", "sampled"])
def test_silhouettes_equal_sklearns_silhouette_score(n: int) -> None:
    # The search's one-pass silhouette must be sklearn's silhouette_score(sample_size=SILHOUETTE_ROWS)
    # for every labelling: the same sampled rows, the same distances; a singleton cluster and a
    # one-cluster labelling (undefined: nan) included.
    from sklearn.metrics import silhouette_score

    X, _ = make_blobs(n_samples=n, centers=5, n_features=4, cluster_std=2.0, random_state=4)
    labelings = [KMeans(n_clusters=k, n_init=1, random_state=0).fit_predict(X) for k in (2, 3, 5, 8)]
    singleton = labelings[1].copy()
    singleton[0] = 7
    labelings += [singleton, np.zeros(n, dtype=int)]
    for seed in (0, 3):
        ours = k_metrics.silhouettes(X, labelings, seed)
        size = min(k_metrics.SILHOUETTE_ROWS, n)
        for labels, value in zip(labelings[:-1], ours[:-1]):
            expected = silhouette_score(X, labels, sample_size=size, random_state=seed)
            assert value == pytest.approx(expected, abs=1e-10)
        assert np.isnan(ours[-1])


def test_valley_components_merge_pairs_into_connected_groups() -> None:
    # Three clusters along an axis with no gap between the first two and a wide gap to the third: the
    # first two are one segment (one valley-less pair joins them), the third stands apart.
    rng = np.random.default_rng(0)
    X = np.concatenate([rng.normal(0, 1, (3000, 2)), rng.normal(12, 1, (1500, 2))])
    labels = np.where(X[:, 0] > 6, 2, np.where(X[:, 0] > 0, 1, 0))
    centres = np.array([X[labels == c].mean(axis=0) for c in range(3)])
    seen = valleys.valley_components(X, labels, centres, seed=0)
    assert seen.n_distinct == 2 and seen.joined == [(0, 1)]
    assert seen.segment_of[0] == seen.segment_of[1] != seen.segment_of[2]


def test_valley_test_sees_correlated_segments_apart_in_the_pairs_whitened_space() -> None:
    # Two segments with strongly correlated columns (r = 0.95), their centres one within-segment deviation
    # apart along the first column: along the raw line between the centres they overlap with no valley
    # (1 sd), but across the correlation (Fisher's direction) they are 3.2 Mahalanobis units apart.
    rng = np.random.default_rng(3)
    cov = np.array([[1.0, 0.95], [0.95, 1.0]])
    A = rng.multivariate_normal([0.0, 0.0], cov, 3000)
    B = rng.multivariate_normal([1.0, 0.0], cov, 3000)
    X = np.concatenate([A, B])
    truth = np.repeat([0, 1], 3000)
    centres = np.array([A.mean(axis=0), B.mean(axis=0)])
    seen = valleys.valley_components(X, truth, centres, seed=0)
    (pair,) = seen.pairs
    assert seen.n_distinct == 2 and pair["verdict"] == "apart" and pair["valley_ratio"] < 0.7, pair
    # One such segment cut in two across its correlation has no valley there: the halves are together.
    halves = (A @ np.array([1.0, -1.0]) > 0).astype(int)
    cut = np.array([A[halves == h].mean(axis=0) for h in (0, 1)])
    seen = valleys.valley_components(A, halves, cut, seed=0)
    assert seen.n_distinct == 1 and seen.pairs[0]["verdict"] == "together", seen.pairs


@pytest.mark.parametrize("name", list(ALGORITHMS))
def test_registry_reorder_makes_component_i_segment_i(name: str) -> None:
    X, _ = make_blobs(n_samples=1500, centers=3, n_features=3, center_box=(-10, 10), random_state=5)
    algo = ALGORITHMS[name]
    model = algo.fit(X, 3, 0)
    before = model.predict(X)
    order = np.array([2, 0, 1])
    centres = algo.centres(model).copy()
    extra = algo.reorder(model, order)
    np.testing.assert_array_equal(algo.centres(model), centres[order])
    rank = np.argsort(order)
    np.testing.assert_array_equal(model.predict(X), rank[before])
    assert (extra is not None) == (name == "gmm")
    refit = algo.fit_from(X, 3, 0, algo.centres(model))
    assert adjusted_rand_score(before, refit.predict(X)) > 0.99


def _range_rows(n_distinct: list[int], explained: list[float]) -> list[dict]:
    rows = _rows(n_distinct)
    for row, value in zip(rows, explained):
        row["explained_variance"] = value
    return rows


# explained variance for k = 2..10: gains 0.12, 0.07, 0.05, 0.033, 0.024, ... (the Online Retail shape)
RETAIL_SHAPE = [0.50, 0.62, 0.69, 0.74, 0.773, 0.797, 0.81, 0.82, 0.83]


def test_choose_k_in_range_continuum_cut_at_the_explained_variance_elbow() -> None:
    k, why, structure = k_rule.choose_k_in_range(_range_rows([1] * 9, RETAIL_SHAPE), (4, 8))
    assert (k, structure) == (6, k_rule.STRUCTURE_CONTINUUM)
    assert "continuum" in why and "4-8" in why and "7th segment would explain under 3%" in why
    # Natural groups inside the range are kept as they are.
    rows = _range_rows([2, 3, 4, 5, 5, 5, 5, 5, 5], RETAIL_SHAPE)
    assert k_rule.choose_k_in_range(rows, (4, 8))[::2] == (5, k_rule.STRUCTURE_NATURAL)
    # Natural groups outside it: a partition inside it, and the explanation says why.
    rows = _range_rows([2, 3, 3, 3, 3, 3, 3, 3, 3], RETAIL_SHAPE)
    k, why, structure = k_rule.choose_k_in_range(rows, (4, 8))
    assert (k, structure) == (6, k_rule.STRUCTURE_CONTINUUM) and "own groups (3)" in why
    # No elbow inside the range: its largest k.
    steep = [0.1 * i for i in range(9)]
    assert k_rule.choose_k_in_range(_range_rows([1] * 9, steep), (4, 8))[0] == 8


def test_business_range_outside_the_searched_ks_raises() -> None:
    X = np.random.default_rng(0).normal(size=(300, 3))
    with pytest.raises(ValueError, match="business_range=4-12"):
        search_k(X, K_VALUES, business_range=(4, 12))


def _features(path, preset: str) -> np.ndarray:
    config = load_preset(preset)
    table = prepare_table(read_table(path), config)
    pre = config.preprocessing
    options = FitOptions(skew=pre.skew, outliers=pre.outliers, categorical_weight=pre.categorical_weight)
    schema = FeatureSchema.fit(table.features, list(table.numeric), list(table.categorical), options)
    return schema.transform_frame(table.features)


def test_bundled_online_retail_sample_is_a_continuum_cut_at_six() -> None:
    from pathlib import Path

    X = _features(Path(__file__).resolve().parents[1] / "data" / "online_retail_sample.csv.gz", "transactions")
    business = load_preset("transactions").model.business_k_range
    result = search_k(X, K_VALUES, seed=0, business_range=business)
    assert (result.chosen_k, result.structure) == (6, k_rule.STRUCTURE_CONTINUUM), result.rule_explanation
    assert not any(r["rule_status"] in (k_rule.STATUS_APART, k_rule.STATUS_MERGED) for r in result.rows)
    # The rule's own pick is one the test could not decide (too few customers per group), and the
    # explanation says so rather than "no groups": the segments are cut inside the business range.
    rule_k, _ = choose_k_rule(result.rows)
    assert k_rule.structure_of(result.rows, rule_k) == k_rule.STRUCTURE_UNPROVEN
    assert f"The {rule_k} groups the data leaves open have too few customers each" in result.rule_explanation


@pytest.mark.slow
def test_online_retail_full_log_its_thirds_and_the_sample_agree(datasets_dir) -> None:
    # The whole log, three random thirds of its customers and two search seeds: the same k (issue 14:
    # within one), inside the RFM business range and not at its edge.
    X = _features(datasets_dir / "online_retail.csv.gz", "transactions")
    business = load_preset("transactions").model.business_k_range
    rng = np.random.default_rng(7)
    tables = [X] + [X[rng.choice(len(X), len(X) // 3, replace=False)] for _ in range(3)]
    ks = {search_k(t, K_VALUES, seed=seed, business_range=business).chosen_k for t in tables for seed in (0, 1)}
    assert ks == {6}

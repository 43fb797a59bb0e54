"""bench/study_k_selector.py: the learned k selector the k-rule study compares with the valley rule (the
study's figures are the benchmark, not a test; these check that its parts do what they say)."""

from __future__ import annotations

import json

import numpy as np
import pytest
from sklearn.datasets import make_blobs

from bench import study_k_selector
from training_job.k_selection import search_k

K_VALUES = list(range(2, 8))


@pytest.fixture(scope="module")
def searched() -> list[dict]:
    """Real k searches on blob tables of known k, as bench_k_rule --dump writes them (a JSON round trip)."""
    tables = []
    for seed, k in enumerate([2, 3, 4, 5, 3, 4, 2, 5]):
        X, labels = make_blobs(n_samples=600, centers=k, cluster_std=1.0, center_box=(-12, 12), random_state=seed)
        result = search_k(X, K_VALUES, seed=0)
        line = json.dumps({"name": f"blobs-s{seed}", "family": "blobs", "k": k, "chosen": result.chosen_k,
                           "findable": True, "ari_at_k": {str(r["k"]): float(r["k"] == k) for r in result.rows},
                           "rows": result.rows}, default=float)
        tables.append(json.loads(line))
    return tables


def test_features_are_one_finite_row_per_k_searched(searched: list[dict]) -> None:
    ks, F, names = study_k_selector.k_features(searched[0]["rows"])
    assert ks == K_VALUES and F.shape == (len(K_VALUES), len(names)) and np.isfinite(F).all()
    rule_k = searched[0]["chosen"]
    assert F[ks.index(rule_k), names.index("is the valley rule's k")] == 1.0
    assert F[:, names.index("is the valley rule's k")].sum() == 1.0


def test_the_selector_learns_what_it_is_shown(searched: list[dict]) -> None:
    # Fitted on the true k of blob tables (one of which the valley rule misses: 3 for 4), it picks them;
    # fitted on "one more than the truth",
    # it learns that instead (the fit follows the labels, it is not a fixed rule).
    model = study_k_selector.fit(searched, penalty=0.1)
    assert [study_k_selector.pick(model, t["rows"]) for t in searched] == [t["k"] for t in searched]
    shifted = [dict(t, k=t["k"] + 1) for t in searched]
    model = study_k_selector.fit(shifted, penalty=0.1)
    assert [study_k_selector.pick(model, t["rows"]) for t in searched] == [t["k"] + 1 for t in searched]

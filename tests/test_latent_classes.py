"""The latent class count of categorical columns (training_job.latent_classes) and its part in the k rule."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import adjusted_rand_score

from bench import gen_latent_profiles
from segmentation_core.features import FeatureSchema
from training_job.k_selection import search_k
from training_job.latent_classes import categorical_codes, count_latent_classes

K_VALUES = list(range(2, 11))


def _classes_table(k: int, n: int, levels: tuple[int, ...], seed: int, strength: float = 3.0) -> tuple[pd.DataFrame, np.ndarray]:
    """n customers of k classes; each class has its own favourite level per categorical column (odds
    e^strength), the columns independent within a class; two numeric columns shared by everyone."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(k, size=n)
    columns: dict[str, np.ndarray] = {
        "spend": np.round(np.exp(rng.normal(4.0, 0.8, n)), 2),
        "orders": rng.poisson(5.0, n),
    }
    for c, m in enumerate(levels):
        favourite = rng.permutation(np.resize(np.arange(m), k))
        probs = np.ones((k, m))
        probs[np.arange(k), favourite] = np.exp(strength)
        probs /= probs.sum(axis=1, keepdims=True)
        pick = (rng.random(n)[:, None] > np.cumsum(probs[labels], axis=1)).sum(axis=1)
        columns[f"habit_{c}"] = np.array([f"level{c}{i}" for i in range(m)])[np.minimum(pick, m - 1)]
    return pd.DataFrame(columns), labels


def _schema(frame: pd.DataFrame) -> FeatureSchema:
    categorical = [c for c in frame.columns if not pd.api.types.is_numeric_dtype(frame[c])]
    return FeatureSchema.fit(frame, numeric=[c for c in frame.columns if c not in categorical], categorical=categorical)


def test_codes_come_back_from_the_one_hot_blocks() -> None:
    frame, _ = _classes_table(3, 400, (3, 4, 5), seed=1)
    schema = _schema(frame)
    X = schema.transform_frame(frame)
    codes = categorical_codes(X, schema.categorical_blocks)
    for j, feature in enumerate(schema.categorical):
        assert [feature.levels[i] for i in codes[:, j]] == list(frame[feature.name])
    # A level unseen in training has no one-hot column set: it gets the block's width.
    unseen = frame.head(1).assign(habit_0="never seen")
    assert categorical_codes(schema.transform_frame(unseen), schema.categorical_blocks)[0, 0] == 3


@pytest.mark.parametrize("k", [1, 3, 5])
def test_the_count_finds_the_classes_the_columns_were_drawn_from(k: int) -> None:
    frame, _ = _classes_table(k, 3000, (4, 5, 4, 3), seed=10 + k)
    schema = _schema(frame)
    classes = count_latent_classes(categorical_codes(schema.transform_frame(frame), schema.categorical_blocks), 10)
    assert classes is not None and classes.k == k, classes
    assert classes.columns == 4 and min(classes.bic, key=classes.bic.__getitem__) == k


def test_fewer_than_three_categorical_columns_are_not_counted() -> None:
    frame, _ = _classes_table(3, 1000, (4, 5), seed=2)
    schema = _schema(frame)
    assert count_latent_classes(categorical_codes(schema.transform_frame(frame), schema.categorical_blocks), 10) is None
    # A column with one level carries nothing: three columns of which one is constant are two.
    codes = categorical_codes(schema.transform_frame(frame), schema.categorical_blocks)
    assert count_latent_classes(np.column_stack([codes, np.zeros(len(codes), np.int64)]), 10) is None


def test_search_finds_segments_told_apart_by_their_categories_only() -> None:
    # A development table of the benchmark's latent-profile generator (seed 3, not a held-out seed): three
    # segments told apart by four categorical columns; the two numeric columns are one population, so the
    # valley test sees no groups.
    table = gen_latent_profiles.make_table("categorical", seed=3, index=3)
    assert table.k == 3
    schema = _schema(table.data)
    X = schema.transform_frame(table.data)
    without = search_k(X, K_VALUES, seed=0)
    result = search_k(X, K_VALUES, seed=0, categorical_blocks=schema.categorical_blocks)
    assert without.chosen_k == 2  # what the rule chose before it counted latent classes
    assert result.chosen_k == 3 and result.structure == "natural groups"
    assert "latent class" in result.rule and "latent class analysis" in result.rule_explanation
    assert "3 groups" in result.rule_explanation
    # k-means started from the latent classes finds the segments (k-means' own 10 restarts: 0.95).
    assert adjusted_rand_score(table.labels, result.chosen_model.predict(X)) > 0.9
    assert [r["k"] for r in result.rows if "latent_class_bic" in r][:3] == [2, 3, 4]


def test_search_with_a_fixed_k_does_not_count_classes() -> None:
    frame, _ = _classes_table(4, 1000, (4, 5, 4), seed=8)
    schema = _schema(frame)
    result = search_k(schema.transform_frame(frame), [3], seed=0, categorical_blocks=schema.categorical_blocks)
    assert result.chosen_k == 3 and "latent_class_bic" not in result.rows[0]


def test_a_block_outside_x_is_refused() -> None:
    X = np.random.default_rng(0).normal(size=(100, 4))
    with pytest.raises(ValueError, match="categorical block 3:6 lies outside X's 4 columns"):
        search_k(X, [2, 3], categorical_blocks=[slice(3, 6)])

"""Segment ids, profiles and the plot sample, computed from a fitted clustering.

Segment ids are never raw cluster labels: segments are numbered by size, largest first (ties broken by
the centroid's coordinates), so a retrain that permutes the algorithm's labels keeps the same order
whenever the segments themselves are the same.
"""
from __future__ import annotations

from typing import Any, Sequence

import numpy as np
import pandas as pd

from segmentation_core.features import FeatureSchema

SAMPLE_ROWS = 5_000


def segment_order(labels: np.ndarray, centroids: np.ndarray) -> np.ndarray:
    """Raw cluster label of each segment id: by size descending, then centroid coordinates."""
    return segment_order_by_size(np.bincount(labels, minlength=centroids.shape[0]), centroids)


def segment_order_by_size(sizes: np.ndarray, centroids: np.ndarray) -> np.ndarray:
    """:func:`segment_order` given each raw cluster's size (counted in memory or on a cluster)."""
    k = centroids.shape[0]
    keys = sorted(range(k), key=lambda j: (-int(sizes[j]), tuple(np.round(centroids[j], 9))))
    return np.asarray(keys, dtype=np.int64)


def relabel(labels: np.ndarray, order: np.ndarray) -> np.ndarray:
    """Map raw labels to segment ids given ``order`` from :func:`segment_order`."""
    inverse = np.empty_like(order)
    inverse[order] = np.arange(len(order))
    return inverse[labels].astype(np.int32)


def _numeric_stats(values: pd.Series) -> dict[str, float]:
    v = values.dropna().astype(float)
    if v.empty:
        return {"mean": float("nan"), "median": float("nan"), "min": float("nan"), "max": float("nan"),
                "std": float("nan")}
    return {"mean": float(v.mean()), "median": float(v.median()), "min": float(v.min()),
            "max": float(v.max()), "std": float(v.std(ddof=0))}


def _level_shares(values: pd.Series) -> dict[str, float]:
    counts = values.dropna().astype(str).value_counts(normalize=True)
    return {str(level): float(share) for level, share in counts.items()}


def base_profile(features: pd.DataFrame, numeric: Sequence[str], categorical: Sequence[str]) -> dict[str, Any]:
    """Statistics of the whole training base, in original units."""
    return {"stats": {n: _numeric_stats(features[n]) for n in numeric},
            "categories": {c: _level_shares(features[c]) for c in categorical}}


def segment_profiles(features: pd.DataFrame, segment: np.ndarray, schema: FeatureSchema,
                     centroids: np.ndarray) -> list[dict[str, Any]]:
    """Per segment: size, share, centroid in original units, per-feature statistics, level shares."""
    numeric = [f.name for f in schema.numeric]
    categorical = [c.name for c in schema.categorical]
    members = [features[segment == j] for j in range(centroids.shape[0])]
    return profile_entries([len(m) for m in members], schema, centroids,
                           [{n: _numeric_stats(m[n]) for n in numeric} for m in members],
                           [{c: _level_shares(m[c]) for c in categorical} for m in members])


def profile_entries(sizes: Sequence[int], schema: FeatureSchema, centroids: np.ndarray,
                    stats: Sequence[dict[str, dict[str, float]]], categories: Sequence[dict[str, dict[str, float]]]
                    ) -> list[dict[str, Any]]:
    """The manifest's segment entries from per-segment sizes and statistics (computed in memory or on a cluster)."""
    numeric = [f.name for f in schema.numeric]
    original = schema.numeric_to_original(centroids)
    total = int(sum(sizes))
    return [{"id": j, "size": int(sizes[j]), "share": float(sizes[j] / total) if total else 0.0,
             "centroid": {n: float(original[j, i]) for i, n in enumerate(numeric)},
             "stats": stats[j], "categories": categories[j]} for j in range(centroids.shape[0])]


def basket_profiles(customers: pd.DataFrame, segment: np.ndarray, k: int, columns: Sequence[str]
                    ) -> tuple[dict[str, dict[str, float]], list[dict[str, dict[str, float]]]]:
    """Statistics of per-customer columns (a log's basket metrics) for the base and for each segment; a metric
    no customer of a segment has (days between purchases where every customer bought once) is left out."""
    def stats(values: pd.DataFrame) -> dict[str, dict[str, float]]:
        return {name: _numeric_stats(values[name]) for name in columns if values[name].notna().any()}

    return stats(customers), [stats(customers.loc[segment == j]) for j in range(k)]


def plot_sample(features: pd.DataFrame, ids: pd.Series, x: np.ndarray, segment: np.ndarray,
                centroids: np.ndarray, schema: FeatureSchema, seed: int,
                rows: int = SAMPLE_ROWS) -> dict[str, np.ndarray]:
    """A seeded random sample for plots, with a 3-D PCA map of the clustering space (centroids included)."""
    rng = np.random.default_rng(seed)
    n = len(features)
    pick = np.sort(rng.choice(n, size=min(rows, n), replace=False))
    xs = x[pick]
    mean = xs.mean(axis=0)
    # PCA by SVD of the sample: three axes for the 2-D and 3-D maps.
    _, _, vt = np.linalg.svd(xs - mean, full_matrices=False)
    axes = vt[:3].T
    if axes.shape[1] < 3:
        axes = np.pad(axes, ((0, 0), (0, 3 - axes.shape[1])))
    coords = (xs - mean) @ axes
    centre_coords = (centroids - mean) @ axes
    sample: dict[str, np.ndarray] = {
        "id": np.asarray(ids.iloc[pick].astype(str).to_numpy(), dtype=str),
        "segment_id": segment[pick].astype(np.int32),
    }
    for name, axis in zip(("x", "y", "z"), range(3)):
        sample[f"map_{name}"] = coords[:, axis].astype(np.float64)
        sample[f"centroid_map_{name}"] = centre_coords[:, axis].astype(np.float64)
    for f in schema.numeric:
        sample[f"num:{f.name}"] = features[f.name].iloc[pick].to_numpy(dtype=np.float64, na_value=np.nan)
    for c in schema.categorical:
        sample[f"cat:{c.name}"] = np.asarray(features[c.name].iloc[pick].fillna("").astype(str).to_numpy(),
                                             dtype=str)
    return sample

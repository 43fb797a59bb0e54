"""Test helper: publish real, valid model versions into a store without the training job.

Fits the feature schema and a scikit-learn clustering on real data (Mall customers) or on a
``make_blobs`` table, then writes a complete artefact (manifest with every documented key, parameters,
sample, joblib pipeline) through ``ModelStore.publish``, as the training job does.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from datetime import datetime, timezone
from functools import lru_cache
from pathlib import Path
from typing import Any

import joblib
import numpy as np
import pandas as pd

from segmentation_core.artefact import write_artefact
from segmentation_core.features import FeatureSchema
from segmentation_core.reference import build_reference
from segmentation_core.segment_model import SegmentModel, calibrate
from segmentation_core.sklearn_pipeline import build_pipeline
from segmentation_core.store import ModelStore

MALL_CSV = Path("/work/shared/datasets/Mall_Customers.csv")
MALL_NUMERIC = ["Age", "Annual Income (k$)", "Spending Score (1-100)"]
MALL_CATEGORICAL = ["Gender"]
BLOB_NUMERIC = [f"f{i}" for i in range(7)]
WIDE_FEATURES = 23


@dataclass(frozen=True)
class Dataset:
    """A training table and its feature columns."""

    frame: pd.DataFrame
    numeric: list[str]
    categorical: list[str]


@lru_cache(maxsize=None)
def mall() -> Dataset:
    """The Mall customers table (200 rows), Genre renamed Gender."""
    frame = pd.read_csv(MALL_CSV, dtype={"CustomerID": str}).rename(columns={"Genre": "Gender"})
    return Dataset(frame, MALL_NUMERIC, MALL_CATEGORICAL)


@lru_cache(maxsize=None)
def blobs(rows: int = 100_000) -> Dataset:
    """A make_blobs table: ``rows`` x 7 numeric features around 6 centres (the peers' reference model)."""
    from sklearn.datasets import make_blobs

    x, _ = make_blobs(n_samples=rows, n_features=7, centers=6, random_state=0)
    frame = pd.DataFrame(x, columns=BLOB_NUMERIC)
    frame.insert(0, "id", [f"c{i}" for i in range(rows)])
    return Dataset(frame, BLOB_NUMERIC, [])


@lru_cache(maxsize=None)
def wide(features: int = WIDE_FEATURES) -> Dataset:
    """A make_blobs table of 2,000 rows x ``features`` numeric features around 4 centres: a model with as many
    numeric features as the marketing campaign's under preset auto (23), for pages that draw one chart each."""
    from sklearn.datasets import make_blobs

    x, _ = make_blobs(n_samples=2000, n_features=features, centers=4, random_state=0)
    names = [f"Feature {i:02d}" for i in range(features)]
    frame = pd.DataFrame(x * 100 + 1000, columns=names)
    frame.insert(0, "id", [f"w{i}" for i in range(len(frame))])
    return Dataset(frame, names, [])


def dataset(name: str) -> Dataset:
    """The dataset called ``name``: "mall", "blobs" or "wide"."""
    return {"mall": mall, "blobs": blobs, "wide": wide}[name]()


@lru_cache(maxsize=None)
def _fit(name: str, k: int, algorithm: str, seed: int) -> tuple[FeatureSchema, Any, np.ndarray, np.ndarray, Any]:
    from sklearn.cluster import KMeans
    from sklearn.mixture import GaussianMixture

    data = dataset(name)
    schema = FeatureSchema.fit(data.frame, data.numeric, data.categorical)
    x = schema.transform_frame(data.frame)
    if algorithm == "gmm":
        est = GaussianMixture(k, random_state=seed).fit(x)
        labels = est.predict(x)
        model = calibrate("gmm", x, labels, est.means_,
                          {"weights": est.weights_, "precisions_cholesky": est.precisions_cholesky_})
    else:
        est = KMeans(k, n_init=3, random_state=seed).fit(x)
        labels = est.predict(x)
        model = calibrate("kmeans", x, labels, est.cluster_centers_)
    # Segment ids here are the estimator's labels, so the joblib pipeline's predict is the segment id.
    return schema, est, x, labels, model


def _stats(values: np.ndarray) -> dict[str, float]:
    return {"mean": float(values.mean()), "median": float(np.median(values)), "min": float(values.min()),
            "max": float(values.max()), "std": float(values.std())}


@dataclasses.dataclass(frozen=True, eq=False)
class _PreCalibrationModel(SegmentModel):
    """Writes its parameters as versions before the confidence calibration did: no temperature, no smoothing."""

    def to_arrays(self) -> dict[str, np.ndarray]:
        """The arrays without ``temperature`` and ``smoothing``."""
        arrays = super().to_arrays()
        del arrays["temperature"], arrays["smoothing"]
        return arrays


def publish(store: ModelStore, model: str = "customers", data: str = "mall", k: int = 5,
            algorithm: str = "kmeans", seed: int = 0, make_current: bool = True, reference: bool = False,
            signer: Any = None, confidence: dict[str, Any] | None = None, pre_calibration: bool = False) -> str:
    """Fit (cached) and publish one version of ``model``; returns the version id. ``reference``: with a drift
    reference (10 bins), as the training job writes; without, as versions published before it. ``signer``:
    a signing key (segmentation_core.signing) that signs the manifest. ``confidence``: the manifest's
    ``confidence`` key, whose temperature and smoothing the parameters carry; ``pre_calibration``: parameters
    without temperature and smoothing, as versions published before the confidence calibration."""
    schema, est, x, labels, seg_model = _fit(data, k, algorithm, seed)
    if confidence is not None:
        seg_model = dataclasses.replace(seg_model, temperature=confidence["temperature"],
                                        smoothing=confidence["smoothing"])
    if pre_calibration:
        seg_model = _PreCalibrationModel(**{f.name: getattr(seg_model, f.name)
                                            for f in dataclasses.fields(SegmentModel)})
    table = dataset(data)
    frame = table.frame
    n = len(frame)
    centroids = schema.numeric_to_original(seg_model.centroids)
    segments = []
    for j in range(k):
        members = frame[labels == j]
        segments.append({
            "id": j, "name": f"Segment {j}", "description": f"Segment {j} of the test model.",
            "action": "Send a test offer.", "size": int(len(members)), "share": len(members) / n,
            "centroid": {f.name: float(centroids[j, i]) for i, f in enumerate(schema.numeric)},
            "stats": {c: _stats(members[c].to_numpy(float)) for c in table.numeric} if len(members) else {},
            "categories": {c: {str(lvl): float(s) for lvl, s in members[c].value_counts(normalize=True).items()}
                           for c in table.categorical},
        })
    rng = np.random.default_rng(seed)
    pick = np.sort(rng.choice(n, size=min(n, 2000), replace=False))
    sample: dict[str, np.ndarray] = {"id": np.array([str(i) for i in pick]),
                                     "segment_id": labels[pick].astype(np.int32)}
    for c in table.numeric:
        sample[f"num:{c}"] = frame[c].to_numpy(float)[pick]
    for c in table.categorical:
        sample[f"cat:{c}"] = frame[c].astype(str).to_numpy()[pick].astype(str)
    for axis, name in enumerate(("x", "y", "z")):
        sample[f"map_{name}"] = x[pick, axis % x.shape[1]]
        sample[f"centroid_map_{name}"] = seg_model.centroids[:, axis % x.shape[1]]
    pipeline = build_pipeline(schema, est)

    def write(folder: Path, version: str) -> None:
        manifest = {
            "model": model, "version": version, "created_at": datetime.now(timezone.utc).isoformat(),
            "data": {"path": f"{data}.csv", "rows_in": n, "customers": n, "fingerprint": f"sha256:{data}{seed}"},
            "feature_schema": schema.to_dict(),
            "algorithm": {"name": algorithm, "params": {"n_clusters": k, "random_state": seed}},
            "k_search": {"rule": "silhouette", "explanation": "test", "chosen_k": k,
                         "rows": [{"k": k, "inertia": 1.0, "silhouette": 0.5, "calinski_harabasz": 100.0,
                                   "davies_bouldin": 0.7}]},
            "quality": {"silhouette": 0.5, "calinski_harabasz": 100.0, "davies_bouldin": 0.7, "stability": 0.9},
            "segments": segments,
            "base": {"stats": {c: _stats(frame[c].to_numpy(float)) for c in table.numeric}},
            "cleaning": {},
        }
        if confidence is not None:
            manifest["confidence"] = confidence
        if reference:
            manifest["reference"] = build_reference(
                schema, seg_model, {c: frame[c].to_numpy(float) for c in table.numeric},
                {c: list(frame[c]) for c in table.categorical}).to_dict()
        write_artefact(folder, manifest, seg_model, sample, lambda p: joblib.dump(pipeline, p), signer=signer)

    return store.publish(model, write, keep=50, make_current=make_current)

"""The offline sklearn pipeline: the same feature transform as serving, then the fitted estimator.

Kept apart from ``features.py`` so that the scoring service never imports scikit-learn.
Loading ``pipeline.joblib`` needs this package importable (it is pickled by reference).
"""
from __future__ import annotations

from typing import Any

import numpy as np
from sklearn.base import BaseEstimator, ClusterMixin, TransformerMixin
from sklearn.pipeline import Pipeline

from segmentation_core.features import FeatureSchema


class FeatureTransformer(TransformerMixin, BaseEstimator):
    """sklearn wrapper of :class:`FeatureSchema`; fitted already, so ``fit`` only checks the input."""

    def __init__(self, schema: dict[str, Any] | None = None) -> None:
        self.schema = schema

    def fit(self, X: Any, y: Any = None) -> "FeatureTransformer":
        """No-op: the schema was fitted by the training job."""
        return self

    def transform(self, X: Any) -> np.ndarray:
        """DataFrame of customers -> clustering space."""
        return FeatureSchema.from_dict(self.schema).transform_frame(X)


class CalibratedSegments(ClusterMixin, BaseEstimator):
    """The fitted estimator with the served confidence: ``predict`` is the estimator's own,
    ``predict_proba`` the served confidence per segment,
    ``(1 - smoothing) * softmax(temperature * logits) + smoothing / k``.

    Logits are computed from the estimator's own outputs (sklearn's squared distances to the centres for
    the k-means family, with ``sigma2``; the Gaussian mixture's weighted log densities), so this is an
    independent check of the serving math in ``segment_model``, not a copy of it.
    """

    def __init__(self, estimator: Any = None, temperature: float = 1.0, smoothing: float = 0.0,
                 sigma2: float | None = None) -> None:
        self.estimator = estimator
        self.temperature = temperature
        self.smoothing = smoothing
        self.sigma2 = sigma2

    def fit(self, X: Any, y: Any = None) -> "CalibratedSegments":
        """No-op: the estimator was fitted by the training job."""
        return self

    def __sklearn_is_fitted__(self) -> bool:
        """Fitted when it was built (it wraps a fitted estimator)."""
        return True

    def predict(self, X: Any) -> np.ndarray:
        """Segment ids."""
        return self.estimator.predict(X)

    def predict_proba(self, X: Any) -> np.ndarray:
        """(n, k) smoothed tempered posterior; its row maximum is the served confidence."""
        if hasattr(self.estimator, "means_"):  # Gaussian mixture
            logits = self.estimator._estimate_weighted_log_prob(np.asarray(X, dtype=np.float64))
        else:
            logits = -np.square(self.estimator.transform(X)) / (2.0 * self.sigma2)
        z = self.temperature * logits
        z -= z.max(axis=1, keepdims=True)
        p = np.exp(z)
        p /= p.sum(axis=1, keepdims=True)
        return (1.0 - self.smoothing) * p + self.smoothing / p.shape[1]


def build_pipeline(schema: FeatureSchema, estimator: Any, model: Any = None) -> Pipeline:
    """The joblib-saved pipeline: features, then the estimator whose labels are segment ids; given the
    serving ``SegmentModel``, the estimator is wrapped with its confidence parameters."""
    if model is not None:
        estimator = CalibratedSegments(estimator, model.temperature, model.smoothing, model.sigma2)
    return Pipeline([("features", FeatureTransformer(schema.to_dict())), ("segments", estimator)])

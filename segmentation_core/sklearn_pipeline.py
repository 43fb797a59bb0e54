"""The offline sklearn pipeline: the same feature transform as serving, then the fitted estimator.

Kept apart from ``features.py`` so that the scoring service never imports scikit-learn.
Loading ``pipeline.joblib`` needs this package importable (it is pickled by reference).
"""
from __future__ import annotations

from typing import Any

import numpy as np
from sklearn.base import BaseEstimator, TransformerMixin
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


def build_pipeline(schema: FeatureSchema, estimator: Any) -> Pipeline:
    """The joblib-saved pipeline: features, then the estimator whose labels are segment ids."""
    return Pipeline([("features", FeatureTransformer(schema.to_dict())), ("segments", estimator)])

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

    def transform_observed(self, X: Any) -> tuple[np.ndarray, np.ndarray]:
        """DataFrame of customers -> (clustering space, which of its cells were observed, not imputed)."""
        schema = FeatureSchema.from_dict(self.schema)
        imputed: dict[str, np.ndarray] = {}
        matrix = schema.transform_frame(X, imputed=imputed)
        observed = np.ones(matrix.shape, dtype=bool)
        partial = schema.partial_rows(imputed, len(matrix))
        if partial is not None:
            observed[partial.rows] = partial.observed
        return matrix, observed


class CalibratedSegments(ClusterMixin, BaseEstimator):
    """The fitted estimator with the served confidence: ``predict`` is the estimator's own,
    ``predict_proba`` the served confidence per segment,
    ``(1 - smoothing) * softmax(temperature * logits) + smoothing / k``.

    Logits are computed from the estimator's own outputs (sklearn's squared distances to the centres for
    the k-means family, with ``sigma2``; the Gaussian mixture's weighted log densities), so this is an
    independent check of the serving math in ``segment_model``, not a copy of it. Given ``observed`` (which
    cells of ``X`` were known, not imputed), a partly known row's logits are the model's marginal over its
    known cells (k-means: squared distances to ``cluster_centers_`` over them; the mixture: scipy's
    multivariate normal of ``means_`` and ``covariances_`` restricted to them), as the service serves it.
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

    def predict_proba(self, X: Any, observed: np.ndarray | None = None) -> np.ndarray:
        """(n, k) smoothed tempered posterior; at each row's ``predict`` segment, the served confidence (for a
        complete row also the row maximum). ``observed``: (n, d) bool, the cells known (None: all)."""
        if hasattr(self.estimator, "means_"):  # Gaussian mixture
            logits = self.estimator._estimate_weighted_log_prob(np.asarray(X, dtype=np.float64))
        else:
            logits = -np.square(self.estimator.transform(X)) / (2.0 * self.sigma2)
        if observed is not None:
            x = np.asarray(X, dtype=np.float64)
            for row in np.flatnonzero(~observed.all(axis=1)):
                logits[row] = self._marginal_logits(x[row], np.flatnonzero(observed[row]))
        z = self.temperature * logits
        z -= z.max(axis=1, keepdims=True)
        p = np.exp(z)
        p /= p.sum(axis=1, keepdims=True)
        return (1.0 - self.smoothing) * p + self.smoothing / p.shape[1]

    def _marginal_logits(self, x: np.ndarray, known: np.ndarray) -> np.ndarray:
        """(k,) logits of one row known on columns ``known`` only."""
        from scipy.stats import multivariate_normal

        est = self.estimator
        if hasattr(est, "means_"):
            if not known.size:
                return np.log(est.weights_)
            return np.array([np.log(w) + multivariate_normal(mean[known], cov[np.ix_(known, known)]).logpdf(x[known])
                             for w, mean, cov in zip(est.weights_, est.means_, est.covariances_)])
        return -np.square(x[known] - est.cluster_centers_[:, known]).sum(axis=1) / (2.0 * self.sigma2)


class SegmentPipeline(Pipeline):
    """The saved pipeline: ``predict_proba`` tells the final step which cells the features step imputed, so that
    a partly known customer gets the confidence the service serves (the posterior given its known features)."""

    def predict_proba(self, X: Any, **params: Any) -> np.ndarray:
        """(n, k) served confidence per segment (see :class:`CalibratedSegments`)."""
        features, segments = self.steps[0][1], self.steps[-1][1]
        if params or len(self.steps) != 2 or not isinstance(features, FeatureTransformer) \
                or not isinstance(segments, CalibratedSegments):
            return super().predict_proba(X, **params)
        matrix, observed = features.transform_observed(X)
        return segments.predict_proba(matrix, observed=observed)


def build_pipeline(schema: FeatureSchema, estimator: Any, model: Any = None) -> Pipeline:
    """The joblib-saved pipeline: features, then the estimator whose labels are segment ids; given the
    serving ``SegmentModel``, the estimator is wrapped with its confidence parameters."""
    if model is not None:
        estimator = CalibratedSegments(estimator, model.temperature, model.smoothing, model.sigma2)
    return SegmentPipeline([("features", FeatureTransformer(schema.to_dict())), ("segments", estimator)])

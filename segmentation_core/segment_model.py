"""The fitted segmentation as plain arrays, and the scoring math (no sklearn, no pickle).

Row ``i`` of every per-segment array is segment id ``i``: the training job orders segments by its
documented rule before saving, so raw cluster labels never leave training.

Per scored customer:
- ``segment``: the nearest centroid (k-means family) or the most probable component (Gaussian mixture),
  exactly as the saved sklearn pipeline's ``predict``;
- ``distance``: Euclidean distance to the segment's centroid in the clustering space (standardized units);
- ``confidence`` in [0, 1]: the tempered posterior of the segment, ``softmax(temperature * logit)`` at the
  chosen segment. For the k-means family the logits are those of an equal-weight isotropic Gaussian
  mixture on the centroids whose variance ``sigma2`` is the mean within-segment variance per dimension on
  the training data (k-means' own implicit model): ``logit_j = -d_j^2 / (2 sigma2)``, so the confidence
  is ``1 / sum_j exp(-temperature (d_j^2 - d_min^2) / (2 sigma2))``. For the Gaussian mixture the logits
  are its weighted log densities (at temperature 1, its posterior). Then ``smoothing`` mixes in the
  uniform: ``confidence = (1 - smoothing) * posterior + smoothing / k``. ``temperature`` (in (0, 1]) and
  ``smoothing`` (in [0, 1)) are fitted by the training job so that confidence matches how often the
  assignment is reproduced (``training_job.confidence``); artefacts written before them score with 1 and
  0 (the plain posterior). Neither changes the segment.
  A partly known customer (some features imputed: missing, implausible, an unseen level; ``partial`` of
  :meth:`SegmentModel.score`) keeps the segment, distance and outlier flag of its imputed point, but its
  confidence is the posterior given the observed columns only, with the same temperature and smoothing:
  the logits are the mixture's marginal over those columns (k-means: ``-d_O^2 / (2 sigma2)`` with ``d_O``
  the distance over the observed columns; the Gaussian mixture: each component's marginal Gaussian, the
  sub-covariance of the observed columns, factored once per pattern of observed columns in a batch).
  Complete rows never take that path;
- ``outlier``: distance beyond the segment's ``outlier_threshold``, the 99th percentile of its training
  customers' distances.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Mapping

import numpy as np

from segmentation_core.errors import ArtefactError
from segmentation_core.features import Partial

KMEANS_FAMILY = ("kmeans", "minibatch-kmeans")
ALGORITHMS = (*KMEANS_FAMILY, "gmm")
OUTLIER_PERCENTILE = 99.0
# A fitted temperature only softens the model's posterior (see training_job.confidence); larger values in
# an artefact are refused as corrupt.
MAX_TEMPERATURE = 1.0


@dataclass(frozen=True, eq=False)
class Scores:
    """Results for a batch of customers, one entry per row."""

    segment: np.ndarray  # int32
    distance: np.ndarray  # float64
    confidence: np.ndarray  # float64
    outlier: np.ndarray  # bool


@dataclass(frozen=True, eq=False)
class SegmentModel:
    """Centroids (and mixture parameters) with the calibration that serving needs."""

    algorithm: str
    centroids: np.ndarray  # (k, d)
    sigma2: float
    outlier_threshold: np.ndarray  # (k,)
    # Gaussian mixture only (full covariance): log weights and Cholesky factors of the precisions.
    log_weights: np.ndarray | None = None
    precisions_cholesky: np.ndarray | None = None  # (k, d, d)
    # Confidence: (1 - smoothing) * softmax(temperature * logits) + smoothing / k; 1 and 0 = the posterior.
    temperature: float = 1.0
    smoothing: float = 0.0

    @property
    def k(self) -> int:
        """Number of segments."""
        return int(self.centroids.shape[0])

    @property
    def width(self) -> int:
        """Dimension of the clustering space."""
        return int(self.centroids.shape[1])

    # ---- persistence (numpy arrays; loaded with allow_pickle=False) ----------------------------------
    def to_arrays(self) -> dict[str, np.ndarray]:
        """Arrays for ``numpy.savez``."""
        arrays = {"centroids": self.centroids, "sigma2": np.array([self.sigma2]),
                  "outlier_threshold": self.outlier_threshold, "temperature": np.array([self.temperature]),
                  "smoothing": np.array([self.smoothing])}
        if self.algorithm == "gmm":
            arrays["log_weights"] = self.log_weights
            arrays["precisions_cholesky"] = self.precisions_cholesky
        return arrays

    @classmethod
    def from_arrays(cls, algorithm: str, arrays: Mapping[str, np.ndarray]) -> "SegmentModel":
        """Rebuild from :meth:`to_arrays`, checking every shape."""
        if algorithm not in ALGORITHMS:
            raise ArtefactError(f"unknown algorithm {algorithm!r}; expected one of {ALGORITHMS}")
        try:
            centroids = np.asarray(arrays["centroids"], dtype=np.float64)
            sigma2 = float(np.asarray(arrays["sigma2"])[0])
            threshold = np.asarray(arrays["outlier_threshold"], dtype=np.float64)
            # Artefacts written before the confidence temperature existed score at temperature 1.
            temperature = float(np.asarray(arrays["temperature"])[0]) if "temperature" in arrays else 1.0
            smoothing = float(np.asarray(arrays["smoothing"])[0]) if "smoothing" in arrays else 0.0
            log_w = prec = None
            if algorithm == "gmm":
                log_w = np.asarray(arrays["log_weights"], dtype=np.float64)
                prec = np.asarray(arrays["precisions_cholesky"], dtype=np.float64)
        except KeyError as exc:
            raise ArtefactError(f"model parameters lack array {exc}") from exc
        k = centroids.shape[0] if centroids.ndim == 2 else -1
        if k < 1 or threshold.shape != (k,) or not sigma2 > 0 or not np.all(np.isfinite(centroids)):
            raise ArtefactError("model parameters are inconsistent (centroids, thresholds or sigma2)")
        if not (0.0 < temperature <= MAX_TEMPERATURE):
            raise ArtefactError(f"model parameter temperature={temperature} should be in (0, {MAX_TEMPERATURE}]")
        if not (0.0 <= smoothing < 1.0):
            raise ArtefactError(f"model parameter smoothing={smoothing} should be in [0, 1)")
        if algorithm == "gmm":
            d = centroids.shape[1]
            if log_w.shape != (k,) or prec.shape != (k, d, d):
                raise ArtefactError("Gaussian mixture parameters have inconsistent shapes")
        return cls(algorithm, centroids, sigma2, threshold, log_w, prec, temperature, smoothing)

    # ---- scoring -------------------------------------------------------------------------------------
    def score(self, x: np.ndarray, partial: Partial | None = None) -> Scores:
        """Score a (n, d) matrix of transformed customers; the rows of ``partial`` (customers with imputed
        features, :meth:`FeatureSchema.partial_rows <segmentation_core.features.FeatureSchema.partial_rows>`)
        get the confidence given their observed columns (:meth:`marginal_confidence`)."""
        scores = self._score(x)
        if partial is not None and partial.rows.size:
            rows = partial.rows
            scores.confidence[rows] = self.marginal_confidence(x[rows], partial.observed, scores.segment[rows])
        return scores

    def marginal_confidence(self, x: np.ndarray, observed: np.ndarray, segment: np.ndarray) -> np.ndarray:
        """The served confidence of ``segment`` for rows known only on their ``observed`` (bool, as ``x``)
        columns: ``(1 - smoothing) * softmax(temperature * marginal logits)[segment] + smoothing / k``."""
        z = self.marginal_logits(x, observed)
        z *= self.temperature
        z -= z.max(axis=1, keepdims=True)
        np.exp(z, out=z)
        confidence = z[np.arange(len(z)), segment] / z.sum(axis=1)
        if self.smoothing:
            confidence *= 1.0 - self.smoothing
            confidence += self.smoothing / self.k
        return confidence

    def marginal_logits(self, x: np.ndarray, observed: np.ndarray) -> np.ndarray:
        """(n, k) logits at temperature 1 of rows known only on their ``observed`` columns: the mixture's
        marginal over them (equal to :meth:`logits` on a row observed everywhere)."""
        if self.algorithm != "gmm":
            m = observed.astype(np.float64)
            xm = x * m
            d2 = np.einsum("ij,ij->i", xm, x)[:, None] - 2.0 * xm @ self.centroids.T + m @ (self.centroids ** 2).T
            return -d2 / (2.0 * self.sigma2)
        patterns, inverse = _patterns(observed)
        out = np.empty((len(x), self.k))
        covariances = self._gmm_covariances
        for p, pattern in enumerate(patterns):
            rows = np.flatnonzero(inverse == p)
            columns = np.flatnonzero(pattern)
            if not columns.size:  # nothing known: the prior
                out[rows] = self.log_weights
                continue
            # the observed columns' sub-covariance of every component, factored once for these rows
            sub = covariances[:, columns[:, None], columns[None, :]]  # (k, o, o)
            chol = np.linalg.cholesky(sub)  # lower, sub = chol chol^T
            whiten = np.swapaxes(np.linalg.inv(chol), 1, 2)  # y = chol^-1 (x - mean), as row vectors
            y = (x[rows][:, columns][None, :, :] - self.centroids[:, None, columns]) @ whiten  # (k, n, o)
            log_det = np.log(np.diagonal(chol, axis1=1, axis2=2)).sum(axis=1)  # half the log determinant
            out[rows] = (-0.5 * (columns.size * np.log(2 * np.pi) + np.einsum("kno,kno->nk", y, y))
                         - log_det + self.log_weights)
        return out

    @property
    def _gmm_covariances(self) -> np.ndarray:
        """(k, d, d) covariances of the mixture's components, from the Cholesky factors of the precisions."""
        cached = self.__dict__.get("_covariances_")
        if cached is None:
            inverse = np.linalg.inv(self.precisions_cholesky)  # precision = L L^T, so covariance = L^-T L^-1
            cached = np.swapaxes(inverse, 1, 2) @ inverse
            self.__dict__["_covariances_"] = cached
        return cached

    def _score(self, x: np.ndarray) -> Scores:
        if self.algorithm != "gmm":
            return self._score_kmeans(x)
        log_post = self._gmm_log_resp(x, self.temperature)
        segment = np.argmax(log_post, axis=1).astype(np.int32)  # the same for any temperature > 0
        diff = x - self.centroids[segment]  # as calibrate() measures the training distances
        distance = np.sqrt(np.einsum("ij,ij->i", diff, diff))
        confidence = np.exp(log_post[np.arange(len(x)), segment])
        if self.smoothing:
            confidence *= 1.0 - self.smoothing
            confidence += self.smoothing / self.k
        return Scores(segment, distance, confidence, distance > self.outlier_threshold[segment])

    def _score_kmeans(self, x: np.ndarray) -> Scores:
        """k-means family, laid out (k, n): every reduction over the k segments is then elementwise over
        rows (numpy reduces a short inner axis slowly), and the transform's feature-major output feeds
        the product without a copy.

        The segment is the argmin of ``|c|^2 - 2 c.x`` (what sklearn's predict minimises; the row's own
        ``|x|^2`` is the same for every centroid), first centroid on ties. The softmax needs only
        differences of squared distances, in which ``|x|^2`` cancels; it is added back for the nearest
        centroid's distance alone.
        """
        xt = x.T  # (d, n); contiguous when x comes from FeatureSchema.transform_columns
        cache = self._kmeans_cache
        t = cache["minus_2c"] @ xt  # == -2 * (c @ xt) exactly (a power-of-two scale)
        t += cache["norms"]
        nearest = np.minimum.reduce(t, axis=0)
        # argmin with argmin's tie rule, without argmin's slow strided pass over the short axis: flag the
        # centroids at the minimum, pack the flags of each row into one byte, lowest set bit = first.
        if cache["bits"] is not None:
            flags = np.equal(t, nearest, out=np.empty(t.shape, dtype=np.bool_)).view(np.uint8)
            flags *= cache["bits"]
            segment = cache["first_bit"].take(np.bitwise_or.reduce(flags, axis=0))
        else:
            segment = np.argmin(t, axis=0).astype(np.int32)
        # Softmax over -temperature d^2/(2 sigma2), written relative to the nearest for numerical safety.
        t -= nearest
        t *= cache["exp2_scale"]  # exp(-T d/(2 sigma2)) as exp2(-T d log2(e)/(2 sigma2)): exp2 is cheaper
        np.exp2(t, out=t)
        confidence = np.reciprocal(np.add.reduce(t, axis=0))
        if self.smoothing:
            confidence *= 1.0 - self.smoothing
            confidence += self.smoothing / self.k
        nearest += np.einsum("ij,ij->j", xt, xt)
        np.maximum(nearest, 0.0, out=nearest)  # rounding can take a point on its centroid below 0
        distance = np.sqrt(nearest, out=nearest)
        return Scores(segment, distance, confidence, distance > self.outlier_threshold.take(segment))

    @property
    def _kmeans_cache(self) -> dict[str, np.ndarray]:
        cached = self.__dict__.get("_kmeans_cache_")
        if cached is None:
            k = self.k
            if k <= 8:  # one byte of flags per row
                bits = (1 << np.arange(k, dtype=np.uint8))[:, None]
                first_bit = np.array([((b & -b).bit_length() - 1) if b else 0 for b in range(1 << k)],
                                     dtype=np.int32)
            else:
                bits = first_bit = None
            norms = np.einsum("ij,ij->i", self.centroids, self.centroids)
            exp2_scale = -0.5 * self.temperature / self.sigma2 * math.log2(math.e)
            cached = {"minus_2c": -2.0 * self.centroids, "norms": norms[:, None], "bits": bits,
                      "first_bit": first_bit, "exp2_scale": exp2_scale}
            self.__dict__["_kmeans_cache_"] = cached
        return cached

    def score_row(self, row: list[float], observed: np.ndarray | None = None) -> tuple[int, float, float, bool]:
        """Score one transformed customer in pure Python (cheaper than numpy for a single row); ``observed``
        (bool per column, :meth:`FeatureSchema.observed_columns
        <segmentation_core.features.FeatureSchema.observed_columns>`) for a partly known one, as in :meth:`score`."""
        if observed is not None:
            s = self.score(np.asarray([row], dtype=np.float64), Partial(np.zeros(1, dtype=np.int64), observed[None]))
            return int(s.segment[0]), float(s.distance[0]), float(s.confidence[0]), bool(s.outlier[0])
        if self.algorithm == "gmm":
            s = self.score(np.asarray([row], dtype=np.float64))
            return int(s.segment[0]), float(s.distance[0]), float(s.confidence[0]), bool(s.outlier[0])
        dist = math.dist
        distances = [dist(row, c) for c in self._centroid_rows]  # Euclidean, in C
        distance = min(distances)
        best = distances.index(distance)  # the first of tied centroids, as argmin
        nearest = distance * distance
        scale = -0.5 * self.temperature / self.sigma2
        exp = math.exp
        confidence = 1.0 / sum([exp((d * d - nearest) * scale) for d in distances])
        if self.smoothing:
            confidence = confidence * (1.0 - self.smoothing) + self.smoothing / self.k
        return best, distance, confidence, distance > self._threshold_list[best]

    @property
    def _centroid_rows(self) -> list[tuple[float, ...]]:
        cached = self.__dict__.get("_rows_cache")
        if cached is None:
            cached = [tuple(c) for c in self.centroids.tolist()]
            self.__dict__["_rows_cache"] = cached
        return cached

    @property
    def _threshold_list(self) -> list[float]:
        cached = self.__dict__.get("_thr_cache")
        if cached is None:
            cached = self.outlier_threshold.tolist()
            self.__dict__["_thr_cache"] = cached
        return cached

    def logits(self, x: np.ndarray) -> np.ndarray:
        """(n, k) unnormalised log posteriors at temperature 1: what ``temperature`` scales."""
        if self.algorithm == "gmm":
            return self._gmm_weighted_log_prob(x)
        diff = x[:, None, :] - self.centroids[None, :, :]
        return -np.einsum("ijk,ijk->ij", diff, diff) / (2.0 * self.sigma2)

    def _gmm_log_resp(self, x: np.ndarray, temperature: float = 1.0) -> np.ndarray:
        """Log posterior of each component (full covariance) at a temperature; at 1, as sklearn's
        GaussianMixture computes it."""
        weighted = self._gmm_weighted_log_prob(x)
        if temperature != 1.0:
            weighted *= temperature
        top = weighted.max(axis=1, keepdims=True)
        log_norm = top + np.log(np.exp(weighted - top).sum(axis=1, keepdims=True))
        return weighted - log_norm

    def _gmm_weighted_log_prob(self, x: np.ndarray) -> np.ndarray:
        """log weight + log density of each component (full covariance), as sklearn computes them."""
        n, d = x.shape
        log_prob = np.empty((n, self.k))
        for j in range(self.k):
            chol = self.precisions_cholesky[j]
            y = x @ chol - self.centroids[j] @ chol
            log_det = np.sum(np.log(np.diag(chol)))
            log_prob[:, j] = -0.5 * (d * np.log(2 * np.pi) + np.sum(y * y, axis=1)) + log_det
        return log_prob + self.log_weights


def _patterns(observed: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The distinct rows of a bool matrix and each row's index among them (``np.unique(axis=0)``, whose row
    sort costs ten times more: rows of up to 64 columns are grouped as one integer each)."""
    packed = np.packbits(observed, axis=1)
    if packed.shape[1] > 8:
        patterns, inverse = np.unique(observed, axis=0, return_inverse=True)
        return patterns, inverse.reshape(-1)
    keys = np.zeros((len(observed), 8), dtype=np.uint8)
    keys[:, :packed.shape[1]] = packed
    _, first, inverse = np.unique(keys.view(np.uint64).reshape(-1), return_index=True, return_inverse=True)
    return observed[first], inverse.reshape(-1)


def calibrate(algorithm: str, x: np.ndarray, segment: np.ndarray, centroids: np.ndarray,
              gmm_params: Mapping[str, Any] | None = None) -> SegmentModel:
    """Build a SegmentModel from training data and its (ordered) assignment."""
    k, d = centroids.shape
    dist = centroid_distances(x, segment, centroids)
    sigma2 = float(np.mean(dist ** 2) / d)
    threshold = np.array([np.percentile(dist[segment == j], OUTLIER_PERCENTILE) if np.any(segment == j) else 0.0
                          for j in range(k)])
    return calibrated(algorithm, centroids, sigma2, threshold, gmm_params)


def centroid_distances(x: np.ndarray, segment: np.ndarray, centroids: np.ndarray) -> np.ndarray:
    """Euclidean distance of each row to its segment's centroid, as the calibration measures it."""
    diff = x - centroids[segment]
    return np.sqrt(np.einsum("ij,ij->i", diff, diff))


def calibrated(algorithm: str, centroids: np.ndarray, sigma2: float, threshold: np.ndarray,
               gmm_params: Mapping[str, Any] | None = None) -> SegmentModel:
    """A SegmentModel from its calibration: ``sigma2`` (mean squared distance per dimension) and the
    per-segment ``OUTLIER_PERCENTILE`` distance thresholds, measured in memory or on a cluster."""
    sigma2 = sigma2 or 1e-12
    if algorithm == "gmm":
        assert gmm_params is not None
        return SegmentModel(algorithm, centroids, sigma2, threshold,
                            np.log(np.asarray(gmm_params["weights"], dtype=np.float64)),
                            np.asarray(gmm_params["precisions_cholesky"], dtype=np.float64))
    return SegmentModel(algorithm, centroids, sigma2, threshold)

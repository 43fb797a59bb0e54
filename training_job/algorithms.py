"""The clustering algorithms the training job offers, one registry entry each.

Every place that fits, refits or reorders a model asks this registry (``ALGORITHMS[name]``) instead of
switching on the name: the k search's fit, its refit from given centres, the stability score's quick
fit, the centres of a fitted model and the permutation of its components into segment order. The
configuration validates ``model.algorithm`` against ``ALGORITHMS`` too. scikit-learn is imported when a
model is first fitted, so reading a configuration (or ``--help``) does not pay for it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

__all__ = ["ALGORITHMS", "Algorithm", "algorithm_named"]

#: GMM covariance floor, added to every component's variances. Transformed features are standardized, so
#: one value serves all tables: 0.1 keeps a component at least ~0.3 standard deviations wide on every
#: feature, so that it cannot collapse onto one level of a count or a one-hot column (at 1e-4 the mixture
#: chased such spikes: a higher likelihood with worse segments and posteriors of 1.000; see README
#: "Confidence").
GMM_REG_COVAR = 0.1
#: GMM restarts in the k search (k-means initialisations; the best likelihood is kept).
GMM_N_INIT = 4


@dataclass(frozen=True)
class Algorithm:
    """One clustering algorithm: how the job fits it, refits it, reads its centres and reorders it."""

    name: str
    #: The k search's fit at one k (a few restarts).
    fit: Callable[[np.ndarray, int, int], Any]
    #: One run started from given centres (no restarts): repairs, merged groups, the final model.
    fit_from: Callable[[np.ndarray, int, int, np.ndarray], Any]
    #: A cheap fit for the stability score's subsample rounds.
    fit_quick: Callable[[np.ndarray, int, int], Any]
    #: The fitted model's centres (one row per component).
    centres: Callable[[Any], np.ndarray]
    #: Permute the fitted model in place so component ``order[i]`` becomes segment i; returns the
    #: parameters the serving model needs beyond the centres (None for the k-means family).
    reorder: Callable[[Any, np.ndarray], dict[str, np.ndarray] | None]


# --- k-means: 4 k-means++ restarts in the search (on segment-shaped data the best of 4 matches the
# best of 10 nearly always, and the search fits 9 values of k), 3 in the stability rounds.


def _kmeans_fit(X: np.ndarray, k: int, seed: int) -> Any:
    from sklearn.cluster import KMeans

    return KMeans(n_clusters=k, n_init=4, random_state=seed).fit(X)


def _kmeans_fit_from(X: np.ndarray, k: int, seed: int, init: np.ndarray) -> Any:
    from sklearn.cluster import KMeans

    return KMeans(n_clusters=k, init=init, n_init=1, random_state=seed).fit(X)


def _kmeans_fit_quick(X: np.ndarray, k: int, seed: int) -> Any:
    from sklearn.cluster import KMeans

    return KMeans(n_clusters=k, n_init=3, random_state=seed).fit(X)


# --- mini-batch k-means


def _minibatch_fit(X: np.ndarray, k: int, seed: int) -> Any:
    from sklearn.cluster import MiniBatchKMeans

    return MiniBatchKMeans(n_clusters=k, n_init=3, batch_size=2048, random_state=seed).fit(X)


def _minibatch_fit_from(X: np.ndarray, k: int, seed: int, init: np.ndarray) -> Any:
    from sklearn.cluster import MiniBatchKMeans

    return MiniBatchKMeans(n_clusters=k, init=init, n_init=1, batch_size=4096, random_state=seed).fit(X)


def _kmeans_centres(model: Any) -> np.ndarray:
    return model.cluster_centers_


def _kmeans_reorder(model: Any, order: np.ndarray) -> None:
    from training_job.segments import relabel

    model.cluster_centers_ = model.cluster_centers_[order]
    model.labels_ = relabel(model.labels_, order)
    return None


# --- Gaussian mixture (full covariances, a variance floor)


def _gmm_fit(X: np.ndarray, k: int, seed: int) -> Any:
    from sklearn.mixture import GaussianMixture

    return GaussianMixture(n_components=k, covariance_type="full", n_init=GMM_N_INIT, reg_covar=GMM_REG_COVAR,
                           random_state=seed).fit(X)


def _gmm_fit_from(X: np.ndarray, k: int, seed: int, init: np.ndarray) -> Any:
    from sklearn.mixture import GaussianMixture

    return GaussianMixture(n_components=k, covariance_type="full", means_init=init, reg_covar=GMM_REG_COVAR,
                           max_iter=50, random_state=seed).fit(X)


def _gmm_fit_quick(X: np.ndarray, k: int, seed: int) -> Any:
    from sklearn.mixture import GaussianMixture

    return GaussianMixture(n_components=k, covariance_type="full", reg_covar=GMM_REG_COVAR,
                           random_state=seed).fit(X)


def _gmm_centres(model: Any) -> np.ndarray:
    return model.means_


def _gmm_reorder(model: Any, order: np.ndarray) -> dict[str, np.ndarray]:
    for attr in ("means_", "weights_", "covariances_", "precisions_", "precisions_cholesky_"):
        setattr(model, attr, getattr(model, attr)[order])
    return {"weights": model.weights_, "precisions_cholesky": model.precisions_cholesky_}


#: name -> algorithm, in the order the CLI lists them.
ALGORITHMS: dict[str, Algorithm] = {
    a.name: a
    for a in (
        Algorithm("kmeans", _kmeans_fit, _kmeans_fit_from, _kmeans_fit_quick, _kmeans_centres, _kmeans_reorder),
        Algorithm("minibatch-kmeans", _minibatch_fit, _minibatch_fit_from, _minibatch_fit, _kmeans_centres,
                  _kmeans_reorder),
        Algorithm("gmm", _gmm_fit, _gmm_fit_from, _gmm_fit_quick, _gmm_centres, _gmm_reorder),
    )
}


def algorithm_named(name: str) -> Algorithm:
    """The registry entry for ``name``; ValueError naming the choices for an unknown one."""
    try:
        return ALGORITHMS[name]
    except KeyError:
        raise ValueError(f"algorithm={name!r} must be one of {tuple(ALGORITHMS)}") from None

"""The model's facts in the words an analyst reads: the one home of each label and sentence that the training
report, the training log and the dashboard all show. Standard library only.

- ``LABELS``: a figure's key in the manifest (``rows_in``, ``calinski_harabasz``, an estimator parameter ...)
  to its label; ``label`` looks one up (a key it does not know is spelled out, never shown raw).
- ``structure_sentence``: the verdict on what the segments are (``ModelInfo.segment_structure``, the
  manifest's ``k_search.structure``): natural groups, unproven groups, or a partition of a continuum.
- ``algorithm_name``: an algorithm's configuration value ("kmeans") as people write it ("k-means").
- ``confidence_warning``: the warning of a model whose confidence was not calibrated (the manifest's
  ``confidence.method`` "not fitted: ...", or a manifest from before the calibration, without ``confidence``).
"""
from __future__ import annotations

from typing import Any, Mapping

__all__ = ["ALGORITHM_NAMES", "LABELS", "QUALITY_HINTS", "QUALITY_KEYS", "algorithm_name", "confidence_warning", "label",
           "structure_sentence"]

#: The algorithms' configuration values (``--algorithm``, ``ModelInfo.algorithm``) as people write them.
ALGORITHM_NAMES = {"kmeans": "k-means", "minibatch-kmeans": "mini-batch k-means", "gmm": "Gaussian mixture"}


def algorithm_name(value: str) -> str:
    """"kmeans" -> "k-means"; a value it does not know as it is."""
    return ALGORITHM_NAMES.get(value, value)

#: Quality metrics in the order they are shown.
QUALITY_KEYS = ("silhouette", "calinski_harabasz", "davies_bouldin", "stability")

LABELS: dict[str, str] = {
    # The manifest's ``data``.
    "path": "File read", "name": "Data", "fingerprint": "Data fingerprint", "rows_in": "Rows read",
    "customers": "Customers modelled",
    # ``quality``.
    "silhouette": "Silhouette", "calinski_harabasz": "Calinski-Harabasz", "davies_bouldin": "Davies-Bouldin",
    "stability": "Stability",
    # ``algorithm.params``: scikit-learn's names.
    "n_clusters": "Segments (k)", "n_components": "Segments (k)", "n_init": "Restarts",
    "max_iter": "Most iterations per restart", "tol": "Convergence tolerance", "random_state": "Random seed",
    "algorithm": "k-means variant", "init": "Start", "init_params": "Start", "batch_size": "Batch size",
    "init_size": "Rows to choose the start from", "max_no_improvement": "Batches without improvement before stopping",
    "reassignment_ratio": "Reassignment ratio", "covariance_type": "Covariance shape",
    "reg_covar": "Covariance regularisation",
    # ``cleaning``.
    "kind": "Table kind", "rows_out": "Customers kept", "duplicate_rows_dropped": "Exact duplicate rows dropped",
    "duplicate_ids_dropped": "Rows with a repeated id dropped", "missing_ids_dropped": "Rows without an id dropped",
    "rows_dropped_for_missing": "Rows dropped for missing values", "ignored_columns": "Columns not used as features",
    "constant_features": "Constant features (cannot separate segments)",
    # ``cleaning.transactions`` (a transaction log).
    "cancellations": "Cancellations dropped", "non_positive_quantity": "Lines with a quantity of 0 or less dropped",
    "non_positive_value": "Lines with a value of 0 or less dropped",
    "missing_customer_id": "Lines without a customer id dropped", "duplicate_rows": "Exact duplicate lines dropped",
    "rows_used": "Lines used", "after_as_of": "Lines on or after the as-of date (left out)",
    "purchases": "Purchases", "first_date": "First day", "last_date": "Last day",
    "snapshot_date": "As-of date (recency counts up to it)", "rows_per_customer": "Lines per customer",
}

#: How each quality metric reads.
QUALITY_HINTS = {
    "silhouette": "-1 to 1, higher is better: how much nearer each customer is to its segment than to the next",
    "calinski_harabasz": "higher is better: spread between segments against spread within them",
    "davies_bouldin": "0 or more, lower is better: how much segments overlap their nearest neighbour",
    "stability": "0 to 1, higher is better: agreement of models refitted on resamples (1 = identical)",
}


def label(key: str) -> str:
    """The label of a manifest key; a key without one is spelled out ("rows_in" would read "Rows in")."""
    known = LABELS.get(key)
    if known is not None:
        return known
    words = str(key).replace("_", " ").strip()
    return words[:1].upper() + words[1:] if words else str(key)


#: The verdicts of ``structure_sentence`` (the training job's ``training_job.k_rule`` STRUCTURE_* values).
_STRUCTURES = {
    "natural groups": "natural groups: the customers form groups apart from each other, one segment each",
    "unproven groups": "unproven groups: too few customers per group to prove or rule out gaps between them",
    "partition of a continuum": ("a partition of a continuum: no groups proven apart from each other were found "
                                 "at this number of segments, so the segments cut the customer base into "
                                 "usable parts"),
}


def structure_sentence(structure: str) -> str:
    """What the segments are, in one sentence (no capital, no full stop: it follows "The segments are" or a
    dot); "" for a model trained before it was recorded, a value newer than this code as it is."""
    return _STRUCTURES.get(structure, structure or "")


NOT_CALIBRATED = "not fitted"  # how ``confidence.method`` begins when the calibration was skipped
BEFORE_CALIBRATION = "trained before the calibration existed"


def confidence_warning(confidence: Mapping[str, Any] | None) -> str:
    """The warning of a model whose confidence was not calibrated, given its manifest's ``confidence`` (None:
    a manifest without it, from before the calibration); "" when it was calibrated."""
    if confidence is None:
        why = BEFORE_CALIBRATION
    else:
        method = confidence.get("method", "")
        if not (isinstance(method, str) and method.startswith(NOT_CALIBRATED)):
            return ""
        why = method.removeprefix(NOT_CALIBRATED).lstrip(":").strip() or "skipped"
    return (f"Confidence not calibrated ({why}): the model's raw posterior, often near 100%; "
            "read it as a ranking, not a probability.")

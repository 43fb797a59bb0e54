"""How a new model's segments relate to the served one's, on the new model's training customers.

The served (CURRENT) version scores the new data's customers; the two labelings are compared with the
adjusted Rand index, and each new segment is matched to the served segment holding most of its customers.
"""
from __future__ import annotations

import logging
from typing import Any

import numpy as np
import pandas as pd
from sklearn.metrics import adjusted_rand_score

from segmentation_core.artefact import read_artefact
from segmentation_core.errors import SegmentationError
from segmentation_core.store import ModelStore

__all__ = ["compare_with_current", "match_segments"]

log = logging.getLogger(__name__)


def compare_with_current(store: ModelStore, model: str, features: pd.DataFrame, segment: np.ndarray) -> dict[str, Any]:
    """{"compared_version", "ari" (None when not computable), "note", "matching", "matching_share"}."""
    current = store.current(model)
    empty: dict[str, Any] = {"compared_version": current or "", "ari": None, "matching": [], "matching_share": []}
    if current is None:
        return {**empty, "note": f"model {model!r} has no served version to compare with"}
    try:
        served = read_artefact(store.version_dir(model, current))
    except SegmentationError as exc:
        return {**empty, "note": f"the served version {current} cannot be read: {exc}"}
    missing = [name for name in served.schema.feature_names if name not in features.columns]
    if missing:
        return {**empty, "note": f"the served version {current} uses columns this data lacks: {', '.join(missing)}"}
    try:
        old = served.model.score(served.schema.transform_frame(features[served.schema.feature_names])).segment
    except (SegmentationError, ValueError) as exc:
        return {**empty, "note": f"the served version {current} cannot score this data: {exc}"}
    ari = float(adjusted_rand_score(old, segment))
    matching, share = match_segments(np.asarray(segment), np.asarray(old))
    log.info("compared with the served %s: ARI %.3f", current, ari)
    return {"compared_version": current, "ari": ari, "note": "", "matching": matching, "matching_share": share}


def match_segments(new: np.ndarray, old: np.ndarray) -> tuple[list[int], list[float]]:
    """For each new segment id 0..max: the old segment holding most of its customers, and that share."""
    matching, shares = [], []
    for s in range(int(new.max()) + 1 if len(new) else 0):
        members = old[new == s]
        if len(members) == 0:
            matching.append(-1)
            shares.append(0.0)
            continue
        counts = np.bincount(members[members >= 0])
        best = int(counts.argmax()) if len(counts) else -1
        matching.append(best)
        shares.append(float(counts[best] / len(members)) if best >= 0 else 0.0)
    return matching, shares

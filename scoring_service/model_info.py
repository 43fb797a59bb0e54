"""Conversions from a verified artefact (manifest, schema, sample) to the contract's ModelInfo and
SegmentStats messages: the one place that knows both the manifest layout and those messages."""
from __future__ import annotations

import json
import math
from pathlib import PurePath
from typing import Any, Mapping

import numpy as np
from google.protobuf import json_format

from segmentation.v1 import scoring_pb2 as pb
from segmentation_core.artefact import Artefact
from segmentation_core.palette import segment_colour


def _number(value: Any) -> float | None:
    """A finite float, or None for anything else (strings, None, NaN in a metric table)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    value = float(value)
    return value if math.isfinite(value) else None


def _feature_stats(stats: Mapping[str, Mapping[str, Any]]) -> list[pb.FeatureStats]:
    return [pb.FeatureStats(feature=name, **{key: float(s.get(key, math.nan))
                                               for key in ("mean", "median", "min", "max", "std")})
            for name, s in stats.items()]


_VALUE_KEYS = ("mean_clv", "total_clv", "share_of_clv", "mean_p_alive", "mean_expected_purchases",
               "mean_expected_order_value")


def _segment_value(stats: Mapping[str, Any] | None) -> pb.SegmentValue | None:
    if not stats:
        return None
    return pb.SegmentValue(**{key: float(stats.get(key, math.nan)) for key in _VALUE_KEYS})


def clv_info(manifest: Mapping[str, Any]) -> pb.ClvInfo | None:
    """The manifest's ``clv`` as a ClvInfo (None for a model without CLV)."""
    clv = manifest.get("clv")
    if not clv:
        return None
    return pb.ClvInfo(time_unit=str(clv.get("time_unit", "")), calibration_end=str(clv.get("calibration_end") or ""),
                      horizon_days=int(clv.get("horizon_days", 0)),
                      discount_rate_annual=float(clv.get("discount_rate_annual", 0.0)),
                      bgnbd={k: float(v) for k, v in clv.get("bgnbd", {}).items()},
                      gamma_gamma={k: float(v) for k, v in clv.get("gamma_gamma", {}).items()},
                      base=_segment_value(clv.get("base")))


def recipe_columns(manifest: Mapping[str, Any]) -> dict[str, str]:
    """A transactions model's log columns by role (empty for a customer-table model)."""
    recipe = manifest.get("recipe") or {}
    roles = ("customer_id", "date", "invoice", "quantity", "price", "amount")
    return {role: str(recipe[role]) for role in roles if recipe.get(role)}


def segments(artefact: Artefact) -> list[pb.Segment]:
    """The manifest's segments, with the model's outlier thresholds."""
    thresholds = artefact.model.outlier_threshold
    out = []
    for s in artefact.manifest.get("segments", []):
        sid = int(s["id"])
        out.append(pb.Segment(
            id=sid, name=str(s.get("name", "")), description=str(s.get("description", "")),
            action=str(s.get("action", "")), size=int(s.get("size", 0)), share=float(s.get("share", 0.0)),
            centroid={k: float(v) for k, v in s.get("centroid", {}).items()},
            stats=_feature_stats(s.get("stats", {})),
            levels=[pb.LevelShare(feature=f, level=str(level), share=float(share))
                    for f, shares in s.get("categories", {}).items() for level, share in shares.items()],
            outlier_distance=float(thresholds[sid]) if 0 <= sid < len(thresholds) else math.nan,
            colour=segment_colour(sid) if sid >= 0 else "",
            clv=_segment_value(s.get("clv")),
            basket=_feature_stats(s.get("basket", {})),
        ))
    return out


def model_info(artefact: Artefact, model: str) -> pb.ModelInfo:
    """The ModelInfo of a loaded version."""
    m = artefact.manifest
    schema = artefact.schema
    search = m.get("k_search", {}) or {}
    data = m.get("data", {}) or {}
    k_rows = []
    for row in search.get("rows", []):
        metrics = {key: v for key, value in row.items() if key != "k" and (v := _number(value)) is not None}
        k_rows.append(pb.KSearchRow(k=int(row.get("k", 0)), metrics=metrics))
    quality = {key: v for key, value in (m.get("quality", {}) or {}).items() if (v := _number(value)) is not None}
    return pb.ModelInfo(
        model=model, version=artefact.version, created_at=str(m.get("created_at", "")),
        algorithm=str(m.get("algorithm", {}).get("name", "")), k=artefact.model.k,
        numeric_features=[pb.NumericFeatureInfo(name=f.name, minimum=f.minimum, maximum=f.maximum, impute=f.impute,
                                                skew=f.skew, clip_low=f.clip_low, clip_high=f.clip_high)
                          for f in schema.numeric],
        categorical_features=[pb.CategoricalFeatureInfo(name=c.name, levels=list(c.levels), impute=c.impute)
                              for c in schema.categorical],
        segments=segments(artefact), k_search=k_rows,
        k_rule=str(search.get("rule", "")), k_rule_explanation=str(search.get("explanation", "")),
        segment_structure=str(search.get("structure", "") or ""),
        quality=quality, training_rows=int(data.get("rows_in", 0) or 0),
        training_customers=int(data.get("customers", 0) or 0), data_fingerprint=str(data.get("fingerprint", "")),
        # The file's name as its owner called it, never a path on the training machine (manifests before
        # `data.name` was written: the path's last part).
        data_source=str(data.get("name") or PurePath(str(data.get("path", ""))).name),
        base_stats=_feature_stats((m.get("base", {}) or {}).get("stats", {})),
        manifest_json=json.dumps({key: value for key, value in m.items() if key not in LARGE_MANIFEST_KEYS},
                                 sort_keys=True),
        clv=clv_info(m), recipe_columns=recipe_columns(m),
    )


# Manifest parts sent only on request (GetModelInfoRequest.include_profile), not in manifest_json.
LARGE_MANIFEST_KEYS = ("profile", "reference")


def with_reference(info: pb.ModelInfo, artefact: Artefact) -> pb.ModelInfo:
    """A copy of ``info`` whose manifest_json keeps the drift reference (GetModelInfoRequest.include_reference)."""
    if "reference" not in artefact.manifest:
        return info
    full = pb.ModelInfo()
    full.CopyFrom(info)
    manifest = json.loads(info.manifest_json)
    manifest["reference"] = artefact.manifest["reference"]
    full.manifest_json = json.dumps(manifest, sort_keys=True)
    return full


def with_profile(info: pb.ModelInfo, artefact: Artefact) -> pb.ModelInfo:
    """A copy of ``info`` carrying the manifest's training-data profile (unchanged when it has none)."""
    stored = artefact.manifest.get("profile")
    if not stored:
        return info
    full = pb.ModelInfo()
    full.CopyFrom(info)
    json_format.ParseDict(stored, full.profile, ignore_unknown_fields=True)
    return full


def segment_stats(artefact: Artefact, model: str, sample: Mapping[str, np.ndarray], max_sample: int) -> pb.SegmentStats:
    """Segment statistics and the labelled plot sample (the first ``max_sample`` rows; 0 = all)."""
    n = len(sample.get("segment_id", ()))
    take = n if max_sample <= 0 else min(n, max_sample)

    def col(key: str) -> np.ndarray:
        return np.asarray(sample.get(key, np.zeros(0)))[:take]

    return pb.SegmentStats(
        model=model, version=artefact.version, segments=segments(artefact),
        base_stats=_feature_stats((artefact.manifest.get("base", {}) or {}).get("stats", {})),
        sample_numeric=[pb.NumericColumn(name=key[4:], values=col(key).astype(np.float64).tolist())
                        for key in sample if key.startswith("num:")],
        sample_categorical=[pb.CategoricalColumn(name=key[4:], values=[str(v) for v in col(key)])
                            for key in sample if key.startswith("cat:")],
        sample_segment_id=col("segment_id").astype(np.int32).tolist(),
        sample_map_x=col("map_x").tolist(), sample_map_y=col("map_y").tolist(), sample_map_z=col("map_z").tolist(),
        centroid_map_x=np.asarray(sample.get("centroid_map_x", ())).tolist(),
        centroid_map_y=np.asarray(sample.get("centroid_map_y", ())).tolist(),
        centroid_map_z=np.asarray(sample.get("centroid_map_z", ())).tolist(),
    )

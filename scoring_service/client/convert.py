"""The one place where the contract's protobuf messages become the client's dataclasses (``types.py``)."""
from __future__ import annotations

from typing import Any, Iterable

from google.protobuf import json_format

from scoring_service.client.types import (
    CategoricalFeature,
    ClvInfo,
    CustomerValue,
    SegmentValue,
    DriftReport,
    DriftSlice,
    DriftVerdict,
    FeatureDrift,
    FeatureStats,
    KSearchRow,
    LevelShare,
    ModelEntry,
    ModelInfo,
    NumericFeature,
    Prediction,
    Segment,
    SegmentStats,
    VersionInfo,
)
from segmentation.v1 import scoring_pb2

_AXES = ("x", "y", "z")


def prediction(response: scoring_pb2.PredictResponse) -> Prediction:
    """A PredictResponse as a Prediction."""
    p = response.prediction
    clv = None
    if _has(p, "clv"):
        clv = CustomerValue(float(p.clv.expected_purchases), float(p.clv.p_alive), float(p.clv.expected_order_value),
                            float(p.clv.clv))
    return Prediction(int(p.segment_id), p.segment_name, float(p.distance), float(p.confidence), bool(p.outlier),
                      response.model, response.version, clv)


def _segment_value(message: Any) -> SegmentValue:
    return SegmentValue(float(message.mean_clv), float(message.total_clv), float(message.share_of_clv),
                        float(message.mean_p_alive), float(message.mean_expected_purchases),
                        float(message.mean_expected_order_value))


def clv_info(info: scoring_pb2.ModelInfo) -> ClvInfo | None:
    """A ModelInfo's CLV models (None for a model without them)."""
    if not _has(info, "clv"):
        return None
    c = info.clv
    return ClvInfo(c.time_unit, c.calibration_end, int(c.horizon_days), float(c.discount_rate_annual),
                   dict(c.bgnbd), dict(c.gamma_gamma), _segment_value(c.base) if _has(c, "base") else None)


def model_info(info: scoring_pb2.ModelInfo) -> ModelInfo:
    """A ModelInfo message as a ModelInfo (segments sorted by id)."""
    return ModelInfo(
        model=info.model,
        version=info.version,
        created_at=info.created_at,
        algorithm=info.algorithm,
        k=int(info.k),
        numeric_features=tuple(
            NumericFeature(f.name, float(f.minimum), float(f.maximum), float(f.impute), f.skew or "none",
                           float(f.clip_low), float(f.clip_high))
            for f in info.numeric_features),
        categorical_features=tuple(CategoricalFeature(f.name, tuple(f.levels), f.impute)
                                   for f in info.categorical_features),
        segments=segments(info.segments),
        k_search=tuple(KSearchRow(int(r.k), {m: float(v) for m, v in r.metrics.items()})
                       for r in sorted(info.k_search, key=lambda r: r.k)),
        k_rule=info.k_rule,
        k_rule_explanation=info.k_rule_explanation,
        segment_structure=info.segment_structure,
        quality={name: float(value) for name, value in info.quality.items()},
        training_rows=int(info.training_rows),
        training_customers=int(info.training_customers),
        data_fingerprint=info.data_fingerprint,
        data_source=info.data_source,
        base_stats=feature_stats(info.base_stats),
        manifest_json=info.manifest_json,
        profile=(json_format.MessageToDict(info.profile, preserving_proto_field_name=True)
                 if _has(info, "profile") else None),
        clv=clv_info(info),
        recipe_columns=dict(info.recipe_columns),
    )


def segments(messages: Iterable[Any]) -> tuple[Segment, ...]:
    """Segment messages as Segments, sorted by id."""
    return tuple(
        Segment(id=int(s.id), name=s.name, description=s.description, action=s.action, size=int(s.size),
                share=float(s.share), centroid={k: float(v) for k, v in s.centroid.items()},
                stats=feature_stats(s.stats),
                levels=tuple(LevelShare(lv.feature, lv.level, float(lv.share)) for lv in s.levels),
                outlier_distance=float(s.outlier_distance), colour=s.colour,
                clv=_segment_value(s.clv) if _has(s, "clv") else None, basket=feature_stats(s.basket))
        for s in sorted(messages, key=lambda s: s.id))


def feature_stats(messages: Iterable[Any]) -> tuple[FeatureStats, ...]:
    """FeatureStats messages as FeatureStats."""
    return tuple(FeatureStats(st.feature, float(st.mean), float(st.median), float(st.min), float(st.max),
                              float(st.std)) for st in messages)


def segment_stats(stats: scoring_pb2.SegmentStats) -> SegmentStats:
    """A SegmentStats message as SegmentStats (projection axes only when the server sent them)."""
    sample_map = {axis: tuple(values) for axis in _AXES if (values := getattr(stats, f"sample_map_{axis}"))}
    centroid_map = {axis: tuple(values) for axis in _AXES if (values := getattr(stats, f"centroid_map_{axis}"))}
    return SegmentStats(
        model=stats.model, version=stats.version, segments=segments(stats.segments),
        base_stats=feature_stats(stats.base_stats),
        sample_numeric={c.name: tuple(c.values) for c in stats.sample_numeric},
        sample_categorical={c.name: tuple(c.values) for c in stats.sample_categorical},
        sample_segment_id=tuple(stats.sample_segment_id), sample_map=sample_map, centroid_map=centroid_map)


def model_entries(response: scoring_pb2.ListModelsResponse) -> list[ModelEntry]:
    """A ListModelsResponse as ModelEntries."""
    return [
        ModelEntry(name=m.name, served_version=m.served_version, is_default=bool(m.is_default),
                   rollback_to=m.rollback_to,
                   versions=tuple(VersionInfo(v.version, v.created_at, v.algorithm, int(v.k), bool(v.current),
                                              bool(v.loaded), v.refused_reason) for v in m.versions))
        for m in response.models
    ]


def drift_report(report: scoring_pb2.DriftReport) -> DriftReport:
    """A DriftReport message as a DriftReport."""
    return DriftReport(
        model=report.model, version=report.version, has_reference=bool(report.has_reference),
        verdict=DriftVerdict(report.verdict), reasons=tuple(report.reasons), rows=int(report.rows),
        row_errors=int(report.row_errors), window_start=float(report.window_start),
        window_end=float(report.window_end), window_rows_limit=int(report.window_rows_limit),
        window_seconds_limit=float(report.window_seconds_limit), training_rows=int(report.training_rows),
        features=tuple(_feature_drift(f) for f in report.features),
        segment_mix=_feature_drift(report.segment_mix) if _has(report, "segment_mix") else None,
        mean_confidence=float(report.mean_confidence), training_mean_confidence=float(report.training_mean_confidence),
        mean_distance=float(report.mean_distance), training_mean_distance=float(report.training_mean_distance),
        outlier_rate=float(report.outlier_rate), training_outlier_rate=float(report.training_outlier_rate),
        slices=tuple(DriftSlice(float(s.start_time), float(s.end_time), int(s.rows), int(s.row_errors),
                                tuple(s.segment_rows), float(s.mean_confidence), float(s.outlier_rate))
                     for s in report.slices),
        reference_bins=int(report.reference_bins), sampled_rows=int(report.sampled_rows),
        confidence_sum=float(report.confidence_sum), distance_sum=float(report.distance_sum),
        outliers=int(report.outliers), min_rows=int(report.min_rows),
    )


def _feature_drift(f: Any) -> FeatureDrift:
    return FeatureDrift(f.feature, f.kind, float(f.psi), f.band, tuple(f.bins), tuple(f.training_share),
                        tuple(f.live_share), tuple(f.edges), float(f.training_missing_rate),
                        float(f.live_missing_rate), float(f.live_unseen_rate), tuple(f.live_counts))


def _has(message: Any, name: str) -> bool:
    """Whether a message field is set (False for a field this generated code does not know)."""
    try:
        return message.HasField(name)
    except ValueError:
        return False

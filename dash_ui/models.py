"""Plain views of the scoring contract for the pages: frozen dataclasses and DataFrames.

`service.py` receives protobuf messages from the scoring client and converts them here, once, so that
pages and figure builders never see a protobuf. Everything here is pure (no I/O).
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Mapping

import pandas as pd
from plotly.colors import qualitative

#: Columns of the per-segment statistics table, in display order.
STATS_COLUMNS = ("segment_id", "segment", "feature", "count", "share", "mean", "median", "min", "max", "std")
BASE_SEGMENT_ID = -1
BASE_SEGMENT_NAME = "All customers"
#: Colours that are no segment's: the whole-base reference, and rows without a segment (scoring errors).
BASE_COLOUR = "#343a40"
NO_SEGMENT_COLOUR = "#6c757d"


def fallback_colour(segment_id: int) -> str:
    """A segment's colour when the service sends none (a server older than `Segment.colour`): plotly's
    default colour sequence, by id. Segment colours are the service's (`segmentation_core.palette`, also
    used by the training report); the dashboard keeps no palette of its own."""
    return qualitative.Plotly[int(segment_id) % len(qualitative.Plotly)]


def segment_colour(colours: Mapping[int, str] | None, segment_id: int) -> str:
    """The colour of `segment_id` in `colours` (`ModelView.segment_colours`); an id it lacks gets the
    fallback colour, and -1 (a row without a segment) grey."""
    segment_id = int(segment_id)
    if segment_id < 0:
        return NO_SEGMENT_COLOUR
    return (colours or {}).get(segment_id) or fallback_colour(segment_id)


@dataclass(frozen=True)
class NumericFeature:
    name: str
    minimum: float
    maximum: float
    impute: float
    skew: str = "none"
    clip_low: float = -math.inf
    clip_high: float = math.inf


@dataclass(frozen=True)
class CategoricalFeature:
    name: str
    levels: tuple[str, ...]
    impute: str


@dataclass(frozen=True)
class SegmentInfo:
    id: int
    name: str
    description: str
    action: str
    size: int
    share: float
    centroid: dict[str, float] = field(default_factory=dict)
    outlier_distance: float = math.nan
    #: CSS colour, the segment's on every page: the service's (`Segment.colour`), or `fallback_colour`.
    colour: str = ""


@dataclass(frozen=True)
class ModelView:
    """The served model as the pages see it (from `ModelInfo`)."""

    model: str
    version: str
    created_at: str
    algorithm: str
    k: int
    numeric_features: tuple[NumericFeature, ...]
    categorical_features: tuple[CategoricalFeature, ...]
    segments: tuple[SegmentInfo, ...]
    #: One row per k tried, one column per metric; index named "k".
    k_search: pd.DataFrame
    k_rule: str
    k_rule_explanation: str
    quality: dict[str, float]
    training_rows: int
    training_customers: int
    data_fingerprint: str
    data_source: str
    #: `STATS_COLUMNS`: one row per (segment, numeric feature), the whole base with segment_id -1.
    stats: pd.DataFrame
    #: segment_id, segment, feature, level, share: category shares per segment.
    level_shares: pd.DataFrame

    @property
    def feature_names(self) -> list[str]:
        return [f.name for f in self.numeric_features] + [f.name for f in self.categorical_features]

    @property
    def numeric_names(self) -> list[str]:
        return [f.name for f in self.numeric_features]

    @property
    def segment_names(self) -> dict[int, str]:
        return {s.id: s.name for s in self.segments}

    @property
    def segment_colours(self) -> dict[int, str]:
        """`{segment id: CSS colour}`, what every figure and badge is coloured with."""
        return {s.id: s.colour for s in self.segments}

    def segment(self, segment_id: int) -> SegmentInfo | None:
        return next((s for s in self.segments if s.id == segment_id), None)

    def numeric_feature(self, name: str) -> NumericFeature | None:
        return next((f for f in self.numeric_features if f.name == name), None)


@dataclass(frozen=True)
class SampleView:
    """A labelled sample of training customers (from `SegmentStats`), in original units.

    `frame` has one column per feature, `segment_id`, `segment`, and `map_x`/`map_y`/`map_z` (the
    projection) when the server sent them. `centroids` has one row per segment: `segment_id`, `segment`,
    `map_x`/`map_y`/`map_z` and the numeric centroid in original units, one column per feature.
    """

    version: str
    frame: pd.DataFrame
    centroids: pd.DataFrame

    @property
    def has_projection(self) -> bool:
        return {"map_x", "map_y"} <= set(self.frame.columns)

    @property
    def has_projection_3d(self) -> bool:
        return self.has_projection and "map_z" in self.frame.columns


@dataclass(frozen=True)
class VersionRow:
    version: str
    created_at: str
    algorithm: str
    k: int
    current: bool
    loaded: bool
    refused_reason: str


@dataclass(frozen=True)
class ModelVersions:
    name: str
    served_version: str
    is_default: bool
    versions: tuple[VersionRow, ...]


def model_view_from_proto(info: Any) -> ModelView:
    """Converts a `segmentation.v1.ModelInfo` into a `ModelView`."""
    segments = tuple(
        SegmentInfo(
            id=int(s.id),
            name=s.name,
            description=s.description,
            action=s.action,
            size=int(s.size),
            share=float(s.share),
            centroid={k: float(v) for k, v in s.centroid.items()},
            outlier_distance=float(s.outlier_distance),
            colour=s.colour or fallback_colour(int(s.id)),
        )
        for s in sorted(info.segments, key=lambda s: s.id)
    )
    return ModelView(
        model=info.model,
        version=info.version,
        created_at=info.created_at,
        algorithm=info.algorithm,
        k=int(info.k),
        numeric_features=tuple(
            NumericFeature(
                name=f.name, minimum=f.minimum, maximum=f.maximum, impute=f.impute, skew=f.skew or "none",
                clip_low=f.clip_low, clip_high=f.clip_high,
            )
            for f in info.numeric_features
        ),
        categorical_features=tuple(
            CategoricalFeature(name=f.name, levels=tuple(f.levels), impute=f.impute)
            for f in info.categorical_features
        ),
        segments=segments,
        k_search=k_search_frame(info.k_search),
        k_rule=info.k_rule,
        k_rule_explanation=info.k_rule_explanation,
        quality={k: float(v) for k, v in info.quality.items()},
        training_rows=int(info.training_rows),
        training_customers=int(info.training_customers),
        data_fingerprint=info.data_fingerprint,
        data_source=info.data_source,
        stats=stats_frame(info.segments, info.base_stats, int(info.training_customers)),
        level_shares=level_shares_frame(info.segments),
    )


def k_search_frame(rows: Any) -> pd.DataFrame:
    """`KSearchRow`s as a frame indexed by k, one column per metric, sorted by k."""
    records = [{"k": int(r.k), **{m: float(v) for m, v in r.metrics.items()}} for r in rows]
    if not records:
        return pd.DataFrame(index=pd.Index([], name="k", dtype="int64"))
    return pd.DataFrame.from_records(records).set_index("k").sort_index()


def stats_frame(segments: Any, base_stats: Any, training_customers: int) -> pd.DataFrame:
    """Per-segment and whole-base feature statistics in one long frame (`STATS_COLUMNS`)."""
    records: list[dict[str, Any]] = []
    for s in sorted(segments, key=lambda s: s.id):
        for st in s.stats:
            records.append(_stats_record(int(s.id), s.name, int(s.size), float(s.share), st))
    for st in base_stats:
        records.append(_stats_record(BASE_SEGMENT_ID, BASE_SEGMENT_NAME, training_customers, 1.0, st))
    return pd.DataFrame.from_records(records, columns=list(STATS_COLUMNS))


def _stats_record(segment_id: int, name: str, size: int, share: float, st: Any) -> dict[str, Any]:
    return {
        "segment_id": segment_id, "segment": name, "feature": st.feature, "count": size, "share": share,
        "mean": st.mean, "median": st.median, "min": st.min, "max": st.max, "std": st.std,
    }


def level_shares_frame(segments: Any) -> pd.DataFrame:
    records = [
        {"segment_id": int(s.id), "segment": s.name, "feature": lv.feature, "level": lv.level, "share": lv.share}
        for s in segments
        for lv in s.levels
    ]
    return pd.DataFrame.from_records(records, columns=["segment_id", "segment", "feature", "level", "share"])


def sample_view_from_proto(stats: Any, names: dict[int, str] | None = None) -> SampleView:
    """Converts a `segmentation.v1.SegmentStats` into a `SampleView`."""
    names = names or {int(s.id): s.name for s in stats.segments}
    ids = list(stats.sample_segment_id)
    n = len(ids)
    columns: dict[str, Any] = {}
    for col in stats.sample_numeric:
        if len(col.values) == n:
            columns[col.name] = list(col.values)
    for col in stats.sample_categorical:
        if len(col.values) == n:
            columns[col.name] = list(col.values)
    for axis in ("x", "y", "z"):
        values = list(getattr(stats, f"sample_map_{axis}"))
        if n and len(values) == n:
            columns[f"map_{axis}"] = values
    frame = pd.DataFrame(columns)
    frame["segment_id"] = pd.Series(ids, dtype="int64")
    frame["segment"] = frame["segment_id"].map(lambda i: names.get(int(i), f"Segment {i}"))

    segments = sorted(stats.segments, key=lambda s: s.id)
    centroid_records = []
    for s in segments:
        rec: dict[str, Any] = {"segment_id": int(s.id), "segment": names.get(int(s.id), s.name)}
        for axis in ("x", "y", "z"):
            values = getattr(stats, f"centroid_map_{axis}")
            if int(s.id) < len(values):
                rec[f"map_{axis}"] = float(values[int(s.id)])
        rec.update({k: float(v) for k, v in s.centroid.items()})
        centroid_records.append(rec)
    centroids = pd.DataFrame.from_records(centroid_records)
    if centroids.empty:
        centroids = pd.DataFrame(columns=["segment_id", "segment"])
    return SampleView(version=stats.version, frame=frame, centroids=centroids)


def model_versions_from_proto(response: Any) -> list[ModelVersions]:
    return [
        ModelVersions(
            name=m.name,
            served_version=m.served_version,
            is_default=bool(m.is_default),
            versions=tuple(
                VersionRow(
                    version=v.version, created_at=v.created_at, algorithm=v.algorithm, k=int(v.k),
                    current=bool(v.current), loaded=bool(v.loaded), refused_reason=v.refused_reason,
                )
                for v in m.versions
            ),
        )
        for m in getattr(response, "models", response)  # a ListModelsResponse or its list of models
    ]


def separating_features(view: ModelView, count: int = 2) -> list[str]:
    """The `count` numeric features whose segment means differ most, relative to the base spread.

    The score is the share-weighted variance of segment means divided by the base variance (the
    between-segment share of variance, as in an ANOVA F ratio); ties keep schema order.
    """
    names = view.numeric_names
    if not names:
        return []
    stats = view.stats
    scores: dict[str, float] = {}
    for name in names:
        base = stats[(stats.segment_id == BASE_SEGMENT_ID) & (stats.feature == name)]
        seg = stats[(stats.segment_id != BASE_SEGMENT_ID) & (stats.feature == name)]
        if base.empty or seg.empty or not base["std"].iloc[0] > 0:
            scores[name] = 0.0
            continue
        mean = float(base["mean"].iloc[0])
        between = float(((seg["mean"] - mean) ** 2 * seg["share"]).sum())
        scores[name] = between / float(base["std"].iloc[0]) ** 2
    ranked = sorted(names, key=lambda n: (-scores[n], names.index(n)))[:count]
    return sorted(ranked, key=names.index)  # schema order: income before spending, as users expect

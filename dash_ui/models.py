"""The served model as the pages see it: the scoring client's dataclasses, plus the DataFrames figures draw.

`service.py` receives the client's plain answers (`scoring_service.client.ModelInfo`, `SegmentStats`,
`ModelEntry`) and turns them here, once, into a `ModelView` (the info, its statistics as frames, every
segment with its colour) and a `SampleView` (the plot sample as a frame). Everything here is pure (no I/O).
"""
from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field, replace
from typing import Any, Iterable, Mapping

import pandas as pd

from scoring_service.client import FeatureStats, KSearchRow, ModelInfo, NumericFeature, Segment, SegmentStats
from scoring_service.client.logs import recipe_of
from segmentation_core.charts.colours import (  # noqa: F401 - re-exported for the pages
    BASE_COLOUR,
    NO_SEGMENT_COLOUR,
    fallback_colour,
    segment_colour,
)
from segmentation_core.recipe import Recipe
from segmentation_core.wording import confidence_warning

from segmentation_core.charts.figures import BASE_SEGMENT_ID, BASE_SEGMENT_NAME, STATS_COLUMNS  # noqa: F401


@dataclass(frozen=True)
class ModelView(ModelInfo):
    """The served model as the pages see it: the client's `ModelInfo`, every segment with its colour (the
    service's `Segment.colour`, or `fallback_colour`), and the statistics as frames for the figures."""

    #: One row per k tried, one column per metric; index named "k".
    k_table: pd.DataFrame = field(default_factory=pd.DataFrame)
    #: `STATS_COLUMNS`: one row per (segment, numeric feature), the whole base with segment_id -1.
    stats: pd.DataFrame = field(default_factory=pd.DataFrame)
    #: segment_id, segment, feature, level, share: category shares per segment.
    level_shares: pd.DataFrame = field(default_factory=pd.DataFrame)
    #: Transaction-log models: the recipe that aggregates a raw log to customers (on this side); else None.
    recipe: Recipe | None = None
    #: The warning beside a confidence when the model's was not calibrated (``segmentation_core.wording``'s
    #: ``confidence_warning``: the training job skipped it, or the version predates it); "" when it was.
    confidence_note: str = ""

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

    def segment(self, segment_id: int) -> Segment | None:
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


def model_view(info: ModelInfo) -> ModelView:
    """The pages' view of the client's `ModelInfo`: every segment coloured, the statistics as frames."""
    segments = tuple(replace(s, colour=s.colour or fallback_colour(s.id)) for s in info.segments)
    fields = {f.name: getattr(info, f.name) for f in dataclasses.fields(ModelInfo)}
    return ModelView(**{**fields, "segments": segments}, k_table=k_search_frame(info.k_search),
                     stats=stats_frame(segments, info.base_stats, info.training_customers),
                     level_shares=level_shares_frame(segments), recipe=recipe_of(info),
                     confidence_note=confidence_note(info))


def confidence_note(info: ModelInfo) -> str:
    """The warning of a model whose confidence was not calibrated, from the manifest's ``confidence`` (which
    ModelInfo carries in ``manifest_json``): its method "not fitted: ...", or no ``confidence`` at all (a version
    trained before the calibration); "" when it was calibrated, or when no manifest came."""
    try:
        manifest = json.loads(info.manifest_json or "{}")
    except ValueError:
        return ""
    if not isinstance(manifest, dict) or not manifest:
        return ""
    confidence = manifest.get("confidence")
    return confidence_warning(confidence if isinstance(confidence, dict) else None)


def k_search_frame(rows: Iterable[KSearchRow]) -> pd.DataFrame:
    """The k search as a frame indexed by k, one column per metric, sorted by k."""
    records = [{"k": r.k, **r.metrics} for r in rows]
    if not records:
        return pd.DataFrame(index=pd.Index([], name="k", dtype="int64"))
    return pd.DataFrame.from_records(records).set_index("k").sort_index()


def stats_frame(segments: Iterable[Segment], base_stats: Iterable[FeatureStats],
                training_customers: int) -> pd.DataFrame:
    """Per-segment and whole-base feature statistics in one long frame (`STATS_COLUMNS`)."""
    records: list[dict[str, Any]] = []
    for s in segments:
        for st in s.stats:
            records.append(_stats_record(s.id, s.name, s.size, s.share, st))
    for st in base_stats:
        records.append(_stats_record(BASE_SEGMENT_ID, BASE_SEGMENT_NAME, training_customers, 1.0, st))
    return pd.DataFrame.from_records(records, columns=list(STATS_COLUMNS))


def _stats_record(segment_id: int, name: str, size: int, share: float, st: FeatureStats) -> dict[str, Any]:
    return {
        "segment_id": segment_id, "segment": name, "feature": st.feature, "count": size, "share": share,
        "mean": st.mean, "median": st.median, "min": st.min, "max": st.max, "std": st.std,
    }


def level_shares_frame(segments: Iterable[Segment]) -> pd.DataFrame:
    """Category shares per segment: segment_id, segment, feature, level, share."""
    records = [
        {"segment_id": s.id, "segment": s.name, "feature": lv.feature, "level": lv.level, "share": lv.share}
        for s in segments
        for lv in s.levels
    ]
    return pd.DataFrame.from_records(records, columns=["segment_id", "segment", "feature", "level", "share"])


def sample_view(stats: SegmentStats, names: Mapping[int, str] | None = None) -> SampleView:
    """The pages' view of the client's `SegmentStats`: the labelled sample and the centroids as frames."""
    names = names or {s.id: s.name for s in stats.segments}
    ids = stats.sample_segment_id
    n = len(ids)
    columns: dict[str, Any] = {}
    for name, values in [*stats.sample_numeric.items(), *stats.sample_categorical.items()]:
        if len(values) == n:
            columns[name] = list(values)
    for axis, values in stats.sample_map.items():
        if n and len(values) == n:
            columns[f"map_{axis}"] = list(values)
    frame = pd.DataFrame(columns)
    frame["segment_id"] = pd.Series(ids, dtype="int64")
    frame["segment"] = frame["segment_id"].map(lambda i: names.get(int(i), f"Segment {i}"))

    centroid_records = []
    for s in stats.segments:
        rec: dict[str, Any] = {"segment_id": s.id, "segment": names.get(s.id, s.name)}
        for axis, values in stats.centroid_map.items():
            if s.id < len(values):
                rec[f"map_{axis}"] = float(values[s.id])
        rec.update(s.centroid)
        centroid_records.append(rec)
    centroids = pd.DataFrame.from_records(centroid_records)
    if centroids.empty:
        centroids = pd.DataFrame(columns=["segment_id", "segment"])
    return SampleView(version=stats.version, frame=frame, centroids=centroids)


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

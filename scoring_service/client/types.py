"""What the client returns: plain, frozen dataclasses for every RPC's answer, and its one error type.

Field names follow the contract (`proto/segmentation/v1/scoring.proto`), so its comments document them;
`convert.py` is the one place that turns protobuf messages into these.
"""
from __future__ import annotations

import enum
import math
import re
from dataclasses import dataclass, field
from typing import Any

import grpc

#: The columns the client adds to a scored table (``predict_frame``, the CLI's output, the dashboard's batch).
RESULT_COLUMNS = ("segment_id", "segment_name", "distance", "confidence", "outlier", "error")
DEFAULT_TARGET = "127.0.0.1:50051"


class ScoringError(Exception):
    """A failed call: the gRPC status code and the server's message (which names the field and row)."""

    def __init__(self, code: grpc.StatusCode, message: str, *, method: str = "") -> None:
        super().__init__(f"{code.name}: {message}" if not method else f"{method}: {code.name}: {message}")
        self.code = code
        self.message = message
        self.method = method

    @classmethod
    def from_rpc(cls, exc: grpc.RpcError, method: str = "", *, batch_rows: int | None = None,
                 reply_row_bytes: int = 0) -> "ScoringError":
        """Wrap a grpc.RpcError (which is also a grpc.Call) into a ScoringError; gRPC's own message-size refusal
        is said with what to do (:func:`size_limit_message`; ``batch_rows``: the rows of the stream's batch,
        ``reply_row_bytes``: what each row adds to the reply)."""
        code = exc.code() if hasattr(exc, "code") else grpc.StatusCode.UNKNOWN
        details = (exc.details() if hasattr(exc, "details") else str(exc)) or ""
        return cls(code or grpc.StatusCode.UNKNOWN,
                   size_limit_message(details, batch_rows, reply_row_bytes) or details, method=method)


#: The largest message this client sends or receives (gRPC's limits on its channels).
MAX_MESSAGE_BYTES = 64 << 20
#: gRPC's refusal of a message over the channel's or the server's limit (RESOURCE_EXHAUSTED).
_TOO_LARGE = re.compile(r"(Received|Sent) message larger than max \((\d+) vs\. (\d+)\)")


def size_limit_message(details: str, batch_rows: int | None = None, reply_row_bytes: int = 0) -> str | None:
    """What to do about gRPC's "Received message larger than max (N vs. M)" (the scoring service's limit on a
    request, ``--max-message-mb``) or "Sent message larger than max": this client's own limit on a request (64 MiB,
    :data:`MAX_MESSAGE_BYTES`) or, any other limit, the scoring service's on its reply. Says to send fewer rows per
    batch (``batch_rows``: those of the batch refused), with a number that fits both ways: sized on the larger of
    the request's bytes per row and the reply's (``reply_row_bytes``, from ``scoring_service.wire``), or to raise
    the service's limit; None for other details."""
    match = _TOO_LARGE.search(details)
    if match is None:
        return None
    size, limit = int(match.group(2)), int(match.group(3))
    service = f"{limit / 2**20:,.1f} MiB: its --max-message-mb, SCORING_MAX_MESSAGE_MB"
    reply = match.group(1) == "Sent" and limit != MAX_MESSAGE_BYTES
    if match.group(1) == "Received":
        whose = f"the scoring service accepts ({service})"
    elif reply:
        whose = f"it may send ({service})"
    else:
        whose = f"this client sends ({limit / 2**20:,.1f} MiB)"
    raise_it = "" if whose.startswith("this client") else " or start the service with a larger --max-message-mb"
    what = "the scoring service's reply to " if reply else ""  # its limit on what it sends
    if batch_rows is None:
        return (f"{what or 'a message of '}{size / 2**20:,.1f} MiB is larger than {whose}"
                f"{': start the service with a larger --max-message-mb' if raise_it else ''} (gRPC: {match.group(0)})")
    per_row = max(size / batch_rows, reply_row_bytes)
    fit = max(1, int(limit * 0.9 / per_row))
    return (f"{what}a batch of {batch_rows:,} rows ({size / 2**20:,.1f} MiB) is larger than {whose}: send fewer "
            f"rows per batch (about {fit:,} fit: the client CLI's --batch-rows or SCORING_BATCH_ROWS, the Python client's batch_rows=){raise_it} (gRPC: {match.group(0)})")


def retry_after(exc: grpc.RpcError) -> float | None:
    """The seconds a RESOURCE_EXHAUSTED answer asks to wait (trailing ``retry-after-ms``), else None."""
    if not hasattr(exc, "code") or exc.code() != grpc.StatusCode.RESOURCE_EXHAUSTED:
        return None
    for key, value in exc.trailing_metadata() or ():
        if key == "retry-after-ms":
            try:
                return max(0.0, float(value)) / 1000.0
            except ValueError:
                return None
    return None


@dataclass(frozen=True)
class CustomerValue:
    """A customer's lifetime value figures (see README "CLV")."""

    expected_purchases: float
    p_alive: float
    expected_order_value: float
    clv: float


@dataclass(frozen=True)
class Prediction:
    """The segment of one customer, and the model version that answered."""

    segment_id: int
    segment_name: str
    distance: float
    confidence: float
    outlier: bool
    model: str
    version: str
    #: CLV figures, when the model has CLV and the request carried the four CLV inputs; else None.
    clv: CustomerValue | None = None


@dataclass(frozen=True)
class NumericFeature:
    """A numeric input feature: training range, imputed value, skew handling and clip bounds (original units)."""

    name: str
    minimum: float
    maximum: float
    impute: float
    skew: str = "none"
    clip_low: float = -math.inf
    clip_high: float = math.inf


@dataclass(frozen=True)
class CategoricalFeature:
    """A categorical input feature: training levels (most frequent first) and the imputed level."""

    name: str
    levels: tuple[str, ...]
    impute: str


@dataclass(frozen=True)
class FeatureStats:
    """One feature's statistics within a group of customers (original units)."""

    feature: str
    mean: float
    median: float
    min: float
    max: float
    std: float


@dataclass(frozen=True)
class LevelShare:
    """One category level's share of a group of customers, in [0, 1]."""

    feature: str
    level: str
    share: float


@dataclass(frozen=True)
class Segment:
    """A segment: name, description, action, size, centroid, statistics and display colour."""

    id: int
    name: str
    description: str = ""
    action: str = ""
    size: int = 0
    share: float = 0.0
    centroid: dict[str, float] = field(default_factory=dict)
    stats: tuple[FeatureStats, ...] = ()
    levels: tuple[LevelShare, ...] = ()
    outlier_distance: float = math.nan
    #: CSS colour; empty from a server older than `Segment.colour`.
    colour: str = ""
    #: Transaction-log models with CLV: the segment's lifetime value figures; else None.
    clv: SegmentValue | None = None
    #: Transaction-log models: basket metrics (AvgBasketValue, AvgItemsPerPurchase, TenureDays,
    #: PurchaseIntervalDays) of the segment's customers.
    basket: tuple[FeatureStats, ...] = ()


@dataclass(frozen=True)
class SegmentValue:
    """Lifetime value of a group of training customers (a segment or the base), as of training."""

    mean_clv: float
    total_clv: float
    share_of_clv: float
    mean_p_alive: float
    mean_expected_purchases: float
    mean_expected_order_value: float


@dataclass(frozen=True)
class ClvInfo:
    """A transaction-log model's CLV models: what the figures mean and the fitted parameters."""

    time_unit: str
    calibration_end: str
    horizon_days: int
    discount_rate_annual: float
    bgnbd: dict[str, float]
    gamma_gamma: dict[str, float]
    base: SegmentValue | None


@dataclass(frozen=True)
class KSearchRow:
    """Every metric computed for one k of the k search."""

    k: int
    metrics: dict[str, float]


@dataclass(frozen=True)
class ModelInfo:
    """A model version: its feature schema, segments, k search, quality and training data."""

    model: str
    version: str
    created_at: str
    algorithm: str
    k: int
    numeric_features: tuple[NumericFeature, ...]
    categorical_features: tuple[CategoricalFeature, ...]
    segments: tuple[Segment, ...]
    k_search: tuple[KSearchRow, ...]
    k_rule: str
    k_rule_explanation: str
    quality: dict[str, float]
    training_rows: int
    training_customers: int
    data_fingerprint: str
    data_source: str
    base_stats: tuple[FeatureStats, ...]
    manifest_json: str = ""
    #: The training data's profile as the manifest stores it (profile.proto's field names), when asked
    #: for with ``include_profile`` and the version has one; else None.
    profile: dict[str, Any] | None = None
    #: "natural groups", "unproven groups" or "partition of a continuum" (the manifest's
    #: k_search.structure); "" for versions trained before it was recorded.
    segment_structure: str = ""
    #: Transaction-log models with CLV: the CLV models (then predictions can carry CLV figures); else None.
    clv: ClvInfo | None = None
    #: Transaction-log models: the log columns the recipe reads, by role (customer_id, date, invoice,
    #: quantity, price or amount); empty for a customer-table model.
    recipe_columns: dict[str, str] = field(default_factory=dict)

    @property
    def feature_names(self) -> list[str]:
        """Numeric features, then categorical ones, in schema order."""
        return [f.name for f in self.numeric_features] + [f.name for f in self.categorical_features]


@dataclass(frozen=True)
class SegmentStats:
    """Per-segment statistics and a labelled sample of training customers, in columns (original units).

    ``sample_numeric`` and ``sample_categorical`` map a feature to one value per sample row;
    ``sample_map``/``centroid_map`` hold the x, y (and z) projection axes that the server sent, by axis name.
    """

    model: str
    version: str
    segments: tuple[Segment, ...]
    base_stats: tuple[FeatureStats, ...]
    sample_numeric: dict[str, tuple[float, ...]]
    sample_categorical: dict[str, tuple[str, ...]]
    sample_segment_id: tuple[int, ...]
    sample_map: dict[str, tuple[float, ...]]
    centroid_map: dict[str, tuple[float, ...]]


@dataclass(frozen=True)
class VersionInfo:
    """One version of a model in the store, as the server sees it."""

    version: str
    created_at: str
    algorithm: str
    k: int
    current: bool
    loaded: bool
    refused_reason: str


@dataclass(frozen=True)
class ModelEntry:
    """A model in the store: its versions and the one serving unnamed requests."""

    name: str
    served_version: str
    is_default: bool
    versions: tuple[VersionInfo, ...]
    #: The version a rollback would serve (the one served before the current one), "" when none.
    rollback_to: str = ""


class DriftVerdict(enum.IntEnum):
    """What a drift report concludes (the contract's DriftVerdict; equal to its numbers)."""

    UNSPECIFIED = 0
    STABLE = 1
    MODERATE = 2
    RETRAIN = 3
    INSUFFICIENT_DATA = 4
    NO_REFERENCE = 5


@dataclass(frozen=True)
class FeatureDrift:
    """One feature's (or the segment mix's) live and training shares on the reference's bins, and its PSI."""

    feature: str
    kind: str
    psi: float
    band: str
    bins: tuple[str, ...]
    training_share: tuple[float, ...]
    live_share: tuple[float, ...]
    edges: tuple[float, ...]
    training_missing_rate: float
    live_missing_rate: float
    live_unseen_rate: float
    live_counts: tuple[int, ...] = ()  # live rows per bin (empty from a server older than the field)


@dataclass(frozen=True)
class DriftSlice:
    """One slice of the rolling window, for charts over time."""

    start_time: float
    end_time: float
    rows: int
    row_errors: int
    segment_rows: tuple[int, ...]
    mean_confidence: float
    outlier_rate: float


@dataclass(frozen=True)
class DriftReport:
    """How the recent traffic of a model version compares with its training data."""

    model: str
    version: str
    has_reference: bool
    verdict: DriftVerdict
    reasons: tuple[str, ...]
    rows: int
    row_errors: int
    window_start: float
    window_end: float
    window_rows_limit: int
    window_seconds_limit: float
    training_rows: int
    features: tuple[FeatureDrift, ...]
    segment_mix: FeatureDrift | None
    mean_confidence: float
    training_mean_confidence: float
    mean_distance: float
    training_mean_distance: float
    outlier_rate: float
    training_outlier_rate: float
    slices: tuple[DriftSlice, ...]
    reference_bins: int
    sampled_rows: int = 0  # rows in the live feature histograms (the server bins a sample of each batch)
    confidence_sum: float = 0.0  # the sums the means and rates are made of (over ``rows``)
    distance_sum: float = 0.0
    outliers: int = 0
    min_rows: int = 0  # the server's --drift-min-rows


@dataclass(frozen=True)
class VersionDrift:
    """One model version's drift over the replicas serving it: their reports combined (counts added)."""

    report: DriftReport
    replicas: tuple[str, ...]  # the replicas whose reports were combined


@dataclass(frozen=True)
class ReplicaDrift:
    """The drift reports of every scoring replica, combined per version (replicas on different versions are
    reported apart, never mixed)."""

    versions: tuple[VersionDrift, ...]  # the version on the most replicas first (then the newest)
    asked: tuple[str, ...]  # every replica the target named
    failed: tuple[tuple[str, str], ...]  # (replica, why) of those that did not answer

    @property
    def report(self) -> DriftReport:
        """The combined report of the version on the most replicas."""
        return self.versions[0].report

    @property
    def answered(self) -> int:
        """How many replicas answered."""
        return len(self.asked) - len(self.failed)

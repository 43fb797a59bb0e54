"""Frames <-> columns: a table's feature columns going out on a PredictStream, the result frame coming back."""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Sequence

import grpc
import numpy as np
import pandas as pd

from scoring_service.client.types import ModelInfo, ScoringError
from segmentation_core.parsing import feature_numbers
from segmentation_core.clv import FIGURES as CLV_FIGURES
from segmentation_core.clv import INPUTS as CLV_INPUTS
from segmentation_core.clv import PRECISION as CLV_PRECISION
from segmentation_core.clv import DERIVED_FROM as CLV_DERIVED_FROM
from segmentation_core.clv import TIME_UNIT_DAYS, derivable_inputs, derive_input
from segmentation_core.tables import match_columns


@dataclass(frozen=True)
class Schema:
    """What the client needs of a model's feature schema: which features are numbers, which categories."""

    model: str
    version: str
    numeric: tuple[str, ...]
    categorical: tuple[str, ...]
    segment_names: tuple[str, ...]
    has_clv: bool = False
    """The model has CLV: a frame's CLV input columns (segmentation_core.clv.INPUTS) go out too."""
    clv_derivable: frozenset[str] = frozenset()
    """CLV inputs the service derives when a batch leaves them out (segmentation_core.clv.derivable_inputs)."""
    clv_unit_days: int = 1
    """Days per time unit of the CLV inputs."""

    @classmethod
    def from_info(cls, info: ModelInfo) -> "Schema":
        """The schema of a model version's info."""
        numeric = tuple(f.name for f in info.numeric_features)
        clv = info.clv
        return cls(info.model, info.version, numeric, tuple(f.name for f in info.categorical_features),
                   tuple(s.name for s in info.segments), clv is not None,
                   derivable_inputs(numeric, counts_days="invoice" not in info.recipe_columns) if clv else frozenset(),
                   TIME_UNIT_DAYS.get(clv.time_unit, 1) if clv else 1)


@dataclass(eq=False)
class FrameJob:
    """One input frame on its way through the stream: its columns going out, its results coming back."""

    index: pd.Index
    numeric: dict[str, np.ndarray]
    categorical: dict[str, np.ndarray]
    local_errors: dict[int, str]
    remaining: int
    offset: int = 0  # rows of the stream before this frame: batch ids are stream row numbers
    single: frozenset[str] = frozenset()
    """Numeric columns sent in single precision: the CLV inputs (not features), as the service takes them."""
    segment: np.ndarray = field(init=False)
    distance: np.ndarray = field(init=False)
    confidence: np.ndarray = field(init=False)
    outlier: np.ndarray = field(init=False)
    errors: dict[int, str] = field(init=False)
    clv: dict[str, np.ndarray] | None = None
    """The CLV figure columns, once the server sent them."""

    def __post_init__(self) -> None:
        n = len(self.index)
        self.segment = np.full(n, -1, dtype=np.int32)
        self.distance = np.full(n, np.nan)
        self.confidence = np.full(n, np.nan)
        self.outlier = np.zeros(n, dtype=bool)
        self.errors = {}

    def result(self, names: Sequence[str]) -> pd.DataFrame:
        """The result columns, indexed like the input frame."""
        errors = {**self.errors, **self.local_errors}  # a client-side finding wins: it is the root cause
        if self.local_errors:
            rows = np.fromiter(self.local_errors, dtype=np.int64)
            self.segment[rows] = -1
            self.distance[rows] = np.nan
            self.confidence[rows] = np.nan
            self.outlier[rows] = False
        if self.segment.size and int(self.segment.max()) >= len(names):
            raise ScoringError(grpc.StatusCode.INTERNAL, f"segment id {int(self.segment.max())} has no name "
                               f"(the model has {len(names)} segments)")
        # Categoricals built from codes: no per-row string objects, whatever the number of rows. A
        # row with an error has code -1 for its name (missing) and its message in ``error``.
        if len(set(names)) == len(names):
            segment_name = pd.Categorical.from_codes(self.segment, categories=list(names), validate=False)
        else:  # categories must be unique; a model with two equal names still gets its names
            segment_name = np.array([*names, None], dtype=object)[self.segment]
        messages = sorted(set(errors.values()))
        codes = np.zeros(len(self.index), dtype=np.int32)
        if errors:
            position = {m: i + 1 for i, m in enumerate(messages)}
            codes[np.fromiter(errors, dtype=np.int64)] = [position[m] for m in errors.values()]
        error = pd.Categorical.from_codes(codes, categories=["", *messages], validate=False)
        # copy=False: the arrays are this job's own and final here; copying them into one 2-D block
        # cost a third of the client's result-building time.
        columns = {
            "segment_id": self.segment, "segment_name": segment_name, "distance": self.distance,
            "confidence": self.confidence, "outlier": self.outlier, "error": error,
        }
        if self.clv is not None:
            if self.local_errors:
                for values in self.clv.values():
                    values[np.fromiter(self.local_errors, dtype=np.int64)] = np.nan
            columns.update(self.clv)
        return pd.DataFrame(columns, index=self.index, copy=False)

    def absorb_clv(self, figures: dict[str, np.ndarray] | None, start: int, stop: int) -> None:
        """Store one batch's CLV figures (rows start..stop of this frame)."""
        if figures is None:
            return
        if self.clv is None:  # single precision, as computed and sent
            self.clv = {name: np.full(len(self.index), np.nan, dtype=CLV_PRECISION) for name in CLV_FIGURES}
        for name in CLV_FIGURES:
            self.clv[name][start:stop] = figures[name]


def frame_job(frame: pd.DataFrame, schema: Schema, batch_rows: int) -> FrameJob:
    """Extract the schema's columns of a frame (absent features are left out: the server imputes them), and
    for a model with CLV the four CLV input columns when the frame has them all (in single precision), less
    those the service derives exactly from the other columns (equal on every row of the frame: checked)."""
    found, _missing = match_columns([*schema.numeric, *schema.categorical], frame.columns)
    numeric_names = list(schema.numeric)
    single: frozenset[str] = frozenset()
    if schema.has_clv:
        clv_found, clv_missing = match_columns(CLV_INPUTS, frame.columns)
        if not clv_missing:
            found |= clv_found
            single = frozenset(name for name in CLV_INPUTS if name not in numeric_names)
            numeric_names += [name for name in CLV_INPUTS if name in single]
    numeric: dict[str, np.ndarray] = {}
    local_errors: dict[int, str] = {}
    for name in numeric_names:
        if name not in found:
            continue
        raw = frame[found[name]]
        if pd.api.types.is_float_dtype(raw.dtype) or pd.api.types.is_integer_dtype(raw.dtype) \
                or pd.api.types.is_bool_dtype(raw.dtype):
            dtype = CLV_PRECISION if name in single else np.float64
            numeric[name] = np.ascontiguousarray(raw.to_numpy(dtype=dtype, na_value=np.nan))
            continue
        # The one rule (blank or an NA token: missing); a text value that is not a number is the row's error, not
        # imputed silently, and one beyond a float's range ('1e400') is quoted as written, not as inf.
        numbers, errors = feature_numbers(raw.reset_index(drop=True), name)
        array = np.ascontiguousarray(numbers.to_numpy(dtype=np.float64))
        for row, message in errors.items():
            local_errors.setdefault(row, message)
        numeric[name] = array.astype(CLV_PRECISION) if name in single else array
    categorical: dict[str, np.ndarray] = {}
    for name in schema.categorical:
        if name not in found:
            continue
        col = frame[found[name]]
        if col.dtype == bool:
            text = np.where(col.to_numpy(), "TRUE", "FALSE").astype(object)  # the schema's bool labels
        else:
            text = col.astype(object).where(col.notna(), "").astype(str).to_numpy(dtype=object)
        categorical[name] = text
    for name in schema.clv_derivable & single:  # fewer bytes: left out where the service's derivation is exact
        if all(source in numeric for source in CLV_DERIVED_FROM[name]) \
                and np.array_equal(derive_input(name, numeric, schema.clv_unit_days), numeric[name]):
            del numeric[name]
            single -= {name}
    n_batches = max(1, math.ceil(len(frame) / batch_rows))
    return FrameJob(frame.index, numeric, categorical, local_errors, n_batches, single=single)


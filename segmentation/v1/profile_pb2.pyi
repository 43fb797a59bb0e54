from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class InferredSchema(_message.Message):
    __slots__ = ("kind", "id_column", "numeric", "categorical", "dates", "dropped")
    KIND_FIELD_NUMBER: _ClassVar[int]
    ID_COLUMN_FIELD_NUMBER: _ClassVar[int]
    NUMERIC_FIELD_NUMBER: _ClassVar[int]
    CATEGORICAL_FIELD_NUMBER: _ClassVar[int]
    DATES_FIELD_NUMBER: _ClassVar[int]
    DROPPED_FIELD_NUMBER: _ClassVar[int]
    kind: str
    id_column: str
    numeric: _containers.RepeatedScalarFieldContainer[str]
    categorical: _containers.RepeatedScalarFieldContainer[str]
    dates: _containers.RepeatedScalarFieldContainer[str]
    dropped: _containers.RepeatedCompositeFieldContainer[DroppedColumn]
    def __init__(self, kind: _Optional[str] = ..., id_column: _Optional[str] = ..., numeric: _Optional[_Iterable[str]] = ..., categorical: _Optional[_Iterable[str]] = ..., dates: _Optional[_Iterable[str]] = ..., dropped: _Optional[_Iterable[_Union[DroppedColumn, _Mapping]]] = ...) -> None: ...

class DroppedColumn(_message.Message):
    __slots__ = ("column", "reason")
    COLUMN_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    column: str
    reason: str
    def __init__(self, column: _Optional[str] = ..., reason: _Optional[str] = ...) -> None: ...

class NumericSummary(_message.Message):
    __slots__ = ("count", "mean", "std", "min", "q25", "median", "q75", "max")
    COUNT_FIELD_NUMBER: _ClassVar[int]
    MEAN_FIELD_NUMBER: _ClassVar[int]
    STD_FIELD_NUMBER: _ClassVar[int]
    MIN_FIELD_NUMBER: _ClassVar[int]
    Q25_FIELD_NUMBER: _ClassVar[int]
    MEDIAN_FIELD_NUMBER: _ClassVar[int]
    Q75_FIELD_NUMBER: _ClassVar[int]
    MAX_FIELD_NUMBER: _ClassVar[int]
    count: int
    mean: float
    std: float
    min: float
    q25: float
    median: float
    q75: float
    max: float
    def __init__(self, count: _Optional[int] = ..., mean: _Optional[float] = ..., std: _Optional[float] = ..., min: _Optional[float] = ..., q25: _Optional[float] = ..., median: _Optional[float] = ..., q75: _Optional[float] = ..., max: _Optional[float] = ...) -> None: ...

class Histogram(_message.Message):
    __slots__ = ("edges", "counts")
    EDGES_FIELD_NUMBER: _ClassVar[int]
    COUNTS_FIELD_NUMBER: _ClassVar[int]
    edges: _containers.RepeatedScalarFieldContainer[float]
    counts: _containers.RepeatedScalarFieldContainer[int]
    def __init__(self, edges: _Optional[_Iterable[float]] = ..., counts: _Optional[_Iterable[int]] = ...) -> None: ...

class LevelCount(_message.Message):
    __slots__ = ("level", "count")
    LEVEL_FIELD_NUMBER: _ClassVar[int]
    COUNT_FIELD_NUMBER: _ClassVar[int]
    level: str
    count: int
    def __init__(self, level: _Optional[str] = ..., count: _Optional[int] = ...) -> None: ...

class ColumnProfile(_message.Message):
    __slots__ = ("name", "role", "dtype", "missing", "missing_share", "distinct", "summary", "histogram", "top_levels", "other_count")
    NAME_FIELD_NUMBER: _ClassVar[int]
    ROLE_FIELD_NUMBER: _ClassVar[int]
    DTYPE_FIELD_NUMBER: _ClassVar[int]
    MISSING_FIELD_NUMBER: _ClassVar[int]
    MISSING_SHARE_FIELD_NUMBER: _ClassVar[int]
    DISTINCT_FIELD_NUMBER: _ClassVar[int]
    SUMMARY_FIELD_NUMBER: _ClassVar[int]
    HISTOGRAM_FIELD_NUMBER: _ClassVar[int]
    TOP_LEVELS_FIELD_NUMBER: _ClassVar[int]
    OTHER_COUNT_FIELD_NUMBER: _ClassVar[int]
    name: str
    role: str
    dtype: str
    missing: int
    missing_share: float
    distinct: int
    summary: NumericSummary
    histogram: Histogram
    top_levels: _containers.RepeatedCompositeFieldContainer[LevelCount]
    other_count: int
    def __init__(self, name: _Optional[str] = ..., role: _Optional[str] = ..., dtype: _Optional[str] = ..., missing: _Optional[int] = ..., missing_share: _Optional[float] = ..., distinct: _Optional[int] = ..., summary: _Optional[_Union[NumericSummary, _Mapping]] = ..., histogram: _Optional[_Union[Histogram, _Mapping]] = ..., top_levels: _Optional[_Iterable[_Union[LevelCount, _Mapping]]] = ..., other_count: _Optional[int] = ...) -> None: ...

class CorrelationMatrix(_message.Message):
    __slots__ = ("columns", "values")
    COLUMNS_FIELD_NUMBER: _ClassVar[int]
    VALUES_FIELD_NUMBER: _ClassVar[int]
    columns: _containers.RepeatedScalarFieldContainer[str]
    values: _containers.RepeatedScalarFieldContainer[float]
    def __init__(self, columns: _Optional[_Iterable[str]] = ..., values: _Optional[_Iterable[float]] = ...) -> None: ...

class CleaningStep(_message.Message):
    __slots__ = ("reason", "rows")
    REASON_FIELD_NUMBER: _ClassVar[int]
    ROWS_FIELD_NUMBER: _ClassVar[int]
    reason: str
    rows: int
    def __init__(self, reason: _Optional[str] = ..., rows: _Optional[int] = ...) -> None: ...

class CleaningPreview(_message.Message):
    __slots__ = ("rows_in", "customers", "steps", "error")
    ROWS_IN_FIELD_NUMBER: _ClassVar[int]
    CUSTOMERS_FIELD_NUMBER: _ClassVar[int]
    STEPS_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    rows_in: int
    customers: int
    steps: _containers.RepeatedCompositeFieldContainer[CleaningStep]
    error: str
    def __init__(self, rows_in: _Optional[int] = ..., customers: _Optional[int] = ..., steps: _Optional[_Iterable[_Union[CleaningStep, _Mapping]]] = ..., error: _Optional[str] = ...) -> None: ...

class PreviewRow(_message.Message):
    __slots__ = ("values",)
    VALUES_FIELD_NUMBER: _ClassVar[int]
    values: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, values: _Optional[_Iterable[str]] = ...) -> None: ...

class TablePreview(_message.Message):
    __slots__ = ("columns", "rows")
    COLUMNS_FIELD_NUMBER: _ClassVar[int]
    ROWS_FIELD_NUMBER: _ClassVar[int]
    columns: _containers.RepeatedScalarFieldContainer[str]
    rows: _containers.RepeatedCompositeFieldContainer[PreviewRow]
    def __init__(self, columns: _Optional[_Iterable[str]] = ..., rows: _Optional[_Iterable[_Union[PreviewRow, _Mapping]]] = ...) -> None: ...

class DataProfile(_message.Message):
    __slots__ = ("dataset_id", "name", "rows", "column_count", "suggested_preset", "schema", "columns", "columns_truncated", "correlation", "cleaning", "rfm", "rfm_correlation", "preview", "seconds")
    DATASET_ID_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    ROWS_FIELD_NUMBER: _ClassVar[int]
    COLUMN_COUNT_FIELD_NUMBER: _ClassVar[int]
    SUGGESTED_PRESET_FIELD_NUMBER: _ClassVar[int]
    SCHEMA_FIELD_NUMBER: _ClassVar[int]
    COLUMNS_FIELD_NUMBER: _ClassVar[int]
    COLUMNS_TRUNCATED_FIELD_NUMBER: _ClassVar[int]
    CORRELATION_FIELD_NUMBER: _ClassVar[int]
    CLEANING_FIELD_NUMBER: _ClassVar[int]
    RFM_FIELD_NUMBER: _ClassVar[int]
    RFM_CORRELATION_FIELD_NUMBER: _ClassVar[int]
    PREVIEW_FIELD_NUMBER: _ClassVar[int]
    SECONDS_FIELD_NUMBER: _ClassVar[int]
    dataset_id: str
    name: str
    rows: int
    column_count: int
    suggested_preset: str
    schema: InferredSchema
    columns: _containers.RepeatedCompositeFieldContainer[ColumnProfile]
    columns_truncated: bool
    correlation: CorrelationMatrix
    cleaning: CleaningPreview
    rfm: _containers.RepeatedCompositeFieldContainer[ColumnProfile]
    rfm_correlation: CorrelationMatrix
    preview: TablePreview
    seconds: float
    def __init__(self, dataset_id: _Optional[str] = ..., name: _Optional[str] = ..., rows: _Optional[int] = ..., column_count: _Optional[int] = ..., suggested_preset: _Optional[str] = ..., schema: _Optional[_Union[InferredSchema, _Mapping]] = ..., columns: _Optional[_Iterable[_Union[ColumnProfile, _Mapping]]] = ..., columns_truncated: _Optional[bool] = ..., correlation: _Optional[_Union[CorrelationMatrix, _Mapping]] = ..., cleaning: _Optional[_Union[CleaningPreview, _Mapping]] = ..., rfm: _Optional[_Iterable[_Union[ColumnProfile, _Mapping]]] = ..., rfm_correlation: _Optional[_Union[CorrelationMatrix, _Mapping]] = ..., preview: _Optional[_Union[TablePreview, _Mapping]] = ..., seconds: _Optional[float] = ...) -> None: ...

from segmentation.v1 import profile_pb2 as _profile_pb2
from segmentation.v1 import scoring_pb2 as _scoring_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class JobState(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    JOB_STATE_UNSPECIFIED: _ClassVar[JobState]
    QUEUED: _ClassVar[JobState]
    RUNNING: _ClassVar[JobState]
    SUCCEEDED: _ClassVar[JobState]
    FAILED: _ClassVar[JobState]
    CANCELLED: _ClassVar[JobState]
JOB_STATE_UNSPECIFIED: JobState
QUEUED: JobState
RUNNING: JobState
SUCCEEDED: JobState
FAILED: JobState
CANCELLED: JobState

class DataChunk(_message.Message):
    __slots__ = ("filename", "data")
    FILENAME_FIELD_NUMBER: _ClassVar[int]
    DATA_FIELD_NUMBER: _ClassVar[int]
    filename: str
    data: bytes
    def __init__(self, filename: _Optional[str] = ..., data: _Optional[bytes] = ...) -> None: ...

class Dataset(_message.Message):
    __slots__ = ("dataset_id", "filename", "size_bytes", "sha256", "deduplicated", "rows", "column_count", "uploaded_at")
    DATASET_ID_FIELD_NUMBER: _ClassVar[int]
    FILENAME_FIELD_NUMBER: _ClassVar[int]
    SIZE_BYTES_FIELD_NUMBER: _ClassVar[int]
    SHA256_FIELD_NUMBER: _ClassVar[int]
    DEDUPLICATED_FIELD_NUMBER: _ClassVar[int]
    ROWS_FIELD_NUMBER: _ClassVar[int]
    COLUMN_COUNT_FIELD_NUMBER: _ClassVar[int]
    UPLOADED_AT_FIELD_NUMBER: _ClassVar[int]
    dataset_id: str
    filename: str
    size_bytes: int
    sha256: str
    deduplicated: bool
    rows: int
    column_count: int
    uploaded_at: str
    def __init__(self, dataset_id: _Optional[str] = ..., filename: _Optional[str] = ..., size_bytes: _Optional[int] = ..., sha256: _Optional[str] = ..., deduplicated: _Optional[bool] = ..., rows: _Optional[int] = ..., column_count: _Optional[int] = ..., uploaded_at: _Optional[str] = ...) -> None: ...

class ProfileDataRequest(_message.Message):
    __slots__ = ("dataset_id",)
    DATASET_ID_FIELD_NUMBER: _ClassVar[int]
    dataset_id: str
    def __init__(self, dataset_id: _Optional[str] = ...) -> None: ...

class TrainingRequest(_message.Message):
    __slots__ = ("dataset_id", "preset", "config_toml", "numeric_columns", "categorical_columns", "k", "k_min", "k_max", "algorithm", "model", "publish")
    DATASET_ID_FIELD_NUMBER: _ClassVar[int]
    PRESET_FIELD_NUMBER: _ClassVar[int]
    CONFIG_TOML_FIELD_NUMBER: _ClassVar[int]
    NUMERIC_COLUMNS_FIELD_NUMBER: _ClassVar[int]
    CATEGORICAL_COLUMNS_FIELD_NUMBER: _ClassVar[int]
    K_FIELD_NUMBER: _ClassVar[int]
    K_MIN_FIELD_NUMBER: _ClassVar[int]
    K_MAX_FIELD_NUMBER: _ClassVar[int]
    ALGORITHM_FIELD_NUMBER: _ClassVar[int]
    MODEL_FIELD_NUMBER: _ClassVar[int]
    PUBLISH_FIELD_NUMBER: _ClassVar[int]
    dataset_id: str
    preset: str
    config_toml: str
    numeric_columns: _containers.RepeatedScalarFieldContainer[str]
    categorical_columns: _containers.RepeatedScalarFieldContainer[str]
    k: str
    k_min: int
    k_max: int
    algorithm: str
    model: str
    publish: bool
    def __init__(self, dataset_id: _Optional[str] = ..., preset: _Optional[str] = ..., config_toml: _Optional[str] = ..., numeric_columns: _Optional[_Iterable[str]] = ..., categorical_columns: _Optional[_Iterable[str]] = ..., k: _Optional[str] = ..., k_min: _Optional[int] = ..., k_max: _Optional[int] = ..., algorithm: _Optional[str] = ..., model: _Optional[str] = ..., publish: _Optional[bool] = ...) -> None: ...

class TrainingResult(_message.Message):
    __slots__ = ("model", "version", "published", "k", "segment_names", "segment_sizes", "quality", "compared_version", "ari", "comparison_note", "matching", "matching_share")
    class QualityEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: float
        def __init__(self, key: _Optional[str] = ..., value: _Optional[float] = ...) -> None: ...
    MODEL_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    PUBLISHED_FIELD_NUMBER: _ClassVar[int]
    K_FIELD_NUMBER: _ClassVar[int]
    SEGMENT_NAMES_FIELD_NUMBER: _ClassVar[int]
    SEGMENT_SIZES_FIELD_NUMBER: _ClassVar[int]
    QUALITY_FIELD_NUMBER: _ClassVar[int]
    COMPARED_VERSION_FIELD_NUMBER: _ClassVar[int]
    ARI_FIELD_NUMBER: _ClassVar[int]
    COMPARISON_NOTE_FIELD_NUMBER: _ClassVar[int]
    MATCHING_FIELD_NUMBER: _ClassVar[int]
    MATCHING_SHARE_FIELD_NUMBER: _ClassVar[int]
    model: str
    version: str
    published: bool
    k: int
    segment_names: _containers.RepeatedScalarFieldContainer[str]
    segment_sizes: _containers.RepeatedScalarFieldContainer[int]
    quality: _containers.ScalarMap[str, float]
    compared_version: str
    ari: float
    comparison_note: str
    matching: _containers.RepeatedScalarFieldContainer[int]
    matching_share: _containers.RepeatedScalarFieldContainer[float]
    def __init__(self, model: _Optional[str] = ..., version: _Optional[str] = ..., published: _Optional[bool] = ..., k: _Optional[int] = ..., segment_names: _Optional[_Iterable[str]] = ..., segment_sizes: _Optional[_Iterable[int]] = ..., quality: _Optional[_Mapping[str, float]] = ..., compared_version: _Optional[str] = ..., ari: _Optional[float] = ..., comparison_note: _Optional[str] = ..., matching: _Optional[_Iterable[int]] = ..., matching_share: _Optional[_Iterable[float]] = ...) -> None: ...

class TrainingJob(_message.Message):
    __slots__ = ("job_id", "request", "state", "stage", "progress", "log", "k_search", "result", "error", "submitted_at", "started_at", "finished_at")
    JOB_ID_FIELD_NUMBER: _ClassVar[int]
    REQUEST_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    STAGE_FIELD_NUMBER: _ClassVar[int]
    PROGRESS_FIELD_NUMBER: _ClassVar[int]
    LOG_FIELD_NUMBER: _ClassVar[int]
    K_SEARCH_FIELD_NUMBER: _ClassVar[int]
    RESULT_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    SUBMITTED_AT_FIELD_NUMBER: _ClassVar[int]
    STARTED_AT_FIELD_NUMBER: _ClassVar[int]
    FINISHED_AT_FIELD_NUMBER: _ClassVar[int]
    job_id: str
    request: TrainingRequest
    state: JobState
    stage: str
    progress: float
    log: _containers.RepeatedScalarFieldContainer[str]
    k_search: _containers.RepeatedCompositeFieldContainer[_scoring_pb2.KSearchRow]
    result: TrainingResult
    error: str
    submitted_at: str
    started_at: str
    finished_at: str
    def __init__(self, job_id: _Optional[str] = ..., request: _Optional[_Union[TrainingRequest, _Mapping]] = ..., state: _Optional[_Union[JobState, str]] = ..., stage: _Optional[str] = ..., progress: _Optional[float] = ..., log: _Optional[_Iterable[str]] = ..., k_search: _Optional[_Iterable[_Union[_scoring_pb2.KSearchRow, _Mapping]]] = ..., result: _Optional[_Union[TrainingResult, _Mapping]] = ..., error: _Optional[str] = ..., submitted_at: _Optional[str] = ..., started_at: _Optional[str] = ..., finished_at: _Optional[str] = ...) -> None: ...

class WatchTrainingRequest(_message.Message):
    __slots__ = ("job_id",)
    JOB_ID_FIELD_NUMBER: _ClassVar[int]
    job_id: str
    def __init__(self, job_id: _Optional[str] = ...) -> None: ...

class ListTrainingJobsRequest(_message.Message):
    __slots__ = ("limit",)
    LIMIT_FIELD_NUMBER: _ClassVar[int]
    limit: int
    def __init__(self, limit: _Optional[int] = ...) -> None: ...

class ListTrainingJobsResponse(_message.Message):
    __slots__ = ("jobs",)
    JOBS_FIELD_NUMBER: _ClassVar[int]
    jobs: _containers.RepeatedCompositeFieldContainer[TrainingJob]
    def __init__(self, jobs: _Optional[_Iterable[_Union[TrainingJob, _Mapping]]] = ...) -> None: ...

class CancelTrainingRequest(_message.Message):
    __slots__ = ("job_id",)
    JOB_ID_FIELD_NUMBER: _ClassVar[int]
    job_id: str
    def __init__(self, job_id: _Optional[str] = ...) -> None: ...

class PublishVersionRequest(_message.Message):
    __slots__ = ("model", "version", "rollback", "allow_breaking_schema")
    MODEL_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    ROLLBACK_FIELD_NUMBER: _ClassVar[int]
    ALLOW_BREAKING_SCHEMA_FIELD_NUMBER: _ClassVar[int]
    model: str
    version: str
    rollback: bool
    allow_breaking_schema: bool
    def __init__(self, model: _Optional[str] = ..., version: _Optional[str] = ..., rollback: _Optional[bool] = ..., allow_breaking_schema: _Optional[bool] = ...) -> None: ...

class GetReportRequest(_message.Message):
    __slots__ = ("model", "version")
    MODEL_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    model: str
    version: str
    def __init__(self, model: _Optional[str] = ..., version: _Optional[str] = ...) -> None: ...

class ReportChunk(_message.Message):
    __slots__ = ("model", "version", "size_bytes", "data")
    MODEL_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    SIZE_BYTES_FIELD_NUMBER: _ClassVar[int]
    DATA_FIELD_NUMBER: _ClassVar[int]
    model: str
    version: str
    size_bytes: int
    data: bytes
    def __init__(self, model: _Optional[str] = ..., version: _Optional[str] = ..., size_bytes: _Optional[int] = ..., data: _Optional[bytes] = ...) -> None: ...

from segmentation.v1 import profile_pb2 as _profile_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class DriftVerdict(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    DRIFT_VERDICT_UNSPECIFIED: _ClassVar[DriftVerdict]
    DRIFT_VERDICT_STABLE: _ClassVar[DriftVerdict]
    DRIFT_VERDICT_MODERATE: _ClassVar[DriftVerdict]
    DRIFT_VERDICT_RETRAIN: _ClassVar[DriftVerdict]
    DRIFT_VERDICT_INSUFFICIENT_DATA: _ClassVar[DriftVerdict]
    DRIFT_VERDICT_NO_REFERENCE: _ClassVar[DriftVerdict]
DRIFT_VERDICT_UNSPECIFIED: DriftVerdict
DRIFT_VERDICT_STABLE: DriftVerdict
DRIFT_VERDICT_MODERATE: DriftVerdict
DRIFT_VERDICT_RETRAIN: DriftVerdict
DRIFT_VERDICT_INSUFFICIENT_DATA: DriftVerdict
DRIFT_VERDICT_NO_REFERENCE: DriftVerdict

class ModelSelector(_message.Message):
    __slots__ = ("model", "version")
    MODEL_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    model: str
    version: str
    def __init__(self, model: _Optional[str] = ..., version: _Optional[str] = ...) -> None: ...

class Customer(_message.Message):
    __slots__ = ("id", "numbers", "categories")
    class NumbersEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: float
        def __init__(self, key: _Optional[str] = ..., value: _Optional[float] = ...) -> None: ...
    class CategoriesEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    ID_FIELD_NUMBER: _ClassVar[int]
    NUMBERS_FIELD_NUMBER: _ClassVar[int]
    CATEGORIES_FIELD_NUMBER: _ClassVar[int]
    id: str
    numbers: _containers.ScalarMap[str, float]
    categories: _containers.ScalarMap[str, str]
    def __init__(self, id: _Optional[str] = ..., numbers: _Optional[_Mapping[str, float]] = ..., categories: _Optional[_Mapping[str, str]] = ...) -> None: ...

class PredictRequest(_message.Message):
    __slots__ = ("selector", "customer")
    SELECTOR_FIELD_NUMBER: _ClassVar[int]
    CUSTOMER_FIELD_NUMBER: _ClassVar[int]
    selector: ModelSelector
    customer: Customer
    def __init__(self, selector: _Optional[_Union[ModelSelector, _Mapping]] = ..., customer: _Optional[_Union[Customer, _Mapping]] = ...) -> None: ...

class Prediction(_message.Message):
    __slots__ = ("segment_id", "segment_name", "distance", "confidence", "outlier", "clv")
    SEGMENT_ID_FIELD_NUMBER: _ClassVar[int]
    SEGMENT_NAME_FIELD_NUMBER: _ClassVar[int]
    DISTANCE_FIELD_NUMBER: _ClassVar[int]
    CONFIDENCE_FIELD_NUMBER: _ClassVar[int]
    OUTLIER_FIELD_NUMBER: _ClassVar[int]
    CLV_FIELD_NUMBER: _ClassVar[int]
    segment_id: int
    segment_name: str
    distance: float
    confidence: float
    outlier: bool
    clv: CustomerValue
    def __init__(self, segment_id: _Optional[int] = ..., segment_name: _Optional[str] = ..., distance: _Optional[float] = ..., confidence: _Optional[float] = ..., outlier: _Optional[bool] = ..., clv: _Optional[_Union[CustomerValue, _Mapping]] = ...) -> None: ...

class CustomerValue(_message.Message):
    __slots__ = ("expected_purchases", "p_alive", "expected_order_value", "clv")
    EXPECTED_PURCHASES_FIELD_NUMBER: _ClassVar[int]
    P_ALIVE_FIELD_NUMBER: _ClassVar[int]
    EXPECTED_ORDER_VALUE_FIELD_NUMBER: _ClassVar[int]
    CLV_FIELD_NUMBER: _ClassVar[int]
    expected_purchases: float
    p_alive: float
    expected_order_value: float
    clv: float
    def __init__(self, expected_purchases: _Optional[float] = ..., p_alive: _Optional[float] = ..., expected_order_value: _Optional[float] = ..., clv: _Optional[float] = ...) -> None: ...

class PredictResponse(_message.Message):
    __slots__ = ("id", "prediction", "model", "version")
    ID_FIELD_NUMBER: _ClassVar[int]
    PREDICTION_FIELD_NUMBER: _ClassVar[int]
    MODEL_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    id: str
    prediction: Prediction
    model: str
    version: str
    def __init__(self, id: _Optional[str] = ..., prediction: _Optional[_Union[Prediction, _Mapping]] = ..., model: _Optional[str] = ..., version: _Optional[str] = ...) -> None: ...

class NumericColumn(_message.Message):
    __slots__ = ("name", "values", "single_values")
    NAME_FIELD_NUMBER: _ClassVar[int]
    VALUES_FIELD_NUMBER: _ClassVar[int]
    SINGLE_VALUES_FIELD_NUMBER: _ClassVar[int]
    name: str
    values: _containers.RepeatedScalarFieldContainer[float]
    single_values: _containers.RepeatedScalarFieldContainer[float]
    def __init__(self, name: _Optional[str] = ..., values: _Optional[_Iterable[float]] = ..., single_values: _Optional[_Iterable[float]] = ...) -> None: ...

class CategoricalColumn(_message.Message):
    __slots__ = ("name", "values")
    NAME_FIELD_NUMBER: _ClassVar[int]
    VALUES_FIELD_NUMBER: _ClassVar[int]
    name: str
    values: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, name: _Optional[str] = ..., values: _Optional[_Iterable[str]] = ...) -> None: ...

class PredictBatchRequest(_message.Message):
    __slots__ = ("batch_id", "selector", "numeric", "categorical", "ids")
    BATCH_ID_FIELD_NUMBER: _ClassVar[int]
    SELECTOR_FIELD_NUMBER: _ClassVar[int]
    NUMERIC_FIELD_NUMBER: _ClassVar[int]
    CATEGORICAL_FIELD_NUMBER: _ClassVar[int]
    IDS_FIELD_NUMBER: _ClassVar[int]
    batch_id: str
    selector: ModelSelector
    numeric: _containers.RepeatedCompositeFieldContainer[NumericColumn]
    categorical: _containers.RepeatedCompositeFieldContainer[CategoricalColumn]
    ids: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, batch_id: _Optional[str] = ..., selector: _Optional[_Union[ModelSelector, _Mapping]] = ..., numeric: _Optional[_Iterable[_Union[NumericColumn, _Mapping]]] = ..., categorical: _Optional[_Iterable[_Union[CategoricalColumn, _Mapping]]] = ..., ids: _Optional[_Iterable[str]] = ...) -> None: ...

class RowError(_message.Message):
    __slots__ = ("row", "message")
    ROW_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    row: int
    message: str
    def __init__(self, row: _Optional[int] = ..., message: _Optional[str] = ...) -> None: ...

class PredictBatchResponse(_message.Message):
    __slots__ = ("batch_id", "model", "version", "segment_id", "distance", "confidence", "outlier", "row_errors", "batch_error", "segment_names", "row_count", "expected_purchases", "p_alive", "expected_order_value", "clv")
    BATCH_ID_FIELD_NUMBER: _ClassVar[int]
    MODEL_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    SEGMENT_ID_FIELD_NUMBER: _ClassVar[int]
    DISTANCE_FIELD_NUMBER: _ClassVar[int]
    CONFIDENCE_FIELD_NUMBER: _ClassVar[int]
    OUTLIER_FIELD_NUMBER: _ClassVar[int]
    ROW_ERRORS_FIELD_NUMBER: _ClassVar[int]
    BATCH_ERROR_FIELD_NUMBER: _ClassVar[int]
    SEGMENT_NAMES_FIELD_NUMBER: _ClassVar[int]
    ROW_COUNT_FIELD_NUMBER: _ClassVar[int]
    EXPECTED_PURCHASES_FIELD_NUMBER: _ClassVar[int]
    P_ALIVE_FIELD_NUMBER: _ClassVar[int]
    EXPECTED_ORDER_VALUE_FIELD_NUMBER: _ClassVar[int]
    CLV_FIELD_NUMBER: _ClassVar[int]
    batch_id: str
    model: str
    version: str
    segment_id: _containers.RepeatedScalarFieldContainer[int]
    distance: _containers.RepeatedScalarFieldContainer[float]
    confidence: _containers.RepeatedScalarFieldContainer[float]
    outlier: _containers.RepeatedScalarFieldContainer[bool]
    row_errors: _containers.RepeatedCompositeFieldContainer[RowError]
    batch_error: str
    segment_names: _containers.RepeatedScalarFieldContainer[str]
    row_count: int
    expected_purchases: _containers.RepeatedScalarFieldContainer[float]
    p_alive: _containers.RepeatedScalarFieldContainer[float]
    expected_order_value: _containers.RepeatedScalarFieldContainer[float]
    clv: _containers.RepeatedScalarFieldContainer[float]
    def __init__(self, batch_id: _Optional[str] = ..., model: _Optional[str] = ..., version: _Optional[str] = ..., segment_id: _Optional[_Iterable[int]] = ..., distance: _Optional[_Iterable[float]] = ..., confidence: _Optional[_Iterable[float]] = ..., outlier: _Optional[_Iterable[bool]] = ..., row_errors: _Optional[_Iterable[_Union[RowError, _Mapping]]] = ..., batch_error: _Optional[str] = ..., segment_names: _Optional[_Iterable[str]] = ..., row_count: _Optional[int] = ..., expected_purchases: _Optional[_Iterable[float]] = ..., p_alive: _Optional[_Iterable[float]] = ..., expected_order_value: _Optional[_Iterable[float]] = ..., clv: _Optional[_Iterable[float]] = ...) -> None: ...

class GetModelInfoRequest(_message.Message):
    __slots__ = ("selector", "include_profile", "include_reference")
    SELECTOR_FIELD_NUMBER: _ClassVar[int]
    INCLUDE_PROFILE_FIELD_NUMBER: _ClassVar[int]
    INCLUDE_REFERENCE_FIELD_NUMBER: _ClassVar[int]
    selector: ModelSelector
    include_profile: bool
    include_reference: bool
    def __init__(self, selector: _Optional[_Union[ModelSelector, _Mapping]] = ..., include_profile: _Optional[bool] = ..., include_reference: _Optional[bool] = ...) -> None: ...

class NumericFeatureInfo(_message.Message):
    __slots__ = ("name", "minimum", "maximum", "impute", "skew", "clip_low", "clip_high")
    NAME_FIELD_NUMBER: _ClassVar[int]
    MINIMUM_FIELD_NUMBER: _ClassVar[int]
    MAXIMUM_FIELD_NUMBER: _ClassVar[int]
    IMPUTE_FIELD_NUMBER: _ClassVar[int]
    SKEW_FIELD_NUMBER: _ClassVar[int]
    CLIP_LOW_FIELD_NUMBER: _ClassVar[int]
    CLIP_HIGH_FIELD_NUMBER: _ClassVar[int]
    name: str
    minimum: float
    maximum: float
    impute: float
    skew: str
    clip_low: float
    clip_high: float
    def __init__(self, name: _Optional[str] = ..., minimum: _Optional[float] = ..., maximum: _Optional[float] = ..., impute: _Optional[float] = ..., skew: _Optional[str] = ..., clip_low: _Optional[float] = ..., clip_high: _Optional[float] = ...) -> None: ...

class CategoricalFeatureInfo(_message.Message):
    __slots__ = ("name", "levels", "impute")
    NAME_FIELD_NUMBER: _ClassVar[int]
    LEVELS_FIELD_NUMBER: _ClassVar[int]
    IMPUTE_FIELD_NUMBER: _ClassVar[int]
    name: str
    levels: _containers.RepeatedScalarFieldContainer[str]
    impute: str
    def __init__(self, name: _Optional[str] = ..., levels: _Optional[_Iterable[str]] = ..., impute: _Optional[str] = ...) -> None: ...

class FeatureStats(_message.Message):
    __slots__ = ("feature", "mean", "median", "min", "max", "std")
    FEATURE_FIELD_NUMBER: _ClassVar[int]
    MEAN_FIELD_NUMBER: _ClassVar[int]
    MEDIAN_FIELD_NUMBER: _ClassVar[int]
    MIN_FIELD_NUMBER: _ClassVar[int]
    MAX_FIELD_NUMBER: _ClassVar[int]
    STD_FIELD_NUMBER: _ClassVar[int]
    feature: str
    mean: float
    median: float
    min: float
    max: float
    std: float
    def __init__(self, feature: _Optional[str] = ..., mean: _Optional[float] = ..., median: _Optional[float] = ..., min: _Optional[float] = ..., max: _Optional[float] = ..., std: _Optional[float] = ...) -> None: ...

class LevelShare(_message.Message):
    __slots__ = ("feature", "level", "share")
    FEATURE_FIELD_NUMBER: _ClassVar[int]
    LEVEL_FIELD_NUMBER: _ClassVar[int]
    SHARE_FIELD_NUMBER: _ClassVar[int]
    feature: str
    level: str
    share: float
    def __init__(self, feature: _Optional[str] = ..., level: _Optional[str] = ..., share: _Optional[float] = ...) -> None: ...

class Segment(_message.Message):
    __slots__ = ("id", "name", "description", "action", "size", "share", "centroid", "stats", "levels", "outlier_distance", "colour", "clv", "basket")
    class CentroidEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: float
        def __init__(self, key: _Optional[str] = ..., value: _Optional[float] = ...) -> None: ...
    ID_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    DESCRIPTION_FIELD_NUMBER: _ClassVar[int]
    ACTION_FIELD_NUMBER: _ClassVar[int]
    SIZE_FIELD_NUMBER: _ClassVar[int]
    SHARE_FIELD_NUMBER: _ClassVar[int]
    CENTROID_FIELD_NUMBER: _ClassVar[int]
    STATS_FIELD_NUMBER: _ClassVar[int]
    LEVELS_FIELD_NUMBER: _ClassVar[int]
    OUTLIER_DISTANCE_FIELD_NUMBER: _ClassVar[int]
    COLOUR_FIELD_NUMBER: _ClassVar[int]
    CLV_FIELD_NUMBER: _ClassVar[int]
    BASKET_FIELD_NUMBER: _ClassVar[int]
    id: int
    name: str
    description: str
    action: str
    size: int
    share: float
    centroid: _containers.ScalarMap[str, float]
    stats: _containers.RepeatedCompositeFieldContainer[FeatureStats]
    levels: _containers.RepeatedCompositeFieldContainer[LevelShare]
    outlier_distance: float
    colour: str
    clv: SegmentValue
    basket: _containers.RepeatedCompositeFieldContainer[FeatureStats]
    def __init__(self, id: _Optional[int] = ..., name: _Optional[str] = ..., description: _Optional[str] = ..., action: _Optional[str] = ..., size: _Optional[int] = ..., share: _Optional[float] = ..., centroid: _Optional[_Mapping[str, float]] = ..., stats: _Optional[_Iterable[_Union[FeatureStats, _Mapping]]] = ..., levels: _Optional[_Iterable[_Union[LevelShare, _Mapping]]] = ..., outlier_distance: _Optional[float] = ..., colour: _Optional[str] = ..., clv: _Optional[_Union[SegmentValue, _Mapping]] = ..., basket: _Optional[_Iterable[_Union[FeatureStats, _Mapping]]] = ...) -> None: ...

class SegmentValue(_message.Message):
    __slots__ = ("mean_clv", "total_clv", "share_of_clv", "mean_p_alive", "mean_expected_purchases", "mean_expected_order_value")
    MEAN_CLV_FIELD_NUMBER: _ClassVar[int]
    TOTAL_CLV_FIELD_NUMBER: _ClassVar[int]
    SHARE_OF_CLV_FIELD_NUMBER: _ClassVar[int]
    MEAN_P_ALIVE_FIELD_NUMBER: _ClassVar[int]
    MEAN_EXPECTED_PURCHASES_FIELD_NUMBER: _ClassVar[int]
    MEAN_EXPECTED_ORDER_VALUE_FIELD_NUMBER: _ClassVar[int]
    mean_clv: float
    total_clv: float
    share_of_clv: float
    mean_p_alive: float
    mean_expected_purchases: float
    mean_expected_order_value: float
    def __init__(self, mean_clv: _Optional[float] = ..., total_clv: _Optional[float] = ..., share_of_clv: _Optional[float] = ..., mean_p_alive: _Optional[float] = ..., mean_expected_purchases: _Optional[float] = ..., mean_expected_order_value: _Optional[float] = ...) -> None: ...

class ClvInfo(_message.Message):
    __slots__ = ("time_unit", "calibration_end", "horizon_days", "discount_rate_annual", "bgnbd", "gamma_gamma", "base")
    class BgnbdEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: float
        def __init__(self, key: _Optional[str] = ..., value: _Optional[float] = ...) -> None: ...
    class GammaGammaEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: float
        def __init__(self, key: _Optional[str] = ..., value: _Optional[float] = ...) -> None: ...
    TIME_UNIT_FIELD_NUMBER: _ClassVar[int]
    CALIBRATION_END_FIELD_NUMBER: _ClassVar[int]
    HORIZON_DAYS_FIELD_NUMBER: _ClassVar[int]
    DISCOUNT_RATE_ANNUAL_FIELD_NUMBER: _ClassVar[int]
    BGNBD_FIELD_NUMBER: _ClassVar[int]
    GAMMA_GAMMA_FIELD_NUMBER: _ClassVar[int]
    BASE_FIELD_NUMBER: _ClassVar[int]
    time_unit: str
    calibration_end: str
    horizon_days: int
    discount_rate_annual: float
    bgnbd: _containers.ScalarMap[str, float]
    gamma_gamma: _containers.ScalarMap[str, float]
    base: SegmentValue
    def __init__(self, time_unit: _Optional[str] = ..., calibration_end: _Optional[str] = ..., horizon_days: _Optional[int] = ..., discount_rate_annual: _Optional[float] = ..., bgnbd: _Optional[_Mapping[str, float]] = ..., gamma_gamma: _Optional[_Mapping[str, float]] = ..., base: _Optional[_Union[SegmentValue, _Mapping]] = ...) -> None: ...

class KSearchRow(_message.Message):
    __slots__ = ("k", "metrics")
    class MetricsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: float
        def __init__(self, key: _Optional[str] = ..., value: _Optional[float] = ...) -> None: ...
    K_FIELD_NUMBER: _ClassVar[int]
    METRICS_FIELD_NUMBER: _ClassVar[int]
    k: int
    metrics: _containers.ScalarMap[str, float]
    def __init__(self, k: _Optional[int] = ..., metrics: _Optional[_Mapping[str, float]] = ...) -> None: ...

class ModelInfo(_message.Message):
    __slots__ = ("model", "version", "created_at", "algorithm", "k", "numeric_features", "categorical_features", "segments", "k_search", "k_rule", "k_rule_explanation", "quality", "training_rows", "training_customers", "data_fingerprint", "data_source", "base_stats", "manifest_json", "profile", "segment_structure", "clv", "recipe_columns")
    class QualityEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: float
        def __init__(self, key: _Optional[str] = ..., value: _Optional[float] = ...) -> None: ...
    class RecipeColumnsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    MODEL_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    CREATED_AT_FIELD_NUMBER: _ClassVar[int]
    ALGORITHM_FIELD_NUMBER: _ClassVar[int]
    K_FIELD_NUMBER: _ClassVar[int]
    NUMERIC_FEATURES_FIELD_NUMBER: _ClassVar[int]
    CATEGORICAL_FEATURES_FIELD_NUMBER: _ClassVar[int]
    SEGMENTS_FIELD_NUMBER: _ClassVar[int]
    K_SEARCH_FIELD_NUMBER: _ClassVar[int]
    K_RULE_FIELD_NUMBER: _ClassVar[int]
    K_RULE_EXPLANATION_FIELD_NUMBER: _ClassVar[int]
    QUALITY_FIELD_NUMBER: _ClassVar[int]
    TRAINING_ROWS_FIELD_NUMBER: _ClassVar[int]
    TRAINING_CUSTOMERS_FIELD_NUMBER: _ClassVar[int]
    DATA_FINGERPRINT_FIELD_NUMBER: _ClassVar[int]
    DATA_SOURCE_FIELD_NUMBER: _ClassVar[int]
    BASE_STATS_FIELD_NUMBER: _ClassVar[int]
    MANIFEST_JSON_FIELD_NUMBER: _ClassVar[int]
    PROFILE_FIELD_NUMBER: _ClassVar[int]
    SEGMENT_STRUCTURE_FIELD_NUMBER: _ClassVar[int]
    CLV_FIELD_NUMBER: _ClassVar[int]
    RECIPE_COLUMNS_FIELD_NUMBER: _ClassVar[int]
    model: str
    version: str
    created_at: str
    algorithm: str
    k: int
    numeric_features: _containers.RepeatedCompositeFieldContainer[NumericFeatureInfo]
    categorical_features: _containers.RepeatedCompositeFieldContainer[CategoricalFeatureInfo]
    segments: _containers.RepeatedCompositeFieldContainer[Segment]
    k_search: _containers.RepeatedCompositeFieldContainer[KSearchRow]
    k_rule: str
    k_rule_explanation: str
    quality: _containers.ScalarMap[str, float]
    training_rows: int
    training_customers: int
    data_fingerprint: str
    data_source: str
    base_stats: _containers.RepeatedCompositeFieldContainer[FeatureStats]
    manifest_json: str
    profile: _profile_pb2.DataProfile
    segment_structure: str
    clv: ClvInfo
    recipe_columns: _containers.ScalarMap[str, str]
    def __init__(self, model: _Optional[str] = ..., version: _Optional[str] = ..., created_at: _Optional[str] = ..., algorithm: _Optional[str] = ..., k: _Optional[int] = ..., numeric_features: _Optional[_Iterable[_Union[NumericFeatureInfo, _Mapping]]] = ..., categorical_features: _Optional[_Iterable[_Union[CategoricalFeatureInfo, _Mapping]]] = ..., segments: _Optional[_Iterable[_Union[Segment, _Mapping]]] = ..., k_search: _Optional[_Iterable[_Union[KSearchRow, _Mapping]]] = ..., k_rule: _Optional[str] = ..., k_rule_explanation: _Optional[str] = ..., quality: _Optional[_Mapping[str, float]] = ..., training_rows: _Optional[int] = ..., training_customers: _Optional[int] = ..., data_fingerprint: _Optional[str] = ..., data_source: _Optional[str] = ..., base_stats: _Optional[_Iterable[_Union[FeatureStats, _Mapping]]] = ..., manifest_json: _Optional[str] = ..., profile: _Optional[_Union[_profile_pb2.DataProfile, _Mapping]] = ..., segment_structure: _Optional[str] = ..., clv: _Optional[_Union[ClvInfo, _Mapping]] = ..., recipe_columns: _Optional[_Mapping[str, str]] = ...) -> None: ...

class GetSegmentStatsRequest(_message.Message):
    __slots__ = ("selector", "max_sample")
    SELECTOR_FIELD_NUMBER: _ClassVar[int]
    MAX_SAMPLE_FIELD_NUMBER: _ClassVar[int]
    selector: ModelSelector
    max_sample: int
    def __init__(self, selector: _Optional[_Union[ModelSelector, _Mapping]] = ..., max_sample: _Optional[int] = ...) -> None: ...

class SegmentStats(_message.Message):
    __slots__ = ("model", "version", "segments", "base_stats", "sample_numeric", "sample_categorical", "sample_segment_id", "sample_map_x", "sample_map_y", "centroid_map_x", "centroid_map_y", "sample_map_z", "centroid_map_z")
    MODEL_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    SEGMENTS_FIELD_NUMBER: _ClassVar[int]
    BASE_STATS_FIELD_NUMBER: _ClassVar[int]
    SAMPLE_NUMERIC_FIELD_NUMBER: _ClassVar[int]
    SAMPLE_CATEGORICAL_FIELD_NUMBER: _ClassVar[int]
    SAMPLE_SEGMENT_ID_FIELD_NUMBER: _ClassVar[int]
    SAMPLE_MAP_X_FIELD_NUMBER: _ClassVar[int]
    SAMPLE_MAP_Y_FIELD_NUMBER: _ClassVar[int]
    CENTROID_MAP_X_FIELD_NUMBER: _ClassVar[int]
    CENTROID_MAP_Y_FIELD_NUMBER: _ClassVar[int]
    SAMPLE_MAP_Z_FIELD_NUMBER: _ClassVar[int]
    CENTROID_MAP_Z_FIELD_NUMBER: _ClassVar[int]
    model: str
    version: str
    segments: _containers.RepeatedCompositeFieldContainer[Segment]
    base_stats: _containers.RepeatedCompositeFieldContainer[FeatureStats]
    sample_numeric: _containers.RepeatedCompositeFieldContainer[NumericColumn]
    sample_categorical: _containers.RepeatedCompositeFieldContainer[CategoricalColumn]
    sample_segment_id: _containers.RepeatedScalarFieldContainer[int]
    sample_map_x: _containers.RepeatedScalarFieldContainer[float]
    sample_map_y: _containers.RepeatedScalarFieldContainer[float]
    centroid_map_x: _containers.RepeatedScalarFieldContainer[float]
    centroid_map_y: _containers.RepeatedScalarFieldContainer[float]
    sample_map_z: _containers.RepeatedScalarFieldContainer[float]
    centroid_map_z: _containers.RepeatedScalarFieldContainer[float]
    def __init__(self, model: _Optional[str] = ..., version: _Optional[str] = ..., segments: _Optional[_Iterable[_Union[Segment, _Mapping]]] = ..., base_stats: _Optional[_Iterable[_Union[FeatureStats, _Mapping]]] = ..., sample_numeric: _Optional[_Iterable[_Union[NumericColumn, _Mapping]]] = ..., sample_categorical: _Optional[_Iterable[_Union[CategoricalColumn, _Mapping]]] = ..., sample_segment_id: _Optional[_Iterable[int]] = ..., sample_map_x: _Optional[_Iterable[float]] = ..., sample_map_y: _Optional[_Iterable[float]] = ..., centroid_map_x: _Optional[_Iterable[float]] = ..., centroid_map_y: _Optional[_Iterable[float]] = ..., sample_map_z: _Optional[_Iterable[float]] = ..., centroid_map_z: _Optional[_Iterable[float]] = ...) -> None: ...

class ListModelsRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class VersionInfo(_message.Message):
    __slots__ = ("version", "created_at", "algorithm", "k", "current", "loaded", "refused_reason")
    VERSION_FIELD_NUMBER: _ClassVar[int]
    CREATED_AT_FIELD_NUMBER: _ClassVar[int]
    ALGORITHM_FIELD_NUMBER: _ClassVar[int]
    K_FIELD_NUMBER: _ClassVar[int]
    CURRENT_FIELD_NUMBER: _ClassVar[int]
    LOADED_FIELD_NUMBER: _ClassVar[int]
    REFUSED_REASON_FIELD_NUMBER: _ClassVar[int]
    version: str
    created_at: str
    algorithm: str
    k: int
    current: bool
    loaded: bool
    refused_reason: str
    def __init__(self, version: _Optional[str] = ..., created_at: _Optional[str] = ..., algorithm: _Optional[str] = ..., k: _Optional[int] = ..., current: _Optional[bool] = ..., loaded: _Optional[bool] = ..., refused_reason: _Optional[str] = ...) -> None: ...

class ModelEntry(_message.Message):
    __slots__ = ("name", "served_version", "versions", "is_default", "rollback_to")
    NAME_FIELD_NUMBER: _ClassVar[int]
    SERVED_VERSION_FIELD_NUMBER: _ClassVar[int]
    VERSIONS_FIELD_NUMBER: _ClassVar[int]
    IS_DEFAULT_FIELD_NUMBER: _ClassVar[int]
    ROLLBACK_TO_FIELD_NUMBER: _ClassVar[int]
    name: str
    served_version: str
    versions: _containers.RepeatedCompositeFieldContainer[VersionInfo]
    is_default: bool
    rollback_to: str
    def __init__(self, name: _Optional[str] = ..., served_version: _Optional[str] = ..., versions: _Optional[_Iterable[_Union[VersionInfo, _Mapping]]] = ..., is_default: _Optional[bool] = ..., rollback_to: _Optional[str] = ...) -> None: ...

class ListModelsResponse(_message.Message):
    __slots__ = ("models",)
    MODELS_FIELD_NUMBER: _ClassVar[int]
    models: _containers.RepeatedCompositeFieldContainer[ModelEntry]
    def __init__(self, models: _Optional[_Iterable[_Union[ModelEntry, _Mapping]]] = ...) -> None: ...

class WatchModelRequest(_message.Message):
    __slots__ = ("selector",)
    SELECTOR_FIELD_NUMBER: _ClassVar[int]
    selector: ModelSelector
    def __init__(self, selector: _Optional[_Union[ModelSelector, _Mapping]] = ...) -> None: ...

class GetDriftReportRequest(_message.Message):
    __slots__ = ("selector", "window_rows", "window_seconds")
    SELECTOR_FIELD_NUMBER: _ClassVar[int]
    WINDOW_ROWS_FIELD_NUMBER: _ClassVar[int]
    WINDOW_SECONDS_FIELD_NUMBER: _ClassVar[int]
    selector: ModelSelector
    window_rows: int
    window_seconds: float
    def __init__(self, selector: _Optional[_Union[ModelSelector, _Mapping]] = ..., window_rows: _Optional[int] = ..., window_seconds: _Optional[float] = ...) -> None: ...

class FeatureDrift(_message.Message):
    __slots__ = ("feature", "kind", "psi", "band", "bins", "training_share", "live_share", "edges", "training_missing_rate", "live_missing_rate", "live_unseen_rate", "live_counts")
    FEATURE_FIELD_NUMBER: _ClassVar[int]
    KIND_FIELD_NUMBER: _ClassVar[int]
    PSI_FIELD_NUMBER: _ClassVar[int]
    BAND_FIELD_NUMBER: _ClassVar[int]
    BINS_FIELD_NUMBER: _ClassVar[int]
    TRAINING_SHARE_FIELD_NUMBER: _ClassVar[int]
    LIVE_SHARE_FIELD_NUMBER: _ClassVar[int]
    EDGES_FIELD_NUMBER: _ClassVar[int]
    TRAINING_MISSING_RATE_FIELD_NUMBER: _ClassVar[int]
    LIVE_MISSING_RATE_FIELD_NUMBER: _ClassVar[int]
    LIVE_UNSEEN_RATE_FIELD_NUMBER: _ClassVar[int]
    LIVE_COUNTS_FIELD_NUMBER: _ClassVar[int]
    feature: str
    kind: str
    psi: float
    band: str
    bins: _containers.RepeatedScalarFieldContainer[str]
    training_share: _containers.RepeatedScalarFieldContainer[float]
    live_share: _containers.RepeatedScalarFieldContainer[float]
    edges: _containers.RepeatedScalarFieldContainer[float]
    training_missing_rate: float
    live_missing_rate: float
    live_unseen_rate: float
    live_counts: _containers.RepeatedScalarFieldContainer[int]
    def __init__(self, feature: _Optional[str] = ..., kind: _Optional[str] = ..., psi: _Optional[float] = ..., band: _Optional[str] = ..., bins: _Optional[_Iterable[str]] = ..., training_share: _Optional[_Iterable[float]] = ..., live_share: _Optional[_Iterable[float]] = ..., edges: _Optional[_Iterable[float]] = ..., training_missing_rate: _Optional[float] = ..., live_missing_rate: _Optional[float] = ..., live_unseen_rate: _Optional[float] = ..., live_counts: _Optional[_Iterable[int]] = ...) -> None: ...

class DriftSlice(_message.Message):
    __slots__ = ("start_time", "end_time", "rows", "row_errors", "segment_rows", "mean_confidence", "outlier_rate")
    START_TIME_FIELD_NUMBER: _ClassVar[int]
    END_TIME_FIELD_NUMBER: _ClassVar[int]
    ROWS_FIELD_NUMBER: _ClassVar[int]
    ROW_ERRORS_FIELD_NUMBER: _ClassVar[int]
    SEGMENT_ROWS_FIELD_NUMBER: _ClassVar[int]
    MEAN_CONFIDENCE_FIELD_NUMBER: _ClassVar[int]
    OUTLIER_RATE_FIELD_NUMBER: _ClassVar[int]
    start_time: float
    end_time: float
    rows: int
    row_errors: int
    segment_rows: _containers.RepeatedScalarFieldContainer[int]
    mean_confidence: float
    outlier_rate: float
    def __init__(self, start_time: _Optional[float] = ..., end_time: _Optional[float] = ..., rows: _Optional[int] = ..., row_errors: _Optional[int] = ..., segment_rows: _Optional[_Iterable[int]] = ..., mean_confidence: _Optional[float] = ..., outlier_rate: _Optional[float] = ...) -> None: ...

class DriftReport(_message.Message):
    __slots__ = ("model", "version", "has_reference", "verdict", "reasons", "rows", "row_errors", "window_start", "window_end", "window_rows_limit", "window_seconds_limit", "training_rows", "features", "segment_mix", "mean_confidence", "training_mean_confidence", "mean_distance", "training_mean_distance", "outlier_rate", "training_outlier_rate", "slices", "reference_bins", "sampled_rows", "confidence_sum", "distance_sum", "outliers", "min_rows")
    MODEL_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    HAS_REFERENCE_FIELD_NUMBER: _ClassVar[int]
    VERDICT_FIELD_NUMBER: _ClassVar[int]
    REASONS_FIELD_NUMBER: _ClassVar[int]
    ROWS_FIELD_NUMBER: _ClassVar[int]
    ROW_ERRORS_FIELD_NUMBER: _ClassVar[int]
    WINDOW_START_FIELD_NUMBER: _ClassVar[int]
    WINDOW_END_FIELD_NUMBER: _ClassVar[int]
    WINDOW_ROWS_LIMIT_FIELD_NUMBER: _ClassVar[int]
    WINDOW_SECONDS_LIMIT_FIELD_NUMBER: _ClassVar[int]
    TRAINING_ROWS_FIELD_NUMBER: _ClassVar[int]
    FEATURES_FIELD_NUMBER: _ClassVar[int]
    SEGMENT_MIX_FIELD_NUMBER: _ClassVar[int]
    MEAN_CONFIDENCE_FIELD_NUMBER: _ClassVar[int]
    TRAINING_MEAN_CONFIDENCE_FIELD_NUMBER: _ClassVar[int]
    MEAN_DISTANCE_FIELD_NUMBER: _ClassVar[int]
    TRAINING_MEAN_DISTANCE_FIELD_NUMBER: _ClassVar[int]
    OUTLIER_RATE_FIELD_NUMBER: _ClassVar[int]
    TRAINING_OUTLIER_RATE_FIELD_NUMBER: _ClassVar[int]
    SLICES_FIELD_NUMBER: _ClassVar[int]
    REFERENCE_BINS_FIELD_NUMBER: _ClassVar[int]
    SAMPLED_ROWS_FIELD_NUMBER: _ClassVar[int]
    CONFIDENCE_SUM_FIELD_NUMBER: _ClassVar[int]
    DISTANCE_SUM_FIELD_NUMBER: _ClassVar[int]
    OUTLIERS_FIELD_NUMBER: _ClassVar[int]
    MIN_ROWS_FIELD_NUMBER: _ClassVar[int]
    model: str
    version: str
    has_reference: bool
    verdict: DriftVerdict
    reasons: _containers.RepeatedScalarFieldContainer[str]
    rows: int
    row_errors: int
    window_start: float
    window_end: float
    window_rows_limit: int
    window_seconds_limit: float
    training_rows: int
    features: _containers.RepeatedCompositeFieldContainer[FeatureDrift]
    segment_mix: FeatureDrift
    mean_confidence: float
    training_mean_confidence: float
    mean_distance: float
    training_mean_distance: float
    outlier_rate: float
    training_outlier_rate: float
    slices: _containers.RepeatedCompositeFieldContainer[DriftSlice]
    reference_bins: int
    sampled_rows: int
    confidence_sum: float
    distance_sum: float
    outliers: int
    min_rows: int
    def __init__(self, model: _Optional[str] = ..., version: _Optional[str] = ..., has_reference: _Optional[bool] = ..., verdict: _Optional[_Union[DriftVerdict, str]] = ..., reasons: _Optional[_Iterable[str]] = ..., rows: _Optional[int] = ..., row_errors: _Optional[int] = ..., window_start: _Optional[float] = ..., window_end: _Optional[float] = ..., window_rows_limit: _Optional[int] = ..., window_seconds_limit: _Optional[float] = ..., training_rows: _Optional[int] = ..., features: _Optional[_Iterable[_Union[FeatureDrift, _Mapping]]] = ..., segment_mix: _Optional[_Union[FeatureDrift, _Mapping]] = ..., mean_confidence: _Optional[float] = ..., training_mean_confidence: _Optional[float] = ..., mean_distance: _Optional[float] = ..., training_mean_distance: _Optional[float] = ..., outlier_rate: _Optional[float] = ..., training_outlier_rate: _Optional[float] = ..., slices: _Optional[_Iterable[_Union[DriftSlice, _Mapping]]] = ..., reference_bins: _Optional[int] = ..., sampled_rows: _Optional[int] = ..., confidence_sum: _Optional[float] = ..., distance_sum: _Optional[float] = ..., outliers: _Optional[int] = ..., min_rows: _Optional[int] = ...) -> None: ...

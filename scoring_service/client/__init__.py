"""The Python client of the scoring service: plain dataclasses for every answer, a resumable PredictStream.

```python
from scoring_service.client import ScoringClient
with ScoringClient("127.0.0.1:50051") as client:
    info = client.model_info()                      # ModelInfo: schema, segments, k search, quality
    p = client.predict({"Age": 31, "Annual Income (k$)": 70, "Gender": "Female"})   # Prediction
    scored = client.predict_frame(frame, progress=lambda done, total: ...)          # over PredictStream
```
``python -m scoring_service.client score IN.csv -o OUT.csv`` scores a file over one ``PredictStream``.

Modules: ``types`` (the dataclasses and ``ScoringError``), ``convert`` (protobuf -> dataclasses, the one
place), ``unary`` (``ScoringClient``), ``stream`` (the PredictStream engine), ``frames`` (frames <-> columns),
``cli`` (the command line), ``targets`` (where to connect; every replica a target names), ``combine`` (the
drift reports of several replicas made into one per version: ``ScoringClient.drift_reports``).
"""
from scoring_service.client.cli import main
from scoring_service.client.protocol import ScoringClientProtocol
from scoring_service.client.stream import FrameStream
from scoring_service.client.types import (
    DEFAULT_TARGET,
    RESULT_COLUMNS,
    CategoricalFeature,
    ClvInfo,
    CustomerValue,
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
    ReplicaDrift,
    ScoringError,
    Segment,
    SegmentStats,
    SegmentValue,
    VersionDrift,
    VersionInfo,
)
from scoring_service.client.unary import ScoringClient

__all__ = [
    "ScoringClient", "ScoringClientProtocol", "FrameStream", "ScoringError", "Prediction", "ModelInfo", "NumericFeature",
    "CategoricalFeature", "Segment", "FeatureStats", "LevelShare", "KSearchRow", "SegmentStats", "ModelEntry",
    "VersionInfo", "DriftReport", "DriftVerdict", "FeatureDrift", "DriftSlice", "RESULT_COLUMNS", "DEFAULT_TARGET", "main",
    "CustomerValue", "SegmentValue", "ClvInfo", "ReplicaDrift", "VersionDrift",
]


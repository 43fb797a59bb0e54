"""What callers may rely on of a scoring client: ``ScoringClient`` is one; a test double or a wrapper can be another."""
from __future__ import annotations

from typing import Any, Callable, Iterator, Mapping, Protocol

import pandas as pd

from scoring_service.client.types import DriftReport, ModelEntry, ModelInfo, Prediction, ReplicaDrift, SegmentStats


class ScoringClientProtocol(Protocol):
    """The calls of a scoring client, each answering the plain dataclasses of ``types.py``; every failure is a
    ``ScoringError``."""

    def model_info(self, model: str | None = None, version: str | None = None, *,
                   include_profile: bool = False) -> ModelInfo: ...

    def segment_stats(self, model: str | None = None, version: str | None = None,
                      max_sample: int = 0) -> SegmentStats: ...

    def list_models(self) -> list[ModelEntry]: ...

    def health(self) -> str: ...

    def watch(self, model: str | None = None, *, reconnect: bool = True) -> Iterator[ModelInfo]: ...

    def predict(self, customer: Mapping[str, Any], *, id: str = "", model: str | None = None,
                version: str | None = None) -> Prediction: ...

    def predict_frame(self, frame: pd.DataFrame, *, batch_rows: int = 10_000,
                      progress: Callable[[int, int], None] | None = None, model: str | None = None,
                      version: str | None = None) -> pd.DataFrame: ...

    def drift_report(self, model: str | None = None, version: str | None = None) -> DriftReport: ...

    def drift_reports(self, model: str | None = None, version: str | None = None) -> ReplicaDrift: ...

    def close(self) -> None: ...

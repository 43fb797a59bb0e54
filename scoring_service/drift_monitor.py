"""Drift monitoring of one server process: a rolling window per model version, the reports and the gauges.

Each version has its own window (``scoring_service.drift_window``), created when it first scores a row:
a hot swap starts the new version at zero and leaves the old one's counts as they were, and a report
always says which version it covers. Windows of the ``MAX_VERSIONS`` most recently used versions are kept.
"""
from __future__ import annotations

import threading
from collections import OrderedDict
from typing import Iterator

from scoring_service import drift_report
from scoring_service.drift_window import VersionWindow
from scoring_service.registry import LoadedVersion
from segmentation.v1 import scoring_pb2 as pb
from segmentation_core.drift import DriftAssessment, DriftThresholds, assess

MAX_VERSIONS = 16


class DriftMonitor:
    """The windows of every version this process scored with, and what they say."""

    def __init__(self, window_rows: int, window_seconds: float, thresholds: DriftThresholds = DriftThresholds(),
                 sample_rate: float = 0.0) -> None:
        """``window_rows`` 0 turns the accounting off (reports then say so); ``sample_rate``: see drift_window."""
        self.window_rows = window_rows
        self.sample_rate = sample_rate
        self.window_seconds = window_seconds
        self.thresholds = thresholds
        self._windows: OrderedDict[tuple[str, str], VersionWindow | None] = OrderedDict()
        self._lock = threading.Lock()

    @property
    def enabled(self) -> bool:
        """True when traffic is counted."""
        return self.window_rows > 0

    def window(self, loaded: LoadedVersion) -> VersionWindow | None:
        """The window counting ``loaded``'s traffic; None when it has no reference or accounting is off."""
        key = (loaded.model, loaded.version)
        try:
            return self._windows[key]
        except KeyError:
            return self._create(key, loaded)

    def _create(self, key: tuple[str, str], loaded: LoadedVersion) -> VersionWindow | None:
        with self._lock:
            if key in self._windows:
                return self._windows[key]
            reference = loaded.artefact.reference
            window = None
            if reference is not None and self.enabled:
                window = VersionWindow(reference, loaded.artefact.schema, self.window_rows, self.window_seconds,
                                       self.sample_rate)
            windows = OrderedDict(self._windows)  # replaced, not mutated: readers iterate without the lock
            windows[key] = window
            while len(windows) > MAX_VERSIONS:
                windows.popitem(last=False)
            self._windows = windows
            return window

    def report(self, loaded: LoadedVersion, max_rows: int = 0, max_seconds: float = 0.0) -> pb.DriftReport:
        """The DriftReport of ``loaded`` over its window (or the newest part of it)."""
        reference = loaded.artefact.reference
        window = self.window(loaded) if reference is not None else None
        totals = window.totals(max_rows, max_seconds) if window is not None else None
        assessment = None
        if totals is not None:
            assessment = assess(reference, window.layout, totals.counts, totals.rows, totals.confidence_sum,
                                totals.distance_sum, totals.outliers, loaded.segment_names, self.thresholds,
                                binned_rows=totals.binned)
        return drift_report.build(loaded.model, loaded.version, reference, assessment, totals,
                                  self.window_rows, self.window_seconds, accounting_on=self.enabled,
                                  min_rows=self.thresholds.min_rows)

    def assessments(self) -> Iterator[tuple[str, str, DriftAssessment, int]]:
        """(model, version, assessment of the whole window, row errors) of every counted version (for the gauges)."""
        for (model, version), window in list(self._windows.items()):
            if window is None:
                continue
            totals = window.totals()
            yield model, version, assess(window.reference, window.layout, totals.counts, totals.rows,
                                         totals.confidence_sum, totals.distance_sum, totals.outliers, (),
                                         self.thresholds, binned_rows=totals.binned), totals.errors

"""Live drift accounting of one model version over a rolling window (the hot-path part of monitoring).

Every scored batch is binned on the version's reference bins (``segmentation_core.reference.BinLayout``:
one ``searchsorted`` per numeric feature, one table lookup per categorical one, one ``bincount`` for all)
and added to the newest *slice* of the window, with the confidence, distance and outlier sums. A slice
closes after ``window_rows / SLICES`` rows or ``window_seconds / SLICES`` seconds; the oldest slices are
dropped once the window holds more than ``window_rows`` rows (the newest slice always stays) or end
before ``now - window_seconds``. So the window is the last N rows and the last T seconds, each to
within one slice, and its slices are the report's time series.

Sampling: binning every value of a batch would cost a third of what scoring it does (a ``searchsorted``
is ~10 ns per value), so the features of a batch are binned on a systematic sample of its rows: every
``sample_every``-th row from a rotating start (1 = every row). Segments, confidence, distance, outliers and
row counts cover every row. PSI needs shares, not totals; its noise grows as ``bins / sampled rows``, which
is why the verdict's minimum counts sampled rows. Single ``Predict`` calls bin every row (gRPC costs far
more per call than the binning).

Rows with a row error are counted as errors, never binned (bad input is not drift). The numpy work of a
batch runs outside the lock; the lock guards only the few additions into the slice.
"""
from __future__ import annotations

import threading
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Callable, Mapping

import numpy as np

from segmentation_core.features import FeatureSchema
from segmentation_core.reference import BinLayout, Reference

SLICES = 30


@dataclass(eq=False)
class Slice:
    """Counts of consecutive rows: the unit the window grows and shrinks by."""

    start: float
    end: float
    counts: np.ndarray
    rows: int = 0
    binned: int = 0
    errors: int = 0
    confidence_sum: float = 0.0
    distance_sum: float = 0.0
    outliers: int = 0


@dataclass(frozen=True)
class WindowTotals:
    """The sums over some slices of a window, and those slices (oldest first)."""

    counts: np.ndarray
    rows: int
    binned: int
    errors: int
    confidence_sum: float
    distance_sum: float
    outliers: int
    slices: tuple[Slice, ...] = field(default=())

    @property
    def start(self) -> float:
        """Time of the first row (0 when empty)."""
        return self.slices[0].start if self.slices else 0.0

    @property
    def end(self) -> float:
        """Time of the last row (0 when empty)."""
        return self.slices[-1].end if self.slices else 0.0


class VersionWindow:
    """The rolling window of one model version; thread-safe."""

    def __init__(self, reference: Reference, schema: FeatureSchema, window_rows: int, window_seconds: float,
                 sample_every: int = 1, clock: Callable[[], float] = time.time) -> None:
        self.reference = reference
        self.schema = schema
        self.layout = BinLayout(reference, schema)
        self.window_rows = window_rows
        self.window_seconds = window_seconds
        self._slice_rows = max(1, window_rows // SLICES)
        self._slice_seconds = window_seconds / SLICES
        self._clock = clock
        self.sample_every = sample_every
        self._start = 0  # rotating start of the batch sample
        self._slices: deque[Slice] = deque()
        self._rows = 0
        self._lock = threading.Lock()

    # ---- counting (hot path) -----------------------------------------------------------------------
    def add_batch(self, numeric: Mapping[str, np.ndarray], codes: Mapping[str, np.ndarray], segment: np.ndarray,
                  confidence: np.ndarray, distance: np.ndarray, outlier: np.ndarray, n: int,
                  errors: Mapping[int, str]) -> None:
        """Count a scored batch of ``n`` rows (``errors``: the rows answered with a row error)."""
        keep = sample = None
        if errors:
            bad = np.fromiter(errors, dtype=np.int64, count=len(errors))
            keep = np.setdiff1d(np.arange(n), bad)
        step = self.sample_every
        if step > 1:
            start = self._start = (self._start + 1) % step  # a race here only shifts a sample: harmless
            sample = slice(start, n, step)
            if errors:
                sample = np.setdiff1d(np.arange(start, n, step), bad)
        counts = self.layout.count_batch(numeric, codes, segment, n, keep=keep, sample=sample)
        binned = n - len(errors) if sample is None else len(sample) if errors else len(range(start, n, step))
        if keep is not None:
            confidence, distance, outlier = confidence[keep], distance[keep], outlier[keep]
        rows = n - len(errors)
        conf, dist = float(np.add.reduce(confidence)), float(np.add.reduce(distance))
        outliers = int(np.count_nonzero(outlier))
        with self._lock:
            s = self._current(rows)
            s.counts += counts
            s.rows += rows
            s.binned += binned
            s.errors += len(errors)
            s.confidence_sum += conf
            s.distance_sum += dist
            s.outliers += outliers
            self._rows += rows

    def add_row(self, numbers: Mapping[str, float], categories: Mapping[str, str], segment: int, confidence: float,
                distance: float, outlier: bool) -> None:
        """Count one scored customer (the Predict path; pure Python)."""
        bins = self.layout.row_bins(numbers, categories, segment)
        with self._lock:
            s = self._current(1)
            counts = s.counts
            for b in bins:
                counts[b] += 1
            s.rows += 1
            s.binned += 1
            s.confidence_sum += confidence
            s.distance_sum += distance
            s.outliers += outlier
            self._rows += 1

    def add_errors(self, count: int) -> None:
        """Count rows answered with an error and not scored (a single Predict that failed on its data)."""
        with self._lock:
            self._current(0).errors += count

    def _current(self, incoming: int) -> Slice:
        """The slice to add to (a new one when the newest is full or old); drops what left the window."""
        now = self._clock()
        slices = self._slices
        s = slices[-1] if slices else None
        if s is None or s.rows >= self._slice_rows or now - s.start >= self._slice_seconds:
            s = Slice(start=now, end=now, counts=np.zeros(self.layout.size, dtype=np.int64))
            slices.append(s)
        s.end = now
        self._evict(now, incoming)
        return s

    def _evict(self, now: float, incoming: int = 0) -> None:
        slices = self._slices
        while len(slices) > 1 and (self._rows + incoming - slices[0].rows >= self.window_rows
                                   or slices[0].end < now - self.window_seconds):
            self._rows -= slices.popleft().rows

    # ---- reading -----------------------------------------------------------------------------------
    def totals(self, max_rows: int = 0, max_seconds: float = 0.0) -> WindowTotals:
        """Sums over the window, or over its newest slices within ``max_rows`` rows / ``max_seconds`` (0: all)."""
        now = self._clock()
        with self._lock:
            self._evict(now)
            slices = [s for s in self._slices if s.end >= now - self.window_seconds]
            copies = [Slice(s.start, s.end, s.counts.copy(), s.rows, s.binned, s.errors, s.confidence_sum,
                            s.distance_sum, s.outliers) for s in slices]
        chosen: list[Slice] = []
        rows = 0
        for s in reversed(copies):
            if chosen and ((max_rows and rows + s.rows > max_rows) or (max_seconds and s.end < now - max_seconds)):
                break
            chosen.append(s)
            rows += s.rows
        chosen.reverse()
        counts = np.sum([s.counts for s in chosen], axis=0) if chosen else np.zeros(self.layout.size, np.int64)
        return WindowTotals(counts=counts, rows=rows, binned=sum(s.binned for s in chosen),
                            errors=sum(s.errors for s in chosen),
                            confidence_sum=sum(s.confidence_sum for s in chosen),
                            distance_sum=sum(s.distance_sum for s in chosen),
                            outliers=sum(s.outliers for s in chosen), slices=tuple(chosen))

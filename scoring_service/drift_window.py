"""Live drift accounting of one model version over a rolling window (the hot-path part of monitoring).

Every scored batch adds to the newest *slice* of the window: its segment counts, confidence, distance and
outlier sums and row counts (every row), and the binned values of its features (``BinLayout``: a
comparison against every edge per numeric value, a table lookup per category; every row, or a sample,
below). A slice closes after ``window_rows / SLICES`` binned rows or ``window_seconds / SLICES``
seconds; the oldest slices are dropped once the window holds more than ``window_rows`` binned rows (the
newest slice always stays) or end before ``now - window_seconds``. So the window is the last N rows and
the last T seconds, each to within one slice, and its slices are the report's time series.

Sampling: binning a value costs ~20 ns, ~150 ns a row of 7 features: binning every row of a 10,000-row
batch would add a third to what the server spends on it. So at most ``sample_rate`` rows per second are
binned (a token bucket holding up to ``window_rows`` rows: a burst of one window's rows, and all the
traffic of a service below that rate, is binned row by row). When the bucket runs low, a batch is binned
on a systematic sample (every k-th row from a rotating start) of at least ``MIN_SAMPLE`` rows, or not at
all until the bucket holds that many: the per-batch cost of binning is paid by few batches. Segments,
confidence, distance and outliers always cover every row. PSI needs shares, not totals, and its noise
grows as ``bins / binned rows``: the window and the verdict's minimum count binned rows. Single
``Predict`` calls bin every row (gRPC costs far more per call than the binning).

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
MIN_SAMPLE = 1024  # fewest rows binned from a sampled batch
_NO_ROWS = np.zeros(0, dtype=np.int64)


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
                 sample_rate: float = 0.0, clock: Callable[[], float] = time.time) -> None:
        """``sample_rate``: most rows binned per second (0: every row)."""
        self.reference = reference
        self.schema = schema
        self.layout = BinLayout(reference, schema)
        self.window_rows = window_rows
        self.window_seconds = window_seconds
        self._slice_rows = max(1, window_rows // SLICES)
        self._slice_seconds = window_seconds / SLICES
        self._clock = clock
        self.sample_rate = sample_rate
        self._tokens = float(window_rows)  # rows that may be binned now
        self._refilled = clock()
        self._start = 0  # rotating start of a batch sample
        self._slices: deque[Slice] = deque()
        self._binned = 0  # binned rows in the window
        self._lock = threading.Lock()

    # ---- counting (hot path) -----------------------------------------------------------------------
    def _budget(self, rows: int, now: float) -> int:
        """How many of ``rows`` rows to bin now (all, a sample of at least MIN_SAMPLE, or none)."""
        if self.sample_rate <= 0:
            return rows
        tokens = min(self.window_rows, self._tokens + (now - self._refilled) * self.sample_rate)
        if tokens >= rows:
            return rows
        return int(tokens) if tokens >= MIN_SAMPLE else 0

    def add_batch(self, numeric: Mapping[str, np.ndarray], codes: Mapping[str, np.ndarray], segment: np.ndarray,
                  confidence: np.ndarray, distance: np.ndarray, outlier: np.ndarray, n: int,
                  errors: Mapping[int, str], segment_counts: np.ndarray | None = None) -> None:
        """Count a scored batch of ``n`` rows (``errors``: the rows answered with a row error;
        ``segment_counts``: the scored rows per segment, if the caller counted them already)."""
        rows = n - len(errors)
        keep = bad = None
        if errors:
            bad = np.fromiter(errors, dtype=np.int64, count=len(errors))
            keep = np.setdiff1d(np.arange(n), bad)
        budget = self._budget(rows, self._clock())  # read without the lock: a race only shifts a sample
        if budget >= rows:
            sample, binned = None, rows
        elif budget == 0:
            sample, binned = _NO_ROWS, 0
        else:
            step = -(-n // budget)
            start = self._start = (self._start + 1) % step
            sample = slice(start, n, step) if bad is None else np.setdiff1d(np.arange(start, n, step), bad)
            binned = len(range(start, n, step)) if bad is None else len(sample)
        counts = self.layout.count_batch(numeric, codes, segment, n, keep=keep, sample=sample,
                                         segment_counts=segment_counts)
        if keep is not None:
            confidence, distance, outlier = confidence[keep], distance[keep], outlier[keep]
        conf, dist = float(np.add.reduce(confidence)), float(np.add.reduce(distance))
        outliers = int(np.count_nonzero(outlier))
        with self._lock:
            s = self._current(binned)
            s.counts += counts
            s.rows += rows
            s.binned += binned
            s.errors += len(errors)
            s.confidence_sum += conf
            s.distance_sum += dist
            s.outliers += outliers
            self._binned += binned
            if self.sample_rate > 0:
                now = s.end
                self._tokens = min(self.window_rows, self._tokens + (now - self._refilled) * self.sample_rate) - binned
                self._refilled = now

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
            self._binned += 1

    def add_errors(self, count: int) -> None:
        """Count rows answered with an error and not scored (a single Predict that failed on its data)."""
        with self._lock:
            self._current(0).errors += count

    def _current(self, incoming: int) -> Slice:
        """The slice to add ``incoming`` binned rows to (a new one when the newest is full or old); drops
        what left the window."""
        now = self._clock()
        slices = self._slices
        s = slices[-1] if slices else None
        if s is None or s.binned >= self._slice_rows or now - s.start >= self._slice_seconds:
            s = Slice(start=now, end=now, counts=np.zeros(self.layout.size, dtype=np.int64))
            slices.append(s)
        s.end = now
        self._evict(now, incoming)
        return s

    def _evict(self, now: float, incoming: int = 0) -> None:
        slices = self._slices
        while len(slices) > 1 and (self._binned + incoming - slices[0].binned >= self.window_rows
                                   or slices[0].end < now - self.window_seconds):
            self._binned -= slices.popleft().binned

    # ---- reading -----------------------------------------------------------------------------------
    def totals(self, max_rows: int = 0, max_seconds: float = 0.0) -> WindowTotals:
        """Sums over the window, or over its newest slices within ``max_rows`` binned rows / ``max_seconds``
        (0: all)."""
        now = self._clock()
        with self._lock:
            self._evict(now)
            slices = [s for s in self._slices if s.end >= now - self.window_seconds]
            copies = [Slice(s.start, s.end, s.counts.copy(), s.rows, s.binned, s.errors, s.confidence_sum,
                            s.distance_sum, s.outliers) for s in slices]
        chosen: list[Slice] = []
        rows = 0
        for s in reversed(copies):
            if chosen and ((max_rows and rows + s.binned > max_rows) or (max_seconds and s.end < now - max_seconds)):
                break
            chosen.append(s)
            rows += s.binned
        chosen.reverse()
        counts = np.sum([s.counts for s in chosen], axis=0) if chosen else np.zeros(self.layout.size, np.int64)
        return WindowTotals(counts=counts, rows=sum(s.rows for s in chosen), binned=rows,
                            errors=sum(s.errors for s in chosen),
                            confidence_sum=sum(s.confidence_sum for s in chosen),
                            distance_sum=sum(s.distance_sum for s in chosen),
                            outliers=sum(s.outliers for s in chosen), slices=tuple(chosen))

"""Prometheus metrics of one server process, in a registry of its own (several servers can share a
process in tests) and served over HTTP by :meth:`ServiceMetrics.start_http`."""
from __future__ import annotations

import logging
import threading
from typing import Callable, Iterable, Iterator

import grpc
import numpy as np
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, start_http_server
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from segmentation_core.drift import RETRAIN, DriftAssessment

log = logging.getLogger(__name__)

# From 100 us (a single Predict) to 10 s (a long stream's whole life is not timed; batches are).
LATENCY_BUCKETS = (1e-4, 2.5e-4, 5e-4, 1e-3, 2.5e-3, 5e-3, 1e-2, 2.5e-2, 5e-2, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0)


class ServiceMetrics:
    """Counters, histograms and gauges of the scoring service."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.calls = Counter("scoring_calls", "Calls finished, by RPC and gRPC status code.",
                             ["method", "code"], registry=r)
        self.latency = Histogram("scoring_call_seconds", "Call latency in seconds (PredictStream: per batch), "
                                 "by RPC and gRPC status code.", ["method", "code"], buckets=LATENCY_BUCKETS,
                                 registry=r)
        self.rows = Counter("scoring_rows", "Customers scored, by model.", ["model"], registry=r)
        self.row_errors = Counter("scoring_row_errors", "Rows answered with a row error, by model.", ["model"],
                                  registry=r)
        self.batch_errors = Counter("scoring_batch_errors", "Batches refused as a whole, by model.", ["model"],
                                    registry=r)
        self.segments = Counter("scoring_segment_rows", "Customers assigned to each segment, by model and "
                                "segment id.", ["model", "segment"], registry=r)
        self.served = Gauge("scoring_served_version", "1 for the version each model serves (labels), else absent.",
                            ["model", "version"], registry=r)
        self.reloads = Counter("scoring_reloads", "New versions loaded and swapped in, by model.", ["model"],
                               registry=r)
        self.refused = Counter("scoring_refused_versions", "Versions refused (corrupt, tampered, unreadable), by "
                               "model.", ["model"], registry=r)
        self.signature_refused = Counter("scoring_refused_signatures", "Versions refused because --verify-key is "
                                         "set and they are unsigned, signed by another key or tampered with after "
                                         "signing, by model (also counted in scoring_refused_versions).", ["model"],
                                         registry=r)
        self.signatures_required = Gauge("scoring_signatures_required", "1 when --verify-key is set: only versions "
                                         "signed by that key (label key_id) are served; 0 when it is not.",
                                         ["key_id"], registry=r)
        self._children: dict[tuple, object] = {}  # label lookups cost microseconds; cache the children
        # Hot paths (every call, every single-row prediction): the bound methods to call, by their labels.
        self._call_fns: dict[tuple[str, grpc.StatusCode], tuple] = {}
        self._row_fns: dict[tuple[str, int], tuple] = {}  # (model, segment id)
        self._http = None

    def _child(self, metric: object, *labels: str) -> object:
        key = (id(metric), *labels)
        child = self._children.get(key)
        if child is None:
            child = self._children[key] = metric.labels(*labels)  # type: ignore[attr-defined]
        return child

    def observe_call(self, method: str, code: grpc.StatusCode, seconds: float) -> None:
        """Count one finished call (or stream batch) and its latency."""
        fns = self._call_fns.get((method, code))
        if fns is None:
            fns = self._call_fns[(method, code)] = (self._child(self.calls, method, code.name).inc,
                                                    self._child(self.latency, method, code.name).observe)
        fns[0]()
        fns[1](seconds)

    def observe_rows(self, model: str, segment: np.ndarray | int, errors: int = 0, k: int = 0) -> None:
        """Count scored rows by segment (an array of segment ids of rows without error, or one id)."""
        if isinstance(segment, (int, np.integer)):
            fns = self._row_fns.get((model, segment))
            if fns is None:
                fns = self._row_fns[(model, int(segment))] = (self._child(self.rows, model).inc,
                                                              self._child(self.segments, model, str(int(segment))).inc)
            fns[0]()
            fns[1]()
        else:
            self.observe_segment_counts(model, np.bincount(segment, minlength=k), 0)
        if errors:
            self._child(self.row_errors, model).inc(errors)

    def observe_segment_counts(self, model: str, counts: np.ndarray, errors: int = 0) -> None:
        """Count a batch's scored rows from their per-segment counts (``np.bincount`` of the segment ids)."""
        # Once per batch: the cached children's lookups are negligible beside the batch.
        counts = counts.tolist()
        self._child(self.rows, model).inc(sum(counts))
        for sid, count in enumerate(counts):
            if count:
                self._child(self.segments, model, str(sid)).inc(count)
        if errors:
            self._child(self.row_errors, model).inc(errors)

    def batch_error(self, model: str) -> None:
        """Count a refused batch."""
        self._child(self.batch_errors, model).inc()

    def version_served(self, model: str, old: str | None, new: str) -> None:
        """Record a swap to ``new`` (``old`` None at first load)."""
        if old is not None:
            self.served.remove(model, old)
            self._child(self.reloads, model).inc()
        self.served.labels(model, new).set(1)

    def version_refused(self, model: str, signature: bool = False) -> None:
        """Count a refused version (``signature``: refused for its signature)."""
        self._child(self.refused, model).inc()
        if signature:
            self._child(self.signature_refused, model).inc()

    def require_signatures(self, key_id: str | None) -> None:
        """Say whether versions must be signed, and by which key (None: not required)."""
        self.signatures_required.labels(key_id or "").set(1 if key_id else 0)

    def watch_drift(self, source: Callable[[], Iterable[tuple[str, str, DriftAssessment, int]]]) -> None:
        """Export the drift figures of ``source`` (model, version, assessment, row errors), computed at each scrape."""
        self.registry.register(_DriftCollector(source))

    def start_http(self, host: str, port: int) -> int:
        """Serve /metrics on ``host:port`` (0 = any free port); returns the bound port."""
        server, _thread = start_http_server(port, addr=host, registry=self.registry)
        self._http = server
        return int(server.server_port)

    def stop_http(self) -> None:
        """Stop the metrics HTTP server, if started."""
        if self._http is not None:
            http, self._http = self._http, None
            # shutdown() waits out serve_forever's 0.5 s poll; nothing depends on it, so do not block on it.
            threading.Thread(target=lambda: (http.shutdown(), http.server_close()), daemon=True).start()


class _DriftCollector(Collector):
    """Gauges of every counted version's drift window, computed when Prometheus scrapes (no hot-path cost)."""

    def __init__(self, source: Callable[[], Iterable[tuple[str, str, DriftAssessment, int]]]) -> None:
        self.source = source

    def describe(self) -> list:
        return []  # computed at collect time; nothing to check at registration

    def collect(self) -> Iterator[GaugeMetricFamily]:
        labels = ["model", "version"]
        psi = GaugeMetricFamily("scoring_drift_psi", "PSI of live against training over the drift window, by "
                                "feature (feature=\"segment\": the segment mix).", labels=[*labels, "feature"])
        rows = GaugeMetricFamily("scoring_drift_rows", "Rows scored without error in the drift window.", labels=labels)
        errors = GaugeMetricFamily("scoring_drift_row_errors", "Rows with a row error in the drift window (not "
                                   "counted as drift).", labels=labels)
        confidence = GaugeMetricFamily("scoring_drift_mean_confidence", "Mean confidence in the drift window.",
                                       labels=labels)
        outliers = GaugeMetricFamily("scoring_drift_outlier_rate", "Share of outliers in the drift window.",
                                     labels=labels)
        missing = GaugeMetricFamily("scoring_drift_missing_rate", "Share of rows missing the feature in the drift "
                                    "window.", labels=[*labels, "feature"])
        retrain = GaugeMetricFamily("scoring_drift_retrain_recommended", "1 when the drift verdict is 'retrain'.",
                                    labels=labels)
        for model, version, a, row_errors in self.source():
            for h in (*a.features, a.segments):
                if h.psi == h.psi:  # NaN before any row: no sample rather than a NaN one
                    psi.add_metric([model, version, h.name], h.psi)
            for h in a.features:
                missing.add_metric([model, version, h.name], h.live_missing_rate)
            rows.add_metric([model, version], a.rows)
            errors.add_metric([model, version], row_errors)
            if a.rows:
                confidence.add_metric([model, version], a.mean_confidence)
                outliers.add_metric([model, version], a.outlier_rate)
            retrain.add_metric([model, version], 1.0 if a.verdict == RETRAIN else 0.0)
        yield from (psi, rows, errors, confidence, outliers, missing, retrain)

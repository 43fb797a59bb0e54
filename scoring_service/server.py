"""Assemble and run one scoring server process: gRPC (ScoringService, health, reflection), the store
poller and the metrics endpoint."""
from __future__ import annotations

import gc
import logging
import threading
from concurrent import futures
from typing import Sequence

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from scoring_service import wire
from scoring_service.drift_monitor import DriftMonitor
from scoring_service.metrics import ServiceMetrics
from scoring_service.registry import Registry
from scoring_service.servicer import ScoringService, generic_handler
from scoring_service.settings import Settings
from segmentation.v1 import scoring_pb2
from segmentation_core.drift import DriftThresholds
from segmentation_core.grpc_server import BearerTokenInterceptor, bind, write_port_file
from segmentation_core.rate_limit import RateLimitInterceptor
from segmentation_core.signing import load_verify_key
from segmentation_core.store import ModelStore

log = logging.getLogger(__name__)
SERVING = health_pb2.HealthCheckResponse.SERVING
NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING


class ScoringServer:
    """One server process's gRPC server, registry and metrics; :meth:`start`, then :meth:`stop`."""

    def __init__(self, settings: Settings, *, freeze_gc: bool = False,
                 interceptors: Sequence[grpc.ServerInterceptor] = ()) -> None:
        """``interceptors`` (an embedding program's: tracing, say) run after the token check and rate limit."""
        self.settings = settings
        self._freeze_gc = freeze_gc
        self.metrics = ServiceMetrics()
        self.health = health.HealthServicer(experimental_non_blocking=True,
                                            experimental_thread_pool=futures.ThreadPoolExecutor(1))
        self.verify_key = load_verify_key(settings.verify_key) if settings.verify_key else None
        self.metrics.require_signatures(self.verify_key.key_id if self.verify_key else None)
        self.registry = Registry(ModelStore(settings.store), settings.model, poll_interval=settings.poll_interval,
                                 pinned_cache=settings.pinned_cache, metrics=self.metrics,
                                 on_served=self._on_served, verify_key=self.verify_key)
        self.port = 0
        self.metrics_port = -1
        self._stopped = threading.Event()
        token = settings.token()
        interceptors = [*([BearerTokenInterceptor(token)] if token else []),
                        *([RateLimitInterceptor(settings.rate_limit, settings.burst)] if settings.rate_limit else []),
                        *interceptors]
        reuse_port = settings.workers > 1 or settings.worker_index > 0
        options = [
            ("grpc.max_send_message_length", settings.max_message_bytes),
            ("grpc.max_receive_message_length", settings.max_message_bytes),
            # gRPC turns SO_REUSEPORT on by default on Linux, which lets a second server silently share a
            # port; only the --workers processes should.
            ("grpc.so_reuseport", 1 if reuse_port else 0),
        ]
        if settings.max_connection_age > 0:
            # A GOAWAY after this age: the client reconnects and re-resolves its target (new replicas join
            # the round-robin); calls and streams in flight keep their connection until they end.
            options.append(("grpc.max_connection_age_ms", int(settings.max_connection_age * 1000)))
        self.server = grpc.server(futures.ThreadPoolExecutor(settings.threads, thread_name_prefix="grpc"),
                                  interceptors=interceptors, options=options)
        self.drift = DriftMonitor(settings.drift_window_rows, settings.drift_window_minutes * 60.0,
                                  DriftThresholds(min_rows=settings.drift_min_rows), settings.drift_sample_rate)
        self.metrics.watch_drift(self.drift.assessments)
        self.server.add_generic_rpc_handlers((generic_handler(ScoringService(
            self.registry, self.metrics, self.drift, max_streams=settings.stream_limit,
            stream_idle_seconds=settings.stream_idle_seconds)),))
        health_pb2_grpc.add_HealthServicer_to_server(self.health, self.server)
        reflection.enable_server_reflection((
            scoring_pb2.DESCRIPTOR.services_by_name["ScoringService"].full_name,
            health_pb2.DESCRIPTOR.services_by_name["Health"].full_name,
            reflection.SERVICE_NAME), self.server)
        self._tls = bool(settings.tls_cert)
        self._auth = bool(token)

    def _on_served(self, model: str, version: str) -> None:
        if self._freeze_gc and not gc.get_freeze_count():
            freeze_startup_objects()  # before SERVING: its one full collection stalls no caller
        self.health.set(model, SERVING)
        if model == self.settings.model:
            self.health.set("", SERVING)

    def start(self) -> "ScoringServer":
        """Bind, start serving (NOT_SERVING until the default model is loaded) and start polling the store."""
        s = self.settings
        for name in ("", s.model):
            self.health.set(name, NOT_SERVING)
        self.port = bind(self.server, s.host, s.port, s.tls_cert, s.tls_key)
        self.server.start()
        if s.metrics_port >= 0:
            wanted = s.metrics_port + s.worker_index if s.metrics_port else 0
            self.metrics_port = self.metrics.start_http(s.host, wanted)
        self.registry.start()
        signatures = f"required, key {self.verify_key.key_id}" if self.verify_key else "not required"
        metrics = f"metrics on port {self.metrics_port}" if self.metrics_port >= 0 else "metrics off"
        log.info("scoring service listening on %s:%d (tls %s, token %s, signatures %s), %s, store %s",
                 s.host, self.port, "on" if self._tls else "off", "on" if self._auth else "off", signatures,
                 metrics, s.store, extra={"port": self.port, "metrics_port": self.metrics_port,
                                                    "worker": s.worker_index, "service": wire.SERVICE,
                                                    "signatures": signatures})
        if s.port_file:
            write_port_file(s.port_file, self.port)
        return self

    def stop(self, grace: float | None = None) -> None:
        """Stop taking calls, let calls in flight finish for ``grace`` seconds, then stop everything."""
        if self._stopped.is_set():
            return
        self._stopped.set()
        grace = self.settings.grace if grace is None else grace
        log.info("shutting down: draining calls in flight for up to %.1f s", grace)
        self.health.enter_graceful_shutdown()
        self.registry.stop()  # ends WatchModel streams, which would otherwise hold the drain for `grace`
        self.server.stop(grace).wait()
        self.metrics.stop_http()
        log.info("scoring service stopped")

    def wait(self) -> None:
        """Block until the server has stopped."""
        self.server.wait_for_termination()


def freeze_startup_objects() -> None:
    """Collect once, then hide every object alive now (modules, the first model) from the cyclic collector.

    A full collection walks every tracked object holding the GIL: in a server process ~40,000 of them,
    15-25 ms during which no call is answered; frozen, later full collections walk only what came after
    (0.2 ms after 20 model swaps). Frozen objects are still freed by reference counting as usual.
    """
    gc.collect()
    gc.freeze()


def serve(settings: Settings, *, freeze_gc: bool = False) -> ScoringServer:
    """Build and start a server; the caller stops it with ``.stop()``. ``freeze_gc`` (for a process of its
    own, as ``python -m scoring_service``): :func:`freeze_startup_objects` once the first model is served."""
    return ScoringServer(settings, freeze_gc=freeze_gc).start()

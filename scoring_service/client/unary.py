"""The scoring service's client: one channel, the unary calls (Predict, GetModelInfo, GetSegmentStats,
ListModels, health), WatchModel, and the door to PredictStream (``predict_frame``, ``stream``: see stream.py).

Every call has a deadline; UNAVAILABLE is retried by gRPC itself (``retryPolicy`` in the channel's service
config); every failure reaches the caller as one :class:`ScoringError` carrying the status code and the
server's message. Every answer is one of the plain dataclasses of ``types.py``.
"""
from __future__ import annotations

import json
import logging
import math
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Callable, Iterator, Mapping

import grpc
import numpy as np
import pandas as pd
from grpc_health.v1 import health_pb2, health_pb2_grpc

from scoring_service.client import convert
from scoring_service.client.combine import by_version
from scoring_service.client.frames import FrameJob, Schema
from scoring_service.client.stream import DEFAULT_IN_FLIGHT, Channel, FrameStream
from scoring_service.client.targets import channel_target, list_authority, replica_targets
from scoring_service.client.types import (DEFAULT_TARGET, DriftReport, ModelEntry, ModelInfo, Prediction,
                                          MAX_MESSAGE_BYTES, ReplicaDrift, ScoringError, SegmentStats,
                                          retry_after)
from segmentation.v1 import scoring_pb2, scoring_pb2_grpc
from segmentation_core.errors import number_error

log = logging.getLogger("scoring_service.client")

SERVICE = "segmentation.v1.ScoringService"


def _service_config(retries: int) -> str:
    """Channel service config: calls spread round-robin over every address of the target (every replica);
    UNAVAILABLE retried with exponential backoff on every RPC we call (a retry picks the next replica)."""
    balancing: list[dict[str, dict]] = [{"round_robin": {}}]
    if retries < 1:
        return json.dumps({"loadBalancingConfig": balancing, "methodConfig": []})
    policy = {
        # gRPC caps attempts at 5. A stream is retried only until its first answer arrives (then it
        # is committed); a unary call until its deadline.
        "maxAttempts": min(retries + 1, 5),
        "initialBackoff": "0.1s",
        "maxBackoff": "2s",
        "backoffMultiplier": 2,
        "retryableStatusCodes": ["UNAVAILABLE"],
    }
    return json.dumps({"loadBalancingConfig": balancing, "methodConfig": [
        {"name": [{"service": SERVICE}, {"service": "grpc.health.v1.Health"}], "retryPolicy": policy},
    ]})


class ScoringClient:
    """A client of the scoring service; one channel, usable as a context manager."""

    def __init__(self, target: str = DEFAULT_TARGET, *, token: str | None = None, tls_ca: Path | None = None,
                 timeout: float = 5.0, model: str | None = None, retries: int = 3, authority: str | None = None) -> None:
        """``authority``: the name the channel presents (TLS verifies it), when not the target's own."""
        if timeout <= 0:
            raise ValueError(f"timeout={timeout} should be > 0 seconds")
        self.target = target
        self._token, self._tls_ca = token, tls_ca
        self._replicas: dict[str, ScoringClient] = {}  # one client per replica address (drift_reports)
        address = channel_target(target)
        self.timeout = timeout
        self.retries = max(0, retries)
        self.model = model or ""
        options = [
            ("grpc.service_config", _service_config(retries)),
            ("grpc.enable_retries", 1),
            ("grpc.max_send_message_length", MAX_MESSAGE_BYTES),
            ("grpc.max_receive_message_length", MAX_MESSAGE_BYTES),
            # Pings find a dead connection under a long watch. Not more often: a gRPC server by default
            # refuses pings closer than 5 minutes on a call sending nothing (GOAWAY "too_many_pings").
            ("grpc.keepalive_time_ms", 360_000),
            # After an outage, calls fail fast until the channel's next reconnect attempt; gRPC's default
            # backoff grows to 120 s, so a long-lived client (the dashboard) would see a restarted server
            # minutes late. 10 s bounds that; an attempt every 10 s costs a dead server nothing.
            ("grpc.max_reconnect_backoff_ms", 10_000),
        ]
        authority = authority or list_authority(target)
        if authority is not None:
            options.append(("grpc.default_authority", authority))
        if tls_ca is not None:
            credentials = grpc.ssl_channel_credentials(root_certificates=Path(tls_ca).read_bytes())
            self._channel = grpc.secure_channel(address, credentials, options=options)
        else:
            self._channel = grpc.insecure_channel(address, options=options)
        self._metadata: tuple[tuple[str, str], ...] | None = (
            (("authorization", f"Bearer {token}"),) if token else None)
        #: The channel as the stream engine uses it (also for a stream built on a known schema).
        self.channel = Channel(self._channel, self._metadata, self.timeout, self.retries)
        self._stub = scoring_pb2_grpc.ScoringServiceStub(self._channel)
        self._health = health_pb2_grpc.HealthStub(self._channel)
        self._schemas: dict[tuple[str, str], Schema] = {}
        self._lock = threading.Lock()

    # ---- lifecycle ---------------------------------------------------------------------------------
    def close(self) -> None:
        """Close the channel (and those to each replica)."""
        for replica in list(self._replicas.values()):
            replica.close()
        self._channel.close()

    def __enter__(self) -> "ScoringClient":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"ScoringClient({self.target!r}, model={self.model!r})"

    # ---- unary calls -------------------------------------------------------------------------------
    def _selector(self, model: str | None, version: str | None) -> scoring_pb2.ModelSelector:
        return scoring_pb2.ModelSelector(model=model or self.model, version=version or "")

    def _call(self, method: Callable[..., Any], request: Any, name: str, **kwargs: Any) -> Any:
        """One unary call; a RESOURCE_EXHAUSTED with the server's ``retry-after-ms`` hint (its rate limit) is
        waited out and retried, up to ``retries`` times within the call's ``timeout``."""
        deadline = time.monotonic() + self.timeout
        attempt = 0
        while True:
            try:
                return method(request, timeout=max(0.001, deadline - time.monotonic()), metadata=self._metadata,
                              **kwargs)
            except grpc.RpcError as exc:
                wait = retry_after(exc)
                if wait is None or attempt >= self.retries or time.monotonic() + wait >= deadline:
                    raise ScoringError.from_rpc(exc, name) from None
                attempt += 1
                log.debug("%s: rate limited; retrying in %.3f s", name, wait)
                time.sleep(wait)

    def model_info(self, model: str | None = None, version: str | None = None, *,
                   include_profile: bool = False) -> ModelInfo:
        """The model's schema, segments and metrics (the served version unless ``version`` pins one); with
        ``include_profile``, also the training data's profile."""
        request = scoring_pb2.GetModelInfoRequest(selector=self._selector(model, version),
                                                  include_profile=include_profile)
        info = convert.model_info(self._call(self._stub.GetModelInfo, request, "GetModelInfo"))
        self._remember(model, version, info)
        return info

    def segment_stats(self, model: str | None = None, version: str | None = None,
                      max_sample: int = 0) -> SegmentStats:
        """Per-segment statistics and a labelled plot sample (``max_sample`` 0: all the model stores)."""
        request = scoring_pb2.GetSegmentStatsRequest(selector=self._selector(model, version), max_sample=max_sample)
        return convert.segment_stats(self._call(self._stub.GetSegmentStats, request, "GetSegmentStats"))

    def drift_report(self, model: str | None = None, version: str | None = None, *, window_rows: int = 0,
                     window_seconds: float = 0.0) -> DriftReport:
        """How the recent traffic of the served (or pinned) version compares with its training data."""
        request = scoring_pb2.GetDriftReportRequest(selector=self._selector(model, version), window_rows=window_rows,
                                                    window_seconds=window_seconds)
        return convert.drift_report(self._call(self._stub.GetDriftReport, request, "GetDriftReport"))

    def drift_reports(self, model: str | None = None, version: str | None = None, *, window_rows: int = 0,
                      window_seconds: float = 0.0) -> ReplicaDrift:
        """The drift report of every replica the target names, asked one by one (each counts only the rows it
        scored) and combined per version: what one server would report for all their traffic. A replica
        that does not answer is listed in ``failed``; ScoringError only when none answers."""
        try:
            replicas = replica_targets(self.target)
        except OSError as exc:
            raise ScoringError(grpc.StatusCode.UNAVAILABLE, f"cannot resolve the replicas of {self.target}: {exc}",
                               method="GetDriftReport") from None
        clients = self._replica_clients(replicas)
        answers, failed, errors = [], [], []
        with ThreadPoolExecutor(max_workers=min(8, len(clients)), thread_name_prefix="drift-replica") as pool:
            asked = [(name, pool.submit(client.drift_report, model, version, window_rows=window_rows,
                                        window_seconds=window_seconds)) for name, client in clients]
            for name, future in asked:
                try:
                    answers.append((name, future.result()))
                except ScoringError as exc:
                    failed.append((name, f"{exc.code.name}: {exc.message}"))
                    errors.append(exc)
        if not answers:
            raise ScoringError(errors[0].code, f"no replica answered ({'; '.join(f'{n}: {why}' for n, why in failed)})",
                               method="GetDriftReport")
        try:
            versions = by_version(answers)
        except ValueError as exc:
            raise ScoringError(grpc.StatusCode.FAILED_PRECONDITION, str(exc), method="GetDriftReport") from None
        return ReplicaDrift(tuple(versions), tuple(name for name, _client in clients), tuple(failed))

    def _replica_clients(self, replicas: list[tuple[str, str | None]]) -> list[tuple[str, "ScoringClient"]]:
        """A client per replica address (kept while the target names it; this one when there is one replica)."""
        if len(replicas) == 1:
            return [(self.target, self)]
        with self._lock:
            for gone in set(self._replicas) - {address for address, _authority in replicas}:
                self._replicas.pop(gone).close()
            for address, authority in replicas:
                if address not in self._replicas:
                    self._replicas[address] = ScoringClient(address, token=self._token, tls_ca=self._tls_ca,
                                                            timeout=self.timeout, model=self.model or None, retries=0,
                                                            authority=authority or list_authority(self.target))
            return [(address, self._replicas[address]) for address, _authority in replicas]

    def list_models(self) -> list[ModelEntry]:
        """The models in the store, their versions and the served one."""
        return convert.model_entries(self._call(self._stub.ListModels, scoring_pb2.ListModelsRequest(), "ListModels"))

    def health(self, service: str = "") -> str:
        """Health status name ("SERVING", "NOT_SERVING", ...) of the server or of one model name."""
        response = self._call(self._health.Check, health_pb2.HealthCheckRequest(service=service), "Health.Check")
        return health_pb2.HealthCheckResponse.ServingStatus.Name(response.status)

    def watch(self, model: str | None = None, *, reconnect: bool = True) -> Iterator[ModelInfo]:
        """Yield the served ModelInfo now and on every change; reconnects (with backoff) when the server goes away."""
        request = scoring_pb2.WatchModelRequest(selector=self._selector(model, None))
        backoff = 0.1
        last_version: tuple[str, str] | None = None
        while True:
            # No deadline: a watch lasts as long as its consumer wants. waitForReady makes it wait for a
            # restarting server instead of failing at once.
            call = self._stub.WatchModel(request, metadata=self._metadata, wait_for_ready=True)
            try:
                for message in call:
                    info = convert.model_info(message)
                    backoff = 0.1
                    self._remember(model, None, info)
                    key = (info.model, info.version)
                    if key != last_version:  # a reconnect re-sends the current info; report changes only
                        last_version = key
                        yield info
                return
            except grpc.RpcError as exc:
                if not reconnect or exc.code() != grpc.StatusCode.UNAVAILABLE:
                    raise ScoringError.from_rpc(exc, "WatchModel") from None
                log.info("watch of %s interrupted (%s); reconnecting in %.1fs", model or "default model",
                         exc.details(), backoff)
                time.sleep(backoff)
                backoff = min(backoff * 2, 5.0)
            finally:
                call.cancel()

    # ---- schema cache ------------------------------------------------------------------------------
    def _remember(self, model: str | None, version: str | None, info: ModelInfo) -> Schema:
        schema = Schema.from_info(info)
        with self._lock:
            self._schemas[(model or self.model, info.version)] = schema
            if not version:  # the latest served version answers unpinned requests
                self._schemas[(model or self.model, "")] = schema
        return schema

    def _schema(self, model: str | None, version: str | None) -> Schema:
        schema = self._schemas.get((model or self.model, version or ""))
        if schema is None:
            self.model_info(model, version)
            schema = self._schemas[(model or self.model, version or "")]
        return schema

    # ---- Predict -----------------------------------------------------------------------------------
    def predict(self, customer: Mapping[str, Any], *, id: str = "", model: str | None = None,
                version: str | None = None) -> Prediction:
        """Score one customer given as {feature: value}; None or NaN means missing (imputed)."""
        schema = self._schema(model, version)
        request = scoring_pb2.PredictRequest(selector=self._selector(model, version))
        request.customer.id = id
        numbers = request.customer.numbers
        categories = request.customer.categories
        numeric = schema.numeric
        for name, value in customer.items():
            if value is None:
                continue
            if name in numeric or (name not in schema.categorical and _is_number(value)):
                try:
                    numbers[name] = float(value)
                except (TypeError, ValueError):
                    raise ScoringError(grpc.StatusCode.INVALID_ARGUMENT,
                                       number_error(name, value), method="Predict") from None
            else:
                categories[name] = _category_text(value)
        response = self._call(self._stub.Predict, request, "Predict")
        if not version and response.version != schema.version:
            # The server swapped in a new version: refresh the schema for the next call.
            log.debug("model %s now serves %s (was %s)", response.model, response.version, schema.version)
            try:
                self.model_info(model, None)
            except ScoringError as exc:
                log.warning("could not refresh the model schema: %s", exc)
        return convert.prediction(response)

    # ---- PredictStream -----------------------------------------------------------------------------
    def predict_frame(self, frame: pd.DataFrame, *, batch_rows: int = 10_000,
                      progress: Callable[[int, int], None] | None = None, model: str | None = None,
                      version: str | None = None) -> pd.DataFrame:
        """Score every row of ``frame`` over one PredictStream; returns the result columns, indexed like ``frame``.

        Feature columns absent from ``frame`` are imputed by the server on every row; they are listed in
        the result's ``attrs["missing_features"]`` and logged. ``segment_name`` and ``error`` are
        categoricals. A row that cannot be scored has ``segment_id`` -1, no segment name, NaN distance
        and confidence, and its reason in ``error`` (empty for scored rows).
        """
        total = len(frame)
        done = 0
        parts = []
        missing: list[str] = []

        def on_batch(rows: int) -> None:
            nonlocal done
            done += rows
            if progress is not None:
                progress(done, total)

        scorer = self.stream(model=model, version=version, batch_rows=batch_rows, on_batch=on_batch)
        missing = scorer.missing_features(frame.columns)
        if missing:
            log.warning("feature column(s) %s are not in the frame: the server imputes them on every row",
                        ", ".join(map(repr, missing)))
        if total == 0:
            result = FrameJob(frame.index, {}, {}, {}, 0).result(scorer.schema.segment_names)
        else:
            parts = [result for _frame, result in scorer.score([frame])]
            result = parts[0] if len(parts) == 1 else pd.concat(parts)
        result.attrs["missing_features"] = missing
        result.attrs["model"] = scorer.schema.model
        result.attrs["version"] = scorer.schema.version
        return result

    def stream(self, *, model: str | None = None, version: str | None = None, batch_rows: int = 10_000,
               in_flight: int = DEFAULT_IN_FLIGHT, on_batch: Callable[[int], None] | None = None) -> FrameStream:
        """A PredictStream pinned to one model version, for scoring a sequence of frames (e.g. file chunks)."""
        if batch_rows < 1:
            raise ValueError(f"batch_rows={batch_rows} should be >= 1")
        # Pin the stream to the version whose schema picks the columns, so a swap in between cannot
        # make the columns and the model disagree.
        info = self.model_info(model, version)
        schema = self._schema(model, info.version)
        return FrameStream(self.channel, schema, batch_rows, max(1, in_flight), on_batch)


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, (bool, np.bool_))


def _category_text(value: Any) -> str:
    """A category value as text, as the training data's labels were made (bools as TRUE/FALSE)."""
    if isinstance(value, (bool, np.bool_)):
        return "TRUE" if value else "FALSE"
    if isinstance(value, float) and math.isnan(value):
        return ""
    return str(value)

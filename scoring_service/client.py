"""The Python client of the scoring service (its command line is in ``client_cli.py``).

```python
with ScoringClient("127.0.0.1:50051") as client:
    p = client.predict({"Age": 31, "Annual Income (k$)": 70, "Gender": "Female"})
    scored = client.predict_frame(frame, progress=lambda done, total: ...)
```
``python -m scoring_service.client score IN.csv -o OUT.csv`` scores a file over one ``PredictStream``.

Every call has a deadline; UNAVAILABLE is retried by gRPC itself (``retryPolicy`` in the channel's service
config); every failure reaches the caller as one :class:`ScoringError` carrying the status code and the
server's message.
"""
from __future__ import annotations

import collections
import json
import logging
import math
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator, Mapping, Sequence

import grpc
import numpy as np
import pandas as pd
from grpc_health.v1 import health_pb2, health_pb2_grpc

from scoring_service import wire
from segmentation_core.tables import match_columns
from segmentation.v1 import scoring_pb2, scoring_pb2_grpc

log = logging.getLogger(__name__)

__all__ = ["Prediction", "ScoringClient", "ScoringError", "RESULT_COLUMNS", "main"]

SERVICE = "segmentation.v1.ScoringService"
RESULT_COLUMNS = ("segment_id", "segment_name", "distance", "confidence", "outlier", "error")
DEFAULT_TARGET = "127.0.0.1:50051"
# Batches kept in flight on one stream: enough to hide the round trip and keep both ends busy, few
# enough that client memory stays bounded (each 10,000 x 7 batch is ~0.6 MB on the wire).
DEFAULT_IN_FLIGHT = 8
MAX_MESSAGE_BYTES = 64 << 20


class ScoringError(Exception):
    """A failed call: the gRPC status code and the server's message (which names the field and row)."""

    def __init__(self, code: grpc.StatusCode, message: str, *, method: str = "") -> None:
        super().__init__(f"{code.name}: {message}" if not method else f"{method}: {code.name}: {message}")
        self.code = code
        self.message = message
        self.method = method

    @classmethod
    def from_rpc(cls, exc: grpc.RpcError, method: str = "") -> "ScoringError":
        """Wrap a grpc.RpcError (which is also a grpc.Call) into a ScoringError."""
        code = exc.code() if hasattr(exc, "code") else grpc.StatusCode.UNKNOWN
        details = exc.details() if hasattr(exc, "details") else str(exc)
        return cls(code or grpc.StatusCode.UNKNOWN, details or "", method=method)


@dataclass(frozen=True)
class Prediction:
    """The segment of one customer, and the model version that answered."""

    segment_id: int
    segment_name: str
    distance: float
    confidence: float
    outlier: bool
    model: str
    version: str


@dataclass(frozen=True)
class _Schema:
    """What the client needs of a model's feature schema: which features are numbers, which categories."""

    model: str
    version: str
    numeric: tuple[str, ...]
    categorical: tuple[str, ...]
    segment_names: tuple[str, ...]

    @classmethod
    def from_info(cls, info: scoring_pb2.ModelInfo) -> "_Schema":
        return cls(info.model, info.version, tuple(f.name for f in info.numeric_features),
                   tuple(f.name for f in info.categorical_features), tuple(s.name for s in info.segments))


def _service_config(retries: int) -> str:
    """Channel service config: retry UNAVAILABLE with exponential backoff on every RPC we call."""
    if retries < 1:
        return json.dumps({"methodConfig": []})
    policy = {
        # gRPC caps attempts at 5. A stream is retried only until its first answer arrives (then it
        # is committed); a unary call until its deadline.
        "maxAttempts": min(retries + 1, 5),
        "initialBackoff": "0.1s",
        "maxBackoff": "2s",
        "backoffMultiplier": 2,
        "retryableStatusCodes": ["UNAVAILABLE"],
    }
    return json.dumps({"methodConfig": [
        {"name": [{"service": SERVICE}, {"service": "grpc.health.v1.Health"}], "retryPolicy": policy},
    ]})


# ---------------------------------------------------------------------------------------------------
# Frames -> columns

@dataclass(eq=False)
class _Job:
    """One input frame on its way through the stream: its columns going out, its results coming back."""

    index: pd.Index
    numeric: dict[str, np.ndarray]
    categorical: dict[str, np.ndarray]
    local_errors: dict[int, str]
    remaining: int
    offset: int = 0  # rows of the stream before this frame: batch ids are stream row numbers
    segment: np.ndarray = field(init=False)
    distance: np.ndarray = field(init=False)
    confidence: np.ndarray = field(init=False)
    outlier: np.ndarray = field(init=False)
    errors: dict[int, str] = field(init=False)

    def __post_init__(self) -> None:
        n = len(self.index)
        self.segment = np.full(n, -1, dtype=np.int32)
        self.distance = np.full(n, np.nan)
        self.confidence = np.full(n, np.nan)
        self.outlier = np.zeros(n, dtype=bool)
        self.errors = {}

    def result(self, names: Sequence[str]) -> pd.DataFrame:
        """The result columns, indexed like the input frame."""
        errors = {**self.errors, **self.local_errors}  # a client-side finding wins: it is the root cause
        if self.local_errors:
            rows = np.fromiter(self.local_errors, dtype=np.int64)
            self.segment[rows] = -1
            self.distance[rows] = np.nan
            self.confidence[rows] = np.nan
            self.outlier[rows] = False
        if self.segment.size and int(self.segment.max()) >= len(names):
            raise ScoringError(grpc.StatusCode.INTERNAL, f"segment id {int(self.segment.max())} has no name "
                               f"(the model has {len(names)} segments)")
        # Categoricals built from codes: no per-row string objects, whatever the number of rows. A
        # row with an error has code -1 for its name (missing) and its message in ``error``.
        if len(set(names)) == len(names):
            segment_name = pd.Categorical.from_codes(self.segment, categories=list(names), validate=False)
        else:  # categories must be unique; a model with two equal names still gets its names
            segment_name = np.array([*names, None], dtype=object)[self.segment]
        messages = sorted(set(errors.values()))
        codes = np.zeros(len(self.index), dtype=np.int32)
        if errors:
            position = {m: i + 1 for i, m in enumerate(messages)}
            codes[np.fromiter(errors, dtype=np.int64)] = [position[m] for m in errors.values()]
        error = pd.Categorical.from_codes(codes, categories=["", *messages], validate=False)
        # copy=False: the arrays are this job's own and final here; copying them into one 2-D block
        # cost a third of the client's result-building time.
        return pd.DataFrame({
            "segment_id": self.segment, "segment_name": segment_name, "distance": self.distance,
            "confidence": self.confidence, "outlier": self.outlier, "error": error,
        }, index=self.index, copy=False)


def _frame_job(frame: pd.DataFrame, schema: _Schema, batch_rows: int) -> _Job:
    """Extract the schema's columns of a frame (absent features are left out: the server imputes them)."""
    found, _missing = match_columns([*schema.numeric, *schema.categorical], frame.columns)
    numeric: dict[str, np.ndarray] = {}
    local_errors: dict[int, str] = {}
    for name in schema.numeric:
        if name not in found:
            continue
        raw = frame[found[name]]
        if pd.api.types.is_float_dtype(raw.dtype) or pd.api.types.is_integer_dtype(raw.dtype) \
                or pd.api.types.is_bool_dtype(raw.dtype):
            numeric[name] = np.ascontiguousarray(raw.to_numpy(dtype=np.float64, na_value=np.nan))
            continue
        array = np.ascontiguousarray(pd.to_numeric(raw, errors="coerce").to_numpy(dtype=np.float64, na_value=np.nan))
        # A text value that is not a number would otherwise become NaN and be imputed silently.
        bad = np.flatnonzero(np.isnan(array) & raw.notna().to_numpy())
        for row, value in zip(bad.tolist(), raw.iloc[bad].tolist()):
            local_errors.setdefault(row, f"{name}: {value!r} is not a number")
        numeric[name] = array
    categorical: dict[str, np.ndarray] = {}
    for name in schema.categorical:
        if name not in found:
            continue
        col = frame[found[name]]
        if col.dtype == bool:
            text = np.where(col.to_numpy(), "TRUE", "FALSE").astype(object)  # the schema's bool labels
        else:
            text = col.astype(object).where(col.notna(), "").astype(str).to_numpy(dtype=object)
        categorical[name] = text
    n_batches = max(1, math.ceil(len(frame) / batch_rows))
    return _Job(frame.index, numeric, categorical, local_errors, n_batches)


# ---------------------------------------------------------------------------------------------------
# The client

class ScoringClient:
    """A client of the scoring service; one channel, usable as a context manager."""

    def __init__(self, target: str = DEFAULT_TARGET, *, token: str | None = None, tls_ca: Path | None = None,
                 timeout: float = 5.0, model: str | None = None, retries: int = 3) -> None:
        if timeout <= 0:
            raise ValueError(f"timeout={timeout} should be > 0 seconds")
        self.target = target
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
        if tls_ca is not None:
            credentials = grpc.ssl_channel_credentials(root_certificates=Path(tls_ca).read_bytes())
            self._channel = grpc.secure_channel(target, credentials, options=options)
        else:
            self._channel = grpc.insecure_channel(target, options=options)
        self._metadata: tuple[tuple[str, str], ...] | None = (
            (("authorization", f"Bearer {token}"),) if token else None)
        self._stub = scoring_pb2_grpc.ScoringServiceStub(self._channel)
        self._health = health_pb2_grpc.HealthStub(self._channel)
        self._schemas: dict[tuple[str, str], _Schema] = {}
        self._lock = threading.Lock()

    # ---- lifecycle ---------------------------------------------------------------------------------
    def close(self) -> None:
        """Close the channel."""
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
        try:
            return method(request, timeout=self.timeout, metadata=self._metadata, **kwargs)
        except grpc.RpcError as exc:
            raise ScoringError.from_rpc(exc, name) from None

    def model_info(self, model: str | None = None, version: str | None = None) -> scoring_pb2.ModelInfo:
        """The model's schema, segments and metrics (the served version unless ``version`` pins one)."""
        info = self._call(self._stub.GetModelInfo,
                          scoring_pb2.GetModelInfoRequest(selector=self._selector(model, version)), "GetModelInfo")
        self._remember(model, version, info)
        return info

    def segment_stats(self, model: str | None = None, version: str | None = None,
                      max_sample: int = 0) -> scoring_pb2.SegmentStats:
        """Per-segment statistics and a labelled plot sample (``max_sample`` 0: all the model stores)."""
        request = scoring_pb2.GetSegmentStatsRequest(selector=self._selector(model, version), max_sample=max_sample)
        return self._call(self._stub.GetSegmentStats, request, "GetSegmentStats")

    def drift_report(self, model: str | None = None, version: str | None = None, *, window_rows: int = 0,
                     window_seconds: float = 0.0) -> scoring_pb2.DriftReport:
        """How the recent traffic of the served (or pinned) version compares with its training data."""
        request = scoring_pb2.GetDriftReportRequest(selector=self._selector(model, version), window_rows=window_rows,
                                                    window_seconds=window_seconds)
        return self._call(self._stub.GetDriftReport, request, "GetDriftReport")

    def list_models(self) -> list[scoring_pb2.ModelEntry]:
        """The models in the store, their versions and the served one."""
        return list(self._call(self._stub.ListModels, scoring_pb2.ListModelsRequest(), "ListModels").models)

    def health(self, service: str = "") -> str:
        """Health status name ("SERVING", "NOT_SERVING", ...) of the server or of one model name."""
        response = self._call(self._health.Check, health_pb2.HealthCheckRequest(service=service), "Health.Check")
        return health_pb2.HealthCheckResponse.ServingStatus.Name(response.status)

    def watch(self, model: str | None = None, *, reconnect: bool = True) -> Iterator[scoring_pb2.ModelInfo]:
        """Yield the served ModelInfo now and on every change; reconnects (with backoff) when the server goes away."""
        request = scoring_pb2.WatchModelRequest(selector=self._selector(model, None))
        backoff = 0.1
        last_version: tuple[str, str] | None = None
        while True:
            # No deadline: a watch lasts as long as its consumer wants. waitForReady makes it wait for a
            # restarting server instead of failing at once.
            call = self._stub.WatchModel(request, metadata=self._metadata, wait_for_ready=True)
            try:
                for info in call:
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
    def _remember(self, model: str | None, version: str | None, info: scoring_pb2.ModelInfo) -> _Schema:
        schema = _Schema.from_info(info)
        with self._lock:
            self._schemas[(model or self.model, info.version)] = schema
            if not version:  # the latest served version answers unpinned requests
                self._schemas[(model or self.model, "")] = schema
        return schema

    def _schema(self, model: str | None, version: str | None) -> _Schema:
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
                                       f"{name}: {value!r} is not a number", method="Predict") from None
            else:
                categories[name] = _category_text(value)
        response = self._call(self._stub.Predict, request, "Predict")
        p = response.prediction
        if not version and response.version != schema.version:
            # The server swapped in a new version: refresh the schema for the next call.
            log.debug("model %s now serves %s (was %s)", response.model, response.version, schema.version)
            try:
                self.model_info(model, None)
            except ScoringError as exc:
                log.warning("could not refresh the model schema: %s", exc)
        return Prediction(p.segment_id, p.segment_name, p.distance, p.confidence, p.outlier,
                          response.model, response.version)

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
            result = _Job(frame.index, {}, {}, {}, 0).result(scorer.schema.segment_names)
        else:
            parts = [result for _frame, result in scorer.score([frame])]
            result = parts[0] if len(parts) == 1 else pd.concat(parts)
        result.attrs["missing_features"] = missing
        result.attrs["model"] = scorer.schema.model
        result.attrs["version"] = scorer.schema.version
        return result

    def stream(self, *, model: str | None = None, version: str | None = None, batch_rows: int = 10_000,
               in_flight: int = DEFAULT_IN_FLIGHT, on_batch: Callable[[int], None] | None = None) -> "FrameStream":
        """A PredictStream pinned to one model version, for scoring a sequence of frames (e.g. file chunks)."""
        if batch_rows < 1:
            raise ValueError(f"batch_rows={batch_rows} should be >= 1")
        # Pin the stream to the version whose schema picks the columns, so a swap in between cannot
        # make the columns and the model disagree.
        info = self.model_info(model, version)
        schema = self._schema(model, info.version)
        return FrameStream(self, schema, batch_rows, max(1, in_flight), on_batch)


class FrameStream:
    """Scores frames over one pipelined PredictStream: several batches in flight, results in input order."""

    def __init__(self, client: ScoringClient, schema: _Schema, batch_rows: int, in_flight: int,
                 on_batch: Callable[[int], None] | None) -> None:
        self.client = client
        self.schema = schema
        self.batch_rows = batch_rows
        self.in_flight = in_flight
        self.on_batch = on_batch
        self.segment_names: tuple[str, ...] = schema.segment_names

    def missing_features(self, columns: Iterable[Any]) -> list[str]:
        """Schema features that ``columns`` lack (they would be imputed on every row)."""
        return match_columns([*self.schema.numeric, *self.schema.categorical], columns)[1]

    def score(self, frames: Iterable[pd.DataFrame]) -> Iterator[tuple[pd.DataFrame, pd.DataFrame]]:
        """Yield (input frame, result frame) per input frame, in order, all answered by one model version.

        If the connection drops (UNAVAILABLE) after the stream was committed, which gRPC's retry policy
        cannot cover, the batches not yet answered are sent again on a new stream pinned to the same
        version, up to the client's ``retries`` times in a row.
        """
        state = _StreamState(iter(frames), threading.Semaphore(self.in_flight))
        attempt = 0
        while True:
            call = self._open(state)
            try:
                for item in self._answers(state, call):
                    attempt = 0
                    if item is not None:
                        yield item
                return
            except _Resumable as exc:
                attempt += 1
                if attempt > self.client.retries:
                    raise exc.error from None
                delay = min(0.2 * 2 ** (attempt - 1), 2.0)
                log.warning("PredictStream interrupted (%s); resending %d batch(es) in %.1fs (attempt %d of %d)",
                            exc.error.message, len(state.pending), delay, attempt, self.client.retries)
                time.sleep(delay)

    def _open(self, state: "_StreamState") -> Any:
        """Start one PredictStream call fed by a request generator of its own (resending what is pending)."""
        closed = threading.Event()
        state.closed = closed
        with state.lock:
            now = time.monotonic()
            resend = [entry[:4] + (now,) for entry in state.pending]
            state.pending.clear()
            state.pending.extend(resend)
        model, version = self.schema.model, self.schema.version

        def encode(job: _Job, start: int, stop: int, first: bool) -> bytes:
            numeric = {k: v[start:stop] for k, v in job.numeric.items()}
            categorical = {k: v[start:stop].tolist() for k, v in job.categorical.items()}
            # The selector counts on a stream's first request only: one stream, one version.
            return wire.encode_batch_request(numeric, categorical, batch_id=str(job.offset + start),
                                             model=model if first else "", version=version if first else "")

        def requests() -> Iterator[bytes]:
            # Runs on gRPC's request thread: reading and encoding overlap with the server's work and
            # with decoding on the caller's thread.
            first = True
            try:
                for _frame, job, start, stop, _sent in resend:
                    if closed.is_set():
                        return
                    yield encode(job, start, stop, first)
                    first = False
                while True:
                    # Reading the next frame (e.g. parsing a file chunk) happens outside ``lock``, which the
                    # caller's thread takes for every answer; ``read_lock`` keeps an old call's generator
                    # and a new one from reading at the same time.
                    with state.read_lock:
                        if closed.is_set():
                            return
                        if state.cursor is None or state.cursor[2] >= len(state.cursor[0]):
                            frame = next(state.frames, None)
                            if frame is None:
                                return
                            if len(frame):
                                job = _frame_job(frame, self.schema, self.batch_rows)
                                job.offset = state.rows_read
                                state.rows_read += len(frame)
                                cursor = [frame, job, 0]
                                with state.lock:
                                    state.cursor = cursor
                            continue
                    while not state.slots.acquire(timeout=0.1):
                        if closed.is_set():
                            return
                    with state.lock:
                        if closed.is_set():  # this call is over; a new one resends what is pending
                            state.slots.release()
                            return
                        frame, job, start = state.cursor
                        stop = min(start + self.batch_rows, len(frame))
                        state.cursor[2] = stop
                        state.pending.append((frame, job, start, stop, time.monotonic()))
                    yield encode(job, start, stop, first)
                    first = False
            except GeneratorExit:  # gRPC closed this call's requests (the call ended): not a failure
                raise
            except BaseException as exc:  # surfaced on the caller's thread; gRPC would only log it
                state.failure.append(exc)

        call = wire.predict_stream_method(self.client._channel)(
            requests(), metadata=self.client._metadata, wait_for_ready=bool(resend) or None)
        threading.Thread(target=self._watchdog, args=(call, state, closed), daemon=True,
                         name="predict-stream-watchdog").start()
        return call

    def _answers(self, state: "_StreamState", call: Any) -> Iterator[tuple[pd.DataFrame, pd.DataFrame] | None]:
        """Absorb the answers of one call; yields a finished frame's results (None after other answers)."""
        try:
            replies = iter(call)
            while True:
                state.waiting = time.monotonic()
                try:
                    reply = next(replies)
                except StopIteration:
                    break
                finally:
                    state.waiting = None  # time spent by our caller (e.g. writing a file) is not a stall
                with state.lock:
                    if not state.pending:
                        raise ScoringError(grpc.StatusCode.INTERNAL, "the server answered a batch that was not sent",
                                           method="PredictStream")
                    frame, job, start, stop, _sent = state.pending.popleft()
                state.slots.release()
                self._absorb(wire.decode_batch_response(reply), job, start, stop)
                if self.on_batch is not None:
                    self.on_batch(stop - start)
                job.remaining -= 1
                yield (frame, job.result(self.segment_names)) if job.remaining == 0 else None
        except grpc.RpcError as exc:
            if state.failure:
                raise state.failure[0]
            if state.stalled:
                raise ScoringError(grpc.StatusCode.DEADLINE_EXCEEDED, f"no answer from the server for "
                                   f"{self.client.timeout:g}s", method="PredictStream") from None
            error = ScoringError.from_rpc(exc, "PredictStream")
            if error.code == grpc.StatusCode.UNAVAILABLE:
                raise _Resumable(error) from None
            raise error from None
        finally:
            with state.lock:
                state.closed.set()
            call.cancel()
        if state.failure:
            raise state.failure[0]
        if state.pending:
            raise ScoringError(grpc.StatusCode.INTERNAL, f"the stream ended with {len(state.pending)} batch(es) "
                               f"unanswered", method="PredictStream")

    def _absorb(self, result: wire.BatchResult, job: _Job, start: int, stop: int) -> None:
        if result.segment_names:
            self.segment_names = tuple(result.segment_names)
        if result.batch_error:
            # The contract answers a refused batch with no results; every row still gets one row out.
            log.warning("batch %s refused: %s", result.batch_id, result.batch_error)
            for row in range(start, stop):
                job.errors[row] = result.batch_error
            return
        if result.segment_id.size != stop - start:
            raise ScoringError(grpc.StatusCode.INTERNAL, f"batch {result.batch_id}: {result.segment_id.size} "
                               f"results for {stop - start} rows", method="PredictStream")
        job.segment[start:stop] = result.segment_id
        job.distance[start:stop] = result.distance
        job.confidence[start:stop] = result.confidence
        job.outlier[start:stop] = result.outlier
        for row, message in result.row_errors.items():
            job.errors[start + row] = message

    def _watchdog(self, call: Any, state: "_StreamState", closed: threading.Event) -> None:
        # A stream has no overall deadline (a file takes as long as it takes); instead, while the
        # caller waits, the oldest batch in flight must be answered within the client's timeout.
        while not closed.wait(0.25):
            since = state.waiting
            try:
                oldest = state.pending[0][4]
            except IndexError:
                continue
            if since is not None and time.monotonic() - max(since, oldest) > self.client.timeout:
                state.stalled = True
                call.cancel()
                return


class _Resumable(Exception):
    """A stream lost to UNAVAILABLE: the unanswered batches can be sent again on a new stream."""

    def __init__(self, error: ScoringError) -> None:
        super().__init__(str(error))
        self.error = error


@dataclass(eq=False)
class _StreamState:
    """What survives from one PredictStream call to the next when a broken stream is resumed."""

    frames: Iterator[pd.DataFrame]
    slots: threading.Semaphore  # bounds the batches in flight
    # (input frame, its job, first row, end row, time sent) of each batch awaiting its answer, in order
    pending: collections.deque = field(default_factory=collections.deque)
    cursor: list | None = None  # [frame, job, next row to send] of the frame being sent
    rows_read: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)  # guards pending and cursor
    read_lock: threading.Lock = field(default_factory=threading.Lock)  # one reader of ``frames`` at a time
    closed: threading.Event = field(default_factory=threading.Event)  # set when the current call is over
    failure: list = field(default_factory=list)  # an exception raised while reading or encoding
    waiting: float | None = None  # since when the caller's thread waits for an answer
    stalled: bool = False


# ---------------------------------------------------------------------------------------------------
# Value helpers

def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, (bool, np.bool_))


def _category_text(value: Any) -> str:
    """A category value as text, as the training data's labels were made (bools as TRUE/FALSE)."""
    if isinstance(value, (bool, np.bool_)):
        return "TRUE" if value else "FALSE"
    if isinstance(value, float) and math.isnan(value):
        return ""
    return str(value)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``python -m scoring_service.client``."""
    from scoring_service.client_cli import run

    return run(argv)


if __name__ == "__main__":
    raise SystemExit(main())

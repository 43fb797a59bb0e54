"""The ScoringService RPCs: convert the request, call the core (registry, schema, model), convert back.

Errors are raised as exceptions of ``segmentation_core.errors`` / ``scoring_service.errors`` and turned into
gRPC status codes in one place (:func:`scoring_service.errors.abort`), by the ``_observed`` decorators
that also time every call for the metrics.

``PredictStream`` is registered with pass-through (de)serializers: it receives and returns wire bytes that
``scoring_service.wire`` decodes and encodes straight from and to numpy arrays.

Flow control of ``PredictStream``: the handler is a generator run by gRPC's synchronous server, which
hands each yielded response to the transport and blocks until the transport has room (HTTP/2
flow-control window). A helper thread per stream reads and scores the requests ahead of the sends, at most
PIPELINE_DEPTH (2) answers ahead; when they wait unsent, it stops reading. A client that sends fast but
reads slowly thus stops the server from reading its requests, and its own sends block in turn: per stream
the server holds at most two answers, the request being scored and the response being sent, beyond what
the HTTP/2 windows buffer. Message size is bounded by ``--max-message-mb``.
"""
from __future__ import annotations

import contextlib
import functools
import logging
import threading
import time
from queue import Empty, Full, Queue
from typing import Callable, Iterable, Iterator

import grpc
import numpy as np

from scoring_service import customer_value
from scoring_service import model_info as info_conv
from scoring_service import wire
from scoring_service.drift_monitor import DriftMonitor
from scoring_service.errors import InvalidRequest, ResourceExhausted, StreamIdle, abort, status_code
from scoring_service.metrics import ServiceMetrics
from scoring_service.registry import LoadedVersion, Registry, check_selector
from segmentation.v1 import scoring_pb2 as pb
from segmentation_core.errors import InputError, NotFoundError, quoted
from segmentation_core.features import FeatureSchema
from segmentation_core.grpc_server import MalformedRequest, tolerant_deserializer

log = logging.getLogger(__name__)
_OK = grpc.StatusCode.OK
WATCH_TICK = 1.0  # seconds between checks that a WatchModel caller is still there


def _finish(metrics: ServiceMetrics, method: str, context: grpc.ServicerContext, exc: BaseException,
            start: float) -> None:
    """Record a failed call and end it with the error's status (the one place errors become statuses)."""
    code = status_code(exc)
    metrics.observe_call(method, code, time.perf_counter() - start)
    if code is grpc.StatusCode.INTERNAL:
        log.exception("%s failed", method, extra={"method": method})
    abort(context, exc)


def _observed_unary(method: str) -> Callable:
    """Time a unary handler and map its errors to status codes."""
    def decorate(fn: Callable) -> Callable:
        @functools.wraps(fn)
        def wrapper(self: "ScoringService", request: object, context: grpc.ServicerContext) -> object:
            start = time.perf_counter()
            try:
                if isinstance(request, MalformedRequest):
                    raise InvalidRequest(request.message, field="request")
                response = fn(self, request, context)
            except Exception as exc:  # noqa: BLE001 - every error gets a status code, unexpected ones INTERNAL
                _finish(self.metrics, method, context, exc, start)
            self.metrics.observe_call(method, _OK, time.perf_counter() - start)
            return response
        return wrapper
    return decorate


class LongCallSlots:
    """A cap on the long-lived calls (PredictStream, WatchModel) open at once: each holds a handler thread, so
    the cap, below the thread count, keeps threads free for Predict and health checks whatever the streams.
    A call beyond is refused with the rate limiter's retry hint (``retry-after-ms``: RETRY_MS)."""

    RETRY_MS = 1000  # when a slot frees is unknown (a stream ends when its caller ends it): ask for a second

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.open = 0
        self._lock = threading.Lock()

    @contextlib.contextmanager
    def hold(self, method: str) -> Iterator[None]:
        """Hold one slot for the block; raises ResourceExhausted when all are taken."""
        with self._lock:
            if self.open >= self.limit:
                raise ResourceExhausted(f"{method}: {self.limit} long-lived calls (PredictStream, WatchModel) are "
                                        f"open, the most this server takes (--max-streams); retry in {self.RETRY_MS} ms",
                                        retry_after_ms=self.RETRY_MS)
            self.open += 1
        try:
            yield
        finally:
            with self._lock:
                self.open -= 1


def _observed_stream(method: str) -> Callable:
    """Map the errors of a response-streaming handler to status codes and count the call; each call holds
    one of the service's long-call slots while it runs."""
    def decorate(fn: Callable) -> Callable:
        @functools.wraps(fn)
        def wrapper(self: "ScoringService", request: object, context: grpc.ServicerContext) -> Iterator:
            start = time.perf_counter()
            try:
                if isinstance(request, MalformedRequest):
                    raise InvalidRequest(request.message, field="request")
                with self.slots.hold(method):
                    yield from fn(self, request, context)
            except Exception as exc:  # noqa: BLE001
                _finish(self.metrics, method, context, exc, start)
            self.metrics.observe_call(method, _OK, time.perf_counter() - start)
        return wrapper
    return decorate


class ScoringService:
    """Implementation of segmentation.v1.ScoringService over a :class:`Registry`."""

    def __init__(self, registry: Registry, metrics: ServiceMetrics, drift: DriftMonitor | None = None, *,
                 max_streams: int = 1 << 30, stream_idle_seconds: float = 0.0) -> None:
        """``max_streams``: long-lived calls open at once (beyond: RESOURCE_EXHAUSTED); ``stream_idle_seconds``:
        a PredictStream without a request for this long is ended (0: never)."""
        self.registry = registry
        self.metrics = metrics
        self.drift = drift if drift is not None else DriftMonitor(0, 1.0)
        self.slots = LongCallSlots(max_streams)
        self.stream_idle_seconds = stream_idle_seconds

    # ---- Predict: pure-Python fast path (one row) ----------------------------------------------------
    @_observed_unary("Predict")
    def Predict(self, request: pb.PredictRequest, context: grpc.ServicerContext) -> bytes:
        """Score one customer; returns the PredictResponse's wire bytes."""
        selector = request.selector
        loaded = self.registry.resolve(selector.model, selector.version)
        customer = request.customer
        art = loaded.artefact
        window = self.drift.window(loaded)
        numbers, clv = customer.numbers, None
        if art.clv is not None:
            numbers, clv = customer_value.customer_figures(art.clv, numbers, art.schema._numeric_names)
        imputed: list[str] = []
        try:
            row = art.schema.transform_row(numbers, customer.categories, imputed)
        except InputError:
            if window is not None:
                window.add_errors(1)
            raise
        # partly known: the confidence given what is known (the batch path's math)
        segment, distance, confidence, outlier = art.model.score_row(
            row, art.schema.observed_columns(imputed) if imputed else None)
        self.metrics.observe_rows(loaded.model, segment)
        if window is not None:
            window.add_row(customer.numbers, customer.categories, segment, confidence, distance, outlier)
        # PredictResponse wire bytes, built from the version's constant parts (the serializer passes bytes on)
        return wire.encode_predict_response(loaded.predict_parts, customer.id, segment, distance, confidence,
                                            outlier, clv)

    # ---- PredictStream: wire bytes in and out ------------------------------------------------------
    @_observed_stream("PredictStream")
    def PredictStream(self, requests: Iterable[bytes], context: grpc.ServicerContext) -> Iterator[bytes]:
        """Answer each columnar batch with exactly one response, in order, all from one model version."""
        return _pipelined(requests, context, _StreamAnswers(self).answer, self.stream_idle_seconds)

    # ---- model information -------------------------------------------------------------------------
    @_observed_unary("GetModelInfo")
    def GetModelInfo(self, request: pb.GetModelInfoRequest, context: grpc.ServicerContext) -> pb.ModelInfo:
        """The served (or pinned) version's ModelInfo (with the training data's profile when asked)."""
        loaded = self.registry.resolve(request.selector.model, request.selector.version)
        info = loaded.info_with_profile if request.include_profile else loaded.info
        return info_conv.with_reference(info, loaded.artefact) if request.include_reference else info

    @_observed_unary("GetDriftReport")
    def GetDriftReport(self, request: pb.GetDriftReportRequest, context: grpc.ServicerContext) -> pb.DriftReport:
        """How the version's recent traffic compares with its training data."""
        if request.window_rows < 0 or not request.window_seconds >= 0:
            raise InvalidRequest(f"window_rows={request.window_rows}, window_seconds={request.window_seconds}: "
                                 "should be >= 0 (0 = the whole window)", field="window_rows")
        loaded = self.registry.resolve(request.selector.model, request.selector.version)
        return self.drift.report(loaded, request.window_rows, request.window_seconds)

    @_observed_unary("GetSegmentStats")
    def GetSegmentStats(self, request: pb.GetSegmentStatsRequest, context: grpc.ServicerContext) -> pb.SegmentStats:
        """Segment statistics and the labelled sample."""
        if request.max_sample < 0:
            raise InvalidRequest(f"max_sample: {request.max_sample} should be >= 0", field="max_sample")
        loaded = self.registry.resolve(request.selector.model, request.selector.version)
        return info_conv.segment_stats(loaded.artefact, loaded.model, loaded.sample, request.max_sample)

    @_observed_unary("ListModels")
    def ListModels(self, request: pb.ListModelsRequest, context: grpc.ServicerContext) -> pb.ListModelsResponse:
        """Every model of the store with its versions."""
        return self.registry.list_models()

    @_observed_stream("WatchModel")
    def WatchModel(self, request: pb.WatchModelRequest, context: grpc.ServicerContext) -> Iterator[pb.ModelInfo]:
        """Send the served ModelInfo now (or as soon as one is loaded) and after every swap."""
        check_selector(request.selector.model)
        name = request.selector.model or self.registry.default_model
        if not self.registry.knows(name):
            raise NotFoundError(f"selector.model: unknown model {name!r}")
        last: LoadedVersion | None = None
        while context.is_active() and not self.registry.closed:
            current = self.registry.wait_for_change(name, last, WATCH_TICK)
            if current is not None and current is not last:
                last = current
                yield current.info


class _StreamAnswers:
    """One PredictStream's state: the version it is bound to (by its first batch) and whether the segment
    names have been sent."""

    def __init__(self, service: ScoringService) -> None:
        self.service = service
        self.loaded: LoadedVersion | None = None
        self.names_sent = False

    def answer(self, data: bytes) -> bytes:
        """The response to one request's wire bytes; a malformed or invalid batch gets a batch error."""
        service, metrics = self.service, self.service.metrics
        start = time.perf_counter()
        loaded = self.loaded
        try:
            batch = wire.decode_batch_request(data)
        except wire.BatchFormatError as exc:
            metrics.batch_error(loaded.model if loaded else "")
            return wire.encode_batch_response(batch_id=exc.batch_id, model=loaded.model if loaded else "",
                                              version=loaded.version if loaded else "", row_count=0,
                                              batch_error=str(exc))
        if loaded is None:  # one stream, one version: resolved once, by the first batch's selector
            loaded = self.loaded = service.registry.resolve(batch.model, batch.version)
        code = _OK
        try:
            reply = self._score_batch(loaded, batch, with_names=not self.names_sent)
            self.names_sent = True
        except InputError as exc:
            code = grpc.StatusCode.INVALID_ARGUMENT  # for the per-batch metrics; the stream goes on
            metrics.batch_error(loaded.model)
            reply = wire.encode_batch_response(batch_id=batch.batch_id, model=loaded.model,
                                               version=loaded.version, row_count=_row_count(batch),
                                               batch_error=str(exc))
        metrics.observe_call("PredictStream.batch", code, time.perf_counter() - start)
        return reply

    def _score_batch(self, loaded: LoadedVersion, batch: wire.DecodedBatch, with_names: bool) -> bytes:
        """Score a decoded batch; raises InputError for a batch that cannot be scored (ragged, unknown column)."""
        metrics = self.service.metrics
        schema, model = loaded.artefact.schema, loaded.artefact.model
        clv_model = loaded.artefact.clv
        n = _check_columns(schema, batch, customer_value.INPUT_NAMES if clv_model is not None else frozenset())
        window = self.service.drift.window(loaded)
        codes: dict[str, np.ndarray] | None = {} if window is not None else None
        imputed: dict[str, np.ndarray] = {}
        x, errors = schema.transform_columns(batch.numeric, batch.categorical, n, category_codes=codes,
                                             imputed=imputed)
        scores = model.score(x, schema.partial_rows(imputed, n, errors))
        segment, distance, confidence, outlier = scores.segment, scores.distance, scores.confidence, scores.outlier
        # the CLV figures (when the model has CLV and the batch its inputs); an invalid input is a row error
        clv = customer_value.batch_figures(clv_model, batch.numeric, n, errors, loaded.clv_derivable) \
            if clv_model is not None else None
        if errors:
            bad = np.fromiter(errors, dtype=np.int64, count=len(errors))
            segment_counts = np.bincount(np.delete(segment, bad), minlength=model.k)
        else:
            segment_counts = np.bincount(segment, minlength=model.k)
        metrics.observe_segment_counts(loaded.model, segment_counts, len(errors))
        if window is not None:  # before the error rows' results are overwritten below
            window.add_batch(batch.numeric, codes, segment, confidence, distance, outlier, n, errors,
                             segment_counts=segment_counts)
        if errors:
            segment[bad], distance[bad], confidence[bad], outlier[bad] = -1, np.nan, np.nan, False
        return wire.encode_batch_response(
            batch_id=batch.batch_id, model=loaded.model, version=loaded.version, row_count=n,
            segment_id=segment, distance=distance, confidence=confidence, outlier=outlier,
            row_errors=errors, segment_names=loaded.segment_names if with_names else (), clv=clv)


PIPELINE_DEPTH = 2  # responses computed ahead per stream: bounds memory, overlaps scoring with sending


def _pipelined(requests: Iterable[bytes], context: grpc.ServicerContext,
               answer: Callable[[bytes], bytes], idle_seconds: float = 0.0) -> Iterator[bytes]:
    """Yield ``answer(request)`` for each request, in order, computed in a helper thread.

    gRPC's synchronous server sends a yielded response and waits for the send to finish before it asks
    for the next one; receiving and scoring the next batch in another thread meanwhile (both release the
    GIL in their heavy parts: the transport, numpy) keeps both stages busy. The bounded queue is the flow
    control: when PIPELINE_DEPTH answers wait unsent, the helper stops reading requests. With
    ``idle_seconds``, no answer (so no request) for that long ends the call with StreamIdle.
    """
    queue: Queue = Queue(maxsize=PIPELINE_DEPTH)
    stopped = threading.Event()
    done = object()

    def put(item: object) -> bool:
        while not stopped.is_set():
            try:
                queue.put(item, timeout=0.2)
                return True
            except Full:
                continue
        return False

    def work() -> None:
        try:
            for data in requests:
                if not put(answer(data)):
                    return
        except Exception as exc:  # noqa: BLE001 - a failed call (unknown model...) or a cancelled stream
            put(exc)
            return
        put(done)

    threading.Thread(target=work, name="stream-worker", daemon=True).start()
    try:
        while True:
            try:
                item = queue.get(timeout=idle_seconds or None)
            except Empty:
                raise StreamIdle(f"PredictStream: no request for {idle_seconds:g} s; the server ended the stream "
                                 "(--stream-idle-seconds)") from None
            if item is done:
                return
            if isinstance(item, Exception):
                if context.is_active():
                    raise item
                return
            yield item
    finally:
        stopped.set()  # the handler ended (error, abort, cancel): let the helper go


def _row_count(batch: wire.DecodedBatch) -> int:
    lengths = [len(v) for v in batch.numeric.values()] + [len(v) for v in batch.categorical.values()]
    return lengths[0] if lengths else len(batch.ids)


def _check_columns(schema: FeatureSchema, batch: wire.DecodedBatch, extra: frozenset[str] = frozenset()) -> int:
    """The batch's row count; raises InvalidRequest for an unknown, mistyped or ragged column.

    ``extra``: numeric columns accepted besides the features (a CLV model's inputs).
    """
    numeric_names = schema._numeric_names  # frozensets cached by the schema
    categorical_names = schema._categorical_names
    for name, values in batch.numeric.items():
        if name not in numeric_names:
            if name in extra:
                continue
            raise InvalidRequest(schema.misplaced_feature_message(name, "numeric"), field=name)
        if values.dtype.itemsize == 4:
            raise InvalidRequest(f"numeric[{quoted(name)}]: a feature sent in single precision (single_values); "
                                 "features travel as doubles (values), only the CLV inputs may be single", field=name)
    for name in batch.categorical:
        if name not in categorical_names:
            raise InvalidRequest(schema.misplaced_feature_message(name, "categorical"), field=name)
    lengths = [(name, len(batch.numeric.get(name, batch.categorical.get(name, ())))) for name in batch.column_order]
    if batch.ids:
        lengths.append(("ids", len(batch.ids)))
    if not lengths:
        return 0
    first_name, n = lengths[0]
    for name, size in lengths[1:]:
        if size != n:
            raise InvalidRequest(f"ragged batch: column {quoted(name)} has {size} values but {quoted(first_name)} "
                                 f"has {n}", field=name)
    return n


def generic_handler(service: ScoringService) -> grpc.GenericRpcHandler:
    """The method handlers of segmentation.v1.ScoringService; PredictStream speaks raw wire bytes."""
    def unary(fn: Callable, request_type: type) -> grpc.RpcMethodHandler:
        return grpc.unary_unary_rpc_method_handler(fn, request_deserializer=tolerant_deserializer(request_type.FromString),
                                                   response_serializer=_serialize)
    handlers = {
        "Predict": unary(service.Predict, pb.PredictRequest),
        "PredictStream": grpc.stream_stream_rpc_method_handler(service.PredictStream),  # bytes both ways
        "GetModelInfo": unary(service.GetModelInfo, pb.GetModelInfoRequest),
        "GetSegmentStats": unary(service.GetSegmentStats, pb.GetSegmentStatsRequest),
        "ListModels": unary(service.ListModels, pb.ListModelsRequest),
        "GetDriftReport": unary(service.GetDriftReport, pb.GetDriftReportRequest),
        "WatchModel": grpc.unary_stream_rpc_method_handler(
            service.WatchModel, request_deserializer=tolerant_deserializer(pb.WatchModelRequest.FromString), response_serializer=_serialize),
    }
    return grpc.method_handlers_generic_handler(wire.SERVICE, handlers)


def _serialize(message: object) -> bytes:
    if type(message) is bytes:  # already wire bytes (Predict)
        return message
    return message.SerializeToString()  # type: ignore[attr-defined]


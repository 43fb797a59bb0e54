"""The resumable PredictStream engine: frames in, result frames out, several batches in flight, one model version."""
from __future__ import annotations

import collections
import logging
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Iterator

import grpc
import pandas as pd

from scoring_service import wire
from scoring_service.client.frames import FrameJob, Schema, frame_job
from scoring_service.client.types import ScoringError, retry_after
from segmentation_core.tables import match_columns

log = logging.getLogger("scoring_service.client")

# Batches kept in flight on one stream: enough to hide the round trip and keep both ends busy, few
# enough that client memory stays bounded (each 10,000 x 7 batch is ~0.6 MB on the wire).
DEFAULT_IN_FLIGHT = 8


@dataclass(frozen=True)
class Channel:
    """A client's gRPC channel and what every call on it carries: metadata, deadline, retries."""

    grpc: grpc.Channel
    metadata: tuple[tuple[str, str], ...] | None
    timeout: float
    retries: int


class FrameStream:
    """Scores frames over one pipelined PredictStream: several batches in flight, results in input order."""

    def __init__(self, channel: Channel, schema: Schema, batch_rows: int, in_flight: int,
                 on_batch: Callable[[int], None] | None) -> None:
        self.channel = channel
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
                if attempt > self.channel.retries:
                    raise exc.error from None
                delay = exc.delay if exc.delay is not None else min(0.2 * 2 ** (attempt - 1), 2.0)
                log.warning("PredictStream interrupted (%s); resending %d batch(es) in %.1fs (attempt %d of %d)",
                            exc.error.message, len(state.pending), delay, attempt, self.channel.retries)
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

        def encode(job: FrameJob, start: int, stop: int, first: bool) -> bytes:
            numeric = {k: v[start:stop] for k, v in job.numeric.items()}
            categorical = {k: v[start:stop].tolist() for k, v in job.categorical.items()}
            # The selector counts on a stream's first request only: one stream, one version.
            return wire.encode_batch_request(numeric, categorical, batch_id=str(job.offset + start),
                                             model=model if first else "", version=version if first else "",
                                             single=job.single)

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
                                job = frame_job(frame, self.schema, self.batch_rows)
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

        call = wire.predict_stream_method(self.channel.grpc)(
            requests(), metadata=self.channel.metadata, wait_for_ready=bool(resend) or None)
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
                raise state.failure[0] from exc
            if state.stalled:
                raise ScoringError(grpc.StatusCode.DEADLINE_EXCEEDED, f"no answer from the server for "
                                   f"{self.channel.timeout:g}s", method="PredictStream") from None
            with state.lock:  # the batch a size refusal is about: the largest one not answered
                rows = max((stop - start for _frame, _job, start, stop, _sent in state.pending), default=None)
            error = ScoringError.from_rpc(exc, "PredictStream", batch_rows=rows or self.batch_rows,
                                          reply_row_bytes=wire.batch_response_bytes_per_row(self.schema.has_clv))
            hint = retry_after(exc)  # the server's rate limit refused the stream: resend after its hint
            if error.code == grpc.StatusCode.UNAVAILABLE or hint is not None:
                raise _Resumable(error, hint) from None
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

    def _absorb(self, result: wire.BatchResult, job: FrameJob, start: int, stop: int) -> None:
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
        job.absorb_clv(result.clv, start, stop)
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
            if since is not None and time.monotonic() - max(since, oldest) > self.channel.timeout:
                state.stalled = True
                call.cancel()
                return


class _Resumable(Exception):
    """A stream lost to UNAVAILABLE, or refused by a rate limit (``delay``: its retry-after hint, in seconds):
    the unanswered batches can be sent again on a new stream."""

    def __init__(self, error: ScoringError, delay: float | None = None) -> None:
        super().__init__(str(error))
        self.error = error
        self.delay = delay


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

"""The TrainingService's gRPC methods: thin conversions between the contract's messages and the data
folder, the profiler and the job queue (records are dicts laid out as the messages; json_format converts)."""
from __future__ import annotations

import functools
import json
import logging
import os
import threading
from concurrent import futures
from typing import Any, Callable, Iterable, Iterator

import grpc
from google.protobuf import json_format

from segmentation.v1 import profile_pb2, scoring_pb2, training_pb2 as pb, training_pb2_grpc
from segmentation_core.artefact import Verifier, read_manifest, read_report
from segmentation_core.errors import (ArtefactError, NotFoundError, SchemaChangeError, SegmentationError,
                                      SignatureError, StoreError, bounded)
from segmentation_core.store import ModelStore
from training_job.client import BREAKING_SCHEMA, REFUSAL_DETAIL_KEY, REFUSAL_KEY, SchemaRefusal
from training_job.datasets import DataFolder, DatasetInfo, UploadTooLarge
from training_job.errors import ConfigError, DataError
from training_job.job_request import DEFAULT_MODEL
from training_job.jobs import JobConflict, JobQueue
from training_job.profiling import profile_table

log = logging.getLogger(__name__)

# One table from error type to status code; the first match wins (subclasses before their bases).
STATUS_OF: tuple[tuple[type[BaseException], grpc.StatusCode], ...] = (
    (SchemaChangeError, grpc.StatusCode.FAILED_PRECONDITION),
    (UploadTooLarge, grpc.StatusCode.RESOURCE_EXHAUSTED),
    (NotFoundError, grpc.StatusCode.NOT_FOUND),
    (JobConflict, grpc.StatusCode.FAILED_PRECONDITION),
    (SignatureError, grpc.StatusCode.FAILED_PRECONDITION),
    (ArtefactError, grpc.StatusCode.FAILED_PRECONDITION),
    (StoreError, grpc.StatusCode.FAILED_PRECONDITION),
    (DataError, grpc.StatusCode.INVALID_ARGUMENT),
    (ConfigError, grpc.StatusCode.INVALID_ARGUMENT),
    (SegmentationError, grpc.StatusCode.INVALID_ARGUMENT),
    (ValueError, grpc.StatusCode.INVALID_ARGUMENT),
)


def _mapped_errors(method: Callable) -> Callable:
    """Turn the domain's errors into gRPC statuses with their one-line message."""
    @functools.wraps(method)
    def wrapper(self: Any, request: Any, context: grpc.ServicerContext) -> Any:
        try:
            return method(self, request, context)
        except tuple(kind for kind, _ in STATUS_OF) as exc:
            code = next(code for kind, code in STATUS_OF if isinstance(exc, kind))
            message = bounded(str(exc).splitlines()[0] if str(exc).strip() else type(exc).__name__)
            log.info("%s refused: %s", method.__name__, message)
            if isinstance(exc, SchemaChangeError):  # so that a client can offer the override (the .proto says so)
                detail = SchemaRefusal(exc.model, exc.served, exc.candidate, tuple(exc.changes)).to_metadata()
                context.set_trailing_metadata(((REFUSAL_KEY, BREAKING_SCHEMA), (REFUSAL_DETAIL_KEY, detail)))
            context.abort(code, message)
    return wrapper


def _message(record: dict[str, Any], message: Any) -> Any:
    return json_format.ParseDict(record, message, ignore_unknown_fields=True)


def dataset_message(info: DatasetInfo) -> pb.Dataset:
    """The Dataset message of a stored upload."""
    return pb.Dataset(dataset_id=info.dataset_id, filename=info.filename, size_bytes=info.size_bytes,
                      sha256=info.sha256, deduplicated=info.deduplicated, rows=info.rows,
                      column_count=info.column_count, uploaded_at=info.uploaded_at)

def _in_daemon_thread(fn: Callable[..., Any], *args: Any) -> futures.Future:
    """Run fn(*args) in a daemon thread; its outcome arrives in the returned future."""
    future: futures.Future = futures.Future()

    def run() -> None:
        if not future.set_running_or_notify_cancel():
            return
        try:
            future.set_result(fn(*args))
        except BaseException as exc:  # noqa: BLE001 - the caller reads it from the future
            future.set_exception(exc)

    threading.Thread(target=run, name="profile", daemon=True).start()
    return future


class TrainingService(training_pb2_grpc.TrainingServiceServicer):
    """UploadData, ProfileData, SubmitTraining, WatchTraining, ListTrainingJobs, CancelTraining, PublishVersion,
    GetReport."""

    def __init__(self, data: DataFolder, jobs: JobQueue, store: ModelStore, verify_key: Verifier | None = None) -> None:
        """``verify_key``: the public half of the jobs' signing key; PublishVersion then publishes only versions
        signed by it (a scoring service with --verify-key would refuse the others)."""
        self.data = data
        self.jobs = jobs
        self.store = store
        self.verify_key = verify_key
        # Profiles are computed once per dataset, one at a time, starting as soon as an upload is stored
        # (the analyst's next step is to look at it): ProfileData then waits at most for what is left.
        # Daemon threads, one profile at a time: a stopping service does not wait for a profile in progress
        # (its cache file is written by rename, so an interrupted one leaves nothing behind).
        self._profiling = threading.Lock()
        self._profiles: dict[str, futures.Future] = {}
        self._profiles_lock = threading.Lock()

    def _profile(self, dataset_id: str) -> futures.Future:
        """The (future) profile of a stored dataset, read from its cache file or computed once."""
        info = self.data.info(dataset_id)
        with self._profiles_lock:
            future = self._profiles.get(info.dataset_id)
            if future is None or (future.done() and future.exception() is not None):
                future = _in_daemon_thread(self._compute_profile, info.dataset_id, info.filename)
                self._profiles[info.dataset_id] = future
            return future

    def _compute_profile(self, dataset_id: str, filename: str) -> dict[str, Any]:
        cache = self.data.datasets / f"{dataset_id}.profile.json"
        with self._profiling:
            if cache.exists():
                return json.loads(cache.read_text())
            profile = profile_table(self.data.frame(dataset_id), name=filename, dataset_id=dataset_id)
            tmp = cache.with_suffix(f".tmp{os.getpid()}")
            tmp.write_text(json.dumps(profile))
            os.replace(tmp, cache)
            return profile

    @_mapped_errors
    def UploadData(self, request_iterator: Iterable[pb.DataChunk], context: grpc.ServicerContext) -> pb.Dataset:
        """Store the streamed chunks as one dataset."""
        first: dict[str, str] = {}

        def chunks() -> Iterator[bytes]:
            for chunk in request_iterator:
                if not first:
                    first["filename"] = chunk.filename
                yield chunk.data

        stream = chunks()
        head = next(stream, b"")
        info = self.data.store(_prepend(head, stream), first.get("filename", ""))
        self._profile(info.dataset_id)  # start profiling now, in the background
        return dataset_message(info)

    @_mapped_errors
    def ProfileData(self, request: pb.ProfileDataRequest, context: grpc.ServicerContext) -> profile_pb2.DataProfile:
        """The profile of an uploaded table (computed once, from the moment it was uploaded)."""
        return _message(self._profile(request.dataset_id).result(), profile_pb2.DataProfile())

    @_mapped_errors
    def SubmitTraining(self, request: pb.TrainingRequest, context: grpc.ServicerContext) -> pb.TrainingJob:
        """Queue a job."""
        fields = json_format.MessageToDict(request, preserving_proto_field_name=True)
        return _message(self.jobs.submit(fields), pb.TrainingJob())

    @_mapped_errors
    def WatchTraining(self, request: pb.WatchTrainingRequest, context: grpc.ServicerContext
                      ) -> Iterator[pb.TrainingJob]:
        """The job now, then after each change until it ends."""
        self.jobs.get(request.job_id)  # NOT_FOUND before the stream starts
        return (_message(job, pb.TrainingJob()) for job in self.jobs.watch(request.job_id, context.is_active))

    @_mapped_errors
    def ListTrainingJobs(self, request: pb.ListTrainingJobsRequest, context: grpc.ServicerContext
                         ) -> pb.ListTrainingJobsResponse:
        """Jobs, newest first."""
        if request.limit < 0:
            raise ValueError(f"limit: {request.limit} should be >= 0")
        jobs = self.jobs.list(request.limit or 50)
        return pb.ListTrainingJobsResponse(jobs=[_message(job, pb.TrainingJob()) for job in jobs])

    @_mapped_errors
    def CancelTraining(self, request: pb.CancelTrainingRequest, context: grpc.ServicerContext) -> pb.TrainingJob:
        """Cancel a queued or running job."""
        return _message(self.jobs.cancel(request.job_id), pb.TrainingJob())

    @_mapped_errors
    def PublishVersion(self, request: pb.PublishVersionRequest, context: grpc.ServicerContext
                       ) -> scoring_pb2.VersionInfo:
        """Make a kept version CURRENT (after checking it reads whole and, with a signing key, is signed by it); with
        ``rollback``, the version served before the current one (``version``: the one the caller expects); refused
        (SchemaChangeError) when its input schema would break the served version's callers, unless the request
        allows it."""
        model = request.model or DEFAULT_MODEL
        version = request.version
        if request.rollback:  # StoreError (FAILED_PRECONDITION) when nothing, or not the version expected
            version = self.store.checked_rollback_target(model, version or None)
        manifest = read_manifest(self.store.version_dir(model, version), self.verify_key)
        if request.rollback:
            self.store.rollback(model, expected=version,
                                allow_breaking_schema=request.allow_breaking_schema)
        else:
            self.store.promote(model, version, allow_breaking_schema=request.allow_breaking_schema)
        log.info("model %s: %s %s through the training service", model, version,
                 "rolled back to" if request.rollback else "published")
        return scoring_pb2.VersionInfo(version=version, created_at=str(manifest.get("created_at", "")),
                                       algorithm=str(manifest.get("algorithm", {}).get("name", "")),
                                       k=len(manifest.get("segments", [])), current=True)


    @_mapped_errors
    def GetReport(self, request: pb.GetReportRequest, context: grpc.ServicerContext) -> Iterator[pb.ReportChunk]:
        """A kept version's training report (the CURRENT one when none is named), verified, in 256 KiB chunks."""
        model = request.model or DEFAULT_MODEL
        version = request.version or self.store.current(model)
        if not version:
            raise NotFoundError(f"model {model!r} has no CURRENT version; name the version whose report to send")
        report = read_report(self.store.version_dir(model, version), self.verify_key)  # errors before the stream
        return (pb.ReportChunk(model=model if i == 0 else "", version=version if i == 0 else "",
                               size_bytes=len(report) if i == 0 else 0, data=report[i:i + REPORT_CHUNK_BYTES])
                for i in range(0, max(len(report), 1), REPORT_CHUNK_BYTES))


REPORT_CHUNK_BYTES = 256 << 10  # a 1 MB report in 4 messages


def _prepend(head: bytes, rest: Iterator[bytes]) -> Iterator[bytes]:
    if head:
        yield head
    yield from rest

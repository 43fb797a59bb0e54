"""A Python client of the TrainingService, with typed results (``python -m training_job serve``).

    with TrainingClient("127.0.0.1:50052") as trainer:
        dataset = trainer.upload("Mall_Customers.csv")
        profile = trainer.profile(dataset.dataset_id)
        job = trainer.submit(dataset.dataset_id, preset=profile.suggested_preset, publish=False)
        for job in trainer.watch(job.job_id):
            print(job.stage, f"{job.progress:.0%}")
        trainer.publish(job.result.version)
        page = trainer.report(job.result.version).html       # the version's training report (HTML)

Imports only grpc, protobuf, the generated contract and ``training_job.limits`` (no pandas): the dashboard uses
it. ``MIN_K`` and ``MAX_K`` are re-exported from there for forms that check k before submitting.
"""
from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO, Callable, Iterable, Iterator

import grpc
from google.protobuf import json_format
from grpc_health.v1 import health_pb2, health_pb2_grpc

from segmentation.v1 import profile_pb2, training_pb2 as pb, training_pb2_grpc
from training_job.limits import MAX_K, MIN_K

__all__ = ["CHUNK_BYTES", "DEFAULT_TARGET", "MAX_K", "MIN_K", "ColumnProfile", "DataProfile", "Dataset", "Job",
           "JobResult", "Report", "SchemaRefusal", "TrainingClient", "TrainingError", "VersionInfo"]

# The trailing metadata of a PublishVersion refused because the version's input schema would break the served
# version's callers (training.proto, PublishVersionRequest.allow_breaking_schema): TrainingError.breaking_schema.
REFUSAL_KEY = "refusal"
BREAKING_SCHEMA = "breaking-schema"
# Beside it, the refusal's parts as JSON (model, served, candidate, changes): TrainingError.schema_refusal, so that
# a client words the refusal its own way (the status message is the command line's).
REFUSAL_DETAIL_KEY = "refusal-detail-bin"

DEFAULT_TARGET = "127.0.0.1:50052"
CHUNK_BYTES = 1 << 20
TERMINAL_STATES = ("SUCCEEDED", "FAILED", "CANCELLED")


@dataclass(frozen=True)
class SchemaRefusal:
    """Why a publish or rollback was refused, in parts: ``candidate`` (the version to serve) would break the callers
    of ``served`` (the version served, which stays) of ``model``; ``changes``: what would break, one item each."""

    model: str
    served: str
    candidate: str
    changes: tuple[str, ...]

    @classmethod
    def from_metadata(cls, value: bytes | str | None) -> "SchemaRefusal | None":
        """The refusal sent in REFUSAL_DETAIL_KEY, or None when absent or unreadable (an older service)."""
        try:
            parts = json.loads(value) if value else None
            return cls(str(parts["model"]), str(parts["served"]), str(parts["candidate"]),
                       tuple(str(c) for c in parts["changes"]))
        except (ValueError, TypeError, KeyError):
            return None

    def to_metadata(self, limit: int = 4000) -> bytes:
        """As JSON for REFUSAL_DETAIL_KEY, within ``limit`` bytes (changes past it are counted, not listed)."""
        changes = list(self.changes)
        while True:
            more = len(self.changes) - len(changes)
            listed = changes + ([f"and {more} more change(s)"] if more else [])
            data = json.dumps({"model": self.model, "served": self.served, "candidate": self.candidate,
                               "changes": listed}).encode()
            if len(data) <= limit or not changes:
                return data[:limit]
            changes.pop()


class TrainingError(Exception):
    """A failed call: the gRPC status code and the server's message (which names the file, line or column).
    ``breaking_schema``: a publish refused because the version's input schema would break the served version's
    callers (``publish(..., allow_breaking_schema=True)`` would make it CURRENT anyway); ``schema_refusal``: that
    refusal's parts, when the service sent them."""

    def __init__(self, code: grpc.StatusCode, message: str, method: str = "", breaking_schema: bool = False,
                 schema_refusal: SchemaRefusal | None = None) -> None:
        super().__init__(f"{method}: {code.name}: {message}" if method else f"{code.name}: {message}")
        self.code = code
        self.message = message
        self.method = method
        self.breaking_schema = breaking_schema
        self.schema_refusal = schema_refusal


@dataclass(frozen=True)
class Dataset:
    """An uploaded table, as the server stored it."""

    dataset_id: str
    filename: str
    size_bytes: int
    sha256: str
    deduplicated: bool
    rows: int
    column_count: int
    uploaded_at: str


@dataclass(frozen=True)
class ColumnProfile:
    """One column's profile: role, missing values, statistics, histogram or top levels."""

    name: str
    role: str
    dtype: str
    missing: int
    missing_share: float
    distinct: int
    summary: dict[str, float]
    """count, mean, std, min, q25, median, q75, max (numbers only; empty otherwise)."""
    histogram_edges: list[float]
    histogram_counts: list[int]
    top_levels: list[tuple[str, int]]
    other_count: int


@dataclass(frozen=True)
class DataProfile:
    """What the platform infers about a table, and its statistics."""

    dataset_id: str
    name: str
    rows: int
    column_count: int
    suggested_preset: str
    kind: str
    id_column: str
    numeric: list[str]
    categorical: list[str]
    dates: list[str]
    dropped: list[tuple[str, str]]
    columns: list[ColumnProfile]
    correlation_columns: list[str]
    correlation: list[list[float]]
    rows_in: int
    customers: int
    cleaning_steps: list[tuple[str, int]]
    cleaning_error: str
    rfm: list[ColumnProfile]
    preview_columns: list[str]
    preview_rows: list[list[str]]
    seconds: float

    @classmethod
    def from_dict(cls, stored: dict[str, Any]) -> "DataProfile":
        """Convert a profile as a manifest stores it (GetModelInfo's profile, as a dict)."""
        return cls.from_message(json_format.ParseDict(stored, profile_pb2.DataProfile(), ignore_unknown_fields=True))

    @classmethod
    def from_message(cls, m: profile_pb2.DataProfile) -> "DataProfile":
        """Convert the contract's DataProfile."""
        n = len(m.correlation.columns)
        values = list(m.correlation.values)
        return cls(
            dataset_id=m.dataset_id, name=m.name, rows=m.rows, column_count=m.column_count,
            suggested_preset=m.suggested_preset, kind=m.schema.kind, id_column=m.schema.id_column,
            numeric=list(m.schema.numeric), categorical=list(m.schema.categorical), dates=list(m.schema.dates),
            dropped=[(d.column, d.reason) for d in m.schema.dropped],
            columns=[_column(c) for c in m.columns], correlation_columns=list(m.correlation.columns),
            correlation=[values[i * n:(i + 1) * n] for i in range(n)],
            rows_in=m.cleaning.rows_in, customers=m.cleaning.customers,
            cleaning_steps=[(s.reason, s.rows) for s in m.cleaning.steps], cleaning_error=m.cleaning.error,
            rfm=[_column(c) for c in m.rfm], preview_columns=list(m.preview.columns),
            preview_rows=[list(r.values) for r in m.preview.rows], seconds=m.seconds)


def _column(c: profile_pb2.ColumnProfile) -> ColumnProfile:
    summary = {f: getattr(c.summary, f) for f in ("count", "mean", "std", "min", "q25", "median", "q75", "max")} \
        if c.HasField("summary") else {}
    return ColumnProfile(name=c.name, role=c.role, dtype=c.dtype, missing=c.missing, missing_share=c.missing_share,
                         distinct=c.distinct, summary=summary, histogram_edges=list(c.histogram.edges),
                         histogram_counts=list(c.histogram.counts),
                         top_levels=[(lv.level, lv.count) for lv in c.top_levels], other_count=c.other_count)


@dataclass(frozen=True)
class JobResult:
    """What a succeeded job made, and how it compares with the version served before."""

    model: str
    version: str
    published: bool
    k: int
    segment_names: list[str]
    segment_sizes: list[int]
    quality: dict[str, float]
    compared_version: str
    ari: float | None
    comparison_note: str
    matching: list[int]
    matching_share: list[float]


@dataclass(frozen=True)
class Job:
    """A training job's state."""

    job_id: str
    state: str
    """QUEUED, RUNNING, SUCCEEDED, FAILED or CANCELLED."""
    stage: str
    progress: float
    log: list[str]
    k_search: list[dict[str, float]]
    """One dict per k computed so far: {"k": k, metric: value, ...}."""
    result: JobResult | None
    error: str
    request: dict[str, Any] = field(default_factory=dict)
    submitted_at: str = ""
    started_at: str = ""
    finished_at: str = ""

    @property
    def done(self) -> bool:
        """True once the job has ended, whatever the outcome."""
        return self.state in TERMINAL_STATES

    @classmethod
    def from_message(cls, m: pb.TrainingJob) -> "Job":
        """Convert the contract's TrainingJob."""
        r = m.result
        result = None
        if m.HasField("result"):
            result = JobResult(model=r.model, version=r.version, published=r.published, k=r.k,
                               segment_names=list(r.segment_names), segment_sizes=list(r.segment_sizes),
                               quality=dict(r.quality), compared_version=r.compared_version,
                               ari=None if math.isnan(r.ari) else r.ari, comparison_note=r.comparison_note,
                               matching=list(r.matching), matching_share=list(r.matching_share))
        q = m.request
        request = {"dataset_id": q.dataset_id, "preset": q.preset, "k": q.k, "algorithm": q.algorithm,
                   "model": q.model, "publish": q.publish, "numeric_columns": list(q.numeric_columns),
                   "categorical_columns": list(q.categorical_columns), "k_min": q.k_min, "k_max": q.k_max}
        return cls(job_id=m.job_id, state=pb.JobState.Name(m.state), stage=m.stage, progress=m.progress,
                   log=list(m.log), k_search=[{"k": row.k, **dict(row.metrics)} for row in m.k_search],
                   result=result, error=m.error, request=request, submitted_at=m.submitted_at,
                   started_at=m.started_at, finished_at=m.finished_at)


@dataclass(frozen=True)
class Report:
    """A version's training report: the HTML page, whole."""

    model: str
    version: str
    html: bytes


@dataclass(frozen=True)
class VersionInfo:
    """A version made CURRENT."""

    model: str
    version: str
    created_at: str
    algorithm: str
    k: int


class TrainingClient:
    """A client of the training service; one channel, usable as a context manager."""

    def __init__(self, target: str = DEFAULT_TARGET, *, token: str | None = None, tls_ca: Path | None = None,
                 timeout: float = 30.0) -> None:
        if timeout <= 0:
            raise ValueError(f"timeout={timeout} should be > 0 seconds")
        self.target = target
        self.timeout = timeout
        options = [("grpc.max_receive_message_length", 16 << 20), ("grpc.max_reconnect_backoff_ms", 10_000)]
        if tls_ca is not None:
            credentials = grpc.ssl_channel_credentials(root_certificates=Path(tls_ca).read_bytes())
            self._channel = grpc.secure_channel(target, credentials, options=options)
        else:
            self._channel = grpc.insecure_channel(target, options=options)
        self._metadata = (("authorization", f"Bearer {token}"),) if token else None
        self._stub = training_pb2_grpc.TrainingServiceStub(self._channel)
        self._health = health_pb2_grpc.HealthStub(self._channel)

    def close(self) -> None:
        """Close the channel."""
        self._channel.close()

    def __enter__(self) -> "TrainingClient":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _call(self, method: Callable[..., Any], request: Any, name: str, timeout: float | None = None) -> Any:
        try:
            return method(request, timeout=timeout or self.timeout, metadata=self._metadata)
        except grpc.RpcError as exc:
            trailing = exc.trailing_metadata() if hasattr(exc, "trailing_metadata") else None
            sent = dict(trailing or ())
            breaking = sent.get(REFUSAL_KEY) == BREAKING_SCHEMA
            raise TrainingError(exc.code() or grpc.StatusCode.UNKNOWN, exc.details() or "", name,
                                breaking_schema=breaking,
                                schema_refusal=SchemaRefusal.from_metadata(sent.get(REFUSAL_DETAIL_KEY)) if breaking
                                else None) from None

    def healthy(self, timeout: float = 2.0) -> bool:
        """True when the service answers its health check with SERVING."""
        try:
            answer = self._health.Check(health_pb2.HealthCheckRequest(service=""), timeout=timeout)
        except grpc.RpcError:
            return False
        return answer.status == health_pb2.HealthCheckResponse.SERVING

    def upload_chunks(self, chunks: Iterable[bytes], filename: str, timeout: float = 600.0) -> Dataset:
        """Upload a table given as an iterable of byte chunks (each <= 4 MiB)."""
        def requests() -> Iterator[pb.DataChunk]:
            first = True
            for chunk in chunks:
                yield pb.DataChunk(filename=filename if first else "", data=chunk)
                first = False
            if first:
                yield pb.DataChunk(filename=filename, data=b"")

        m = self._call(self._stub.UploadData, requests(), "UploadData", timeout=timeout)
        return Dataset(dataset_id=m.dataset_id, filename=m.filename, size_bytes=m.size_bytes, sha256=m.sha256,
                       deduplicated=m.deduplicated, rows=m.rows, column_count=m.column_count,
                       uploaded_at=m.uploaded_at)

    def upload(self, source: Path | str | BinaryIO, filename: str | None = None,
               progress: Callable[[int], None] | None = None) -> Dataset:
        """Upload a file (a path or a binary file object) in CHUNK_BYTES chunks; ``progress(bytes_sent)``."""
        handle = open(source, "rb") if isinstance(source, (str, Path)) else source
        name = filename or (Path(source).name if isinstance(source, (str, Path)) else "upload")

        def chunks() -> Iterator[bytes]:
            sent = 0
            while chunk := handle.read(CHUNK_BYTES):
                sent += len(chunk)
                yield chunk
                if progress:
                    progress(sent)

        try:
            return self.upload_chunks(chunks(), name)
        finally:
            if isinstance(source, (str, Path)):
                handle.close()

    def profile(self, dataset_id: str) -> DataProfile:
        """The profile of an uploaded table."""
        m = self._call(self._stub.ProfileData, pb.ProfileDataRequest(dataset_id=dataset_id), "ProfileData",
                       timeout=max(self.timeout, 120.0))
        return DataProfile.from_message(m)

    def submit(self, dataset_id: str, *, preset: str = "", config_toml: str = "", k: str | int = "",
               k_min: int = 0, k_max: int = 0, algorithm: str = "", model: str = "",
               numeric_columns: Iterable[str] = (), categorical_columns: Iterable[str] = (),
               publish: bool = False) -> Job:
        """Queue a training job (``publish`` False: the new version is kept, CURRENT stays)."""
        request = pb.TrainingRequest(dataset_id=dataset_id, preset=preset, config_toml=config_toml, k=str(k),
                                     k_min=k_min, k_max=k_max, algorithm=algorithm, model=model,
                                     numeric_columns=list(numeric_columns),
                                     categorical_columns=list(categorical_columns), publish=publish)
        return Job.from_message(self._call(self._stub.SubmitTraining, request, "SubmitTraining"))

    def job(self, job_id: str) -> Job:
        """One job's latest state (the first answer of a watch)."""
        try:
            call = self._stub.WatchTraining(pb.WatchTrainingRequest(job_id=job_id), timeout=self.timeout,
                                            metadata=self._metadata)
            first = next(iter(call))
            call.cancel()
            return Job.from_message(first)
        except grpc.RpcError as exc:
            raise TrainingError(exc.code() or grpc.StatusCode.UNKNOWN, exc.details() or "", "WatchTraining") from None

    def watch(self, job_id: str, timeout: float | None = None) -> Iterator[Job]:
        """The job now, then after each change until it ends."""
        try:
            for m in self._stub.WatchTraining(pb.WatchTrainingRequest(job_id=job_id), timeout=timeout,
                                              metadata=self._metadata):
                yield Job.from_message(m)
        except grpc.RpcError as exc:
            raise TrainingError(exc.code() or grpc.StatusCode.UNKNOWN, exc.details() or "", "WatchTraining") from None

    def wait(self, job_id: str, timeout: float = 600.0) -> Job:
        """Block until the job ends; returns its final state."""
        last = None
        for job in self.watch(job_id, timeout=timeout):
            last = job
        assert last is not None
        return last

    def jobs(self, limit: int = 50) -> list[Job]:
        """Jobs, newest first (without log lines and k-search rows)."""
        m = self._call(self._stub.ListTrainingJobs, pb.ListTrainingJobsRequest(limit=limit), "ListTrainingJobs")
        return [Job.from_message(j) for j in m.jobs]

    def cancel(self, job_id: str) -> Job:
        """Cancel a queued or running job."""
        return Job.from_message(self._call(self._stub.CancelTraining, pb.CancelTrainingRequest(job_id=job_id),
                                           "CancelTraining"))

    def publish(self, version: str, model: str = "", allow_breaking_schema: bool = False) -> VersionInfo:
        """Make a kept version CURRENT (promote, or roll back). Refused with FAILED_PRECONDITION and
        ``TrainingError.breaking_schema`` when its input schema would break the served version's callers, unless
        ``allow_breaking_schema``."""
        m = self._call(self._stub.PublishVersion, pb.PublishVersionRequest(
            model=model, version=version, allow_breaking_schema=allow_breaking_schema), "PublishVersion")
        return VersionInfo(model=model or "customers", version=m.version, created_at=m.created_at,
                           algorithm=m.algorithm, k=m.k)

    def report(self, version: str = "", model: str = "") -> Report:
        """The training report of a kept version (the CURRENT one when ``version`` is empty), whole."""
        try:
            chunks = list(self._stub.GetReport(pb.GetReportRequest(model=model, version=version),
                                               timeout=self.timeout, metadata=self._metadata))
        except grpc.RpcError as exc:
            raise TrainingError(exc.code() or grpc.StatusCode.UNKNOWN, exc.details() or "", "GetReport") from None
        if not chunks:
            raise TrainingError(grpc.StatusCode.UNKNOWN, "the service sent no report", "GetReport")
        data = b"".join(c.data for c in chunks)
        if len(data) != chunks[0].size_bytes:
            raise TrainingError(grpc.StatusCode.DATA_LOSS, f"received {len(data)} of the report's "
                                f"{chunks[0].size_bytes} bytes", "GetReport")
        return Report(model=chunks[0].model, version=chunks[0].version, html=data)

    def rollback(self, model: str = "", expected: str = "", allow_breaking_schema: bool = False) -> VersionInfo:
        """Undo the last publish or promote: serve the version served before the current one. ``expected``: the
        version the caller showed (a confirmation); another target is FAILED_PRECONDITION, nothing changed. Refused
        like :meth:`publish` across a breaking input schema change, unless ``allow_breaking_schema``."""
        m = self._call(self._stub.PublishVersion,
                       pb.PublishVersionRequest(model=model, version=expected, rollback=True,
                                                allow_breaking_schema=allow_breaking_schema), "PublishVersion")
        return VersionInfo(model=model or "customers", version=m.version, created_at=m.created_at,
                           algorithm=m.algorithm, k=m.k)

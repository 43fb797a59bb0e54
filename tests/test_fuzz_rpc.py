"""Property-based fuzzing (hypothesis) of every RPC of a real ScoringService and a real TrainingService.

Generated messages (random field values, huge strings, NaN/inf, unknown columns, long ids, unknown enum
values) and raw bytes (random, and valid messages truncated, extended or with a flipped byte, sent through a
generic channel without the generated serializers) go to each RPC on loopback. Every answer must be OK or a
documented status code - never INTERNAL or UNKNOWN - and afterwards each server still answers a valid call
and its health check says SERVING.

The quick run draws a bounded number of examples per RPC; ``-m slow`` runs many more (FUZZ_EXAMPLES sets it).
Examples that found a bug are pinned with ``@example`` as regressions.
"""
from __future__ import annotations

import os
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grpc
import pytest
from google.protobuf.descriptor import Descriptor, FieldDescriptor
from google.protobuf.message import Message
from grpc_health.v1 import health_pb2, health_pb2_grpc
from hypothesis import HealthCheck, event, example, given, settings
from hypothesis import strategies as st

from segmentation.v1 import scoring_pb2, training_pb2
from segmentation_core.store import ModelStore
from tests import model_factory
from tests.server_support import start_server, wait_for

pytestmark = pytest.mark.timeout(300)

# What a server may answer besides OK (the contracts' documented codes; DEADLINE_EXCEEDED and CANCELLED are
# the client's own deadline or cancel of a long-lived call).
DOCUMENTED = {
    grpc.StatusCode.OK, grpc.StatusCode.INVALID_ARGUMENT, grpc.StatusCode.NOT_FOUND, grpc.StatusCode.UNAVAILABLE,
    grpc.StatusCode.RESOURCE_EXHAUSTED, grpc.StatusCode.FAILED_PRECONDITION, grpc.StatusCode.OUT_OF_RANGE,
    grpc.StatusCode.UNAUTHENTICATED, grpc.StatusCode.PERMISSION_DENIED, grpc.StatusCode.ALREADY_EXISTS,
    grpc.StatusCode.DEADLINE_EXCEEDED, grpc.StatusCode.CANCELLED,
}
QUICK = settings(max_examples=int(os.environ.get("FUZZ_QUICK_EXAMPLES", "60")), deadline=None, database=None,
                 suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
LONG = settings(QUICK, max_examples=int(os.environ.get("FUZZ_EXAMPLES", "400")))
CALL_TIMEOUT = 10.0
MESSAGE_BOUND = 2000  # characters of a status message

# Strings an attacker or a bad client would send: names the servers know, paths, long ids, huge text.
INTERESTING_TEXT = [
    "", "customers", "v0001", "v0000", "v" + "1" * 12, "v" + "1" * 13, "v" + "1" * 256, "latest", "..", "../etc",
    "/etc/passwd", "a/b", "\x00", "nul\x00byte", "\ud7ff\ue000", "é" * 50, "x" * 100_000, "auto", "mall",
    "transactions", "kmeans", "gmm", "5", "-1", "0", "99999999999999999999", "nan", "inf", "ds-" + "0" * 16,
    "ds-" + "f" * 64, "job-1", "job-" + "9" * 40, "Age", "Annual Income (k$)", "Spending Score (1-100)",
    "Gender", "Female", "RepeatPurchases", "LastPurchaseTime", "CustomerAge", "AvgRepeatValue", "Recency",
    "[model]\nname = 'x'\n", "k = 'auto'\n[[[", "=cmd|' /C calc'!A0",
]
TEXT = st.one_of(st.sampled_from(INTERESTING_TEXT), st.text(max_size=30))
FLOATS = st.one_of(st.floats(), st.sampled_from([float("nan"), float("inf"), -float("inf"), 0.0, -0.0,
                                                 1e308, -1e308, 5e-324]))
_INT_RANGES = {
    FieldDescriptor.TYPE_INT32: (-2**31, 2**31 - 1), FieldDescriptor.TYPE_SINT32: (-2**31, 2**31 - 1),
    FieldDescriptor.TYPE_SFIXED32: (-2**31, 2**31 - 1), FieldDescriptor.TYPE_INT64: (-2**63, 2**63 - 1),
    FieldDescriptor.TYPE_SINT64: (-2**63, 2**63 - 1), FieldDescriptor.TYPE_SFIXED64: (-2**63, 2**63 - 1),
    FieldDescriptor.TYPE_UINT32: (0, 2**32 - 1), FieldDescriptor.TYPE_FIXED32: (0, 2**32 - 1),
    FieldDescriptor.TYPE_UINT64: (0, 2**64 - 1), FieldDescriptor.TYPE_FIXED64: (0, 2**64 - 1),
}


def _integers(low: int, high: int) -> st.SearchStrategy[int]:
    edges = [v for v in (low, high, -1, 0, 1, 2, 20, 1000, 10**6) if low <= v <= high]
    return st.one_of(st.sampled_from(edges), st.integers(low, high))


def _scalar(field: FieldDescriptor) -> st.SearchStrategy[Any]:
    kind = field.type
    if kind == FieldDescriptor.TYPE_STRING:
        return TEXT
    if kind == FieldDescriptor.TYPE_BYTES:
        return st.binary(max_size=300)
    if kind == FieldDescriptor.TYPE_BOOL:
        return st.booleans()
    if kind == FieldDescriptor.TYPE_DOUBLE:
        return FLOATS
    if kind == FieldDescriptor.TYPE_FLOAT:
        return st.floats(width=32)
    if kind == FieldDescriptor.TYPE_ENUM:  # proto3 enums are open: unknown numbers are valid on the wire
        return _integers(-2**31, 2**31 - 1)
    return _integers(*_INT_RANGES[kind])


@st.composite
def messages(draw: st.DrawFn, cls: type[Message], depth: int = 0) -> Message:
    """A message of ``cls`` with a random subset of its fields set to random (often hostile) values."""
    return _fill(draw, cls(), cls.DESCRIPTOR, depth)


def _fill(draw: st.DrawFn, message: Message, descriptor: Descriptor, depth: int) -> Message:
    for field in descriptor.fields:
        if not draw(st.booleans()):
            continue
        target = getattr(message, field.name)
        if field.message_type is not None and field.message_type.GetOptions().map_entry:
            key_field, value_field = field.message_type.fields_by_name["key"], field.message_type.fields_by_name["value"]
            if value_field.message_type is not None:
                continue  # no map of messages in these contracts
            entries = draw(st.dictionaries(_scalar(key_field), _scalar(value_field), max_size=6))
            target.update(entries)
        elif field.message_type is not None:
            if depth >= 3:
                continue
            count = draw(st.integers(0, 3)) if field.is_repeated else 1
            for _ in range(count):
                child = target.add() if field.is_repeated else target
                _fill(draw, child, field.message_type, depth + 1)
                child.SetInParent()
        elif field.is_repeated:
            target.extend(draw(st.lists(_scalar(field), max_size=8)))
        else:
            setattr(message, field.name, draw(_scalar(field)))
    return message


@st.composite
def wire_bytes(draw: st.DrawFn, cls: type[Message]) -> bytes:
    """Bytes for a ``cls`` request: random, or a generated message's encoding truncated, extended or mutated."""
    how = draw(st.sampled_from(["random", "truncated", "extended", "flipped", "valid"]))
    if how == "random":
        return draw(st.binary(max_size=400))
    encoded = draw(messages(cls)).SerializeToString()
    if how == "truncated" and encoded:
        return encoded[:draw(st.integers(0, len(encoded) - 1))]
    if how == "extended":
        return encoded + draw(st.binary(min_size=1, max_size=60))
    if how == "flipped" and encoded:
        at = draw(st.integers(0, len(encoded) - 1))
        return encoded[:at] + bytes([encoded[at] ^ draw(st.integers(1, 255))]) + encoded[at + 1:]
    return encoded


# ---- calling an RPC of either kind, typed or raw ------------------------------------------------------------
class Rpc:
    """One method of a service: its full path, its request class and whether each side streams."""

    def __init__(self, service: str, name: str, request: type[Message], client_streams: bool,
                 server_streams: bool) -> None:
        self.path, self.name, self.request = f"/{service}/{name}", name, request
        self.client_streams, self.server_streams = client_streams, server_streams

    def __repr__(self) -> str:
        return self.name

    def call(self, channel: grpc.Channel, payloads: list[Any], raw: bool) -> grpc.StatusCode:
        """Sends ``payloads`` (one for a unary request) and reads the answer (the first message of a
        long-lived stream, all of them otherwise); returns the status code."""
        serialize = None if raw else (lambda m: m.SerializeToString())
        factory = {(False, False): channel.unary_unary, (False, True): channel.unary_stream,
                   (True, False): channel.stream_unary, (True, True): channel.stream_stream}
        method = factory[self.client_streams, self.server_streams](
            self.path, request_serializer=serialize, response_deserializer=None)
        request: Any = iter(payloads) if self.client_streams else payloads[0]
        try:
            if not self.server_streams:
                method(request, timeout=CALL_TIMEOUT)
                return grpc.StatusCode.OK
            call = method(request, timeout=CALL_TIMEOUT)
            try:
                if self.client_streams:  # PredictStream: one answer per request, then the end
                    for _ in call:
                        pass
                else:  # WatchModel / WatchTraining: the first message, then hang up
                    next(call, None)
            finally:
                call.cancel()
            code = call.code()
            return grpc.StatusCode.OK if code in (None, grpc.StatusCode.CANCELLED) else code
        except grpc.RpcError as err:
            code, details = err.code(), err.details() or ""
            assert code in DOCUMENTED, f"{self.name}: {code} {details[:500]!r}"
            # The server's own answer, bounded: a status message echoing a huge input breaks gRPC's metadata
            # limit and reaches the client as RESOURCE_EXHAUSTED "received metadata size exceeds ...".
            assert len(details) <= MESSAGE_BOUND and "metadata size" not in details, (self.name, details[:300])
            return code


def _methods(module: Any, service: str) -> list[Rpc]:
    descriptor = module.DESCRIPTOR.services_by_name[service]
    return [Rpc(descriptor.full_name, m.name, getattr(module, m.input_type.name), m.client_streaming,
                m.server_streaming) for m in descriptor.methods]


SEEN: Counter[str] = Counter()  # answers by RPC and code, over the session (printed by the slow tests)
SCORING_RPCS = _methods(scoring_pb2, "ScoringService")
TRAINING_RPCS = _methods(training_pb2, "TrainingService")
_TRAINING = {rpc.name: rpc for rpc in TRAINING_RPCS}
# Calls that once answered INTERNAL, kept as regressions (run first on every run).
TRAINING_REGRESSIONS = [
    (_TRAINING["ProfileData"], [b"\x00"], True),  # bytes that are not the message (gRPC's own INTERNAL)
    (_TRAINING["UploadData"], [b"\x0a\x01\xff"], True),  # a streamed chunk with a bad UTF-8 filename
    # a 100,000-character id echoed whole in the status message (over gRPC's metadata limit)
    (_TRAINING["CancelTraining"], [training_pb2.CancelTrainingRequest(job_id="x" * 100_000)], False),
    (_TRAINING["WatchTraining"], [training_pb2.WatchTrainingRequest(job_id="x" * 100_000)], False),
    (_TRAINING["ProfileData"], [training_pb2.ProfileDataRequest(dataset_id="x" * 100_000)], False),
    (_TRAINING["SubmitTraining"], [training_pb2.TrainingRequest(dataset_id="x" * 100_000)], False),
]


def _payloads(draw: st.DrawFn, rpc: Rpc, raw: bool) -> list[Any]:
    one = wire_bytes(rpc.request) if raw else messages(rpc.request)
    if rpc.client_streams:
        return draw(st.lists(one, min_size=0, max_size=4))
    return [draw(one)]


def _check(channel: grpc.Channel, rpc: Rpc, payloads: list[Any], raw: bool) -> None:
    code = rpc.call(channel, payloads, raw)
    event(f"{rpc.name} {'raw' if raw else 'typed'} -> {code.name}")  # --hypothesis-show-statistics
    SEEN[f"{rpc.name} {'raw' if raw else 'typed'} -> {code.name}"] += 1
    assert code in DOCUMENTED, f"{rpc.name}: {code}"


def _serving(channel: grpc.Channel, service: str = "") -> bool:
    health = health_pb2_grpc.HealthStub(channel)
    answer = health.Check(health_pb2.HealthCheckRequest(service=service), timeout=CALL_TIMEOUT)
    return answer.status == health_pb2.HealthCheckResponse.SERVING


# ---- the scoring service -----------------------------------------------------------------------------------
VALID_PREDICT = scoring_pb2.PredictRequest(customer=scoring_pb2.Customer(
    id="c1", numbers={"Age": 30, "Annual Income (k$)": 70, "Spending Score (1-100)": 60},
    categories={"Gender": "Female"}))


@pytest.fixture(scope="module")
def scoring(tmp_path_factory: pytest.TempPathFactory) -> Iterator[grpc.Channel]:
    """A real scoring server on loopback serving 'customers' (Mall, 5 segments); a channel to it."""
    store = ModelStore(tmp_path_factory.mktemp("fuzz-store"))
    model_factory.publish(store, "customers", "mall", k=5)
    server = start_server(store.root)
    channel = grpc.insecure_channel(f"127.0.0.1:{server.port}")
    yield channel
    channel.close()
    server.stop(grace=0)


def _scoring_still_serves(channel: grpc.Channel) -> None:
    from segmentation.v1 import scoring_pb2_grpc

    answer = scoring_pb2_grpc.ScoringServiceStub(channel).Predict(VALID_PREDICT, timeout=CALL_TIMEOUT)
    assert answer.id == "c1" and 0 <= answer.prediction.segment_id < 5 and answer.version
    assert _serving(channel)


MALL_NUMERIC = ["Age", "Annual Income (k$)", "Spending Score (1-100)"]
FEATURE_NAMES = st.sampled_from([*MALL_NUMERIC, "Gender", "Nope", "", "RepeatPurchases", "x" * 10_000])
SELECTORS = st.builds(scoring_pb2.ModelSelector, model=st.sampled_from(["", "customers", "other"]),
                      version=st.sampled_from(["", "v0001", "v0002", "v000000000001"]))


@st.composite
def near_valid_scoring(draw: st.DrawFn) -> tuple[Rpc, list[Any], bool]:
    """Requests close to valid ones (the model's feature names, a real selector) with hostile values, so the
    fuzzing reaches past the first check: NaN/inf/huge numbers, ragged or empty columns, unknown levels."""
    rpc = draw(st.sampled_from(SCORING_RPCS))
    selector = draw(SELECTORS)
    if rpc.name == "Predict":
        customer = scoring_pb2.Customer(id=draw(TEXT), numbers=draw(st.dictionaries(FEATURE_NAMES, FLOATS, max_size=4)),
                                        categories=draw(st.dictionaries(FEATURE_NAMES, TEXT, max_size=2)))
        return rpc, [scoring_pb2.PredictRequest(selector=selector, customer=customer)], False
    if rpc.name == "PredictStream":
        batches = []
        for _ in range(draw(st.integers(0, 3))):
            rows = draw(st.integers(0, 5))
            batch = scoring_pb2.PredictBatchRequest(batch_id=draw(TEXT), selector=selector)
            for name in draw(st.lists(FEATURE_NAMES, max_size=4)):
                size = rows if draw(st.integers(0, 4)) else draw(st.integers(0, 6))  # sometimes ragged
                if name == "Gender":
                    batch.categorical.add(name=name, values=draw(st.lists(TEXT, min_size=size, max_size=size)))
                else:
                    batch.numeric.add(name=name, values=draw(st.lists(FLOATS, min_size=size, max_size=size)))
            if draw(st.booleans()):
                batch.ids.extend(draw(st.lists(TEXT, min_size=rows, max_size=rows + 1)))
            batches.append(batch)
        return rpc, batches, False
    request = draw(messages(rpc.request))
    if request.DESCRIPTOR.fields_by_name.get("selector") is not None:
        request.selector.CopyFrom(selector)
    return rpc, [request], False


@st.composite
def scoring_calls(draw: st.DrawFn) -> tuple[Rpc, list[Any], bool]:
    """An RPC of the scoring service, a raw/typed flag and the payloads to send it (a third near-valid)."""
    if draw(st.integers(0, 2)) == 0:
        return draw(near_valid_scoring())
    rpc, raw = draw(st.sampled_from(SCORING_RPCS)), draw(st.booleans())
    return rpc, _payloads(draw, rpc, raw), raw


@QUICK
@given(call=scoring_calls())
def test_scoring_service_answers_fuzzed_calls_with_documented_codes(scoring: grpc.Channel, call) -> None:
    rpc, payloads, raw = call
    _check(scoring, rpc, payloads, raw)


def test_scoring_service_still_serves_after_the_fuzzing(scoring: grpc.Channel) -> None:
    # Runs after the quick property in this module (same server): a valid Predict and health SERVING.
    _scoring_still_serves(scoring)


@pytest.mark.slow
@LONG
@given(call=scoring_calls())
def test_scoring_service_long_fuzz(scoring: grpc.Channel, call) -> None:
    rpc, payloads, raw = call
    _check(scoring, rpc, payloads, raw)


# ---- the training service ----------------------------------------------------------------------------------
TRAINER_DIRS: dict[str, Path] = {}  # the training fixture's folders


@pytest.fixture(scope="module")
def training(tmp_path_factory: pytest.TempPathFactory, datasets_dir: Path) -> Iterator[tuple[grpc.Channel, str]]:
    """A real `python -m training_job serve` on loopback (uploads up to 1 MB) with Mall uploaded; a channel
    to it and the dataset id."""
    from tests.test_training_service import Trainer

    root = tmp_path_factory.mktemp("fuzz-trainer")
    trainer = Trainer(root / "store", root / "data", "--max-upload-mb", "1")
    dataset = trainer.client.upload(datasets_dir / "Mall_Customers.csv")
    channel = grpc.insecure_channel(trainer.target)
    TRAINER_DIRS["uploads"] = root / "data" / "uploads"
    yield channel, dataset.dataset_id
    channel.close()
    trainer.stop()


MALL_TOML = (Path(__file__).resolve().parents[1] / "training_job" / "presets" / "mall.toml").read_text()
TOML_VALUES = ["5", "-1", "0", "1", "999999999999999999999", "nan", "inf", "-inf", "0.5", "true", '"x"', '""',
               '"Age"', "[]", '["Age", "Nope"]', '[1, "a"]', "[[1]]", "{a = 1}", "1979-05-27", '"auto"', '"none"',
               '["Annual Income (k$)"]', '[0, ""]', '["", 5]', "[nan, inf]"]


@st.composite
def near_valid_toml(draw: st.DrawFn) -> str:
    """The mall preset with a few values replaced by TOML values of other types and ranges, lines dropped or
    unknown keys added."""
    lines = [line for line in MALL_TOML.splitlines() if not line.startswith("#")]
    for _ in range(draw(st.integers(1, 3))):
        at = draw(st.integers(0, len(lines) - 1))
        how = draw(st.sampled_from(["value", "value", "drop", "unknown"]))
        if how == "value" and "=" in lines[at]:
            lines[at] = lines[at].split("=", 1)[0] + "= " + draw(st.sampled_from(TOML_VALUES))
        elif how == "drop":
            del lines[at]
        else:
            lines.insert(at, f"{draw(st.sampled_from(['k', 'nope', 'numeric', 'style']))} = "
                             f"{draw(st.sampled_from(TOML_VALUES))}")
    return "\n".join(lines) + "\n"


CELLS = st.one_of(st.sampled_from(["", "1", "-0", "1e309", "nan", "inf", "NA", "\"", "\"a,b\"", "a\nb", "é",
                                    "2024-02-30", "12/31/1999", "9" * 400, "CustomerID", "Age"]),
                  st.text(max_size=8), st.integers().map(str), st.floats().map(repr))


@st.composite
def near_valid_upload(draw: st.DrawFn) -> list[training_pb2.DataChunk]:
    """A small delimited table of hostile cells (quotes, newlines, NaN, overflowing numbers, impossible dates),
    named with any of the accepted extensions (the format is told by content), in one or more chunks."""
    columns = draw(st.integers(1, 6))
    separator = draw(st.sampled_from([",", ";", "\t", "|", " "]))
    rows = draw(st.lists(st.lists(CELLS, min_size=columns, max_size=columns + 1), min_size=0, max_size=12))
    header = draw(st.lists(st.sampled_from(["CustomerID", "Age", "Genre", "Income", "", "Age", "x"]),
                           min_size=columns, max_size=columns))
    data = "\n".join(separator.join(row) for row in [header, *rows]).encode()
    if draw(st.booleans()):
        data = data.decode().encode("cp1252", errors="replace")
    name = "t" + draw(st.sampled_from([".csv", ".tsv", ".txt", ".parquet", ".xlsx", ".csv.gz", ""]))
    cut = draw(st.integers(0, len(data)))
    return [training_pb2.DataChunk(filename=name, data=data[:cut]), training_pb2.DataChunk(data=data[cut:])]


@st.composite
def training_calls(draw: st.DrawFn, dataset_id: str) -> tuple[Rpc, list[Any], bool]:
    """An RPC of the training service and its payloads; typed requests name the real dataset half the time,
    and a third of the training requests carry a near-valid TOML configuration."""
    rpc, raw = draw(st.sampled_from(TRAINING_RPCS)), draw(st.booleans())
    payloads = _payloads(draw, rpc, raw)
    if not raw and rpc.name == "UploadData" and draw(st.booleans()):
        return rpc, draw(near_valid_upload()), raw
    if not raw and rpc.request is training_pb2.TrainingRequest and draw(st.integers(0, 2)) == 0:
        payloads = [training_pb2.TrainingRequest(
            dataset_id=dataset_id, config_toml=draw(near_valid_toml()),
            k=draw(st.sampled_from(["", "auto", "5", "1", "²", "99999999999999999999"])),
            k_min=draw(st.sampled_from([0, 2, -3, 2**31 - 1])), k_max=draw(st.sampled_from([0, 3, -1, 2**31 - 1])),
            model=draw(st.sampled_from(["", "fuzz"])))]
        return rpc, payloads, raw
    if not raw and rpc.request is training_pb2.TrainingRequest and draw(st.booleans()):
        payloads[0].dataset_id = dataset_id
    if not raw and rpc.request is training_pb2.ProfileDataRequest and draw(st.booleans()):
        payloads[0].dataset_id = dataset_id
    return rpc, payloads, raw


def _cancel_accepted_jobs(channel: grpc.Channel) -> None:
    """A generated request valid enough to queue a job is cancelled at once (the machine has 2 cores)."""
    from segmentation.v1 import training_pb2_grpc

    stub = training_pb2_grpc.TrainingServiceStub(channel)
    for job in stub.ListTrainingJobs(training_pb2.ListTrainingJobsRequest(), timeout=CALL_TIMEOUT).jobs:
        if job.state in (training_pb2.QUEUED, training_pb2.RUNNING):
            try:
                stub.CancelTraining(training_pb2.CancelTrainingRequest(job_id=job.job_id), timeout=CALL_TIMEOUT)
            except grpc.RpcError as err:
                assert err.code() == grpc.StatusCode.FAILED_PRECONDITION, err


def _fuzz_training(channel: grpc.Channel, dataset_id: str, config: settings) -> None:
    @config
    @given(call=training_calls(dataset_id))
    def run(call: tuple[Rpc, list[Any], bool]) -> None:
        rpc, payloads, raw = call
        try:
            _check(channel, rpc, payloads, raw)
        finally:
            if rpc.name == "SubmitTraining":
                _cancel_accepted_jobs(channel)

    for regression in TRAINING_REGRESSIONS:
        run = example(call=regression)(run)
    run()


def _training_still_serves(channel: grpc.Channel, dataset_id: str) -> None:
    from segmentation.v1 import training_pb2_grpc

    stub = training_pb2_grpc.TrainingServiceStub(channel)
    profile = stub.ProfileData(training_pb2.ProfileDataRequest(dataset_id=dataset_id), timeout=60)
    assert profile.rows == 200
    assert _serving(channel)


def test_training_service_answers_fuzzed_calls_with_documented_codes(training: tuple[grpc.Channel, str]) -> None:
    channel, dataset_id = training
    _fuzz_training(channel, dataset_id, QUICK)
    _training_still_serves(channel, dataset_id)


@pytest.mark.slow
def test_training_service_long_fuzz(training: tuple[grpc.Channel, str]) -> None:
    channel, dataset_id = training
    _fuzz_training(channel, dataset_id, LONG)
    _training_still_serves(channel, dataset_id)
    print(sorted(SEEN.items()))


@pytest.mark.slow
def test_scoring_service_still_serves_after_the_long_fuzz(scoring: grpc.Channel) -> None:
    _scoring_still_serves(scoring)


def test_an_upload_in_progress_survives_a_job_starting(training: tuple[grpc.Channel, str],
                                                       datasets_dir: Path) -> None:
    """Found by the fuzz run: a job's child process swept the server's uploads folder as it started, so an
    upload in progress lost its file and answered UNKNOWN ("No such file or directory")."""
    import threading

    from segmentation.v1 import training_pb2_grpc

    channel, dataset_id = training
    stub = training_pb2_grpc.TrainingServiceStub(channel)
    job_running = threading.Event()
    content = (datasets_dir / "Mall_Customers.csv").read_bytes().rstrip(b"\r\n") + b"\n"
    content += b"".join(f"9{i:04d},Male,30,70,{i % 100}\n".encode() for i in range(50))  # other bytes than Mall's

    def chunks() -> Iterator[training_pb2.DataChunk]:
        yield training_pb2.DataChunk(filename="slow.csv", data=content[:100])  # the upload file now exists
        job_running.wait(timeout=120)
        yield training_pb2.DataChunk(data=content[100:])

    upload = stub.UploadData.future(chunks(), timeout=180)
    wait_for(lambda: any(TRAINER_DIRS["uploads"].iterdir()), timeout=30)
    job = stub.SubmitTraining(training_pb2.TrainingRequest(dataset_id=dataset_id, preset="mall"), timeout=30)
    try:
        for update in stub.WatchTraining(training_pb2.WatchTrainingRequest(job_id=job.job_id), timeout=120):
            if update.stage not in ("", "queued", "read") or update.state > training_pb2.RUNNING:
                break  # the child process runs past reading the dataset (or has ended)
    finally:
        job_running.set()
        _cancel_accepted_jobs(channel)
    stored = upload.result()
    assert stored.rows == 250 and stored.filename == "slow.csv"


def test_a_workbook_named_parquet_is_profiled_as_uploaded(training: tuple[grpc.Channel, str], tmp_path: Path,
                                                          datasets_dir: Path) -> None:
    """Found fuzzing UploadData: a ".parquet" upload was kept under the name of the table-as-read cache, so its
    raw bytes replaced the cache; an .xlsx named .parquet uploaded fine, then every ProfileData and
    SubmitTraining failed naming the server's path."""
    import io

    import pandas as pd

    from segmentation.v1 import training_pb2_grpc

    channel, _ = training
    stub = training_pb2_grpc.TrainingServiceStub(channel)
    workbook = io.BytesIO()
    pd.read_csv(datasets_dir / "Mall_Customers.csv").head(120).to_excel(workbook, index=False)
    stored = stub.UploadData(iter([training_pb2.DataChunk(filename="mall.parquet", data=workbook.getvalue())]),
                             timeout=60)
    assert (stored.rows, stored.column_count) == (120, 5)
    profile = stub.ProfileData(training_pb2.ProfileDataRequest(dataset_id=stored.dataset_id), timeout=60)
    assert profile.rows == 120 and [c.name for c in profile.columns][0] == "CustomerID"

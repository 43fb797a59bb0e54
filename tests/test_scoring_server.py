"""The scoring server, called over gRPC through the generated stubs (and wire.py for PredictStream).

Servers run in-process on ephemeral ports (``scoring_server_factory`` in conftest.py), one test runs the
real command line. Models are fitted with scikit-learn by ``tests/model_factory.py``; the reference for
every prediction is the artefact's own joblib pipeline.
"""
from __future__ import annotations

import gc
import logging
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path

import grpc
import joblib
import numpy as np
import pandas as pd
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

from scoring_service import wire
from segmentation.v1 import scoring_pb2 as pb
from segmentation.v1 import scoring_pb2_grpc
from segmentation_core.store import ModelStore
from tests import model_factory
from tests.server_support import MALL_CUSTOMER, start_server, wait_for

pytestmark = pytest.mark.timeout(120)
ROOT = Path(__file__).resolve().parents[1]
SERVING = health_pb2.HealthCheckResponse.SERVING
NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING


@pytest.fixture(scope="module")
def shared_store(tmp_path_factory: pytest.TempPathFactory) -> ModelStore:
    """A store with 'customers' (Mall, 5 k-means segments) and 'blobs' (100k x 7, 6 segments)."""
    store = ModelStore(tmp_path_factory.mktemp("scoring-store"))
    model_factory.publish(store, "customers", "mall", k=5)
    model_factory.publish(store, "blobs", "blobs", k=6)
    return store


@pytest.fixture()
def server(scoring_server_factory, shared_store: ModelStore):
    """A server on the shared store."""
    return scoring_server_factory(shared_store.root)


def _channel(server) -> grpc.Channel:
    return grpc.insecure_channel(f"127.0.0.1:{server.port}")


def _stub(server) -> scoring_pb2_grpc.ScoringServiceStub:
    return scoring_pb2_grpc.ScoringServiceStub(_channel(server))


def _pipeline(store: ModelStore, model: str, version: str = "v0001"):
    return joblib.load(store.version_dir(model, version) / "pipeline.joblib")


def _customer(row: pd.Series, numeric: list[str], categorical: list[str]) -> pb.Customer:
    return pb.Customer(id=str(row.name), numbers={c: float(row[c]) for c in numeric},
                       categories={c: str(row[c]) for c in categorical})


def _fresh_store(tmp_path: Path, versions: int = 1) -> ModelStore:
    store = ModelStore(tmp_path / "store")
    for seed in range(versions):
        model_factory.publish(store, "customers", "mall", k=5, seed=seed)
    return store


# ---- predictions equal the pipeline's ------------------------------------------------------------------
def test_predict_equals_the_pipeline_on_every_training_row(server, shared_store: ModelStore) -> None:
    data = model_factory.mall()
    expected = _pipeline(shared_store, "customers").predict(data.frame)
    stub = _stub(server)
    got = [stub.Predict(pb.PredictRequest(customer=_customer(row, data.numeric, data.categorical)))
           for _, row in data.frame.iterrows()]
    assert [r.prediction.segment_id for r in got] == expected.tolist()
    assert {r.version for r in got} == {"v0001"} and got[7].id == "7"
    assert got[0].prediction.segment_name == f"Segment {expected[0]}"
    assert all(0.0 <= r.prediction.confidence <= 1.0 and r.prediction.distance >= 0 for r in got)


def test_stream_equals_the_pipeline_on_100k_random_rows(server, shared_store: ModelStore) -> None:
    rng = np.random.default_rng(42)
    frame = model_factory.blobs().frame[model_factory.BLOB_NUMERIC]
    low, high = frame.min().to_numpy(), frame.max().to_numpy()
    random = pd.DataFrame(rng.uniform(low - 5, high + 5, size=(100_000, 7)), columns=model_factory.BLOB_NUMERIC)
    expected = _pipeline(shared_store, "blobs").predict(random)
    batches = [random.iloc[i:i + 10_000] for i in range(0, len(random), 10_000)]
    requests = (wire.encode_batch_request({c: b[c].to_numpy() for c in b.columns}, batch_id=f"b{i}",
                                          model="blobs") for i, b in enumerate(batches))
    results = [wire.decode_batch_response(r) for r in wire.predict_stream_method(_channel(server))(requests)]
    assert [r.batch_id for r in results] == [f"b{i}" for i in range(10)]
    assert np.array_equal(np.concatenate([r.segment_id for r in results]), expected)
    assert results[0].segment_names == [f"Segment {i}" for i in range(6)] and results[1].segment_names == []
    assert all(r.version == "v0001" and r.model == "blobs" and r.row_count == 10_000 for r in results)
    conf = np.concatenate([r.confidence for r in results])
    assert np.all((conf >= 0) & (conf <= 1))


def test_gaussian_mixture_predictions_equal_the_pipeline(scoring_server_factory, tmp_path: Path) -> None:
    store = ModelStore(tmp_path / "store")
    model_factory.publish(store, "customers", "mall", k=4, algorithm="gmm")
    server = scoring_server_factory(store.root)
    data = model_factory.mall()
    pipeline = _pipeline(store, "customers")
    expected, posterior = pipeline.predict(data.frame), pipeline.predict_proba(data.frame).max(axis=1)
    request = wire.encode_batch_request({c: data.frame[c].to_numpy(float) for c in data.numeric},
                                        {c: data.frame[c].astype(str).tolist() for c in data.categorical})
    [reply] = list(wire.predict_stream_method(_channel(server))(iter([request])))
    result = wire.decode_batch_response(reply)
    assert np.array_equal(result.segment_id, expected)
    assert np.allclose(result.confidence, posterior, rtol=1e-9, atol=1e-12)
    one = _stub(server).Predict(pb.PredictRequest(customer=_customer(data.frame.iloc[5], data.numeric,
                                                                     data.categorical)))
    assert one.prediction.segment_id == expected[5]
    assert one.prediction.confidence == pytest.approx(posterior[5], rel=1e-9)


def test_stream_with_categories_equals_the_pipeline_on_training_rows(server, shared_store: ModelStore) -> None:
    data = model_factory.mall()
    expected = _pipeline(shared_store, "customers").predict(data.frame)
    request = wire.encode_batch_request({c: data.frame[c].to_numpy(float) for c in data.numeric},
                                        {c: data.frame[c].astype(str).tolist() for c in data.categorical},
                                        batch_id="mall", ids=data.frame["CustomerID"].tolist())
    [reply] = list(wire.predict_stream_method(_channel(server))(iter([request])))
    result = wire.decode_batch_response(reply)
    assert np.array_equal(result.segment_id, expected)
    unary = _stub(server).Predict(pb.PredictRequest(customer=_customer(data.frame.iloc[3], data.numeric,
                                                                       data.categorical)))
    assert result.distance[3] == pytest.approx(unary.prediction.distance, rel=1e-12)
    assert result.confidence[3] == pytest.approx(unary.prediction.confidence, rel=1e-9)
    assert bool(result.outlier[3]) == unary.prediction.outlier


def test_missing_values_are_imputed_and_unseen_levels_are_other(server, shared_store: ModelStore) -> None:
    pipeline = _pipeline(shared_store, "customers")
    frame = pd.DataFrame({"Age": [np.nan, 40.0], "Annual Income (k$)": [60.0, 60.0],
                          "Spending Score (1-100)": [50.0, 50.0], "Gender": [None, "Robot"]})
    expected = pipeline.predict(frame)
    stub = _stub(server)
    first = stub.Predict(pb.PredictRequest(customer=pb.Customer(
        numbers={"Annual Income (k$)": 60, "Spending Score (1-100)": 50})))  # Age and Gender left out
    second = stub.Predict(pb.PredictRequest(customer=pb.Customer(
        numbers={"Age": 40, "Annual Income (k$)": 60, "Spending Score (1-100)": 50}, categories={"Gender": "Robot"})))
    assert [first.prediction.segment_id, second.prediction.segment_id] == expected.tolist()


# ---- PredictStream protocol ------------------------------------------------------------------------------
def test_stream_answers_every_request_in_order_with_row_and_batch_errors(server) -> None:
    cols = {f: np.arange(4, dtype=float) for f in model_factory.BLOB_NUMERIC}
    with_inf = {**cols, "f2": np.array([1.0, np.inf, 2.0, -np.inf])}
    blank_row = {f: np.array([np.nan, 1.0]) for f in model_factory.BLOB_NUMERIC}
    requests = [
        wire.encode_batch_request(cols, batch_id="good", model="blobs"),
        wire.encode_batch_request({**cols, "f6": np.ones(3)}, batch_id="ragged"),
        wire.encode_batch_request({**cols, "bogus": np.ones(4)}, batch_id="unknown"),
        wire.encode_batch_request({}, {"f1": ["a"] * 4}, batch_id="mistyped"),
        wire.encode_batch_request(with_inf, batch_id="inf"),
        b"\x0a\xff\xff\xff",  # a truncated field: undecodable
        wire.encode_batch_request(cols, batch_id="twice") + wire.encode_batch_request({"f0": np.ones(4)}),
        wire.encode_batch_request({}, batch_id="empty"),
        wire.encode_batch_request({"f0": np.array([0.5])}, batch_id="partial", model="customers"),
        wire.encode_batch_request(blank_row, batch_id="blank-row"),
        wire.encode_batch_request({}, ids=["a", "b"], batch_id="no-columns"),
    ]
    replies = [wire.decode_batch_response(r) for r in wire.predict_stream_method(_channel(server))(iter(requests))]
    assert [r.batch_id for r in replies] == ["good", "ragged", "unknown", "mistyped", "inf", "", "twice", "empty",
                                             "partial", "blank-row", "no-columns"]
    good, ragged, unknown, mistyped, inf, broken, twice, empty, partial, blank_row, no_columns = replies
    assert good.segment_id.size == 4 and not good.batch_error and not good.row_errors
    assert "ragged batch" in ragged.batch_error and "'f6' has 3 values" in ragged.batch_error
    assert ragged.segment_id.size == 0 and ragged.row_count == 4
    assert "unknown numeric feature 'bogus'; the model expects numeric features" in unknown.batch_error
    assert "'f1' is a numeric feature sent as categorical; the model expects categorical" in mistyped.batch_error
    assert inf.row_errors == {1: "f2: inf is not a finite number", 3: "f2: -inf is not a finite number"}
    assert inf.segment_id.tolist()[1::2] == [-1, -1] and np.isnan(inf.distance[1]) and np.isnan(inf.confidence[3])
    assert inf.segment_id.tolist()[0::2] == good.segment_id.tolist()[0::2]
    assert "undecodable" in broken.batch_error
    assert twice.batch_error == "column 'f0' appears twice" and twice.segment_id.size == 0
    assert empty.row_count == 0 and empty.segment_id.size == 0 and not empty.batch_error
    # A row missing every feature is a row error (nothing to score); a row with one value is imputed, as before.
    assert blank_row.row_errors == {0: "no feature values: nothing to score"} and blank_row.segment_id[0] == -1
    assert blank_row.segment_id[1] >= 0 and np.isnan(blank_row.confidence[0])
    assert no_columns.row_count == 2 and no_columns.row_errors == {0: "no feature values: nothing to score",
                                                                    1: "no feature values: nothing to score"}
    # One stream, one model: the selector of later requests does not switch models.
    assert {r.model for r in replies} == {"blobs"} and partial.segment_id.size == 1


def test_stream_a_client_that_does_not_read_stops_the_server_reading(server) -> None:
    """Flow control: the server reads only a bounded number of requests ahead of a client that sends
    but does not read its responses; once the client reads, every batch is answered, in order."""
    batch = wire.encode_batch_request({f: np.ones(20_000) for f in model_factory.BLOB_NUMERIC}, model="blobs")
    total, sent = 200, []  # 200 x 1.1 MB: far beyond what the transport's windows hold

    def requests():
        for i in range(total):
            sent.append(i)
            yield batch

    # The client's own receive window is fixed (no BDP probing): with it, the responses the client does not
    # read fill a window that gRPC grows from its bandwidth-delay estimate, larger when the machine is loaded
    # (ping round trips inflate it; 63 requests were taken under load 12-22), which is the client's memory,
    # not the server reading ahead. What is left to count is the server's pipeline and receive window.
    channel = grpc.insecure_channel(f"127.0.0.1:{server.port}", options=[("grpc.http2.bdp_probe", 0)])
    call = wire.predict_stream_method(channel)(requests())
    time.sleep(2.0)
    stalled_at = len(sent)
    time.sleep(1.0)
    assert len(sent) == stalled_at < 60, f"{len(sent)} requests taken from a client that reads nothing"
    replies = [wire.decode_batch_response(r) for r in call]
    assert len(replies) == total and all(r.row_count == 20_000 and not r.batch_error for r in replies)


def test_stream_keeps_its_version_while_a_new_one_is_swapped_in(scoring_server_factory, tmp_path: Path) -> None:
    store = _fresh_store(tmp_path)
    server = scoring_server_factory(store.root)
    row = {c: np.array([30.0]) for c in model_factory.MALL_NUMERIC}
    gate = threading.Event()

    def requests():
        yield wire.encode_batch_request(row, batch_id="before")
        gate.wait(20)
        yield wire.encode_batch_request(row, batch_id="after")

    call = wire.predict_stream_method(_channel(server))(requests())
    first = wire.decode_batch_response(next(call))
    model_factory.publish(store, "customers", "mall", k=4, seed=3)
    wait_for(lambda: server.registry.list_served().get("customers") == "v0002")
    gate.set()
    second = wire.decode_batch_response(next(call))
    assert first.version == second.version == "v0001"
    assert _stub(server).Predict(MALL_CUSTOMER).version == "v0002"


# ---- errors: status code and message ---------------------------------------------------------------------
@pytest.mark.parametrize("request_, code, words", [
    (pb.PredictRequest(customer=pb.Customer(numbers={"Height": 1.0})), grpc.StatusCode.INVALID_ARGUMENT,
     "unknown numeric feature 'Height'"),
    (pb.PredictRequest(customer=pb.Customer(categories={"Shoe size": "old"})), grpc.StatusCode.INVALID_ARGUMENT,
     "unknown categorical feature 'Shoe size'; the model expects categorical features ['Gender']"),
    (pb.PredictRequest(customer=pb.Customer(categories={"Age": "30"})), grpc.StatusCode.INVALID_ARGUMENT,
     "'Age' is a numeric feature sent as categorical; the model expects categorical features ['Gender']"),
    (pb.PredictRequest(customer=pb.Customer(numbers={"Gender": 1.0})), grpc.StatusCode.INVALID_ARGUMENT,
     "'Gender' is a categorical feature sent as numeric; the model expects numeric features ['Age', "),
    (pb.PredictRequest(customer=pb.Customer(numbers={"Age": float("inf")})), grpc.StatusCode.INVALID_ARGUMENT,
     "Age: inf is not a finite number"),
    (pb.PredictRequest(), grpc.StatusCode.INVALID_ARGUMENT, "no feature values: nothing to score"),
    (pb.PredictRequest(customer=pb.Customer(id="c1", numbers={"Age": float("nan")}, categories={"Gender": " "})),
     grpc.StatusCode.INVALID_ARGUMENT, "no feature values: nothing to score"),
    (pb.PredictRequest(selector=pb.ModelSelector(model="nope")), grpc.StatusCode.NOT_FOUND,
     "selector.model: unknown model 'nope'"),
    (pb.PredictRequest(selector=pb.ModelSelector(version="v0099")), grpc.StatusCode.NOT_FOUND,
     "selector.version: model 'customers' has no version 'v0099'"),
    (pb.PredictRequest(selector=pb.ModelSelector(version="latest")), grpc.StatusCode.INVALID_ARGUMENT,
     "selector.version: version 'latest' is not a version id"),
    (pb.PredictRequest(selector=pb.ModelSelector(model="../etc", version="v0001")), grpc.StatusCode.INVALID_ARGUMENT,
     "selector.model: model name '../etc' must be"),
], ids=["unknown-numeric", "unknown-categorical", "numeric-as-category", "category-as-number", "infinite", "empty",
        "only-blanks", "unknown-model", "unknown-version",
        "bad-version-id", "path-model"])
def test_predict_errors(server, request_: pb.PredictRequest, code: grpc.StatusCode, words: str) -> None:
    with pytest.raises(grpc.RpcError) as err:
        _stub(server).Predict(request_)
    assert err.value.code() == code
    assert words in err.value.details()


def test_other_rpc_errors(server) -> None:
    stub = _stub(server)
    with pytest.raises(grpc.RpcError) as err:
        stub.GetSegmentStats(pb.GetSegmentStatsRequest(max_sample=-1))
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT and "max_sample: -1" in err.value.details()
    with pytest.raises(grpc.RpcError) as err:
        stub.GetModelInfo(pb.GetModelInfoRequest(selector=pb.ModelSelector(model="nope")))
    assert err.value.code() == grpc.StatusCode.NOT_FOUND
    with pytest.raises(grpc.RpcError) as err:
        list(stub.WatchModel(pb.WatchModelRequest(selector=pb.ModelSelector(model="nope"))))
    assert err.value.code() == grpc.StatusCode.NOT_FOUND
    with pytest.raises(grpc.RpcError) as err:
        list(wire.predict_stream_method(_channel(server))(iter([wire.encode_batch_request({}, model="nope")])))
    assert err.value.code() == grpc.StatusCode.NOT_FOUND and "unknown model 'nope'" in err.value.details()


# ---- lifecycle -------------------------------------------------------------------------------------------
def test_health_is_not_serving_until_a_model_is_loaded(scoring_server_factory, tmp_path: Path) -> None:
    store = ModelStore(tmp_path / "store")
    server = scoring_server_factory(store.root, wait_serving=False)
    health = health_pb2_grpc.HealthStub(_channel(server))

    def status(service: str) -> int:
        return health.Check(health_pb2.HealthCheckRequest(service=service)).status

    assert status("") == NOT_SERVING and status("customers") == NOT_SERVING
    with pytest.raises(grpc.RpcError) as err:
        _stub(server).Predict(MALL_CUSTOMER)
    assert err.value.code() == grpc.StatusCode.UNAVAILABLE and "no loaded version" in err.value.details()
    model_factory.publish(store, "customers", "mall", k=5)
    wait_for(lambda: status("") == SERVING)
    assert status("customers") == SERVING
    assert _stub(server).Predict(MALL_CUSTOMER).version == "v0001"


def test_a_server_process_freezes_its_startup_objects_before_serving(scoring_server_factory, tmp_path: Path) -> None:
    # python -m scoring_service serves with freeze_gc: a full collection then walks only what came after
    # the first model, not the ~40,000 startup objects (15-25 ms with the GIL held, every call stalled).
    gc.unfreeze()
    store = ModelStore(tmp_path / "store")
    server = scoring_server_factory(store.root, wait_serving=False, freeze_gc=True)
    health = health_pb2_grpc.HealthStub(_channel(server))
    try:
        assert gc.get_freeze_count() == 0  # nothing served yet
        model_factory.publish(store, "customers", "mall", k=5)
        wait_for(lambda: health.Check(health_pb2.HealthCheckRequest(service="")).status == SERVING)
        frozen = gc.get_freeze_count()
        assert frozen > 10_000 and frozen > 5 * len(gc.get_objects())
        assert _stub(server).Predict(MALL_CUSTOMER).version == "v0001"
    finally:
        gc.unfreeze()


def test_reflection_lists_the_services(server) -> None:
    stub = reflection_pb2_grpc.ServerReflectionStub(_channel(server))
    [reply] = list(stub.ServerReflectionInfo(iter([reflection_pb2.ServerReflectionRequest(list_services="")])))
    names = {s.name for s in reply.list_services_response.service}
    assert {"segmentation.v1.ScoringService", "grpc.health.v1.Health"} <= names


def test_hot_swap_under_concurrent_calls_fails_nothing(scoring_server_factory, tmp_path: Path) -> None:
    store = _fresh_store(tmp_path)
    server = scoring_server_factory(store.root)
    stub = _stub(server)
    watched: list[str] = []
    watch = stub.WatchModel(pb.WatchModelRequest())

    def follow() -> None:
        try:
            for info in watch:
                watched.append(info.version)
        except grpc.RpcError as exc:
            assert exc.code() == grpc.StatusCode.CANCELLED

    threading.Thread(target=follow, daemon=True).start()
    stop = threading.Event()
    failures: list[BaseException] = []
    versions: set[str] = set()
    calls = [0]
    request = pb.PredictRequest(customer=pb.Customer(numbers={"Age": 30, "Annual Income (k$)": 80}))

    def caller() -> None:
        while not stop.is_set():
            try:
                versions.add(stub.Predict(request, timeout=5).version)
                calls[0] += 1
            except grpc.RpcError as exc:
                failures.append(exc)

    threads = [threading.Thread(target=caller) for _ in range(4)]
    for t in threads:
        t.start()
    for seed in range(1, 6):
        model_factory.publish(store, "customers", "mall", k=4 + seed % 2, seed=seed)
        time.sleep(0.15)
    wait_for(lambda: server.registry.list_served()["customers"] == "v0006")
    time.sleep(0.1)
    stop.set()
    for t in threads:
        t.join()
    watch.cancel()
    assert failures == [] and calls[0] > 50
    assert "v0006" in versions and len(versions) >= 2
    assert watched[0] == "v0001" and watched[-1] == "v0006" and watched == sorted(watched)


def test_a_tampered_version_is_refused_and_the_old_one_keeps_serving(scoring_server_factory, tmp_path: Path) -> None:
    store = _fresh_store(tmp_path)
    server = scoring_server_factory(store.root)
    bad = model_factory.publish(store, "customers", "mall", k=4, seed=1, make_current=False)
    params = store.version_dir("customers", bad) / "parameters.npz"
    data = bytearray(params.read_bytes())
    data[len(data) // 2] ^= 0x01
    params.write_bytes(bytes(data))
    store.set_current("customers", bad)
    stub = _stub(server)
    wait_for(lambda: any(v.refused_reason for m in stub.ListModels(pb.ListModelsRequest()).models for v in m.versions))
    [entry] = stub.ListModels(pb.ListModelsRequest()).models
    refused = {v.version: v.refused_reason for v in entry.versions}
    assert "checksum mismatch for parameters.npz" in refused[bad]
    assert entry.served_version == "v0001" and stub.Predict(MALL_CUSTOMER).version == "v0001"
    with pytest.raises(grpc.RpcError) as err:
        stub.Predict(pb.PredictRequest(selector=pb.ModelSelector(version=bad)))
    assert err.value.code() == grpc.StatusCode.NOT_FOUND and "was refused" in err.value.details()
    metrics = urllib.request.urlopen(f"http://127.0.0.1:{server.metrics_port}/metrics", timeout=5).read().decode()
    assert 'scoring_refused_versions_total{model="customers"} 1.0' in metrics
    # A good version published afterwards is served.
    model_factory.publish(store, "customers", "mall", k=5, seed=2)
    wait_for(lambda: stub.Predict(MALL_CUSTOMER).version == "v0003")


def test_a_pinned_version_answers_after_a_swap(scoring_server_factory, tmp_path: Path) -> None:
    store = _fresh_store(tmp_path, versions=2)
    server = scoring_server_factory(store.root)
    stub = _stub(server)
    pinned = stub.Predict(pb.PredictRequest(customer=MALL_CUSTOMER.customer,
                                            selector=pb.ModelSelector(version="v0001")))
    assert pinned.version == "v0001" and stub.Predict(MALL_CUSTOMER).version == "v0002"
    versions = {v.version: v for v in stub.ListModels(pb.ListModelsRequest()).models[0].versions}
    assert versions["v0001"].loaded and not versions["v0001"].current and versions["v0002"].current


# ---- information RPCs ------------------------------------------------------------------------------------
def test_model_info_and_segment_stats(server) -> None:
    stub = _stub(server)
    info = stub.GetModelInfo(pb.GetModelInfoRequest())
    assert (info.model, info.version, info.k, info.algorithm) == ("customers", "v0001", 5, "kmeans")
    assert [f.name for f in info.numeric_features] == model_factory.MALL_NUMERIC
    assert set(info.categorical_features[0].levels) == {"Female", "Male"}
    assert len(info.segments) == 5 and info.segments[0].outlier_distance > 0
    assert info.k_search[0].metrics["silhouette"] == 0.5 and info.quality["stability"] == 0.9
    stats = stub.GetSegmentStats(pb.GetSegmentStatsRequest(max_sample=50))
    assert len(stats.sample_segment_id) == 50 and len(stats.sample_map_x) == 50 and len(stats.centroid_map_x) == 5
    assert {c.name for c in stats.sample_numeric} == set(model_factory.MALL_NUMERIC)
    models = {m.name: m for m in stub.ListModels(pb.ListModelsRequest()).models}
    assert models["customers"].is_default and models["blobs"].served_version == "v0001"


@pytest.mark.parametrize("metrics_port, words", [(-1, "), metrics off, store "), (0, "), metrics on port ")],
                         ids=["off", "on"])
def test_the_start_line_says_whether_metrics_are_served(shared_store: ModelStore, caplog: pytest.LogCaptureFixture,
                                                         metrics_port: int, words: str) -> None:
    with caplog.at_level(logging.INFO, logger="scoring_service.server"):
        start_server(shared_store.root, metrics_port=metrics_port).stop(grace=0)
    [line] = [r.getMessage() for r in caplog.records if "scoring service listening on" in r.getMessage()]
    assert words in line and "port -1" not in line


def test_metrics_endpoint_serves_the_counters(server) -> None:
    stub = _stub(server)
    stub.Predict(MALL_CUSTOMER)
    with pytest.raises(grpc.RpcError):
        stub.Predict(pb.PredictRequest(selector=pb.ModelSelector(model="nope")))
    text = urllib.request.urlopen(f"http://127.0.0.1:{server.metrics_port}/metrics", timeout=5).read().decode()
    for line in ('scoring_calls_total{code="OK",method="Predict"} 1.0',
                 'scoring_calls_total{code="NOT_FOUND",method="Predict"} 1.0',
                 'scoring_call_seconds_count{code="OK",method="Predict"} 1.0',
                 'scoring_rows_total{model="customers"} 1.0',
                 'scoring_served_version{model="customers",version="v0001"} 1.0'):
        assert line in text
    assert "scoring_segment_rows_total" in text and "scoring_reloads_total" in text


# ---- TLS and token ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("tls", [False, True], ids=["plain", "tls"])
def test_token_is_checked_and_health_is_exempt(scoring_server_factory, shared_store: ModelStore, tmp_path: Path,
                                               certificate: tuple[Path, Path], tls: bool) -> None:
    cert, key = certificate
    token_file = tmp_path / "token"
    token_file.write_text("s3cret\n")
    options = {"tls_cert": str(cert), "tls_key": str(key)} if tls else {}
    server = scoring_server_factory(shared_store.root, token_file=str(token_file), **options)
    if tls:
        channel = grpc.secure_channel(f"localhost:{server.port}",
                                      grpc.ssl_channel_credentials(root_certificates=cert.read_bytes()))
    else:
        channel = grpc.insecure_channel(f"127.0.0.1:{server.port}")
    stub = scoring_pb2_grpc.ScoringServiceStub(channel)
    for metadata, words in (((), "missing bearer token"), ((("authorization", "Bearer wrong"),), "invalid")):
        with pytest.raises(grpc.RpcError) as err:
            stub.Predict(MALL_CUSTOMER, metadata=metadata)
        assert err.value.code() == grpc.StatusCode.UNAUTHENTICATED and words in err.value.details()
    with pytest.raises(grpc.RpcError) as err:
        list(wire.predict_stream_method(channel)(iter([wire.encode_batch_request({})])))
    assert err.value.code() == grpc.StatusCode.UNAUTHENTICATED
    good = (("authorization", "Bearer s3cret"),)
    assert stub.Predict(MALL_CUSTOMER, metadata=good).version == "v0001"
    [reply] = list(wire.predict_stream_method(channel)(iter([wire.encode_batch_request({"Age": [30.0]})]),
                                                        metadata=good))
    assert wire.decode_batch_response(reply).segment_id.size == 1
    health = health_pb2_grpc.HealthStub(channel)
    assert health.Check(health_pb2.HealthCheckRequest()).status == SERVING
    if tls:  # a plaintext caller cannot talk to a TLS server
        with pytest.raises(grpc.RpcError) as err:
            health_pb2_grpc.HealthStub(grpc.insecure_channel(f"127.0.0.1:{server.port}")).Check(
                health_pb2.HealthCheckRequest(), timeout=2)
        assert err.value.code() in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED)


# ---- the command line ------------------------------------------------------------------------------------
def test_command_line_serves_with_two_workers_and_drains_on_sigterm(shared_store: ModelStore, tmp_path: Path) -> None:
    port_file = tmp_path / "port"
    env = {"SCORING_STORE": str(shared_store.root), "SCORING_METRICS_PORT": "-1", "SCORING_WORKERS": "2",
           "PATH": "/usr/bin:/bin"}
    proc = subprocess.Popen([sys.executable, "-m", "scoring_service", "--port", "0", "--port-file", str(port_file),
                             "--log-format", "json"], cwd=ROOT, env=env, stderr=subprocess.PIPE, text=True)
    try:
        wait_for(port_file.exists, timeout=30)
        channel = grpc.insecure_channel(f"127.0.0.1:{int(port_file.read_text())}")
        health = health_pb2_grpc.HealthStub(channel)
        wait_for(lambda: health.Check(health_pb2.HealthCheckRequest()).status == SERVING, timeout=30)
        assert scoring_pb2_grpc.ScoringServiceStub(channel).Predict(MALL_CUSTOMER).model == "customers"
        # A stream in flight when SIGTERM arrives is drained: its later batches are still answered.
        signalled = threading.Event()

        def requests():
            yield wire.encode_batch_request({"Age": [30.0]}, batch_id="before")
            signalled.wait(20)
            time.sleep(0.3)
            yield wire.encode_batch_request({"Age": [40.0]}, batch_id="after")

        call = wire.predict_stream_method(channel)(requests())
        first = wire.decode_batch_response(next(call))
        proc.send_signal(signal.SIGTERM)
        signalled.set()
        rest = [wire.decode_batch_response(r) for r in call]
        assert [first.batch_id] + [r.batch_id for r in rest] == ["before", "after"]
        assert proc.wait(timeout=30) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
    logs = proc.stderr.read()
    listening = [line for line in logs.splitlines() if "scoring service listening on 127.0.0.1:" in line]
    assert len(listening) == 2 and '"message": "received SIGTERM"' in logs
    assert logs.count("scoring service stopped") == 2

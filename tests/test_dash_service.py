"""The dashboard's data layer against a real scoring server: proto -> view conversion, the watch thread's
states, error mapping.

Servers run in-process on loopback ports (`start_server`) with stores published by `tests/model_factory.py`;
the dashboard uses its real client (`default_client_factory`). Outages are real: the server is stopped,
and recovery is a new server on the same port. The few cases a real server cannot produce keep a small
fake, each saying why.
"""
from __future__ import annotations

import dataclasses
import json
import threading
import time
from pathlib import Path
from typing import Any, Callable, Iterator

import grpc
import joblib
import numpy as np
import pytest

from dash_ui.models import BASE_SEGMENT_ID, fallback_colour, model_view, sample_view, separating_features
from dash_ui.service import (DOWN, NO_MODEL, OK, DashboardService, ServiceError, default_client_factory,
                             friendly_error)
from scoring_service.client import ModelInfo, ScoringClient, ScoringError, SegmentStats, convert
from scoring_service.server import ScoringServer
from segmentation.v1 import scoring_pb2
from segmentation_core.store import ModelStore
from tests import model_factory
from tests.server_support import start_server, target, wait_for

pytestmark = pytest.mark.timeout(120)
NUMERIC = model_factory.MALL_NUMERIC
K = 5


# ---- helpers shared with test_dash_app.py -------------------------------------------------------------

class Dashboards:
    """Builds `DashboardService`s with their real client and closes them all after a test."""

    def __init__(self) -> None:
        self.services: list[DashboardService] = []
        self.clients: list[Any] = []

    def service(self, address: str, *, factory: Callable[[], Any] | None = None, **kwargs: Any) -> DashboardService:
        """A DashboardService on `address`, through `default_client_factory` unless `factory` is given."""
        make = factory or default_client_factory(address)

        def tracked() -> Any:
            client = make()
            self.clients.append(client)
            return client

        service = DashboardService(address, tracked, **kwargs)
        self.services.append(service)
        return service

    def close(self) -> None:
        """Stop every service and close its channel (ends a watch stream still open on a shared server)."""
        for service in self.services:
            service.stop()
        for client in self.clients:
            close = getattr(client, "close", None)
            if close is not None:
                close()


class NoColours(grpc.ServerInterceptor):
    """Blanks Segment.colour in what the real server sends, as a server older than that field would."""

    METHODS = ("/GetModelInfo", "/WatchModel", "/GetSegmentStats")

    def intercept_service(self, continuation: Callable, details: grpc.HandlerCallDetails) -> Any:
        """Wrap the handlers that send segments; pass the others on."""
        handler = continuation(details)
        if handler is None or not details.method.endswith(self.METHODS):
            return handler
        if handler.unary_stream:
            def stream(request: Any, context: grpc.ServicerContext) -> Iterator[Any]:
                for message in handler.unary_stream(request, context):
                    yield self._blank(message)
            return grpc.unary_stream_rpc_method_handler(stream, handler.request_deserializer,
                                                        handler.response_serializer)

        def unary(request: Any, context: grpc.ServicerContext) -> Any:
            return self._blank(handler.unary_unary(request, context))
        return grpc.unary_unary_rpc_method_handler(unary, handler.request_deserializer, handler.response_serializer)

    @staticmethod
    def _blank(message: Any) -> Any:
        copy = type(message)()
        copy.CopyFrom(message)  # the registry's message is shared by every caller: never change it
        for segment in copy.segments:
            segment.colour = ""
        return copy


class Slow(grpc.ServerInterceptor):
    """Delays the answers of the methods named (a loaded or far-away server); the answers stay the real ones."""

    def __init__(self, seconds: float, *methods: str) -> None:
        self.seconds = seconds
        self.methods = tuple(f"/{m}" for m in methods)
        self.started: list[str] = []  # the calls that reached the server, finished or not

    def intercept_service(self, continuation: Callable, details: grpc.HandlerCallDetails) -> Any:
        """Wrap the unary handlers named; pass the others on."""
        handler = continuation(details)
        if handler is None or not handler.unary_unary or not details.method.endswith(self.methods):
            return handler

        def unary(request: Any, context: grpc.ServicerContext) -> Any:
            self.started.append(details.method)
            time.sleep(self.seconds)
            return handler.unary_unary(request, context)
        return grpc.unary_unary_rpc_method_handler(unary, handler.request_deserializer, handler.response_serializer)


@pytest.fixture()
def dashboards() -> Iterator[Dashboards]:
    """Dashboard services on real clients, closed after the test."""
    made = Dashboards()
    yield made
    made.close()


@pytest.fixture()
def servers(scoring_server_factory: Callable[..., ScoringServer]) -> Callable[..., ScoringServer]:
    """Start servers of this test's own (`start_server`'s arguments); all stopped after (conftest)."""
    return scoring_server_factory


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> ModelStore:
    """A store with one version (v0001) of 'customers': Mall customers, 5 k-means segments."""
    store = ModelStore(tmp_path_factory.mktemp("dash-store"))
    model_factory.publish(store, "customers", "mall", k=K)
    return store


@pytest.fixture(scope="module")
def server(store: ModelStore) -> Iterator[ScoringServer]:
    """One server for the module's tests that do not stop it."""
    server = start_server(store.root)
    yield server
    server.stop(grace=0)


@pytest.fixture()
def client(server: ScoringServer) -> Iterator[ScoringClient]:
    """A scoring client of the shared server, to read what it sends."""
    with ScoringClient(target(server)) as client:
        yield client


def manifest(store: ModelStore, version: str = "v0001") -> dict[str, Any]:
    """The published manifest of a version."""
    return json.loads((store.version_dir("customers", version) / "manifest.json").read_text())


def fresh_store(tmp_path: Path) -> ModelStore:
    """A store of this test's own with v0001 of 'customers' (for tests that publish more)."""
    store = ModelStore(tmp_path / "store")
    model_factory.publish(store, "customers", "mall", k=K)
    return store


# ---- conversions ------------------------------------------------------------------------------------

def test_model_view_carries_schema_segments_stats_and_k_search(client, store):
    view = model_view(client.model_info())
    published = manifest(store)
    assert (view.model, view.version, view.k) == ("customers", "v0001", K)
    assert view.numeric_names == NUMERIC
    assert view.feature_names == [*NUMERIC, "Gender"]
    assert view.categorical_features[0].levels == ("Female", "Male")
    assert view.segment_names == {i: f"Segment {i}" for i in range(K)}
    for s in published["segments"]:
        assert view.segment(s["id"]).centroid == pytest.approx(s["centroid"])
        assert view.segment(s["id"]).size == s["size"]
    assert sum(view.segment(i).size for i in range(K)) == 200
    assert list(view.k_table.index) == [K] and view.k_table.loc[K, "inertia"] == pytest.approx(1.0)
    base = view.stats[view.stats.segment_id == BASE_SEGMENT_ID]
    assert set(base.feature) == set(NUMERIC) and (base["count"] == 200).all()
    ages = model_factory.mall().frame["Age"]
    assert base.set_index("feature").loc["Age", "mean"] == pytest.approx(ages.mean())
    assert len(view.stats) == (K + 1) * len(NUMERIC)
    female = view.level_shares.query("segment_id == 1 and level == 'Female'")["share"].item()
    assert female == pytest.approx(published["segments"][1]["categories"]["Gender"]["Female"])


def test_segment_colours_are_the_service_s(client):
    info = client.model_info()
    sent = {s.id: s.colour for s in info.segments}
    assert len(set(sent.values())) == K and all(sent.values())
    view = model_view(info)
    assert view.segment_colours == sent
    assert all(sent[i] != fallback_colour(i) for i in range(K))  # else the next test could not tell them apart


def test_a_server_that_sends_no_colours_gets_the_fallback(servers, store):
    # The real server always sends Segment.colour; a server older than that field is this one with the
    # colours blanked on the wire by an interceptor.
    older = servers(store.root, interceptors=[NoColours()])
    with ScoringClient(target(older)) as client:
        info = client.model_info()
    assert [s.colour for s in info.segments] == [""] * K
    view = model_view(info)
    assert view.segment_colours == {i: fallback_colour(i) for i in range(K)}
    assert view.segment(1).colour == fallback_colour(1) != fallback_colour(0)


def test_separating_features_ranks_by_between_segment_variance_and_keeps_schema_order(client, store):
    view = model_view(client.model_info())
    # The between-segment share of each feature's variance, from the raw data and the model's own labels.
    frame = model_factory.mall().frame
    labels = joblib.load(store.version_dir("customers", "v0001") / "pipeline.joblib").predict(frame)
    score = {}
    for name in NUMERIC:
        x = frame[name].to_numpy(float)
        score[name] = sum((labels == j).mean() * (x[labels == j].mean() - x.mean()) ** 2 for j in range(K)) / x.var()
    ranked = sorted(NUMERIC, key=lambda n: -score[n])
    assert ranked == ["Spending Score (1-100)", "Age", "Annual Income (k$)"]  # rank order is not schema order
    assert separating_features(view, 1) == ["Spending Score (1-100)"]
    assert separating_features(view, 2) == ["Age", "Spending Score (1-100)"]
    assert separating_features(view, 3) == NUMERIC


def test_sample_view_has_features_projection_names_and_centroids(client, store):
    info = client.model_info()
    stats = client.segment_stats(max_sample=0)
    sample = sample_view(stats, model_view(info).segment_names)
    ids = list(stats.sample_segment_id)
    assert len(ids) == 200 and set(ids) == set(range(K))
    assert list(sample.frame["segment"]) == [f"Segment {i}" for i in ids]
    assert sample.has_projection and sample.has_projection_3d
    stored = np.load(store.version_dir("customers", "v0001") / "sample.npz", allow_pickle=False)
    assert list(sample.frame["Gender"]) == [str(v) for v in stored["cat:Gender"]]
    assert list(sample.frame["Age"]) == pytest.approx(list(stored["num:Age"]))
    centroids = sample.centroids.set_index("segment_id")
    assert centroids.loc[1, "map_y"] == pytest.approx(stats.centroid_map["y"][1])
    income = manifest(store)["segments"][0]["centroid"]["Annual Income (k$)"]
    assert centroids.loc[0, "Annual Income (k$)"] == pytest.approx(income)
    # A server without the 3-D map (the real one always sends it): its answer with those columns left out.
    flat = dataclasses.replace(stats, sample_map={axis: v for axis, v in stats.sample_map.items() if axis != "z"})
    flat_view = sample_view(flat, model_view(info).segment_names)
    assert flat_view.has_projection and not flat_view.has_projection_3d


# ---- the service ------------------------------------------------------------------------------------

def test_watch_follows_new_versions_and_outages_and_recovers(servers, dashboards, tmp_path):
    store = fresh_store(tmp_path)
    server = servers(store.root)
    service = dashboards.service(target(server), retry_seconds=0.05).start()
    wait_for(lambda: service.status().state == OK)
    assert service.status().version == "v0001"
    assert service.model_view().version == "v0001"

    assert model_factory.publish(store, "customers", "mall", k=K, seed=1) == "v0002"
    wait_for(lambda: service.status().version == "v0002")
    status = service.status()
    assert status.previous_version == "v0001" and status.changed_at
    assert service.model_view().version == "v0002"

    server.stop(grace=0)
    wait_for(lambda: service.status().state == DOWN)
    # The first failure may be a call the stopping server cancelled (CANCELLED); from the next attempt
    # on, the address refuses connections.
    wait_for(lambda: service.status().attempts >= 2)
    assert "does not answer" in service.status().message
    assert service.cached_model_view().version == "v0002"  # the pages keep the last model seen

    servers(store.root, port=server.port)  # back on the same address
    wait_for(lambda: service.status().state == OK)
    assert service.status().attempts == 0 and service.status().version == "v0002"


def test_a_service_without_a_model_is_told_apart_from_a_dead_one(servers, dashboards, tmp_path):
    store = ModelStore(tmp_path / "empty")
    server = servers(store.root, wait_serving=False)
    service = dashboards.service(target(server), retry_seconds=0.05).start()
    wait_for(lambda: service.status().state == NO_MODEL)
    assert "serves no model" in service.status().message
    model_factory.publish(store, "customers", "mall", k=K)
    wait_for(lambda: service.status().state == OK)
    assert service.status().version == "v0001"


def _segment_stats_calls(server: ScoringServer) -> float:
    return server.metrics.registry.get_sample_value(
        "scoring_calls_total", {"method": "GetSegmentStats", "code": "OK"}) or 0.0


def test_the_sample_is_bounded_and_fetched_once_per_version(server, dashboards):
    before = _segment_stats_calls(server)  # the server's own count of the calls it answered
    service = dashboards.service(target(server), max_sample=50)  # the stored sample has 200 rows
    first = service.sample()
    again = service.sample()
    assert first is again and len(first.frame) == 50 and first.version == "v0001"
    assert _segment_stats_calls(server) - before == 1


def test_errors_reach_pages_as_sentences_with_their_code(server, store, servers, dashboards):
    service = dashboards.service(target(server))
    customer = model_factory.mall().frame.iloc[[7]]
    expected = int(joblib.load(store.version_dir("customers", "v0001") / "pipeline.joblib").predict(customer)[0])
    prediction = service.predict(customer[[*NUMERIC, "Gender"]].iloc[0].to_dict())
    assert (prediction.segment_id, prediction.segment_name) == (expected, f"Segment {expected}")
    assert (prediction.model, prediction.version, prediction.outlier) == ("customers", "v0001", False)
    assert 0 <= prediction.confidence <= 1 and prediction.distance >= 0
    with pytest.raises(ServiceError) as err:
        service.predict({"bad": 1})
    assert err.value.code == "INVALID_ARGUMENT"
    assert err.value.message.startswith("unknown numeric feature 'bad'; the model expects numeric features")

    gone = servers(store.root)
    gone.stop(grace=0)
    dead = dashboards.service(target(gone))
    with pytest.raises(ServiceError) as err:
        dead.model_view()
    assert err.value.code == "UNAVAILABLE" and target(gone) in err.value.message
    assert "does not answer" in err.value.message


def test_a_missing_client_module_is_a_service_error_not_a_crash():
    # No server needed or possible: the client cannot even be built.
    def broken():
        raise ImportError("No module named 'scoring_service.client'")

    service = DashboardService("127.0.0.1:1", broken)
    with pytest.raises(ServiceError, match="Cannot create the scoring client") as err:
        service.model_view()
    assert err.value.code == "UNAVAILABLE" and "No module named" in err.value.message


def test_a_call_past_its_deadline_did_not_answer_in_time(servers, store, dashboards):
    slow = servers(store.root, interceptors=[Slow(1.0, "GetModelInfo")])
    hasty = dashboards.service(target(slow), factory=default_client_factory(target(slow), timeout=0.2))
    with pytest.raises(ServiceError) as err:
        hasty.model_view()
    assert err.value.code == "DEADLINE_EXCEEDED" and "did not answer in time" in err.value.message


def test_an_unknown_version_is_the_server_s_own_words(client, server):
    with pytest.raises(ScoringError) as raw:
        client.model_info(version="v9999")
    err = friendly_error(raw.value, target(server))
    assert err.code == "NOT_FOUND" and err.message == raw.value.message
    assert "no version 'v9999'" in err.message


def test_a_server_that_wants_a_token_refuses_the_dashboard_s_credentials(servers, store, dashboards, tmp_path):
    token = tmp_path / "token"
    token.write_text("s3cret\n")
    guarded = servers(store.root, token_file=str(token))
    with pytest.raises(ServiceError) as err:
        dashboards.service(target(guarded)).model_view()
    assert err.value.code == "UNAUTHENTICATED"
    assert "refused the dashboard's credentials (missing bearer token)" in err.value.message
    allowed = dashboards.service(target(guarded), factory=default_client_factory(target(guarded), token="s3cret"))
    assert allowed.model_view().version == "v0001"


def test_sample_listeners_hear_of_each_version_once_its_sample_is_here(servers, dashboards, tmp_path):
    store = fresh_store(tmp_path)
    server = servers(store.root)
    heard: list[str] = []
    service = dashboards.service(target(server), retry_seconds=0.05)
    service.on_sample(lambda view: heard.append(view.version))  # nothing served yet: not called
    service.on_sample(lambda view: 1 / 0)  # a failing listener is logged, the others still hear
    assert heard == []
    service.start()
    wait_for(lambda: "v0001" in heard)
    model_factory.publish(store, "customers", "mall", k=K, seed=1)
    wait_for(lambda: "v0002" in heard)
    assert heard == ["v0001", "v0002"]  # each version once, in order
    late: list[str] = []
    service.on_sample(lambda view: late.append(view.version))  # registered after: called at once
    wait_for(lambda: late == ["v0002"])


def test_the_first_version_is_fetched_and_announced_once(servers, store, dashboards):
    # The real server, its GetSegmentStats slowed so that the first prefetch is still running when the
    # watch stream's first message arrives (otherwise that happens by chance, 1 run in 3 here).
    slow = Slow(1.0, "GetSegmentStats")
    server = servers(store.root, interceptors=[slow])
    heard: list[str] = []
    service = dashboards.service(target(server), retry_seconds=0.05)
    service.on_sample(lambda view: heard.append(view.version))
    service.start()
    wait_for(lambda: heard)
    started = len(slow.started)  # a second prefetch, if any, began before the first one ended
    wait_for(lambda: _segment_stats_calls(server) == started)
    wait_for(lambda: len(heard) == started)
    assert started == 1 and heard == ["v0001"]


class SilentWatch(ScoringClient):
    """The real client, but its watch stream goes quiet after the first answer.

    The real server ends its WatchModel streams when it stops, so it cannot show the case the health probe
    is for: a stream re-opened (wait_for_ready) just as the server went away, waiting without a word.
    """

    quiet = threading.Event()  # the first answer is taken: from now on the stream says nothing
    released = threading.Event()

    def watch(self, model: str | None = None, *, reconnect: bool = True) -> Iterator[ModelInfo]:
        """The real first ModelInfo, then silence until the test releases it."""
        real = super().watch(model, reconnect=reconnect)
        for first in real:
            real.close()
            yield first
            break
        self.quiet.set()
        self.released.wait(60)


def test_an_outage_the_watch_stream_misses_is_seen_by_the_health_probe(servers, dashboards, tmp_path):
    store = fresh_store(tmp_path)
    server = servers(store.root)
    address = target(server)
    SilentWatch.quiet.clear()
    SilentWatch.released.clear()
    service = dashboards.service(address, factory=lambda: SilentWatch(address, timeout=5.0, retries=1),
                                 retry_seconds=0.05)
    prefetched = threading.Event()  # a prefetch failing in the outage would mark it instead (see below)
    service.on_sample(lambda view: prefetched.set())
    service.start()
    try:
        wait_for(lambda: service.status().state == OK and SilentWatch.quiet.is_set() and prefetched.is_set())
        server.stop(grace=0)
        wait_for(lambda: service.status().state == DOWN)
        assert "does not answer" in service.status().message
        assert service.status().version == "v0001"  # only the probe saw it: the watch still waits
        servers(store.root, port=server.port)  # answers again: the probe alone clears the outage
        wait_for(lambda: service.status().state == OK)
        assert service.status().attempts == 0 and service.status().version == "v0001"
    finally:
        SilentWatch.released.set()


def test_a_call_that_timed_out_once_is_not_an_outage_for_ever(servers, store, dashboards):
    slow = servers(store.root, interceptors=[Slow(1.0, "GetSegmentStats")])
    service = dashboards.service(target(slow), factory=default_client_factory(target(slow), timeout=0.5),
                                 retry_seconds=0.05).start()
    wait_for(lambda: service.status().state == DOWN)  # the sample prefetch timed out
    assert "did not answer in time" in service.status().message
    with ScoringClient(target(slow)) as check:
        assert check.health() == "SERVING"  # the server answers: the probe runs every second
    wait_for(lambda: service.status().state == OK, timeout=4)


# ---- kept for other modules -----------------------------------------------------------------------------
# tests/test_dash_batch.py builds its ModelView from this designed ModelInfo (pure functions, no service),
# and tests/test_plotly_bundle.py draws its pages from FakeClient (it tests the plotly.js bundle, not the
# service). Those files are not this module's; what they use stays, the rest of the old fake is gone.

SEGMENTS = ["Target Group", "Careful Spenders"]
#: The segments' colours in the designed ModelInfo; of no palette the dashboard knows.
COLOURS = ["#1B9E77", "#D95F02"]


def model_info(version: str = "v0001", colours: list[str] = COLOURS) -> ModelInfo:
    """A designed two-segment ModelInfo (segment 0 differs from the base by spending mostly; Age barely moves),
    as the client returns it."""
    return convert.model_info(model_info_message(version, colours))


def model_info_message(version: str = "v0001", colours: list[str] = COLOURS) -> scoring_pb2.ModelInfo:
    """The designed ModelInfo as the server sends it."""
    info = scoring_pb2.ModelInfo(model="customers", version=version, created_at="2026-11-22T03:00:00Z",
                                 algorithm="kmeans", k=2, k_rule="silhouette", training_rows=200,
                                 training_customers=200, data_source="Mall_Customers.csv",
                                 data_fingerprint="sha256:abc")
    for name, lo, hi, med in (("Age", 18, 70, 36), ("Annual Income (k$)", 15, 137, 61.5),
                              ("Spending Score (1-100)", 1, 99, 50)):
        info.numeric_features.add(name=name, minimum=lo, maximum=hi, impute=med, skew="none")
    info.categorical_features.add(name="Gender", levels=["Female", "Male"], impute="Female")
    # Segment 0 differs from the base by spending mostly; Age barely moves.
    means = {0: {"Age": 33, "Annual Income (k$)": 86, "Spending Score (1-100)": 82},
             1: {"Age": 41, "Annual Income (k$)": 88, "Spending Score (1-100)": 17}}
    for sid, name in enumerate(SEGMENTS):
        seg = info.segments.add(id=sid, name=name, description=f"{name} ...", action="Do something",
                                size=100, share=0.5, outlier_distance=2.5, colour=colours[sid])
        for f in NUMERIC:
            seg.centroid[f] = means[sid][f]
            seg.stats.add(feature=f, mean=means[sid][f], median=means[sid][f], min=0, max=100, std=5)
        seg.levels.add(feature="Gender", level="Female", share=0.6)
    for f, mean in (("Age", 37), ("Annual Income (k$)", 87), ("Spending Score (1-100)", 49.5)):
        info.base_stats.add(feature=f, mean=mean, median=mean, min=0, max=100, std=20)
    for k, sil in ((2, 0.4), (3, 0.3)):
        row = info.k_search.add(k=k)
        row.metrics["silhouette"] = sil
        row.metrics["inertia"] = 100.0 / k
    info.quality["stability"] = 0.93
    return info


def segment_stats(version: str = "v0001") -> SegmentStats:
    """A designed SegmentStats: the designed segments and a four-customer sample with its 2-D map."""
    stats = scoring_pb2.SegmentStats(model="customers", version=version)
    stats.segments.extend(model_info_message(version).segments)
    stats.sample_numeric.add(name="Age", values=[20, 30, 40, 50])
    stats.sample_categorical.add(name="Gender", values=["Male", "Female", "Female", "Male"])
    stats.sample_segment_id.extend([0, 0, 1, 1])
    stats.sample_map_x.extend([0.1, 0.2, -0.1, -0.2])
    stats.sample_map_y.extend([1.0, 1.1, -1.0, -1.1])
    stats.centroid_map_x.extend([0.15, -0.15])
    stats.centroid_map_y.extend([1.05, -1.05])
    return convert.segment_stats(stats)


class FakeClient:
    """The two calls tests/test_plotly_bundle.py's app makes (its browser test draws the overview from them)."""

    def model_info(self, model: str | None = None, version: str | None = None, *,
                   include_profile: bool = False) -> ModelInfo:
        """The designed ModelInfo (the real client's signature: scoring_service.client.protocol)."""
        return model_info()

    def segment_stats(self, model: str | None = None, version: str | None = None,
                      max_sample: int = 0) -> SegmentStats:
        """The designed four-customer sample (the real client's signature)."""
        return segment_stats()

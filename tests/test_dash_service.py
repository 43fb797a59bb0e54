"""The dashboard's data layer: proto -> view conversion, the watch thread's states, error mapping.

A fake client stands in for `scoring_service.client.ScoringClient` (same method names), so these run
without a server; the browser tests use the real one.
"""
from __future__ import annotations

import threading
import time

import grpc
import pytest

from scoring_service.client import Prediction
from segmentation.v1 import scoring_pb2

from dash_ui.models import (BASE_SEGMENT_ID, fallback_colour, model_view_from_proto, sample_view_from_proto,
                            separating_features)
from dash_ui.service import DOWN, NO_MODEL, OK, DashboardService, ServiceError, friendly_error

NUMERIC = ["Age", "Annual Income (k$)", "Spending Score (1-100)"]
SEGMENTS = ["Target Group", "Careful Spenders"]
#: The segments' colours as the service sends them (Segment.colour); of no palette the dashboard knows.
COLOURS = ["#1B9E77", "#D95F02"]


def model_info(version: str = "v0001", colours: list[str] = COLOURS) -> scoring_pb2.ModelInfo:
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


def segment_stats(version: str = "v0001") -> scoring_pb2.SegmentStats:
    stats = scoring_pb2.SegmentStats(model="customers", version=version)
    stats.segments.extend(model_info(version).segments)
    stats.sample_numeric.add(name="Age", values=[20, 30, 40, 50])
    stats.sample_categorical.add(name="Gender", values=["Male", "Female", "Female", "Male"])
    stats.sample_segment_id.extend([0, 0, 1, 1])
    stats.sample_map_x.extend([0.1, 0.2, -0.1, -0.2])
    stats.sample_map_y.extend([1.0, 1.1, -1.0, -1.1])
    stats.centroid_map_x.extend([0.15, -0.15])
    stats.centroid_map_y.extend([1.05, -1.05])
    return stats


class Rpc(Exception):
    """A ScoringError look-alike: `.code` is a grpc.StatusCode."""

    def __init__(self, code: grpc.StatusCode, message: str) -> None:
        super().__init__(message)
        self.code = code


class FakeClient:
    """The ScoringClient methods the dashboard uses; `down`/`no_model` switch failures on."""

    def __init__(self) -> None:
        self.version = "v0001"
        self.down = False
        self.no_model = False
        self.changed = threading.Event()
        self.calls: list[str] = []

    def _check(self, health: bool = False) -> None:
        if self.down:
            raise Rpc(grpc.StatusCode.UNAVAILABLE, "failed to connect to all addresses; Connection refused")
        if self.no_model and not health:
            raise Rpc(grpc.StatusCode.UNAVAILABLE, "no model loaded yet")

    def health(self) -> str:
        self._check(health=True)
        return "SERVING"

    def model_info(self):
        self.calls.append("model_info")
        self._check()
        return model_info(self.version)

    def segment_stats(self, max_sample: int = 0):
        self.calls.append(f"segment_stats:{max_sample}")
        self._check()
        return segment_stats(self.version)

    def watch(self, reconnect: bool = True):
        while True:
            self._check()
            if self.changed.wait(0.05):
                self.changed.clear()
                self._check()
                yield model_info(self.version)

    def predict(self, customer, *, id=""):
        self._check()
        if "bad" in customer:
            raise Rpc(grpc.StatusCode.INVALID_ARGUMENT, "bad: unknown feature")

        return Prediction(segment_id=1, segment_name="Careful Spenders", distance=0.5, confidence=0.9,
                          outlier=False, model="customers", version=self.version)


def wait_for(predicate, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.02)
    raise AssertionError("condition not reached")


# ---- conversions ------------------------------------------------------------------------------------

def test_model_view_carries_schema_segments_stats_and_k_search():
    view = model_view_from_proto(model_info())
    assert view.numeric_names == NUMERIC
    assert view.feature_names == [*NUMERIC, "Gender"]
    assert view.categorical_features[0].levels == ("Female", "Male")
    assert view.segment_names == {0: "Target Group", 1: "Careful Spenders"}
    assert view.segment(1).centroid["Spending Score (1-100)"] == 17
    assert list(view.k_search.index) == [2, 3] and view.k_search.loc[3, "inertia"] == pytest.approx(100 / 3)
    base = view.stats[view.stats.segment_id == BASE_SEGMENT_ID]
    assert set(base.feature) == set(NUMERIC) and (base["count"] == 200).all()
    assert len(view.stats) == 3 * 3
    assert view.level_shares.iloc[0].to_dict()["share"] == pytest.approx(0.6)


def test_segment_colours_are_the_service_s_with_a_fallback_for_a_server_that_sends_none():
    assert model_view_from_proto(model_info()).segment_colours == {0: COLOURS[0], 1: COLOURS[1]}
    older = model_view_from_proto(model_info(colours=["", ""]))
    assert older.segment_colours == {0: fallback_colour(0), 1: fallback_colour(1)}
    assert older.segment(1).colour == fallback_colour(1) != fallback_colour(0)


def test_separating_features_ranks_by_between_segment_variance_and_keeps_schema_order():
    view = model_view_from_proto(model_info())
    assert separating_features(view, 1) == ["Spending Score (1-100)"]
    assert separating_features(view, 2) == ["Age", "Spending Score (1-100)"]


def test_sample_view_has_features_projection_names_and_centroids():
    view = model_view_from_proto(model_info())
    sample = sample_view_from_proto(segment_stats(), view.segment_names)
    assert list(sample.frame["segment"]) == ["Target Group"] * 2 + ["Careful Spenders"] * 2
    assert sample.has_projection and not sample.has_projection_3d
    assert list(sample.frame["Gender"]) == ["Male", "Female", "Female", "Male"]
    assert sample.centroids.set_index("segment_id").loc[1, "map_y"] == pytest.approx(-1.05)
    assert sample.centroids.set_index("segment_id").loc[0, "Annual Income (k$)"] == 86


# ---- the service ------------------------------------------------------------------------------------

def test_watch_follows_new_versions_and_outages_and_recovers():
    client = FakeClient()
    service = DashboardService("fake:1", lambda: client, retry_seconds=0.05).start()
    try:
        wait_for(lambda: service.status().state == OK)
        assert service.status().version == "v0001"
        assert service.model_view().version == "v0001"

        client.version = "v0002"
        client.changed.set()
        wait_for(lambda: service.status().version == "v0002")
        status = service.status()
        assert status.previous_version == "v0001" and status.changed_at
        assert service.model_view().version == "v0002"

        client.down = True
        wait_for(lambda: service.status().state == DOWN)
        assert "does not answer" in service.status().message
        wait_for(lambda: service.status().attempts >= 2)
        assert service.cached_model_view().version == "v0002"  # the pages keep the last model seen

        client.down = False
        wait_for(lambda: service.status().state == OK)
        assert service.status().attempts == 0
    finally:
        service.stop()


def test_a_service_without_a_model_is_told_apart_from_a_dead_one():
    client = FakeClient()
    client.no_model = True
    service = DashboardService("fake:1", lambda: client, retry_seconds=0.05).start()
    try:
        wait_for(lambda: service.status().state == NO_MODEL)
        assert "serves no model" in service.status().message
        client.no_model = False
        wait_for(lambda: service.status().state == OK)
    finally:
        service.stop()


def test_the_sample_is_bounded_and_fetched_once_per_version():
    client = FakeClient()
    service = DashboardService("fake:1", lambda: client, max_sample=1234)
    first = service.sample()
    again = service.sample()
    assert first is again
    assert client.calls.count("segment_stats:1234") == 1


def test_errors_reach_pages_as_sentences_with_their_code():
    client = FakeClient()
    service = DashboardService("fake:1", lambda: client)
    assert service.predict({"Age": 30}) == Prediction(1, "Careful Spenders", 0.5, 0.9, False, "customers", "v0001")
    with pytest.raises(ServiceError) as err:
        service.predict({"bad": 1})
    assert err.value.code == "INVALID_ARGUMENT" and err.value.message == "bad: unknown feature"
    client.down = True
    with pytest.raises(ServiceError) as err:
        service.model_view()
    assert err.value.code == "UNAVAILABLE" and "fake:1" in err.value.message


def test_a_missing_client_module_is_a_service_error_not_a_crash():
    def broken():
        raise ImportError("No module named 'scoring_service.client'")

    service = DashboardService("fake:1", broken)
    with pytest.raises(ServiceError, match="Cannot create the scoring client"):
        service.model_view()


@pytest.mark.parametrize("code, expected", [
    (grpc.StatusCode.DEADLINE_EXCEEDED, "did not answer in time"),
    (grpc.StatusCode.NOT_FOUND, "no such version"),
    (grpc.StatusCode.UNAUTHENTICATED, "refused the dashboard's credentials"),
], ids=["deadline", "not-found", "unauthenticated"])
def test_friendly_error_messages(code, expected):
    err = friendly_error(Rpc(code, "no such version"), "host:1")
    assert expected in err.message and err.code == code.name


def test_sample_listeners_hear_of_each_version_once_its_sample_is_here():
    client = FakeClient()
    heard: list[str] = []
    service = DashboardService("fake:1", lambda: client, retry_seconds=0.05)
    service.on_sample(lambda view: heard.append(view.version))  # nothing served yet: not called
    service.on_sample(lambda view: 1 / 0)  # a failing listener is logged, the others still hear
    service.start()
    try:
        wait_for(lambda: heard == ["v0001"])
        client.version = "v0002"
        client.changed.set()
        wait_for(lambda: heard == ["v0001", "v0002"])
        late: list[str] = []
        service.on_sample(lambda view: late.append(view.version))  # registered after: called at once
        wait_for(lambda: late == ["v0002"])
    finally:
        service.stop()


def test_an_outage_the_watch_stream_misses_is_seen_by_the_health_probe():
    class SilentWatch(FakeClient):
        def watch(self, reconnect: bool = True):
            yield model_info(self.version)
            while True:  # a stream re-opened as the server went away: waits without a word
                time.sleep(0.05)

    client = SilentWatch()
    service = DashboardService("fake:1", lambda: client, retry_seconds=0.05).start()
    try:
        wait_for(lambda: service.status().state == OK)
        client.down = True
        wait_for(lambda: service.status().state == DOWN)
        assert "does not answer" in service.status().message
        client.down = False  # answers again (a slow answer, or the stream reconnected): all is well
        wait_for(lambda: service.status().state == OK)
        assert service.status().attempts == 0
    finally:
        service.stop()

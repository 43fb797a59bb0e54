"""Drift reports of several scoring replicas combined (issue 19 item 7): three real scoring servers on loopback
ports serve one store; one client, given the three as a target list, spreads PredictStreams over them (each
server counts only its own rows); ``ScoringClient.drift_reports`` asks each one and combines the counts. The
combination must be the report of one server that scored the same rows, and the Monitoring page must say how
many replicas answered, also when one is down."""
from __future__ import annotations

import math

import numpy as np
import pytest

from dash_ui.app import render_page
from dash_ui.pages import monitoring
from scoring_service.client import DriftVerdict, ScoringClient
from scoring_service.client.combine import combine
from scoring_service.client.targets import replica_targets
from segmentation_core.store import ModelStore
from tests import model_factory
from tests.server_support import target
from tests.test_dash_app import text_of
from tests.test_dash_service import dashboards  # noqa: F401 - fixture

INCOME = "Annual Income (k$)"
SETTINGS = {"drift_min_rows": 100, "drift_sample_rate": 0}


@pytest.fixture()
def store(tmp_path):
    """A store with a Mall customers model that has a drift reference."""
    model_factory.publish(ModelStore(tmp_path), reference=True)
    return tmp_path


def _traffic(seed: int, rows: int = 6000) -> list:
    """Six frames of Mall customers (rows drawn with replacement; half of them with the income x 1.4)."""
    frame = model_factory.mall().frame
    live = frame.iloc[np.random.default_rng(seed).integers(0, len(frame), rows)].reset_index(drop=True)
    live[INCOME] = live[INCOME].astype(float)
    live.loc[: rows // 2, INCOME] *= 1.4
    return [live.iloc[i * rows // 6:(i + 1) * rows // 6] for i in range(6)]


def _assert_same(combined, alone) -> None:
    assert (combined.model, combined.version, combined.rows, combined.row_errors, combined.sampled_rows) == \
        (alone.model, alone.version, alone.rows, alone.row_errors, alone.sampled_rows)
    assert len(combined.features) == len(alone.features) > 0
    for c, a in zip([*combined.features, combined.segment_mix], [*alone.features, alone.segment_mix]):
        assert c.feature == a.feature and c.bins == a.bins and c.live_counts == a.live_counts
        assert math.isclose(c.psi, a.psi, rel_tol=0, abs_tol=1e-9), c.feature
        assert c.band == a.band
        np.testing.assert_allclose(c.live_share, a.live_share, rtol=0, atol=1e-12)
        np.testing.assert_allclose(c.training_share, a.training_share, rtol=0, atol=1e-12)
        assert (c.live_missing_rate, c.live_unseen_rate) == pytest.approx((a.live_missing_rate, a.live_unseen_rate))
    assert combined.mean_confidence == pytest.approx(alone.mean_confidence, rel=1e-12)
    assert combined.mean_distance == pytest.approx(alone.mean_distance, rel=1e-12)
    assert combined.outlier_rate == alone.outlier_rate
    assert combined.verdict == alone.verdict and combined.reasons == alone.reasons


def test_three_replicas_combine_to_the_report_of_one_server(store, scoring_server_factory) -> None:
    replicas = [scoring_server_factory(store, **SETTINGS) for _ in range(3)]
    single = scoring_server_factory(store, **SETTINGS)
    parts = _traffic(seed=21)
    listed = ",".join(target(s) for s in replicas)
    assert [address for address, _name in replica_targets(listed)] == [target(s) for s in replicas]
    with ScoringClient(listed) as client:
        for part in parts:  # one PredictStream each, round-robin over the replicas
            client.predict_frame(part, batch_rows=500)
        drift = client.drift_reports()
    with ScoringClient(target(single)) as client:
        for part in parts:
            client.predict_frame(part, batch_rows=500)
        alone = client.drift_report()
    own = []
    for server in replicas:
        with ScoringClient(target(server)) as client:
            own.append(client.drift_report())
    assert all(r.rows > 0 for r in own) and sum(r.rows for r in own) == 6000  # the traffic was spread
    assert drift.answered == 3 and drift.failed == () and drift.asked == tuple(target(s) for s in replicas)
    assert len(drift.versions) == 1 and drift.versions[0].replicas == drift.asked
    assert alone.rows == 6000 and alone.verdict == DriftVerdict.RETRAIN
    assert any(f.feature == INCOME and f.psi > 0.1 for f in alone.features)  # not a trivial comparison
    _assert_same(drift.report, alone)
    assert len(drift.report.slices) == sum(len(r.slices) for r in own)  # every replica's slices, in time order
    starts = [s.start_time for s in drift.report.slices]
    assert starts == sorted(starts)
    _assert_same(combine(own), alone)  # the combination itself, apart from the asking


def test_one_replica_down_the_page_shows_the_others_and_says_so(store, scoring_server_factory, dashboards) -> None:  # noqa: F811
    replicas = [scoring_server_factory(store, **SETTINGS) for _ in range(3)]
    listed = ",".join(target(s) for s in replicas)
    with ScoringClient(listed) as client:
        for part in _traffic(seed=22, rows=3000):
            client.predict_frame(part, batch_rows=500)
    service = dashboards.service(listed)
    text = text_of(render_page(service, monitoring.PATH, ""))
    assert "3 of 3 scoring replicas answered" in text and "customers v0001: 3 replicas" in text
    survivors = []
    for server in replicas[1:]:
        with ScoringClient(target(server)) as client:
            survivors.append(client.drift_report())
    replicas[0].stop(grace=0)
    drift = service.replica_drift()
    assert drift.answered == 2 and [name for name, _why in drift.failed] == [target(replicas[0])]
    assert "UNAVAILABLE" in drift.failed[0][1]
    assert drift.report.rows == sum(r.rows for r in survivors) > 0
    _assert_same(drift.report, combine(survivors))
    text = text_of(render_page(service, monitoring.PATH, ""))
    assert "2 of 3 scoring replicas answered" in text and f"{target(replicas[0])} did not answer" in text
    assert f"{drift.report.rows:,}" in text and "Retrain recommended" in text


def test_replicas_on_different_versions_are_reported_apart(store, tmp_path_factory, scoring_server_factory) -> None:
    newer = tmp_path_factory.mktemp("newer-store")
    for _ in range(2):  # the same model published twice: v0002 is CURRENT there
        model_factory.publish(ModelStore(newer), reference=True)
    replicas = [scoring_server_factory(store, **SETTINGS), scoring_server_factory(newer, **SETTINGS),
                scoring_server_factory(store, **SETTINGS)]
    for i, part in enumerate(_traffic(seed=23, rows=3000)):  # each replica its own traffic (a stream pins a
        with ScoringClient(target(replicas[i % 3])) as client:  # version, so a list would mix the two)
            client.predict_frame(part, batch_rows=500)
    with ScoringClient(",".join(target(s) for s in replicas)) as client:
        drift = client.drift_reports()
    own = {}
    for server in replicas:
        with ScoringClient(target(server)) as client:
            own[target(server)] = client.drift_report()
    assert [(v.report.version, v.replicas) for v in drift.versions] == [
        ("v0001", (target(replicas[0]), target(replicas[2]))), ("v0002", (target(replicas[1]),))]
    assert drift.report.version == "v0001"  # the version on the most replicas is the one shown
    assert drift.versions[0].report.rows == own[target(replicas[0])].rows + own[target(replicas[2])].rows
    assert drift.versions[1].report == own[target(replicas[1])]  # one replica: its own report, untouched


def test_a_name_resolves_to_every_replica_address() -> None:
    assert replica_targets("localhost:50051") == [("127.0.0.1:50051", "localhost:50051")]
    assert replica_targets("dns:///localhost:50051") == [("127.0.0.1:50051", "localhost:50051")]
    assert replica_targets("127.0.0.1:1,127.0.0.1:2") == [("127.0.0.1:1", None), ("127.0.0.1:2", None)]
    assert replica_targets("[::1]:7") == [("[::1]:7", None)]
    assert replica_targets("unix:///tmp/scoring.sock") == [("unix:///tmp/scoring.sock", None)]

"""Scoring replicas: the client spreads calls over every replica and rides out one replica's death.

Three real scoring services (``python -m scoring_service`` processes) on loopback ports serve one store;
one client, given the three as a target list, loads them with Predict calls and PredictStreams from
several threads; one replica is killed (SIGKILL: a crash, no drain) under that load. No call may fail,
every replica must have answered calls (counted by each server's own Prometheus metrics), and the
streams cut by the death must still answer every row, as the survivors score it.
"""
from __future__ import annotations

import re
import threading
import time
import urllib.request
from pathlib import Path
from typing import Iterator

import numpy as np
import pandas as pd
import pytest

from scoring_service.client import ScoringClient, ScoringError
from scoring_service.client.targets import channel_target, list_authority
from tests.deploy_support import Proc, free_port, start_scoring, stopping
from tests.server_support import wait_for

_CALLS = re.compile(r'^scoring_calls_total\{code="(\w+)",method="(\w+)"\} ([0-9.e+]+)$', re.M)


@pytest.fixture(scope="module")
def mall_store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A store with one real model (Mall customers)."""
    from tests import model_factory

    if not model_factory.MALL_CSV.exists():
        pytest.skip(f"{model_factory.MALL_CSV} not found")
    from segmentation_core.store import ModelStore

    store = tmp_path_factory.mktemp("replica-store")
    model_factory.publish(ModelStore(store))
    return store


def calls(metrics_port: int) -> dict[tuple[str, str], float]:
    """(method, code) -> calls finished, from one server's /metrics."""
    with urllib.request.urlopen(f"http://127.0.0.1:{metrics_port}/metrics", timeout=5) as reply:
        text = reply.read().decode()
    return {(method, code): float(value) for code, method, value in _CALLS.findall(text)}


def answered(metrics_port: int) -> tuple[float, float]:
    """(Predict calls, PredictStream calls) answered OK by one server."""
    counted = calls(metrics_port)
    return counted.get(("Predict", "OK"), 0.0), counted.get(("PredictStream", "OK"), 0.0)


def test_target_lists_become_grpc_targets() -> None:
    assert channel_target("127.0.0.1:50051") == "127.0.0.1:50051"
    assert channel_target("dns:///scoring:50051") == "dns:///scoring:50051"
    assert channel_target(" 127.0.0.1:1, localhost:2,127.0.0.1:3") == "ipv4:127.0.0.1:1,127.0.0.1:2,127.0.0.1:3"
    assert channel_target("[::1]:1,[::1]:2") == "ipv6:[::1]:1,[::1]:2"
    assert channel_target("ipv4:10.0.0.1:1,10.0.0.2:1") == "ipv4:10.0.0.1:1,10.0.0.2:1"
    assert list_authority("127.0.0.1:1,127.0.0.1:2") == "127.0.0.1:1"
    assert list_authority("[::1]:1,[::1]:2") == "[::1]:1"
    assert list_authority("127.0.0.1:1") is None and list_authority("dns:///scoring:50051") is None
    for bad, words in (("scoring:1,scoring:2", "dns:///NAME:PORT"), ("127.0.0.1:1,", "'' in the target list"),
                       ("127.0.0.1:1,127.0.0.1", "is not IP:PORT"), ("127.0.0.1:1,[::1]:2", "mixes IPv4 and IPv6"),
                       ("  ", "empty")):
        with pytest.raises(ValueError, match=re.escape(words)):
            channel_target(bad)


def test_client_cli_and_dashboard_settings_take_a_target_list() -> None:
    from dash_ui.settings import parse_settings
    from scoring_service.client.cli import build_parser

    listed = "127.0.0.1:50051,127.0.0.1:50052"
    args = build_parser({}).parse_args(["score", "in.csv", "-o", "out.csv", "--target", listed])
    assert args.target == listed
    assert parse_settings(["--scoring", "dns:///scoring:50051"], {}).scoring == "dns:///scoring:50051"
    assert parse_settings([], {"DASH_SCORING": listed}).scoring == listed
    with pytest.raises(SystemExit) as exc:
        parse_settings([], {"DASH_SCORING": "scoring:1,scoring:2"})
    assert exc.value.code == 2


@pytest.fixture()
def replicas(mall_store: Path, tmp_path: Path) -> Iterator[tuple[list[Proc], list[int], str]]:
    """Three ``python -m scoring_service`` processes on one store: (processes, metrics ports, target list)."""
    started: list[tuple[Proc, str]] = []
    metrics_ports: list[int] = []
    try:
        for i in range(3):
            folder = tmp_path / f"replica{i}"
            folder.mkdir()
            metrics_ports.append(free_port())
            started.append(start_scoring(mall_store, folder, "--metrics-port", str(metrics_ports[-1]),
                                         "--threads", "8"))
    except BaseException:
        for proc, _target in started:
            proc.stop()
        raise
    procs = [proc for proc, _target in started]
    with stopping(*procs):
        yield procs, metrics_ports, ",".join(t for _proc, t in started)


def kill(proc: Proc) -> None:
    """A crash: SIGKILL, no drain, connections reset mid-call."""
    proc.process.kill()
    proc.process.wait(10)


@pytest.mark.slow  # three server processes, ~12 s under load
def test_calls_spread_over_three_replicas_and_survive_one_killed(replicas) -> None:
    from tests import model_factory

    procs, metrics_ports, target = replicas
    frame = model_factory.mall().frame
    customers = frame.drop(columns=["CustomerID"]).to_dict("records")
    big = pd.concat([frame] * 25, ignore_index=True)  # 5,000 rows in batches of 100: ~50 answers a stream
    with ScoringClient(target, timeout=10) as client:
        expected = client.predict_frame(big, batch_rows=100)
        wanted = [client.predict(c).segment_id for c in customers]
        stop = threading.Event()
        failures: list[BaseException] = []
        counts = {"predict": 0, "streams": 0}
        lock = threading.Lock()

        def predicting(offset: int) -> None:
            i = offset
            while not stop.is_set():
                try:
                    got = client.predict(customers[i % len(customers)]).segment_id
                    assert got == wanted[i % len(customers)], f"customer {i % len(customers)}: {got}"
                except (ScoringError, AssertionError) as exc:
                    failures.append(exc)
                    return
                with lock:
                    counts["predict"] += 1
                i += 7

        def streaming() -> None:
            while not stop.is_set():
                try:
                    scored = client.predict_frame(big, batch_rows=100)
                    np.testing.assert_array_equal(scored["segment_id"].to_numpy(),
                                                  expected["segment_id"].to_numpy())
                    np.testing.assert_allclose(scored["distance"].to_numpy(), expected["distance"].to_numpy(),
                                               rtol=1e-12)
                except (ScoringError, AssertionError) as exc:
                    failures.append(exc)
                    return
                with lock:
                    counts["streams"] += 1

        threads = [threading.Thread(target=predicting, args=(n,), daemon=True) for n in range(3)]
        threads += [threading.Thread(target=streaming, daemon=True) for _ in range(2)]
        for thread in threads:
            thread.start()
        try:
            # Every replica takes its share before the kill.
            wait_for(lambda: failures or all(min(answered(p)) >= 5 for p in metrics_ports), timeout=60)
            assert not failures, failures
            before = [answered(p) for p in metrics_ports]
            streams_before, predicts_before = counts["streams"], counts["predict"]
            kill(procs[1])
            killed_at = time.monotonic()
            # The survivors carry on, including streams started before and after the death.
            wait_for(lambda: failures or (counts["streams"] >= streams_before + 4
                                          and counts["predict"] >= predicts_before + 30), timeout=90)
            assert time.monotonic() - killed_at < 90
        finally:
            stop.set()
            for thread in threads:
                thread.join(30)
        assert not failures, f"{len(failures)} failed call(s), first: {failures[0]!r}"
        after = [answered(p) for i, p in enumerate(metrics_ports) if i != 1]
        # Each survivor took Predict calls after the death; the streams (one replica each) went to them.
        assert after[0][0] > before[0][0] and after[1][0] > before[2][0], f"{before} -> {after}"
        assert after[0][1] + after[1][1] >= before[0][1] + before[2][1] + 3, f"{before} -> {after}"


def test_connections_recycled_by_max_connection_age_lose_no_call(mall_store: Path, scoring_server_factory) -> None:
    """--max-connection-age makes clients reconnect (to find new replicas); calls across it never fail."""
    from tests import model_factory

    server = scoring_server_factory(mall_store, max_connection_age=0.3)
    frame = model_factory.mall().frame
    customer = frame.drop(columns=["CustomerID"]).iloc[0].to_dict()
    with ScoringClient(f"127.0.0.1:{server.port}", timeout=10) as client:
        first = client.predict(customer).segment_id
        deadline = time.monotonic() + 1.5  # five connection ages
        while time.monotonic() < deadline:
            assert client.predict(customer).segment_id == first
        big = pd.concat([frame] * 10, ignore_index=True)
        scored = client.predict_frame(big, batch_rows=20)  # a stream may outlive its connection's age
        assert (scored["error"] == "").all() and len(scored) == len(big)
    assert calls(server.metrics_port)[("Predict", "OK")] > 10


@pytest.mark.slow  # three server processes, ~12 s under load
def test_dashboard_spreads_over_the_replicas_and_rides_out_one_killed(replicas) -> None:
    """The dashboard's service layer (its real client, as `python -m dash_ui --scoring LIST` builds it)."""
    from dash_ui.service import OK, DashboardService, ServiceError, default_client_factory
    from tests import model_factory

    procs, metrics_ports, target = replicas
    customers = model_factory.mall().frame.drop(columns=["CustomerID"]).to_dict("records")
    service = DashboardService(target, default_client_factory(target), retry_seconds=0.2).start()
    try:
        wait_for(lambda: service.status().state == OK, timeout=30)
        wanted = [service.predict(c).segment_id for c in customers]
        stop = threading.Event()
        failures: list[BaseException] = []
        states: set[str] = set()
        done = [0]

        def calling(offset: int) -> None:
            i = offset
            while not stop.is_set():
                try:
                    assert service.predict(customers[i % len(customers)]).segment_id == wanted[i % len(customers)]
                    if i % 10 == 0:
                        assert service.versions()
                except (ServiceError, AssertionError) as exc:
                    failures.append(exc)
                    return
                done[0] += 1
                i += 3

        def watching() -> None:
            while not stop.is_set():
                states.add(service.status().state)
                time.sleep(0.02)

        threads = [threading.Thread(target=calling, args=(n,), daemon=True) for n in range(3)]
        threads.append(threading.Thread(target=watching, daemon=True))
        for thread in threads:
            thread.start()
        try:
            wait_for(lambda: failures or all(answered(p)[0] >= 5 for p in metrics_ports), timeout=60)
            assert not failures, failures
            kill(procs[0])
            after_kill = done[0]
            wait_for(lambda: failures or done[0] >= after_kill + 60, timeout=60)
        finally:
            stop.set()
            for thread in threads:
                thread.join(30)
        assert not failures, f"{len(failures)} failed dashboard call(s), first: {failures[0]!r}"
        assert states == {OK}, f"the dashboard showed {states - {OK}} while two replicas served"
    finally:
        service.stop()


def test_a_target_list_works_over_tls(mall_store: Path, scoring_server_factory, certificate) -> None:
    """TLS to several replicas by address: every one is checked against the CA and answers."""
    from tests import model_factory

    cert, key = certificate
    servers = [scoring_server_factory(mall_store, tls_cert=str(cert), tls_key=str(key)) for _ in range(2)]
    target = ",".join(f"127.0.0.1:{s.port}" for s in servers)
    customer = model_factory.mall().frame.drop(columns=["CustomerID"]).iloc[0].to_dict()
    with ScoringClient(target, tls_ca=cert, timeout=10) as client:
        for _ in range(10):
            client.predict(customer)
    assert all(calls(s.metrics_port).get(("Predict", "OK"), 0) >= 3 for s in servers), "a replica took no call"

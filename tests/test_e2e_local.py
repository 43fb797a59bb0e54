"""End to end, as plain processes: the three programs in docker-compose's order, a retrain while serving,
and the local supervisor (deploy/run_local.py) that the README's quick start runs.
"""
from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import threading
import time
from pathlib import Path

import pytest

from tests.deploy_support import (
    PYTHON,
    ROOT,
    env_for_children,
    free_port,
    http_status,
    load_deploy,
    start_dashboard,
    start_scoring,
    stopping,
    train,
)

pytestmark = pytest.mark.slow


def _customer_from(info) -> dict[str, float | str]:
    """A customer in the middle of the training data: every feature at its imputation value."""
    customer: dict[str, float | str] = {f.name: f.impute for f in info.numeric_features}
    customer.update({f.name: f.impute for f in info.categorical_features})
    return customer


def _wait_for(predicate, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(0.1)


class Caller(threading.Thread):
    """A backend service calling Predict in a loop; records every version that answered and every failure."""

    def __init__(self, target: str, customer: dict) -> None:
        super().__init__(daemon=True)
        from scoring_service.client import ScoringClient

        self.client = ScoringClient(target, timeout=5.0)
        self.customer = customer
        self.versions: list[str] = []
        self.failures: list[str] = []
        self.calls = 0
        self.halt = threading.Event()

    def run(self) -> None:
        """Call until halted."""
        try:
            while not self.halt.is_set():
                try:
                    prediction = self.client.predict(self.customer)
                    if not self.versions or self.versions[-1] != prediction.version:
                        self.versions.append(prediction.version)
                except Exception as exc:  # noqa: BLE001 - any failure is what the test looks for
                    self.failures.append(repr(exc))
                self.calls += 1
        finally:
            self.client.close()


def test_compose_order_then_a_retrain_is_served_without_restart_or_failed_calls(tmp_path: Path) -> None:
    from scoring_service.client import ScoringClient

    store = tmp_path / "model-store"
    # 1. training runs once and must succeed before the service starts (service_completed_successfully).
    train(store, tmp_path)
    assert (store / "customers" / "CURRENT").read_text().strip() == "v0001"
    # 2. scoring starts and becomes SERVING (the compose health check); 3. then the dashboard.
    scoring, target = start_scoring(store, tmp_path)
    with stopping(scoring):
        dashboard, url = start_dashboard(target, tmp_path)
        with stopping(dashboard), ScoringClient(target) as client:
            info = client.model_info()
            assert info.version == "v0001" and info.segments
            caller = Caller(target, _customer_from(info))
            caller.start()
            _wait_for(lambda: caller.calls > 20, 20, "the first calls")

            # A retrain while serving, into the same store (docker compose run --rm training train ...).
            train(store, tmp_path, "--k", "4", name="retraining")
            _wait_for(lambda: client.model_info().version == "v0002", 30, "the service to serve v0002")
            _wait_for(lambda: caller.versions[-1:] == ["v0002"], 30, "the caller to be answered by v0002")
            calls_at_swap = caller.calls
            _wait_for(lambda: caller.calls > calls_at_swap + 20, 20, "calls after the swap")
            caller.halt.set()
            caller.join(10)

            assert caller.failures == [], f"{len(caller.failures)} failed calls, first: {caller.failures[:3]}"
            assert caller.versions == ["v0001", "v0002"], caller.versions
            new = client.model_info()
            assert new.k == 4 and len(new.segments) == 4
            assert scoring.alive and dashboard.alive, "a service restarted or died during the retrain"
            assert http_status(url) == 200
    assert "Traceback" not in scoring.output(), scoring.describe()


# ---------------------------------------------------------------------------------------------------
# The supervisor


def _supervisor(store: Path, *extra: str) -> subprocess.Popen:
    return subprocess.Popen([PYTHON, str(ROOT / "deploy" / "run_local.py"), "--store", str(store),
                             "--scoring-port", "0", "--metrics-port", "-1", "--dash-port", "0", "--trainer-port", "0",
                             "--data-dir", str(store.parent / "training-data"), *extra],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env_for_children(),
                            cwd=ROOT)


@pytest.fixture()
def published_store(tmp_path: Path) -> Path:
    """A store that already has a model, so that the supervisor does not train."""
    from tests import model_factory

    if not model_factory.MALL_CSV.exists():
        pytest.skip(f"{model_factory.MALL_CSV} not found")
    from segmentation_core.store import ModelStore

    store = tmp_path / "store"
    model_factory.publish(ModelStore(store))
    return store


def _banner(supervisor: subprocess.Popen) -> tuple[str, dict[str, str]]:
    """What the supervisor prints once everything is up, and the addresses in it (dashboard, scoring, trainer)."""
    lines: list[str] = []
    deadline = time.monotonic() + 60
    while not any("Press Ctrl-C" in line for line in lines):
        assert supervisor.poll() is None and time.monotonic() < deadline, supervisor.communicate()[1][-3000:]
        lines.append(supervisor.stdout.readline())
    banner = "".join(lines)
    return banner, {"dashboard": re.search(r"dashboard\s+(http://\S+)", banner).group(1),
                    "scoring": re.search(r"scoring \(gRPC\)\s+(\S+)", banner).group(1),
                    "trainer": re.search(r"training \(gRPC\)\s+(\S+)", banner).group(1)}


def _pids_of(module: str, store: Path) -> list[int]:
    """The processes running ``python -m module`` on ``store`` (from /proc)."""
    pids = []
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            argv = cmdline.read_bytes().split(b"\0")
        except OSError:
            continue  # gone meanwhile
        if module.encode() in argv and str(store).encode() in argv:
            pids.append(int(cmdline.parent.name))
    return pids


def test_supervisor_serves_prints_addresses_and_stops_everything_on_ctrl_c(published_store: Path) -> None:
    probe = load_deploy("grpc_health_probe")
    supervisor = _supervisor(published_store)
    try:
        banner, address = _banner(supervisor)
        dashboard, target = address["dashboard"], address["scoring"]
        assert probe.check(address["trainer"]) == probe.SERVING
        assert "-m training_job train" in banner and str(published_store) in banner, "no retrain command shown"
        assert http_status(dashboard) == 200
        assert probe.check(target) == probe.SERVING
    finally:
        supervisor.send_signal(signal.SIGINT)  # what Ctrl-C sends
        _, err = supervisor.communicate(timeout=60)
    assert supervisor.returncode == 0, err[-3000:]
    assert "training " not in err.split("starting scoring")[0], "trained although the store had a model"
    pids = [int(p) for p in re.findall(r"stopping \w+ \(pid (\d+)\)", err)]
    assert len(pids) == 3, err[-3000:]  # scoring, trainer, dashboard
    for pid in pids:
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)
    assert probe.check(target, timeout=0.5) != probe.SERVING
    assert http_status(dashboard, timeout=1) == 0


def test_supervisor_starts_a_service_that_dies_again_on_its_port(published_store: Path) -> None:
    # compose's restart policy, locally: the scoring service killed (as by the OOM killer) comes back on its port,
    # the dashboard and the training service keep running and see it again, and Ctrl-C still stops everything.
    probe = load_deploy("grpc_health_probe")
    supervisor = _supervisor(published_store)
    try:
        _, address = _banner(supervisor)
        dashboard, target = address["dashboard"], address["scoring"]
        [killed] = _pids_of("scoring_service", published_store)
        [dash] = _pids_of("dash_ui", Path(target))  # the dashboard's command line names the scoring target
        os.kill(killed, signal.SIGKILL)
        _wait_for(lambda: _pids_of("scoring_service", published_store) not in ([], [killed]), 30, "a new scoring pid")
        _wait_for(lambda: probe.check(target, timeout=0.5) == probe.SERVING, 60, "the scoring service back")
        _wait_for(lambda: http_status(dashboard.rstrip("/") + "/health/ready") == 200, 30, "the dashboard ready")
        assert supervisor.poll() is None
        assert _pids_of("dash_ui", Path(target)) == [dash], "the dashboard was restarted too"
    finally:
        supervisor.send_signal(signal.SIGINT)
        _, err = supervisor.communicate(timeout=60)
    assert supervisor.returncode == 0, err[-3000:]
    assert "scoring exited unexpectedly with code -9; starting it again in 1 s" in err, err[-3000:]
    assert "scoring is back" in err
    assert len(re.findall(r"stopping \w+ \(pid \d+\)", err)) == 3, err[-3000:]


def test_supervisor_refuses_a_port_in_use(published_store: Path) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        supervisor = _supervisor(published_store, "--dash-port", str(port))
        _, err = supervisor.communicate(timeout=60)
    assert supervisor.returncode == 2
    assert f"--dash-port {port}" in err and "already in use" in err, err


def test_supervisor_fails_clearly_when_a_child_dies_at_start(tmp_path: Path) -> None:
    bad = tmp_path / "customers.csv"
    bad.write_text("this is not a customer table\n")
    supervisor = _supervisor(tmp_path / "empty-store", "--data", str(bad), "--preset", "auto",
                             "--scoring-port", str(free_port()))
    _, err = supervisor.communicate(timeout=120)
    assert supervisor.returncode == 1, err[-3000:]
    assert re.search(r"training failed \(exit code [12]\)", err), err[-3000:]
    assert "starting scoring" not in err, "the service started although training failed"

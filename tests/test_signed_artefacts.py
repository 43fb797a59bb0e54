"""Signed artefacts (issue 16 item 3): the training job signs each version's manifest with an Ed25519 key
(`keygen`, `train --signing-key`, `serve --signing-key`); a scoring service with --verify-key serves only versions
signed by that key and keeps the previous one serving otherwise; without a key everything is served as before.

Against the real store written by the real training job, and a real server on loopback.
"""
from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import grpc
import pytest

from segmentation.v1 import scoring_pb2 as pb
from segmentation.v1 import scoring_pb2_grpc
from segmentation_core.artefact import MANIFEST, MANIFEST_DIGEST, MANIFEST_SIGNATURE, read_manifest
from segmentation_core.errors import SignatureError
from segmentation_core.signing import generate_key_pair, load_signing_key, load_verify_key
from segmentation_core.store import ModelStore
from tests import model_factory
from tests.server_support import start_server, wait_for

pytestmark = pytest.mark.timeout(300)
ROOT = Path(__file__).resolve().parents[1]


def _run(*args: str, cwd: Path = ROOT) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "training_job", *args], capture_output=True, text=True, timeout=240,
                          cwd=cwd)


@pytest.fixture(scope="module")
def keys(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Two key pairs: ``good`` (the one the service trusts) made by the keygen command, ``other`` by the library."""
    folder = tmp_path_factory.mktemp("keys")
    made = _run("keygen", "--private-key", str(folder / "good.pem"), "--public-key", str(folder / "good.pub"))
    assert made.returncode == 0, made.stderr
    generate_key_pair(folder / "other.pem", folder / "other.pub")
    return {"good": folder / "good.pem", "good_pub": folder / "good.pub", "other": folder / "other.pem",
            "other_pub": folder / "other.pub"}


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory, keys: dict[str, Path], datasets_dir: Path) -> Path:
    """A store with v0001 of `customers`, trained and signed by `python -m training_job train --signing-key`."""
    store = tmp_path_factory.mktemp("signed") / "store"
    result = _run("train", "--data", str(datasets_dir / "Mall_Customers.csv"), "--preset", "mall", "--store",
                  str(store), "--signing-key", str(keys["good"]))
    assert result.returncode == 0, result.stderr[-3000:]
    assert "signed with key" in result.stderr
    return store


@pytest.fixture()
def store(trained: Path, tmp_path: Path) -> ModelStore:
    """A copy of the trained store, for one test to change."""
    shutil.copytree(trained, tmp_path / "store")
    return ModelStore(tmp_path / "store")


def _served(server) -> str | None:
    return server.registry.list_served().get("customers")


def _refused(server, version: str) -> str:
    """The version's refused_reason in ListModels; "" while the server has not polled the store yet."""
    models = [m for m in server.registry.list_models().models if m.name == "customers"]
    return next((v.refused_reason for m in models for v in m.versions if v.version == version), "")


def _metric(server, name: str) -> float:
    return server.metrics.registry.get_sample_value(name, {"model": "customers"}) or 0.0


def _predict(server) -> pb.PredictResponse:
    with grpc.insecure_channel(f"127.0.0.1:{server.port}") as channel:
        return scoring_pb2_grpc.ScoringServiceStub(channel).Predict(pb.PredictRequest(customer=pb.Customer(
            numbers={"Annual Income (k$)": 70, "Spending Score (1-100)": 60})), timeout=10)


def test_keygen_writes_a_private_key_only_its_owner_reads_and_never_overwrites(keys: dict[str, Path]) -> None:
    assert oct(keys["good"].stat().st_mode & 0o777) == "0o600"
    assert load_signing_key(keys["good"]).key_id == load_verify_key(keys["good_pub"]).key_id
    again = _run("keygen", "--private-key", str(keys["good"]), "--public-key", str(keys["good"].with_suffix(".x")))
    assert again.returncode == 2 and "refusing to overwrite" in again.stderr
    with pytest.raises(ValueError, match="not an Ed25519|not a PEM public key"):
        load_verify_key(keys["good"])  # a private key given as the verify key


def test_the_trained_version_is_signed_and_a_verifying_server_serves_it(store: ModelStore,
                                                                        keys: dict[str, Path]) -> None:
    folder = store.version_dir("customers", "v0001")
    signature = (folder / MANIFEST_SIGNATURE).read_text().split()
    assert signature[:2] == ["ed25519", load_verify_key(keys["good_pub"]).key_id]
    read_manifest(folder, load_verify_key(keys["good_pub"]))
    server = start_server(store.root, verify_key=str(keys["good_pub"]), metrics_port=0)
    try:
        assert _served(server) == "v0001"
        assert _predict(server).version == "v0001"
        assert server.metrics.registry.get_sample_value(
            "scoring_signatures_required", {"key_id": load_verify_key(keys["good_pub"]).key_id}) == 1
    finally:
        server.stop(grace=0)


def _tamper_and_redigest(store: ModelStore) -> str:
    """v0002: a copy of the signed v0001 with a segment renamed in its manifest and the manifest's digest recomputed
    (the signature file copied as it was): what an attacker with write access to the store can do."""
    source = store.version_dir("customers", "v0001")
    target = store.root / "customers" / "versions" / "v0002"
    shutil.copytree(source, target)
    manifest = json.loads((target / MANIFEST).read_text())
    manifest["version"] = "v0002"
    manifest["segments"][0]["name"] = "Send them everything"
    body = json.dumps(manifest, indent=2).encode()
    (target / MANIFEST).write_bytes(body)
    (target / MANIFEST_DIGEST).write_text(hashlib.sha256(body).hexdigest() + "\n")
    return "v0002"


def _unsigned(store: ModelStore) -> str:
    return model_factory.publish(store, data="mall", k=5, make_current=False)


def _wrong_key(keys: dict[str, Path]):
    def publish(store: ModelStore) -> str:
        return model_factory.publish(store, data="mall", k=5, make_current=False,
                                     signer=load_signing_key(keys["other"]))
    return publish


def _forged(keys: dict[str, Path]):
    """Signed by the other key, but its signature file names the trusted key's id."""
    def publish(store: ModelStore) -> str:
        version = _wrong_key(keys)(store)
        sig = store.version_dir("customers", version) / MANIFEST_SIGNATURE
        algorithm, _key_id, value = sig.read_text().split()
        sig.write_text(f"{algorithm} {load_verify_key(keys['good_pub']).key_id} {value}\n")
        return version
    return publish


@pytest.mark.parametrize("case, reason", [
    ("unsigned", "not signed (no manifest.json.sig)"),
    ("tampered", "does not verify"),
    ("wrong-key", "not by the verify key"),
    ("forged-key-id", "does not verify"),
])
def test_a_verifying_server_refuses_a_bad_version_and_keeps_serving_the_last_good_one(
        case: str, reason: str, store: ModelStore, keys: dict[str, Path], caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO)
    make = {"unsigned": _unsigned, "tampered": _tamper_and_redigest, "wrong-key": _wrong_key(keys),
            "forged-key-id": _forged(keys)}[case]
    server = start_server(store.root, verify_key=str(keys["good_pub"]))
    try:
        assert _served(server) == "v0001"
        version = make(store)
        store.set_current("customers", version)
        wait_for(lambda: _refused(server, version), timeout=20)
        assert reason in _refused(server, version)
        assert _served(server) == "v0001" and _predict(server).version == "v0001"
        assert _metric(server, "scoring_refused_signatures_total") == 1
        assert _metric(server, "scoring_refused_versions_total") == 1
        lines = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
        assert any(f"refused version {version} (signature)" in line and reason in line for line in lines), lines
        assert any("still serving v0001" in r.getMessage() for r in caplog.records)
    finally:
        server.stop(grace=0)
    with pytest.raises(SignatureError, match=re.escape(reason)):
        read_manifest(store.version_dir("customers", version), load_verify_key(keys["good_pub"]))


def test_health_says_not_serving_when_no_version_is_signed(tmp_path: Path, keys: dict[str, Path]) -> None:
    store = ModelStore(tmp_path / "store")
    model_factory.publish(store, data="mall", k=5)
    server = start_server(store.root, verify_key=str(keys["good_pub"]), wait_serving=False)
    try:
        wait_for(lambda: _refused(server, "v0001"), timeout=20)
        with grpc.insecure_channel(f"127.0.0.1:{server.port}") as channel:
            from grpc_health.v1 import health_pb2, health_pb2_grpc
            health = health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=5)
            assert health.status == health_pb2.HealthCheckResponse.NOT_SERVING
            with pytest.raises(grpc.RpcError) as err:
                scoring_pb2_grpc.ScoringServiceStub(channel).Predict(pb.PredictRequest(), timeout=5)
            assert err.value.code() == grpc.StatusCode.UNAVAILABLE
        signed = model_factory.publish(store, data="mall", k=5, signer=load_signing_key(keys["good"]))
        wait_for(lambda: _served(server) == signed, timeout=20)
    finally:
        server.stop(grace=0)


def test_without_a_verify_key_signed_and_unsigned_versions_are_served_as_before(store: ModelStore,
                                                                                keys: dict[str, Path]) -> None:
    server = start_server(store.root, metrics_port=0)
    try:
        assert _served(server) == "v0001"  # signed: the signature is not read
        assert server.metrics.registry.get_sample_value("scoring_signatures_required", {"key_id": ""}) == 0
        unsigned = model_factory.publish(store, data="mall", k=5)
        wait_for(lambda: _served(server) == unsigned, timeout=20)
        assert _predict(server).version == unsigned
    finally:
        server.stop(grace=0)


def test_a_bad_verify_key_stops_the_server_at_start_with_one_line(tmp_path: Path, keys: dict[str, Path]) -> None:
    blank = tmp_path / "blank.pub"
    blank.write_text("")
    result = subprocess.run([sys.executable, "-m", "scoring_service", "--store", str(tmp_path), "--port", "0",
                             "--metrics-port", "-1", "--log-format", "text"],
                            capture_output=True, text=True, timeout=60, cwd=ROOT,
                            env={**os.environ, "SCORING_VERIFY_KEY": str(blank)})
    assert result.returncode == 1 and f"verify key {blank}: not a PEM public key" in result.stderr


@pytest.mark.slow
def test_training_service_jobs_sign_and_publish_version_refuses_an_unsigned_one(
        tmp_path: Path, keys: dict[str, Path], datasets_dir: Path) -> None:
    from tests.test_training_service import Trainer
    from training_job.client import TrainingError

    trainer = Trainer(tmp_path / "store", tmp_path / "data", env={"TRAINING_SIGNING_KEY": str(keys["good"])})
    try:
        client = trainer.client
        dataset = client.upload(datasets_dir / "Mall_Customers.csv")
        job = client.wait(client.submit(dataset.dataset_id, preset="mall", publish=False).job_id, timeout=240)
        assert job.state == "SUCCEEDED", job.error
        store = ModelStore(trainer.store)
        read_manifest(store.version_dir("customers", job.result.version), load_verify_key(keys["good_pub"]))
        client.publish(job.result.version)
        assert store.current("customers") == job.result.version
        unsigned = model_factory.publish(store, data="mall", k=5, make_current=False)
        with pytest.raises(TrainingError) as err:
            client.publish(unsigned)
        assert err.value.code == grpc.StatusCode.FAILED_PRECONDITION and "not signed" in err.value.message
        assert store.current("customers") == job.result.version
    finally:
        trainer.stop()

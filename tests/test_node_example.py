"""The Node.js client example (examples/node) against a real scoring service: its Predict and
PredictStream answers equal the Python stub's for the same customers."""
from __future__ import annotations

import json
import math
import shutil
import subprocess
from pathlib import Path

import grpc
import pytest

from tests.deploy_support import ROOT, start_scoring, stopping

EXAMPLE = ROOT / "examples" / "node"
pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def node() -> str:
    """The node binary, with the example's pinned packages installed (npm ci from package-lock.json)."""
    node = shutil.which("node")
    if node is None:
        pytest.skip("node is not installed (Debian packages nodejs and npm; scripts/system_packages.sh installs "
                    "them): the Node example cannot run")
    if not (EXAMPLE / "node_modules" / "@grpc" / "grpc-js").is_dir():
        npm = shutil.which("npm")
        if npm is None:
            pytest.skip("npm is not installed: cannot install the Node example's packages")
        result = subprocess.run([npm, "ci", "--no-audit", "--no-fund"], cwd=EXAMPLE, capture_output=True,
                                text=True, timeout=300)
        assert result.returncode == 0, f"npm ci failed:\n{result.stderr[-3000:]}"
    return node


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A store with the Mall customers model (numbers and a category)."""
    from segmentation_core.store import ModelStore
    from tests import model_factory

    if not model_factory.MALL_CSV.exists():
        pytest.skip(f"{model_factory.MALL_CSV} not found")
    root = tmp_path_factory.mktemp("node-store")
    model_factory.publish(ModelStore(root))
    return root


def _customers() -> list[dict]:
    """Mall customers as the example reads them, with a missing feature and an unseen category level."""
    from tests import model_factory

    frame = model_factory.mall().frame.iloc[::25]
    customers = [{"id": str(row["CustomerID"]),
                  "numbers": {c: float(row[c]) for c in model_factory.MALL_NUMERIC},
                  "categories": {"Gender": str(row["Gender"])}} for _, row in frame.iterrows()]
    customers.append({"id": "no-age", "numbers": {"Annual Income (k$)": 120.0, "Spending Score (1-100)": 10.0},
                      "categories": {"Gender": "Female"}})
    customers.append({"id": "new-level", "numbers": {"Age": 33.0}, "categories": {"Gender": "Unknown"}})
    return customers


def _python_answers(target: str, customers: list[dict]) -> list[tuple[str, int, str, float]]:
    from segmentation.v1 import scoring_pb2 as pb
    from segmentation.v1 import scoring_pb2_grpc

    with grpc.insecure_channel(target) as channel:
        stub = scoring_pb2_grpc.ScoringServiceStub(channel)
        answers = []
        for c in customers:
            reply = stub.Predict(pb.PredictRequest(customer=pb.Customer(**c)), timeout=10)
            p = reply.prediction
            answers.append((reply.id, p.segment_id, p.segment_name, p.distance))
    return answers


def test_node_client_predicts_like_the_python_stub(node: str, store: Path, tmp_path: Path) -> None:
    customers = _customers()
    customers_file = tmp_path / "customers.json"
    customers_file.write_text(json.dumps(customers))
    scoring, target = start_scoring(store, tmp_path)
    with stopping(scoring):
        run = subprocess.run([node, "score.js", "--target", target, "--customers", str(customers_file)],
                             cwd=EXAMPLE, capture_output=True, text=True, timeout=60)
        assert run.returncode == 0, run.stderr
        expected = _python_answers(target, customers)
    result = json.loads(run.stdout)
    assert result["model"] == "customers" and result["version"] == "v0001"
    for call in ("predict", "stream"):
        got = [(r["id"], r["segment_id"], r["segment_name"], r["distance"]) for r in result[call]]
        assert [g[:3] for g in got] == [e[:3] for e in expected], call
        assert all(math.isclose(g[3], e[3], rel_tol=1e-9, abs_tol=1e-12) for g, e in zip(got, expected)), call
    assert all(r["error"] == "" for r in result["stream"])


def test_node_client_reports_a_refusal_with_its_status_code(node: str, store: Path, tmp_path: Path) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps([{"id": "x", "numbers": {"No such feature": 1.0}}]))
    scoring, target = start_scoring(store, tmp_path)
    with stopping(scoring):
        run = subprocess.run([node, "score.js", "--target", target, "--customers", str(bad)], cwd=EXAMPLE,
                             capture_output=True, text=True, timeout=60)
    assert run.returncode == 1
    assert "INVALID_ARGUMENT" in run.stderr and "No such feature" in run.stderr, run.stderr

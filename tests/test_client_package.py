"""The client package's shape: its public names, no import circle among its modules, its command line."""
from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import scoring_service.client as client

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "scoring_service" / "client"


def _imports() -> dict[str, set[str]]:
    """Module of the package -> the package's modules it imports (the package's __init__ left out)."""
    names = {p.stem for p in PACKAGE.glob("*.py")} - {"__init__", "__main__"}
    graph: dict[str, set[str]] = {}
    for name in names:
        tree = ast.parse((PACKAGE / f"{name}.py").read_text())
        found = set()
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and node.module == "scoring_service.client":
                found |= {a.name for a in node.names if a.name in names}
            elif isinstance(node, ast.ImportFrom) and (node.module or "").startswith("scoring_service.client."):
                found.add(node.module.rsplit(".", 1)[1])
        graph[name] = found
    return graph


def test_the_client_modules_import_one_way():
    graph = _imports()
    assert graph["types"] == set() and graph["cli"] >= {"unary"}
    order: list[str] = []
    pending = dict(graph)
    while pending:  # topological sort: fails when a circle leaves no module without unsorted imports
        ready = sorted(m for m, deps in pending.items() if deps <= set(order))
        assert ready, f"import circle among {sorted(pending)}"
        order += ready
        for m in ready:
            del pending[m]


def test_the_public_names_are_kept():
    for name in ("ScoringClient", "ScoringError", "Prediction", "RESULT_COLUMNS", "DEFAULT_TARGET", "main",
                 "FrameStream", "ModelInfo", "SegmentStats", "ModelEntry", "VersionInfo", "Segment"):
        assert hasattr(client, name) and name in client.__all__, name


def test_python_m_scoring_service_client_still_runs():
    run = subprocess.run([sys.executable, "-m", "scoring_service.client", "score", "--help"], cwd=ROOT,
                         capture_output=True, text=True, timeout=60)
    assert run.returncode == 0 and "--target" in run.stdout, run.stderr

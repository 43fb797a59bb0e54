"""The lint (ruff) and the type check (mypy) of the repository: zero findings, as configured in
pyproject.toml ([tool.ruff], [tool.mypy]); the tools are pinned in the `test` extra."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent


def _run(tool: str, *args: str) -> subprocess.CompletedProcess[str]:
    executable = BIN / tool
    if not executable.exists():
        pytest.fail(f"{tool} is not installed in {BIN}: run scripts/setup.sh (the `test` extra pins it)")
    return subprocess.run([str(executable), *args], cwd=ROOT, capture_output=True, text=True, timeout=600)


def test_ruff_finds_nothing() -> None:
    result = _run("ruff", "check", "--no-cache", ".")
    assert result.returncode == 0, result.stdout + result.stderr


def test_mypy_finds_nothing_in_the_domain_and_the_scoring_service() -> None:
    result = _run("mypy", "--no-incremental")
    assert result.returncode == 0 and "Success" in result.stdout, result.stdout + result.stderr

"""Packaging: pyproject.toml's dependencies and extras, the lock, the console scripts, the base image pins.

One source for dependencies: pyproject.toml declares what each program needs (extras), requirements.lock
pins all of it with hashes at the versions the tests run with (constraints.txt), requirements.txt pins the
programs' direct runtime dependencies, and the images' files are generated from the lock (test_deploy.py).
"""
from __future__ import annotations

import importlib
import importlib.metadata as md
import re
import shutil
import subprocess
import sys
import time
import tomllib
from pathlib import Path

import pytest
from packaging.utils import canonicalize_name

from tests.deploy_support import PYTHON, ROOT, load_deploy

PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())
RUNTIME_EXTRAS = ("scoring", "client", "training", "spark", "dashboard")
TOOLS = {"pytest", "pytest-timeout", "selenium", "kneed", "psutil", "grpcio-tools"}  # tests, benchmarks, code generation
PACKAGES = ("segmentation_core", "training_job", "scoring_service", "dash_ui", "segmentation")


def _tool():
    return load_deploy("component_requirements")


def test_each_program_s_extra_declares_what_it_needs_and_scoring_installs_no_pandas() -> None:
    tool = _tool()
    extras = PYPROJECT["project"]["optional-dependencies"]
    assert {"training", "scoring", "dashboard", "client", "test"} <= set(extras)
    scoring = tool.closure(sorted(tool.declared(("scoring",))))
    assert not {"pandas", "scikit-learn", "scipy", "pyarrow", "dash"} & set(scoring), \
        f"pip install .[scoring] would install {sorted(scoring)}"
    assert {"grpcio", "grpcio-health-checking", "grpcio-reflection", "protobuf", "numpy",
            "prometheus-client"} <= set(scoring)
    assert {"pandas", "scikit-learn", "openpyxl", "pyarrow"} <= set(tool.declared(("training",)))
    assert {"dash", "waitress", "openpyxl", "pandas"} <= set(tool.declared(("dashboard",))), \
        "the dashboard reads uploads (Excel too) and serves with waitress"
    assert not TOOLS & set(tool.declared(RUNTIME_EXTRAS)), "test or bench tools among the runtime extras"


def test_pyspark_is_pinned_in_the_spark_extra_and_kept_out_of_the_scoring_and_training_images() -> None:
    tool = _tool()
    spark = tool.declared(("spark",))
    assert str(spark["pyspark"].specifier) == "==4.3.0"
    assert {"pandas", "scikit-learn", "pyarrow"} <= set(spark), "the Spark engine runs the training job's code"
    for component in ("scoring", "training", "dashboard"):
        image = tool.read_pins(tool.path_of(component))
        assert not {"pyspark", "py4j"} & set(image), f"the {component} image would install pyspark"
    assert "pyspark" not in tool.closure(sorted(tool.declared(("scoring",))))


def test_system_packages_install_a_java_17_runtime_for_spark() -> None:
    script = (ROOT / "scripts" / "system_packages.sh").read_text()
    assert re.search(r"command -v java\b.*need\+=\(openjdk-17-jre-headless\)", script), script


def test_requirements_txt_pins_the_runtime_dependencies_at_the_lock_s_versions() -> None:
    tool = _tool()
    pins, lock = tool.read_pins(ROOT / "requirements.txt"), tool.read_pins(tool.LOCK)
    runtime = set(tool.declared(RUNTIME_EXTRAS))
    assert set(pins) == runtime, (f"requirements.txt pins {sorted(set(pins) - runtime)} that no program declares "
                                  f"in pyproject.toml, and lacks {sorted(runtime - set(pins))}")
    assert not TOOLS & set(pins)
    assert {n: v for n, v in pins.items() if lock.get(n) != v} == {}, "requirements.txt and requirements.lock differ"


def test_the_lock_holds_every_declared_dependency_hash_checked_at_the_tested_versions() -> None:
    tool = _tool()
    lock, hashes = tool.read_pins(tool.LOCK), tool.read_hashes(tool.LOCK)
    tested = {canonicalize_name(n): v for n, v in
              (line.split("==") for line in (ROOT / "constraints.txt").read_text().split() if "==" in line)}
    differ = {n: (lock.get(n), v) for n, v in tested.items() if lock.get(n) != v}
    assert not differ, f"requirements.lock differs from constraints.txt (lock, tested): {differ}; run scripts/lock.sh"
    declared = tool.declared(tuple(PYPROJECT["project"]["optional-dependencies"]))
    for name, req in declared.items():
        assert name in lock, f"{name} is declared in pyproject.toml but not locked; run scripts/lock.sh"
        assert req.specifier.contains(lock[name]), f"{name}: the lock's {lock[name]} is outside {req}"
    assert all(hashes[n] for n in lock), "a locked package without hashes"


def test_setup_installs_from_the_lock_with_hashes() -> None:
    setup = (ROOT / "scripts" / "setup.sh").read_text()
    assert re.search(r"--require-hashes -r requirements\.lock", setup)
    assert "requirements.lock" in setup.split("stamp=", 1)[1].splitlines()[0], "a new lock must re-install"


@pytest.mark.parametrize("script", sorted(PYPROJECT["project"]["scripts"]))
def test_console_scripts_are_the_python_m_programs(script: str) -> None:
    module, _, function = PYPROJECT["project"]["scripts"][script].partition(":")
    assert callable(getattr(importlib.import_module(module), function))
    installed = {e.name: e.value for e in md.entry_points(group="console_scripts")}
    assert installed.get(script) == PYPROJECT["project"]["scripts"][script], "run scripts/setup.sh"
    result = subprocess.run([str(Path(PYTHON).parent / script), "--help"], capture_output=True, text=True,
                            timeout=120, cwd=ROOT)
    assert result.returncode == 0 and "usage:" in result.stdout.lower(), result.stderr[-2000:]


def test_every_package_is_typed() -> None:
    for package in PACKAGES:
        assert (ROOT / package / "py.typed").exists(), f"{package}/py.typed is missing"
    assert "py.typed" in PYPROJECT["tool"]["setuptools"]["package-data"]["*"]


def test_base_images_are_pinned_by_digest_the_same_in_every_dockerfile() -> None:
    defaults = {path.name: re.search(r"^ARG PYTHON_IMAGE=(\S+)$", path.read_text(), re.M).group(1)
                for path in (ROOT / "deploy").glob("Dockerfile.*")}
    assert len(defaults) >= 3
    for name, image in defaults.items():
        assert re.fullmatch(r"python:3\.11-slim-bookworm@sha256:[0-9a-f]{64}", image), f"{name}: {image}"
    assert len(set(defaults.values())) == 1, f"the Dockerfiles name different bases: {defaults}"


def test_env_example_lists_every_variable_of_the_compose_file() -> None:
    compose = (ROOT / "docker-compose.yml").read_text()
    used = dict(re.findall(r"\$\{(\w+):-([^}]*)\}", compose))
    example = dict(re.findall(r"^#? ?(\w+)=(.*)$", (ROOT / ".env.example").read_text(), re.M))
    assert set(example) == set(used), f"only in docker-compose.yml: {sorted(set(used) - set(example))}; " \
                                      f"only in .env.example: {sorted(set(example) - set(used))}"
    assert {k: v for k, v in example.items() if used[k] != v} == {}, ".env.example shows other defaults"



@pytest.mark.slow
def test_pip_install_scoring_extra_serves_a_model_without_pandas(tmp_path: Path) -> None:
    """A real `pip install .[scoring]` (at the tested versions) into a fresh venv runs the service."""
    from segmentation_core.store import ModelStore
    from tests import model_factory

    if not model_factory.MALL_CSV.exists():
        pytest.skip(f"{model_factory.MALL_CSV} not found")
    # A copy of what the package is made of: building in the work tree would leave build/ behind.
    source = tmp_path / "source"
    for package in PACKAGES:
        shutil.copytree(ROOT / package, source / package, ignore=shutil.ignore_patterns("__pycache__"))
    for name in ("pyproject.toml", "README.md"):
        shutil.copy2(ROOT / name, source / name)
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=120)
    install = subprocess.run([str(venv / "bin" / "pip"), "install", "--quiet", "--disable-pip-version-check",
                              "-c", str(ROOT / "constraints.txt"), f"{source}[scoring]"], capture_output=True,
                             text=True, timeout=600, cwd=tmp_path)
    assert install.returncode == 0, install.stderr[-3000:]
    installed = {canonicalize_name(d.metadata["Name"]) for d in md.distributions(path=[str(p) for p in
                                                                                      venv.glob("lib/python*/site-packages")])}
    assert not {"pandas", "scikit-learn", "scipy", "pyarrow"} & installed, sorted(installed)
    store = tmp_path / "store"
    model_factory.publish(ModelStore(store))
    port_file = tmp_path / "port"
    server = subprocess.Popen([str(venv / "bin" / "segmentation-scoring"), "--store", str(store), "--port", "0",
                               "--port-file", str(port_file), "--metrics-port", "-1"], cwd=tmp_path,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 60
        while not (port_file.exists() and port_file.read_text().strip()):
            assert server.poll() is None and time.monotonic() < deadline, "the installed service did not start"
            time.sleep(0.1)
        probe = load_deploy("grpc_health_probe")
        assert probe.wait_until_serving(f"127.0.0.1:{port_file.read_text().strip()}", 60) == "SERVING"
    finally:
        server.terminate()
        server.wait(30)

"""The deployment files agree with the code: docker-compose.yml, the Dockerfiles, the image requirements.

Without an engine, what an engine would find out late is checked early (tests/test_deploy_stack.py
builds the images and runs the stack when there is one): the compose file passes Debian's
``docker-compose config`` (no engine needed), every service's command parses with its program's real
argument parser and every environment variable is one the program reads (found by running the parsers,
not listed here), every COPY source exists and is not in .dockerignore, each image's requirements are
the lock's versions and hashes, and each image holds every module its component really imports while
it runs.
"""
from __future__ import annotations

import fnmatch
import json
import os
import re
import shutil
import subprocess
import sys
import urllib.request
from dataclasses import dataclass, field
from functools import lru_cache
from importlib.metadata import packages_distributions
from pathlib import Path, PurePosixPath

import grpc
import pytest
from packaging.utils import canonicalize_name

from tests.conftest import self_signed_certificate
from tests.deploy_support import (
    ROOT,
    PYTHON,
    compose_config,
    free_port,
    http_status,
    imported_modules,
    load_deploy,
    start_dashboard,
    start_scoring,
    stopping,
    train,
)

COMPOSE_FILE = ROOT / "docker-compose.yml"
SERVICES = {"training": "training", "scoring": "scoring", "dashboard": "dashboard"}  # service -> component
#: The compose profile `spark`: its services, all on the Spark image (deploy/Dockerfile.spark).
SPARK_SERVICES = ("spark-master", "spark-worker", "spark-training")
#: Every image the repository builds (deploy/Dockerfile.<component>).
COMPONENTS = (*SERVICES.values(), "spark")
#: The segmentation_core modules the dashboard may import (DESIGN.md: never the store or the artefact).
DASHBOARD_CORE_MODULES = {"segmentation_core", "segmentation_core.bounded_cache", "segmentation_core.errors",
                          "segmentation_core.logs",
                          "segmentation_core.tables", "segmentation_core.clv", "segmentation_core.parsing",
                          "segmentation_core.recipe", "segmentation_core.settings", "segmentation_core.csv_safety",
                          "segmentation_core.drift", "segmentation_core.derived", "segmentation_core.number_format",
                          "segmentation_core.scored", "segmentation_core.wording",
                          "segmentation_core.valid_range", "segmentation_core.charts",
                          "segmentation_core.charts.bundle", "segmentation_core.charts.colours",
                          "segmentation_core.charts.figures"}
#: Files and folders of segmentation_core copied into the dashboard's image (the charts as a folder).
DASHBOARD_CORE_FILES = {f"{m.replace('.', '/')}.py" for m in DASHBOARD_CORE_MODULES - {"segmentation_core"}
                        if not m.startswith("segmentation_core.charts")} \
    | {"segmentation_core/__init__.py", "segmentation_core/charts"}
PREFIXES = ("TRAINING_", "SCORING_", "DASH_")
# Variables a service may set that belong to Python or the image, not to the program.
# Imported by a library only when present (inside try/except ImportError), never needed: grpc probes for
# grpc_tools and grpc_reflection, numpy.f2py for charset_normalizer, pyarrow for cloudpickle.
#: Imported only when installed (psutil: by joblib/loky when the bench extra brought it into the venv).
OPTIONAL_IMPORTS = {"grpc_tools", "grpc_reflection", "charset_normalizer", "cloudpickle", "psutil"}
GENERIC_ENV = {"PATH", "PYTHONPATH", "PYTHONDONTWRITEBYTECODE", "PYTHONUNBUFFERED", "PIP_NO_CACHE_DIR",
               "PIP_DISABLE_PIP_VERSION_CHECK", "HOME"}
#: Read by Spark (spark-class, pyspark), not by the program: the Spark image sets them.
SPARK_ENV = {"PYSPARK_PYTHON", "PYSPARK_DRIVER_PYTHON", "SPARK_NO_DAEMONIZE", "SPARK_WORKER_DIR"}


# ---------------------------------------------------------------------------------------------------
# Dockerfiles


@dataclass
class Dockerfile:
    """The instructions of one Dockerfile that the tests need, stage by stage."""

    path: Path
    entrypoint: list[str] = field(default_factory=list)
    env: dict[str, str] = field(default_factory=dict)   # of the last stage
    copies: list[tuple[list[str], str]] = field(default_factory=list)  # (sources, absolute dest), last stage
    build_copies: list[list[str]] = field(default_factory=list)  # sources of every COPY from the context
    stages: int = 0
    user: str = ""

    @property
    def module(self) -> str:
        """The program the image runs: ``python -m <module>``."""
        assert self.entrypoint[:2] == ["python", "-m"], f"{self.path.name}: ENTRYPOINT {self.entrypoint}"
        return self.entrypoint[2]

    def copied_files(self) -> set[str]:
        """Repository paths (files and folders, posix) the final stage copies from the build context."""
        return {src.rstrip("/") for sources, _ in self.copies for src in sources}

    def destination_of(self, repo_path: str) -> str | None:
        """Where a repository file lands in the image, if a COPY of the final stage brings it."""
        for sources, dest in self.copies:
            for src in sources:
                src = src.rstrip("/")
                if repo_path == src:
                    return dest if not dest.endswith("/") else dest + PurePosixPath(src).name
                if repo_path.startswith(src + "/") and (ROOT / src).is_dir():
                    return dest.rstrip("/") + "/" + repo_path[len(src) + 1:]
        return None


def _instructions(text: str) -> list[tuple[str, str]]:
    joined = re.sub(r"\\\n", " ", text)
    result = []
    for line in joined.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            word, _, rest = line.partition(" ")
            result.append((word.upper(), rest.strip()))
    return result


@lru_cache(maxsize=None)
def dockerfile(component: str) -> Dockerfile:
    """Parse ``deploy/Dockerfile.<component>``."""
    path = ROOT / "deploy" / f"Dockerfile.{component}"
    parsed = Dockerfile(path)
    workdir = "/"
    for word, rest in _instructions(path.read_text()):
        if word == "FROM":
            parsed.stages += 1
            parsed.env, parsed.copies, workdir = {}, [], "/"
        elif word == "WORKDIR":
            workdir = rest
        elif word == "USER":
            parsed.user = rest
        elif word == "ENTRYPOINT":
            parsed.entrypoint = json.loads(rest)
        elif word == "ENV":
            parsed.env.update(dict(re.findall(r"(\w+)=(\S+)", rest)))
        elif word == "COPY":
            args = rest.split()
            flags = [a for a in args if a.startswith("--")]
            paths = [a for a in args if not a.startswith("--")]
            sources, dest = paths[:-1], paths[-1]
            dest = dest if dest.startswith("/") else f"{workdir.rstrip('/')}/{dest}"
            if not any(f.startswith("--from") for f in flags):
                parsed.build_copies.append(sources)
                parsed.copies.append((sources, dest))
    return parsed


def _dockerignore_patterns() -> list[str]:
    lines = (ROOT / ".dockerignore").read_text().splitlines()
    return [line.strip() for line in lines if line.strip() and not line.startswith("#")]


def dockerignored(path: str) -> bool:
    """True when .dockerignore keeps ``path`` (posix, relative to the root) out of the build context."""
    parts = PurePosixPath(path).parts
    prefixes = ["/".join(parts[:i]) for i in range(1, len(parts) + 1)]
    excluded = False
    for pattern in _dockerignore_patterns():
        negate = pattern.startswith("!")
        pattern = pattern.lstrip("!").strip("/")
        candidates = [pattern]
        if pattern.startswith("**/"):
            candidates.append(pattern[3:])
        hit = any(fnmatch.fnmatchcase(prefix, p) or fnmatch.fnmatchcase(prefix.rsplit("/", 1)[-1], p[3:])
                  if p.startswith("**/") else fnmatch.fnmatchcase(prefix, p)
                  for prefix in prefixes for p in candidates)
        if hit:
            excluded = not negate
    return excluded


@pytest.mark.parametrize("component", COMPONENTS)
def test_every_copy_source_exists_and_is_in_the_build_context(component: str) -> None:
    parsed = dockerfile(component)
    for sources in parsed.build_copies:
        for source in sources:
            path = ROOT / source
            assert path.exists(), f"{parsed.path.name}: COPY {source}: no such file in the repository"
            assert not dockerignored(source), f"{parsed.path.name}: COPY {source} is excluded by .dockerignore"
            if path.is_dir():
                tracked = [p for p in path.rglob("*.py") if "__pycache__" not in p.parts]
                assert tracked, f"{parsed.path.name}: COPY {source}: the folder has no Python files"
                for file in tracked:
                    rel = file.relative_to(ROOT).as_posix()
                    assert not dockerignored(rel), f"{parsed.path.name}: {rel} is excluded by .dockerignore"


def test_dockerignore_keeps_local_state_out() -> None:
    for path in (".venv/bin/python", ".git/HEAD", "model-store/customers/CURRENT", "tests/test_deploy.py",
                 "examples/node/node_modules/x.js", "training_job/__pycache__/cli.cpython-311.pyc"):
        assert dockerignored(path), f"{path} would be sent to the Docker engine"


@pytest.mark.parametrize("component", COMPONENTS)
def test_images_are_multi_stage_slim_and_run_as_a_non_root_user(component: str) -> None:
    parsed = dockerfile(component)
    text = parsed.path.read_text()
    assert parsed.stages >= 2, f"{parsed.path.name} is not multi-stage"
    assert re.search(r"^ARG PYTHON_IMAGE=python:3\.11[\w.-]*-slim", text, re.M), "not a python:3.11 slim base"
    assert f"COPY deploy/requirements-{component}.txt" in text, "does not install its own requirement file"
    assert "COPY --from=builder /opt/venv /opt/venv" in text, "the runtime stage does not copy the built venv"
    assert parsed.user and parsed.user not in ("root", "0"), f"{parsed.path.name} runs as root"


def test_each_image_carries_only_its_component() -> None:
    training, scoring, dashboard = (dockerfile(c).copied_files() for c in ("training", "scoring", "dashboard"))
    # The dashboard carries the training service's client (grpc + the contract), no training code.
    client = {"training_job/__init__.py", "training_job/client.py", "training_job/limits.py"}
    assert not any(p.startswith("training_job") for p in scoring | (dashboard - client)), "training code outside training"
    assert not any(p.startswith(("scoring_service", "dash_ui")) for p in training)
    # Of segmentation_core, the dashboard carries only the table reader (uploads) and the log format, never the store.
    core = {p for p in dashboard if p.startswith("segmentation_core/")}
    assert core <= DASHBOARD_CORE_FILES, f"the dashboard never reads the store: {sorted(core - DASHBOARD_CORE_FILES)}"
    assert not any(p.startswith("dash_ui") for p in scoring)
    spark = dockerfile("spark").copied_files()
    assert not any(p.startswith(("scoring_service", "dash_ui")) for p in spark), "the Spark image runs training code only"
    assert {"training_job", "segmentation_core", "segmentation"} <= spark, "executors import the training code"
    scoring_pins = read_component_pins("scoring")
    assert not {"pandas", "scikit-learn", "scipy", "dash"} & set(scoring_pins), "the scoring image carries " \
                                                                                  "libraries it does not import"


# ---------------------------------------------------------------------------------------------------
# Requirements


def read_component_pins(component: str) -> dict[str, str]:
    """Canonical name -> version pinned in ``deploy/requirements-<component>.txt``."""
    return load_deploy("component_requirements").read_pins(ROOT / "deploy" / f"requirements-{component}.txt")


@pytest.mark.parametrize("component", COMPONENTS)
def test_image_pins_and_hashes_are_the_lock_s(component: str) -> None:
    tool = load_deploy("component_requirements")
    lock_pins, lock_hashes = tool.read_pins(tool.LOCK), tool.read_hashes(tool.LOCK)
    path = ROOT / "deploy" / f"requirements-{component}.txt"
    pins, hashes = tool.read_pins(path), tool.read_hashes(path)
    disagree = {n: (v, lock_pins.get(n)) for n, v in pins.items() if lock_pins.get(n) != v}
    assert not disagree, f"requirements-{component}.txt (image, requirements.lock): {disagree}"
    assert all(hashes[n] and hashes[n] == lock_hashes[n] for n in pins), f"{path.name}: hashes differ from the lock"


def test_image_requirement_files_are_fresh() -> None:
    tool = load_deploy("component_requirements")
    stale = [c for c in tool.COMPONENT_EXTRAS if tool.path_of(c).read_text() != tool.render(c)]
    assert not stale, f"stale image requirements {stale}: run python deploy/component_requirements.py"


# ---------------------------------------------------------------------------------------------------
# docker-compose.yml through a real compose tool


def _compose_tool() -> str:
    tool = shutil.which("docker-compose")
    if tool is None:
        pytest.skip("docker-compose is not installed (Debian package docker-compose; scripts/system_packages.sh "
                    "installs it): it validates docker-compose.yml without a Docker engine")
    return tool


def _compose_env() -> dict[str, str]:
    # The file's ${...} defaults are what is checked: nothing from this shell may fill them in.
    return {k: v for k, v in os.environ.items()
            if not k.startswith(PREFIXES) and k not in ("MODEL_NAME", "COMPOSE_FILE", "COMPOSE_PROJECT_NAME")}


def test_compose_file_passes_docker_compose_validation() -> None:
    tool = _compose_tool()
    result = subprocess.run([tool, "-f", str(COMPOSE_FILE), "config", "--quiet"], capture_output=True, text=True,
                            cwd=ROOT, env=_compose_env(), timeout=60)
    assert result.returncode == 0, result.stderr


@pytest.fixture(scope="module")
def compose() -> dict:
    """docker-compose.yml as docker-compose itself resolves it (variables filled in, syntax normalised)."""
    return compose_config((_compose_tool(),), _compose_env())


@pytest.fixture(scope="module")
def program_env() -> dict[str, set[str]]:
    """Program module -> the environment variables it was seen to read (deploy/config_reference.py)."""
    reference = load_deploy("config_reference")
    found: dict[str, set[str]] = {}
    for program in reference.PROGRAMS:
        commands = reference.program_commands(program)
        found[program.module] = {o.env for c in commands for o in c.options if o.env}
    return found


def _service(compose: dict, name: str) -> dict:
    assert name in compose["services"], f"docker-compose.yml has no service {name!r}"
    return compose["services"][name]


def _environment(service: dict) -> dict[str, str]:
    env = service.get("environment") or {}
    if isinstance(env, list):
        env = dict(item.split("=", 1) for item in env)
    return {k: str(v) for k, v in env.items()}


def test_compose_has_the_three_services_and_the_store_volume(compose: dict) -> None:
    # trainer: the training image, serving; the spark profile's services (test_the_spark_profile_...)
    assert set(compose["services"]) == set(SERVICES) | {"trainer"} | set(SPARK_SERVICES)
    assert "model-store" in (compose.get("volumes") or {})
    for name in SERVICES:
        service = _service(compose, name)
        assert service["build"]["dockerfile"] == f"deploy/Dockerfile.{SERVICES[name]}"
        assert Path(service["build"]["context"]).resolve() == ROOT


def test_the_spark_profile_is_a_master_a_worker_and_a_driver_on_one_image(compose: dict,
                                                                          program_env: dict[str, set[str]]) -> None:
    master, worker, driver = (_service(compose, n) for n in SPARK_SERVICES)
    image = dockerfile("spark")
    assert master["build"]["dockerfile"] == "deploy/Dockerfile.spark" and "build" not in worker | driver
    assert master["image"] == worker["image"] == driver["image"]
    assert all(s.get("profiles") == ["spark"] for s in (master, worker, driver)), "only `--profile spark` starts them"
    assert not any("spark" in (compose["services"][n].get("profiles") or []) for n in ("training", "scoring"))
    assert master["entrypoint"] == ["spark-class", "org.apache.spark.deploy.master.Master"]
    assert worker["entrypoint"] == ["spark-class", "org.apache.spark.deploy.worker.Worker"]
    args = master["command"]
    url = f"spark://{args[args.index('--host') + 1]}:{args[args.index('--port') + 1]}"
    assert url == "spark://spark-master:7077" and worker["command"][-1] == url, (url, worker["command"])
    assert worker["depends_on"]["spark-master"]["condition"] == "service_healthy"
    assert "7077" in " ".join(master["healthcheck"]["test"])
    # What the driver names, the executors read: every data folder of the driver is mounted on the worker too.
    def targets(service: dict) -> dict[str, str]:
        return {str(v).split(":")[1]: str(v).split(":")[0] for v in service.get("volumes", [])}
    shared = {t: s for t, s in targets(driver).items() if t != "/model-store"}
    assert shared and all(targets(worker).get(t) == s for t, s in shared.items()), (targets(worker), shared)
    cores = int(worker["command"][worker["command"].index("--cores") + 1])
    memory = worker["command"][worker["command"].index("--memory") + 1]
    limits = worker["deploy"]["resources"]["limits"]
    assert float(limits["cpus"]) >= cores and _bytes(limits["memory"]) > _bytes(memory), (limits, cores, memory)
    # The driver: the training job of the Spark image, publishing into the same store; its settings are its own.
    assert image.module == "training_job" and image.user not in ("root", "0")
    assert "model-store:/model-store:rw" in driver["volumes"]
    assert driver["depends_on"]["training"]["condition"] == "service_completed_successfully"
    env = {**image.env, **_environment(driver)}
    unknown = sorted(k for k in env if k not in program_env["training_job"] and k not in GENERIC_ENV | SPARK_ENV)
    assert not unknown, f"spark-training sets {unknown}, which python -m training_job does not read"
    assert env["PYSPARK_PYTHON"] == "/opt/venv/bin/python", "Spark's Python workers must run the image's venv"


def test_every_long_running_service_declares_its_health_check(compose: dict) -> None:
    """In the compose file, not only in the image: podman builds in its OCI format by default, which drops a
    Dockerfile's HEALTHCHECK, and then nothing would ever say the dashboard is healthy."""
    for name, service in compose["services"].items():
        if str(service.get("restart", "no")) != "no":
            test = (service.get("healthcheck") or {}).get("test") or []
            assert test and test[0] in ("CMD", "CMD-SHELL"), f"{name} declares no health check"


def test_every_published_port_binds_loopback_by_default(compose: dict) -> None:
    """The trainer (uploads, training, publishing; no token unless TRAINING_TOKEN_FILE is set) above all."""
    for name, service in compose["services"].items():
        for port in service.get("ports", []):
            host_ip = port.get("host_ip", "") if isinstance(port, dict) else str(port).split(":")[0]
            assert host_ip == "127.0.0.1", f"{name} publishes {port} beyond loopback by default"
    assert _service(compose, "trainer").get("ports"), "the trainer's port (the test reaches it through it)"


def test_grpcurl_guide_says_where_the_compose_stack_serves() -> None:
    """compose publishes the scoring service on a free port, not 50051 (replicas: --scale scoring=N)."""
    text = (ROOT / "docs" / "grpcurl.md").read_text()
    assert "docker compose port scoring 50051" in text and "SCORING_HOST_PORT" in text
    assert "docker compose up`) on `127.0.0.1:50051" not in text


def test_health_check_arguments_have_no_spaces(compose: dict) -> None:
    """podman's Docker-compatible API splits a CMD health check's arguments at spaces (the Spark master's
    check failed as `python -c import` until its one-liner had none)."""
    for name, service in compose["services"].items():
        test = (service.get("healthcheck") or {}).get("test") or []
        if test and test[0] == "CMD":
            assert not [a for a in test[1:] if " " in a], f"{name}: health check {test}"


def _bytes(size: str) -> int:
    """'2g' -> 2**31, '512m' -> 2**29."""
    return int(size[:-1]) * 1024 ** ("kmg".index(size[-1].lower()) + 1) if size[-1].isalpha() else int(size)


def test_trainer_serves_from_the_training_image_with_settings_it_reads(compose: dict,
                                                                      program_env: dict[str, set[str]]) -> None:
    trainer = _service(compose, "trainer")
    assert trainer["image"] == _service(compose, "training")["image"] and trainer["command"] == ["serve"]
    assert "model-store:/model-store:rw" in trainer["volumes"], "the trainer publishes: the store is read-write"
    check = trainer["healthcheck"]["test"]
    assert "grpc_health_probe.py" in " ".join(check)
    assert check[check.index("--env-prefix") + 1] == "TRAINING_", "the probe must read the trainer's TLS settings"
    unknown = sorted(k for k in _environment(trainer) if k not in program_env["training_job"] and k not in GENERIC_ENV)
    assert not unknown, f"docker-compose.yml: trainer sets {unknown}, which python -m training_job does not read"


@pytest.mark.parametrize("name", SERVICES)
def test_service_environment_is_read_by_its_program(compose: dict, program_env: dict[str, set[str]],
                                                    name: str) -> None:
    image = dockerfile(SERVICES[name])
    known = program_env[image.module]
    for source, env in (("docker-compose.yml", _environment(_service(compose, name))),
                        (image.path.name, image.env)):
        unknown = sorted(k for k in env if k not in known and k not in GENERIC_ENV)
        assert not unknown, f"{source}: {name} sets {unknown}, which python -m {image.module} does not read " \
                            f"(it reads {sorted(known)})"


@pytest.mark.parametrize("name", SERVICES)
def test_service_command_parses_with_its_program(compose: dict, name: str) -> None:
    reference = load_deploy("config_reference")
    image = dockerfile(SERVICES[name])
    program = next(p for p in reference.PROGRAMS if p.module == image.module)
    env = {**image.env, **_environment(_service(compose, name))}
    parser = reference.capture_parser(image.module, {k: v for k, v in env.items() if k not in GENERIC_ENV},
                                      program.env_prefixes)
    command = _service(compose, name).get("command") or []
    command = command.split() if isinstance(command, str) else command
    try:
        parser.parse_args(command)
    except SystemExit:
        pytest.fail(f"{name}: `python -m {image.module} {' '.join(command)}` is refused by its parser under the "
                    f"service's environment {env}")


def test_services_agree_on_ports_and_the_store(compose: dict) -> None:
    training, scoring, dashboard = (_service(compose, n) for n in ("training", "scoring", "dashboard"))
    t_env, s_env, d_env = (_environment(s) for s in (training, scoring, dashboard))
    port = s_env.get("SCORING_PORT", dockerfile("scoring").env.get("SCORING_PORT"))
    assert s_env.get("SCORING_HOST", dockerfile("scoring").env.get("SCORING_HOST")) == "0.0.0.0", \
        "in a container the service must listen on every interface"
    assert d_env["DASH_SCORING"] == f"dns:///scoring:{port}", \
        "the dashboard calls every scoring replica by the service's name"
    assert d_env.get("DASH_HOST", dockerfile("dashboard").env.get("DASH_HOST")) == "0.0.0.0"
    assert any(str(p.get("target", p) if isinstance(p, dict) else p).split(":")[-1].split("/")[0] == port
               for p in scoring.get("ports", [])), f"the scoring port {port} is not published"
    assert any(str(p).split(":")[-1].split("/")[0] == d_env.get("DASH_PORT", "8050")
               for p in dashboard.get("ports", [])), "the dashboard port is not published"

    def mounts(service: dict) -> dict[str, tuple[str, str]]:
        result = {}
        for volume in service.get("volumes", []):
            source, target, *mode = str(volume).split(":")
            result[target] = (source, mode[0] if mode else "rw")
        return result

    assert mounts(training).get(t_env["TRAINING_STORE"], ("", ""))[0] == "model-store"
    assert mounts(training)[t_env["TRAINING_STORE"]][1] != "ro"
    assert mounts(scoring).get(s_env["SCORING_STORE"]) == ("model-store", "ro"), "scoring must mount the store ro"
    assert not any(src == "model-store" for src, _ in mounts(dashboard).values()), "the dashboard reads no store"
    assert t_env.get("TRAINING_MODEL") == s_env.get("SCORING_MODEL"), "training and serving name one model"


def test_start_order_restarts_and_limits(compose: dict) -> None:
    training, scoring, dashboard = (_service(compose, n) for n in ("training", "scoring", "dashboard"))
    assert scoring["depends_on"]["training"]["condition"] == "service_completed_successfully"
    assert dashboard["depends_on"]["scoring"]["condition"] == "service_healthy"
    assert str(training.get("restart")) == "no", "the one-shot training job must not be restarted"
    for service in (scoring, dashboard):
        assert service.get("restart") in ("unless-stopped", "always", "on-failure")
    for name in SERVICES:
        limits = _service(compose, name).get("deploy", {}).get("resources", {}).get("limits", {})
        assert limits.get("memory") and limits.get("cpus"), f"{name} has no memory and cpu limits"


def test_scoring_health_check_is_the_grpc_probe_shipped_in_the_image(compose: dict) -> None:
    check = _service(compose, "scoring")["healthcheck"]["test"]
    assert check[0] in ("CMD", "CMD-SHELL") and check[1] == "python", check
    script, target = check[2], check[3]
    shipped = dockerfile("scoring").destination_of("deploy/grpc_health_probe.py")
    assert shipped == script, f"the health check runs {script}, the image has the probe at {shipped}"
    port = _environment(_service(compose, "scoring")).get("SCORING_PORT")
    assert target == f"127.0.0.1:{port}", "the probe must ask the container's own gRPC port"


# ---------------------------------------------------------------------------------------------------
# What each image must hold: the modules its component imports while it runs


def _module_file(name: str) -> str | None:
    base = ROOT.joinpath(*name.split("."))
    for candidate in (base.with_suffix(".py"), base / "__init__.py"):
        if candidate.is_file():
            return candidate.relative_to(ROOT).as_posix()
    return None


def assert_image_covers(component: str, modules: set[str]) -> None:
    """Every first-party module is copied into the image, every third-party one installed by its requirements."""
    image = dockerfile(component)
    pins = set(read_component_pins(component))
    distributions = packages_distributions()
    first_party = {p.name for p in ROOT.iterdir() if p.is_dir() and (p / "__init__.py").exists()}
    missing_code, missing_packages = [], set()
    for name in sorted(modules):
        top = name.split(".")[0]
        if top in sys.stdlib_module_names or top in sys.builtin_module_names or top in ("__main__", "_distutils_hack") \
                or top in OPTIONAL_IMPORTS:
            continue
        if top in first_party:
            path = _module_file(name)
            if path and image.destination_of(path) is None:
                missing_code.append(path)
            continue
        dists = {canonicalize_name(d) for d in distributions.get(top, [])}
        if dists and not dists & pins:
            missing_packages.add(f"{top} (from {', '.join(sorted(dists))})")
    assert not missing_code, f"{image.path.name} does not copy {missing_code}"
    assert not missing_packages, f"requirements-{component}.txt lacks {sorted(missing_packages)}"


@pytest.fixture(scope="module")
def mall_store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A store with one real model (Mall customers: numbers and a category)."""
    from tests import model_factory

    if not model_factory.MALL_CSV.exists():
        pytest.skip(f"{model_factory.MALL_CSV} not found")
    from segmentation_core.store import ModelStore

    store = tmp_path_factory.mktemp("deploy-store")
    model_factory.publish(ModelStore(store))
    return store


def _exercise_every_rpc(target: str) -> None:
    from grpc_health.v1 import health_pb2, health_pb2_grpc
    from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

    from segmentation.v1 import scoring_pb2 as pb
    from segmentation.v1 import scoring_pb2_grpc

    with grpc.insecure_channel(target) as channel:
        stub = scoring_pb2_grpc.ScoringServiceStub(channel)
        customer = pb.Customer(id="c1", numbers={"Age": 30, "Annual Income (k$)": 60, "Spending Score (1-100)": 50},
                               categories={"Gender": "Female"})
        assert stub.Predict(pb.PredictRequest(customer=customer), timeout=10).prediction.segment_name
        batch = pb.PredictBatchRequest(batch_id="b1", numeric=[pb.NumericColumn(name="Age", values=[20, 60])],
                                       categorical=[pb.CategoricalColumn(name="Gender", values=["Male", "x"])])
        assert [len(r.segment_id) for r in stub.PredictStream(iter([batch]), timeout=10)] == [2]
        assert stub.GetModelInfo(pb.GetModelInfoRequest(), timeout=10).segments
        assert stub.GetSegmentStats(pb.GetSegmentStatsRequest(max_sample=50), timeout=10).sample_segment_id
        assert stub.ListModels(pb.ListModelsRequest(), timeout=10).models
        watch = stub.WatchModel(pb.WatchModelRequest(), timeout=10)
        assert next(watch).version
        watch.cancel()
        health = health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=5)
        assert health.status == health_pb2.HealthCheckResponse.SERVING
        reflection = reflection_pb2_grpc.ServerReflectionStub(channel)
        replies = reflection.ServerReflectionInfo(iter([reflection_pb2.ServerReflectionRequest(list_services="")]),
                                                  timeout=5)
        assert any(s.name == "segmentation.v1.ScoringService" for s in next(replies).list_services_response.service)


@pytest.mark.slow
def test_scoring_and_dashboard_images_hold_what_the_running_programs_import(mall_store: Path,
                                                                            tmp_path: Path) -> None:
    scoring, target = start_scoring(mall_store, tmp_path, python_flags=["-X", "importtime"])
    with stopping(scoring):
        _exercise_every_rpc(target)
        dash, url = start_dashboard(target, tmp_path, python_flags=["-X", "importtime"])
        with stopping(dash):
            for path in ("", "_dash-layout", "_dash-dependencies"):
                assert http_status(url + path) == 200, path
    served = imported_modules(scoring.output())
    assert "scoring_service.server" in served, "no -X importtime output from the scoring service"
    assert not {"pandas", "sklearn", "training_job", "dash_ui"} & {m.split(".")[0] for m in served}, \
        "the scoring service imports what its image does not have"
    assert_image_covers("scoring", served)
    shown = imported_modules(dash.output())
    assert "dash_ui" in shown
    # Of the training job, only the training service's client (and the limits of k its form shows), as the image.
    training = {m for m in shown if m.split(".")[0] == "training_job"}
    assert training <= {"training_job", "training_job.client", "training_job.limits"}, \
        f"the dashboard must know only the gRPC contract: {sorted(training)}"
    core = {m for m in shown if m.startswith("segmentation_core.")}
    assert core <= DASHBOARD_CORE_MODULES, f"the dashboard imports {sorted(core - DASHBOARD_CORE_MODULES)}"
    assert_image_covers("dashboard", shown)


def test_the_dashboard_is_served_by_waitress_and_stops_cleanly_on_sigterm(tmp_path: Path) -> None:
    dash, url = start_dashboard(f"127.0.0.1:{free_port()}", tmp_path)  # no service: the page says it waits
    try:
        with urllib.request.urlopen(url, timeout=10) as reply:
            server = reply.headers["Server"]
        with urllib.request.urlopen(url + "health", timeout=10) as reply:
            health = json.loads(reply.read())
    finally:
        code = dash.stop()
    assert server == "waitress", dash.describe()
    assert health["status"] == "degraded" and health["scoring"]["reachable"] is False, health
    assert code == 0 and "dashboard stopped" in dash.output(), dash.describe()
    # Its log lines are JSON objects, as the other programs' (segmentation_core.logs).
    lines = [json.loads(line) for line in dash.output().splitlines() if line.startswith("{")]
    assert any(entry["logger"] == "dash_ui" and "dashboard stopped" in entry["message"] for entry in lines), \
        dash.describe()


def test_the_dashboard_s_thread_count_is_a_positive_number() -> None:
    from dash_ui.settings import DEFAULT_THREADS, parse_settings

    assert parse_settings([], {}).threads == DEFAULT_THREADS and parse_settings(["--threads", "3"], {}).threads == 3
    with pytest.raises(SystemExit):
        parse_settings(["--threads", "0"], {})


@pytest.mark.slow
def test_training_image_holds_what_the_training_job_imports(tmp_path: Path) -> None:
    run = train(tmp_path / "store", tmp_path, "--k", "3", python_flags=["-X", "importtime"])
    modules = imported_modules(run.output())
    assert "training_job.train" in modules
    assert_image_covers("training", modules)


@pytest.mark.slow
def test_health_probe_says_serving_or_not(mall_store: Path, tmp_path: Path) -> None:
    probe = str(ROOT / "deploy" / "grpc_health_probe.py")
    scoring, target = start_scoring(mall_store, tmp_path)
    with stopping(scoring):
        ok = subprocess.run([PYTHON, probe, target], capture_output=True, text=True, timeout=30)
        assert ok.returncode == 0, ok.stderr
    down = subprocess.run([PYTHON, probe, target, "--timeout", "0.5"], capture_output=True, text=True, timeout=30)
    assert down.returncode == 1 and "UNAVAILABLE" in down.stderr, down.stderr


@pytest.fixture(scope="module")
def cluster_certificate(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A self-signed certificate as a cluster's issuer writes it: for the Service's DNS names only, so a probe
    dialling 127.0.0.1 inside the pod must check it against one of those names."""
    return self_signed_certificate(tmp_path_factory.mktemp("cluster-tls"), "scoring",
                                   "DNS:scoring,DNS:scoring.segmentation.svc")


def _probe(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess:
    """deploy/grpc_health_probe.py as a container runs it: only the service's own variables set."""
    clean = {k: v for k, v in os.environ.items() if not k.startswith(PREFIXES)}
    return subprocess.run([PYTHON, str(ROOT / "deploy" / "grpc_health_probe.py"), *args], capture_output=True,
                          text=True, timeout=60, env={**clean, **env})


@pytest.mark.parametrize("which", ["loopback-cert", "cluster-cert"])
def test_health_probe_speaks_tls_when_the_service_does(scoring_server_factory, mall_store: Path, tmp_path: Path,
                                                        certificate: tuple[Path, Path],
                                                        cluster_certificate: tuple[Path, Path], which: str) -> None:
    """With SCORING_TLS_CERT/KEY (and a token) set, the container's health check and a Kubernetes exec probe run
    the probe with no arguments: it must speak TLS, trust the service's own (self-signed) certificate, check it
    against a name the certificate carries, and need no token (health checks are exempt)."""
    cert, key = certificate if which == "loopback-cert" else cluster_certificate
    token = tmp_path / "token"
    token.write_text("s3cret\n")
    server = scoring_server_factory(mall_store, tls_cert=str(cert), tls_key=str(key), token_file=str(token))
    env = {"SCORING_PORT": str(server.port), "SCORING_TLS_CERT": str(cert), "SCORING_TLS_KEY": str(key),
           "SCORING_TOKEN_FILE": str(token)}
    ok = _probe(env=env)
    assert ok.returncode == 0, ok.stderr
    assert _probe("--wait", "5", env=env).returncode == 0
    plain = _probe("--plaintext", "--timeout", "1", env=env)
    assert plain.returncode == 1 and "UNAVAILABLE" in plain.stderr, plain.stderr
    # From elsewhere: a CA file and the name to check, the service's variables unset.
    given = _probe(f"127.0.0.1:{server.port}", "--tls-ca", str(cert), "--server-name", "localhost"
                   if which == "loopback-cert" else "scoring", env={})
    assert given.returncode == 0, given.stderr
    wrong = _probe(f"127.0.0.1:{server.port}", "--tls-ca", str(cert), "--server-name", "elsewhere",
                   "--timeout", "1", env={})
    assert wrong.returncode == 1, "a certificate for other names must not pass"
    missing = _probe(env={**env, "SCORING_TLS_CERT": str(tmp_path / "no-such.pem")})
    assert missing.returncode == 2 and "no-such.pem" in missing.stderr, missing.stderr


def test_health_probe_reads_the_training_service_settings_with_its_prefix(tmp_path: Path,
                                                                          cluster_certificate: tuple[Path, Path]
                                                                          ) -> None:
    """The trainer's health check (compose, Kubernetes) runs the probe with --env-prefix TRAINING_."""
    from training_job.server import TrainerSettings, TrainingServer

    cert, key = cluster_certificate
    server = TrainingServer(TrainerSettings(tmp_path / "store", tmp_path / "data", port=0, tls_cert=str(cert),
                                            tls_key=str(key))).start()
    try:
        env = {"TRAINING_PORT": str(server.port), "TRAINING_TLS_CERT": str(cert), "TRAINING_TLS_KEY": str(key)}
        ok = _probe("--env-prefix", "TRAINING_", env=env)
        assert ok.returncode == 0, ok.stderr
        assert _probe("--env-prefix", "TRAINING_", "--plaintext", "--timeout", "1", env=env).returncode == 1
    finally:
        server.stop(grace=0)


# ---------------------------------------------------------------------------------------------------
# Documentation generated from, or checked against, the code


def test_configuration_reference_in_the_deployment_guide_is_fresh() -> None:
    reference = load_deploy("config_reference")
    committed = reference.embedded((ROOT / "docs" / "deployment.md").read_text())
    assert committed == reference.render(reference.all_commands(), level=2), \
        "docs/deployment.md is stale: run python deploy/config_reference.py --write docs/deployment.md"


PACKAGES = ("segmentation_core", "segmentation", "training_job", "scoring_service", "dash_ui")


def _import_graph() -> dict[tuple[str, str], set[str]]:
    """(importing package, imported package) -> imported modules (relative to their package), from the code."""
    import ast

    graph: dict[tuple[str, str], set[str]] = {}
    for package in PACKAGES:
        for file in (ROOT / package).rglob("*.py"):
            for node in ast.walk(ast.parse(file.read_text())):
                names: list[str] = []
                if isinstance(node, ast.Import):
                    names = [alias.name for alias in node.names]
                elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                    # `from pkg import module` imports pkg.module; `from pkg.module import name` imports pkg.module.
                    names = [f"{node.module}.{a.name}" if _module_file(f"{node.module}.{a.name}") else node.module
                             for a in node.names]
                for name in names:
                    top = name.split(".")[0]
                    if top in PACKAGES and top != package:
                        graph.setdefault((package, top), set()).add(name[len(top) + 1:] or "(package)")
    return graph


def test_architecture_picture_matches_the_imports() -> None:
    text = (ROOT / "docs" / "architecture.md").read_text()
    block = text.split("```mermaid", 1)[1].split("```", 1)[0]
    drawn = {(a, b): {m.strip() for m in label.split(",")}
             for a, label, b in re.findall(r"(\w+) -->\|\"([^\"]*)\"\| (\w+)", block)}
    assert drawn == _import_graph(), "docs/architecture.md's graph differs from the code's imports"


def test_train_skip_if_served_leaves_a_serving_store_alone_and_trains_an_empty_one(tmp_path: Path) -> None:
    from segmentation_core.store import ModelStore
    from tests import model_factory
    from training_job.cli import main

    if not model_factory.MALL_CSV.exists():
        pytest.skip(f"{model_factory.MALL_CSV} not found")
    store = ModelStore(tmp_path / "store")
    model_factory.publish(store)
    served = store.current("customers")
    missing = str(tmp_path / "no-such-file.csv")  # it would fail, were it read
    assert main(["train", "--skip-if-served", "--data", missing, "--store", str(store.root)]) == 0
    assert store.versions("customers") == [served] and store.current("customers") == served
    # An empty store (or another model) is trained: here the missing file is reported, exit 2.
    assert main(["train", "--skip-if-served", "--data", missing, "--store", str(tmp_path / "empty")]) == 2

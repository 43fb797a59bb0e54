"""The deployment, run for real: the images built by a container engine, docker-compose.yml's stack up.

One session-scoped build of every image the compose file names (the engine's layer cache makes it quick
after the first), then one stack under its own project name, image tag and free host ports: it waits
until the stack is healthy, scores customers through the published gRPC port with the Python client,
loads every dashboard page in headless Chromium through the published HTTP port, uploads an Excel file
on the Batch page, retrains with ``compose run``, sees the new version served, trains and publishes a
version through the trainer's published port, checks that a second ``up`` does not retrain, and takes it
all down with ``down -v``, leaving no container, network or volume. Every long-running container must report
healthy (its health check ran and passed). Then the same images come up once more with TLS and tokens on (an
override file, a certificate made by the test) and must turn healthy and answer over TLS only.
Each image also imports every module its program needs, inside the image.

Without an engine (no Docker, no ../shared/tools/container-engine.sh set-up) the module skips and says
why; .ci/run sets the engine up. Figures (image sizes, up-to-healthy, retrain-to-served) are written to
artifacts/deploy/figures.json.

To cover another service (as the trainer is) or a profile's services (`spark`): add its readiness check
to READY, its published port variable to PUBLISHED_PORTS, the profile to PROFILES, and the modules of a
new image to IMAGE_MODULES.
"""
from __future__ import annotations

import json
import os
import threading
import time
import uuid
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable, Iterator

import pandas as pd
import pytest

from tests.deploy_support import (ROOT, Engine, Stack, compose_config, find_engine, free_port, http_status,
                                  load_deploy)

pytestmark = [pytest.mark.slow, pytest.mark.deploy]

IMAGE_TAG = "suite"
FIGURES = ROOT / "artifacts" / "deploy" / "figures.json"
# The name under which the local engine may hold a stand-in of the base image (no registry reachable);
# SEGMENTATION_BASE_IMAGE names another. When the engine has neither, the Dockerfiles' digest is pulled.
LOCAL_BASE_IMAGE = os.environ.get("SEGMENTATION_BASE_IMAGE", "python:3.11-slim-bookworm")
# Host ports the compose file publishes, by the variable that sets each: every one gets a free port.
PUBLISHED_PORTS = ("SCORING_HOST_PORT", "METRICS_HOST_PORT", "DASH_HOST_PORT", "TRAINER_HOST_PORT",
                   "SPARK_UI_HOST_PORT")
# Compose profiles the test turns on: `spark`, a Spark master and worker and the Spark driver's image.
PROFILES: tuple[str, ...] = ("spark",)
UP_TIMEOUT = 600.0


@dataclass(frozen=True)
class Ready:
    """How to tell that one long-running service is up, through its published port."""

    port_variable: str
    check: Callable[[str], bool]  # given "127.0.0.1:PORT"


def _grpc_serving(target: str) -> bool:
    return load_deploy("grpc_health_probe").check(target, "", timeout=2.0) == "SERVING"


def _http_ok(target: str) -> bool:
    return http_status(f"http://{target}/") == 200


def _spark_master_state(target: str) -> dict:
    """The Spark master's /json/ summary (workers, applications), or {} while it does not answer."""
    import urllib.request

    try:
        with urllib.request.urlopen(f"http://{target}/json/", timeout=5) as reply:
            return json.loads(reply.read())
    except (OSError, ValueError):
        return {}


def _spark_worker_alive(target: str) -> bool:
    return _spark_master_state(target).get("aliveworkers", 0) >= 1


# Every long-running service of the stack, with how it is seen to be up (the trainer goes here).
READY: dict[str, Ready] = {
    "scoring": Ready("SCORING_HOST_PORT", _grpc_serving),
    "trainer": Ready("TRAINER_HOST_PORT", _grpc_serving),
    "dashboard": Ready("DASH_HOST_PORT", _http_ok),
    "spark-master": Ready("SPARK_UI_HOST_PORT", _spark_worker_alive),  # up when a worker has registered
}

# Inside each image: the first-party packages whose every module must import (minus those the program
# does not run), the distributions whose top-level modules must import (lazy imports such as pandas'
# openpyxl are found only this way), and the modules the image must not have.
IMAGE_MODULES: dict[str, dict[str, list[str]]] = {
    # The training image has no pyspark: its Spark engine is the Spark image's.
    "training": {"packages": ["training_job", "segmentation_core"], "skip": ["training_job.spark"],
                 "absent": ["scoring_service", "dash_ui", "pyspark", "pip", "setuptools"]},
    # The Spark image (master, worker, driver): the training job with its Spark engine, pyspark and Java.
    "spark": {"packages": ["training_job", "segmentation_core"], "skip": [],
              "absent": ["scoring_service", "dash_ui", "pip", "setuptools"]},
    # The scoring image carries the whole scoring_service and segmentation_core folders; the server's modules
    # (not the Python client's: the `client` extra, pandas) pull in the segmentation_core modules it uses.
    "scoring": {"packages": ["scoring_service", "segmentation"],
                "skip": ["scoring_service.client", "scoring_service.client_cli"],
                "absent": ["pandas", "sklearn", "scipy", "training_job", "dash_ui", "pip", "setuptools"]},
    # The dashboard image carries of segmentation_core, scoring_service and training_job only the files it
    # imports: the table reader and the two services' clients. (Dash needs setuptools; nothing needs pip.)
    "dashboard": {"packages": ["dash_ui", "segmentation"], "skip": [],
                  "modules": ["segmentation_core.tables", "scoring_service.client", "training_job.client"],
                  "absent": ["sklearn", "training_job.train", "segmentation_core.store", "scoring_service.server",
                             "pip"]},
}

_IMPORT_EVERYTHING = r"""
import importlib, importlib.metadata as md, importlib.util, json, pkgutil, sys
spec = json.loads(sys.argv[1])
failed, imported = {}, []
def attempt(name):
    try:
        importlib.import_module(name)
        imported.append(name)
    except BaseException as exc:
        failed[name] = f"{type(exc).__name__}: {exc}"
for name in spec.get("modules", []):
    attempt(name)
for package in spec["packages"]:
    attempt(package)
    module = sys.modules.get(package)
    for info in pkgutil.walk_packages(getattr(module, "__path__", []), package + "."):
        skipped = any(info.name == s or info.name.startswith(s + ".") for s in spec["skip"])
        if not skipped and not info.name.endswith(".__main__"):  # __main__ runs the program: the stack does
            attempt(info.name)
for dist in spec["distributions"]:
    try:
        files = md.distribution(dist).files or []
    except md.PackageNotFoundError:
        failed[dist] = "distribution not installed"
        continue
    tops = {f.parts[0].removesuffix(".py") for f in files
            if f.parts and not f.parts[0].endswith((".dist-info", ".data", ".pth")) and f.parts[0] != ".."
            and (f.suffix == ".py" or len(f.parts) > 1) and not f.parts[0].startswith("_")
            and f.parts[0] not in ("bin", "__pycache__")}
    for top in sorted(t for t in tops if t.isidentifier()):  # not numpy.libs and the like
        attempt(top)
def found(name):
    try:
        return importlib.util.find_spec(name) is not None
    except ImportError:
        return False
present = [name for name in spec["absent"] if found(name)]
print(json.dumps({"failed": failed, "imported": len(imported), "present": present}))
"""


def _engine_or_skip() -> Engine:
    engine = find_engine()
    if isinstance(engine, str):
        pytest.skip(engine)
    return engine


@pytest.fixture(scope="session")
def engine() -> Engine:
    """The container engine, or a skip saying why there is none."""
    return _engine_or_skip()


def _compose_services(engine: Engine) -> dict[str, dict]:
    """docker-compose.yml's services as the compose tool resolves them (with IMAGE_TAG set)."""
    env = {"IMAGE_TAG": IMAGE_TAG, **({"COMPOSE_PROFILES": ",".join(PROFILES)} if PROFILES else {})}
    return compose_config(engine.compose_tool, engine.env(**env))["services"]


def _record(**figures: object) -> None:
    FIGURES.parent.mkdir(parents=True, exist_ok=True)
    known = json.loads(FIGURES.read_text()) if FIGURES.exists() else {}
    known.update(figures)
    FIGURES.write_text(json.dumps(known, indent=2, sort_keys=True) + "\n")


@pytest.fixture(scope="session")
def images(engine: Engine, tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """Every image docker-compose.yml names, built once for the session: component -> image tag."""
    logs = tmp_path_factory.mktemp("image-builds")
    build_args = {"PYTHON_IMAGE": LOCAL_BASE_IMAGE} if engine.has_image(LOCAL_BASE_IMAGE) else {}
    built: dict[str, str] = {}
    seconds: dict[str, float] = {}
    for name, service in _compose_services(engine).items():
        if "build" not in service:  # runs an image another service builds (the trainer: the training image)
            assert any(s.get("image") == service["image"] and "build" in s
                       for s in _compose_services(engine).values()), f"{name}: no service builds {service['image']}"
            continue
        dockerfile = service["build"]["dockerfile"]
        component = dockerfile.rsplit(".", 1)[-1]
        if component in built:
            continue
        start = time.monotonic()
        engine.build(dockerfile, service["image"], build_args, logs / f"{component}.log")
        seconds[component] = round(time.monotonic() - start, 1)
        built[component] = service["image"]
    sizes = {c: engine.image_size(tag) for c, tag in built.items()}
    _record(image_mb={c: round(s / 1e6) for c, s in sizes.items()}, build_seconds=seconds,
            base_image=build_args.get("PYTHON_IMAGE", "the Dockerfiles' digest"), load=os.getloadavg()[0])
    return built


def test_the_scoring_image_is_the_smallest(engine: Engine, images: dict[str, str]) -> None:
    sizes = {c: engine.image_size(tag) for c, tag in images.items()}
    assert min(sizes, key=sizes.get) == "scoring", f"image sizes (bytes): {sizes}"


@pytest.mark.parametrize("component", ["scoring", "dashboard"])
def test_the_images_keep_their_health_checks(engine: Engine, images: dict[str, str], component: str) -> None:
    """podman's default OCI format drops a Dockerfile's HEALTHCHECK: the images are built as Docker images."""
    check = engine.image_healthcheck(images[component])
    assert check and check[0] == "CMD", f"the {component} image has no HEALTHCHECK: {check}"


@pytest.mark.parametrize("component", list(IMAGE_MODULES))
def test_each_image_imports_every_module_its_program_needs(engine: Engine, images: dict[str, str],
                                                           component: str) -> None:
    tool = load_deploy("component_requirements")
    spec = {**IMAGE_MODULES[component], "distributions": sorted(tool.declared(tool.COMPONENT_EXTRAS[component]))}
    result = engine.run("run", "--rm", "--network", "none", "--entrypoint", "python", images[component], "-c",
                        _IMPORT_EVERYTHING, json.dumps(spec), timeout=300)
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert not report["failed"], f"{component} image: {json.dumps(report['failed'], indent=1)}"
    assert not report["present"], f"{component} image carries {report['present']}"
    assert report["imported"] > 10


# ---------------------------------------------------------------------------------------------------
# The stack


@pytest.fixture(scope="module")
def stack(engine: Engine, images: dict[str, str], tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """docker-compose.yml up under a project of its own, healthy; taken down (-v) at the end whatever happens."""
    env = {"IMAGE_TAG": IMAGE_TAG, **{v: str(free_port()) for v in PUBLISHED_PORTS}}
    if PROFILES:
        env["COMPOSE_PROFILES"] = ",".join(PROFILES)
    stack = Stack(engine, f"segtest{uuid.uuid4().hex[:8]}", env, tmp_path_factory.mktemp("stack"))
    stack.start_health_checks()
    try:
        start = time.monotonic()
        stack.compose("up", "-d", "--no-build", timeout=UP_TIMEOUT)
        for name, ready in READY.items():
            target = f"127.0.0.1:{env[ready.port_variable]}"
            deadline = time.monotonic() + UP_TIMEOUT
            while not ready.check(target):
                assert time.monotonic() < deadline, f"{name} is not up at {target}\n{stack.logs()}"
                time.sleep(0.5)
        _record(up_to_healthy_seconds=round(time.monotonic() - start, 1))
        yield stack
    finally:
        stack.compose("down", "-v", "--remove-orphans", timeout=300, check=False)
        stack.stop_health_checks()


def _target(stack: Stack, variable: str) -> str:
    return f"127.0.0.1:{stack.env[variable]}"


@pytest.fixture(scope="module")
def client(stack: Stack) -> Iterator[object]:
    """The Python client, through the published gRPC port."""
    from scoring_service.client import ScoringClient

    with ScoringClient(_target(stack, "SCORING_HOST_PORT"), timeout=30) as client:
        yield client


def _versions(stack: Stack) -> list[dict]:
    listing = stack.compose("run", "--rm", "-T", "training", "list", "--json", timeout=300)
    return json.loads(listing.stdout[listing.stdout.index("["):])


def _training_sample(stack: Stack) -> tuple[pd.DataFrame, list[int], str]:
    """The model's labelled sample of training customers (GetSegmentStats), as a frame, its segment ids
    and the version it belongs to."""
    import grpc

    from segmentation.v1 import scoring_pb2 as pb
    from segmentation.v1 import scoring_pb2_grpc

    with grpc.insecure_channel(_target(stack, "SCORING_HOST_PORT")) as channel:
        stats = scoring_pb2_grpc.ScoringServiceStub(channel).GetSegmentStats(pb.GetSegmentStatsRequest(max_sample=500),
                                                                             timeout=30)
    frame = pd.DataFrame({c.name: list(c.values) for c in stats.sample_numeric}
                         | {c.name: list(c.values) for c in stats.sample_categorical})
    return frame, list(stats.sample_segment_id), stats.version


def _wait_healthy(stack: Stack, services: list[str], timeout: float = 180.0) -> None:
    """Until the engine reports every container of ``services`` healthy (not only running)."""
    deadline = time.monotonic() + timeout
    while True:
        states: dict[str, str] = {}
        missing = []
        for name in services:
            ids = stack.service_containers(name)
            missing += [] if ids else [name]
            states.update({f"{name}/{cid[:12]}": stack.engine.health(cid) for cid in ids})
        if not missing and all(state == "healthy" for state in states.values()):
            return
        assert time.monotonic() < deadline, f"not healthy: {states}, not running: {missing}\n{stack.logs()}"
        time.sleep(1)


def test_every_long_running_service_reports_healthy(stack: Stack) -> None:
    """Its health check runs and passes in the container: `running` alone says nothing of a probe that fails."""
    services = _compose_services(stack.engine)
    _wait_healthy(stack, [name for name, service in services.items() if service.get("healthcheck")
                          and str(service.get("restart", "no")) != "no"])


def test_up_trained_one_version_and_the_service_serves_it(stack: Stack, client) -> None:
    versions = _versions(stack)
    assert [v["version"] for v in versions if v["current"]] == ["v0001"], versions
    info = client.model_info()
    assert info.version == "v0001" and info.k == len(info.segments) >= 2


def test_customers_scored_through_the_published_port_get_their_training_segments(stack: Stack, client) -> None:
    sample, segments, version = _training_sample(stack)
    assert len(sample) >= 100 and version == client.model_info().version
    scored = client.predict_frame(sample)
    assert (scored["error"].astype(str) == "").all(), scored[scored["error"].astype(str) != ""].head()
    assert list(scored["segment_id"]) == segments, "the service's segments differ from the training labels"
    names = {s.id: s.name for s in client.model_info().segments}
    assert list(scored["segment_name"].astype(str)) == [names[s] for s in segments]
    one = client.predict(sample.iloc[0].to_dict())
    assert (one.segment_id, one.version) == (segments[0], version)


@pytest.fixture(scope="module")
def browser(stack: Stack, tmp_path_factory: pytest.TempPathFactory) -> Iterator[object]:
    from tests.browser_support import browser_missing_reason, chrome

    reason = browser_missing_reason()
    if reason:
        pytest.skip(reason)
    with chrome(tmp_path_factory.mktemp("stack-downloads")) as driver:
        yield driver


def _open(driver, url: str) -> None:
    from tests.browser_support import page_ready_script, wait_until

    driver.get(url)
    wait_until(lambda: driver.execute_script(page_ready_script()), 60, message=f"{url} to be ready")


@pytest.mark.browser
def test_every_dashboard_page_loads_through_the_published_port(stack: Stack, client, browser) -> None:
    from tests.browser_support import screenshot, wait_until

    url = f"http://{_target(stack, 'DASH_HOST_PORT')}"
    info = client.model_info()
    _open(browser, url + "/")
    paths = [link.get_attribute("href").removeprefix(url) or "/"
             for link in browser.find_elements("css selector", "a.nav-link[id^='nav-']")]
    assert "/batch" in paths and len(paths) >= 5, paths
    for path in paths:
        _open(browser, url + path)
        wait_until(lambda: info.version in browser.find_element("id", "service-state").text, 30,
                   message=f"the served version on {path}")
        assert "Traceback" not in browser.page_source, path
        screenshot(browser, "stack" + path.replace("/", "-").rstrip("-"))
    _open(browser, url + "/")
    wait_until(lambda: all(s.name in browser.page_source for s in info.segments), 30,
               message="every segment name on the Overview")


@pytest.mark.browser
def test_an_excel_file_uploaded_on_the_batch_page_is_scored(stack: Stack, client, browser, tmp_path: Path) -> None:
    from tests.browser_support import screenshot, wait_until

    sample, segments, _ = _training_sample(stack)
    upload = tmp_path / "customers.xlsx"
    sample.head(40).to_excel(upload, index=False)
    _open(browser, f"http://{_target(stack, 'DASH_HOST_PORT')}/batch")
    browser.find_element("css selector", "#batch-upload input[type=file]").send_keys(str(upload))
    report = wait_until(lambda: browser.find_element("id", "batch-report-alert").text, 30,
                        message="the validation report of the Excel file")
    assert "40 rows" in report, report
    browser.find_element("id", "batch-score").click()
    wait_until(lambda: browser.find_elements("id", "batch-results-title"), 60, message="the results")
    title = browser.find_element("id", "batch-results-title").text
    info = client.model_info()
    assert title == f"40 rows scored by {info.model} {info.version}", title
    screenshot(browser, "stack-batch-excel")


def _published_at(training_output: str, version: str) -> float | None:
    """When the training job logged that ``version`` became CURRENT (its JSON log line's UTC time), if it did."""
    for line in training_output.splitlines():
        if line.startswith("{") and f"{version} is now CURRENT" in line:
            try:
                stamp = datetime.fromisoformat(json.loads(line)["time"].replace("Z", "+00:00"))
                return (stamp if stamp.tzinfo else stamp.replace(tzinfo=timezone.utc)).timestamp()
            except (ValueError, KeyError):
                return None
    return None


def test_retrained_with_compose_run_and_the_new_version_is_served(stack: Stack, client) -> None:
    before = client.model_info()
    seen: dict[str, float] = {}
    watching = threading.Event()

    def watch() -> None:  # polls through the published port while the retraining runs
        while not watching.is_set() and time.time() < start + 600:
            version = client.model_info().version
            if version != before.version:
                seen[version] = time.time()
                return
            time.sleep(0.05)

    start = time.time()
    poller = threading.Thread(target=watch, daemon=True)
    poller.start()
    run = stack.compose("run", "--rm", "-T", "training", "train", "--k", str(before.k + 1), timeout=600)
    finished = time.time()
    poller.join(60)
    watching.set()
    assert list(seen) == ["v0002"], f"served after the retraining: {seen or before.version}"
    info = client.model_info()
    assert info.version == "v0002" and info.k == before.k + 1
    sample, _, _ = _training_sample(stack)
    assert client.predict(sample.iloc[0].to_dict()).version == "v0002"
    _record(retrain_run_seconds=round(finished - start, 1), retrain_to_served_seconds=round(seen["v0002"] - start, 1))
    published = _published_at(run.stdout + run.stderr, "v0002")
    if published is not None:  # a figure only: the log's format is the training job's business
        _record(published_to_served_seconds=round(seen["v0002"] - published, 2))


def test_the_trainer_trains_an_upload_and_publishes_it_to_the_service(stack: Stack, client,
                                                                     tmp_path: Path) -> None:
    from training_job.client import TrainingClient, TrainingError

    sample, _, _ = _training_sample(stack)
    upload = tmp_path / "customers.csv"
    sample.to_csv(upload, index=False)
    served = client.model_info().version
    with TrainingClient(_target(stack, "TRAINER_HOST_PORT"), timeout=60) as trainer:
        dataset = trainer.upload(upload)
        assert trainer.profile(dataset.dataset_id).rows == len(sample)
        job = trainer.wait(trainer.submit(dataset.dataset_id, preset="auto", k=3).job_id, timeout=600)
        assert job.state == "SUCCEEDED" and job.result is not None, (job.state, job.error, job.log[-5:])
        assert not job.result.published and job.result.k == 3
        assert client.model_info().version == served, "a staged version must not be served"
        # The served version (the bundled log's) takes the CLV inputs; this table has none: callers sending them
        # would be refused, so the publish is refused until it is allowed (segmentation_core.schema_change).
        with pytest.raises(TrainingError) as refused:
            trainer.publish(job.result.version)
        assert refused.value.breaking_schema and "CLV inputs" in refused.value.message
        assert client.model_info().version == served
        trainer.publish(job.result.version, allow_breaking_schema=True)
    deadline = time.monotonic() + 60
    while client.model_info().version != job.result.version:
        assert time.monotonic() < deadline, f"{job.result.version} was published but is not served"
        time.sleep(0.1)


def test_a_second_up_does_not_retrain(stack: Stack, client) -> None:
    served = client.model_info().version
    stack.compose("up", "-d", "--no-build", timeout=UP_TIMEOUT)
    logs = stack.compose("logs", "--no-color", "training", timeout=60).stdout
    assert "not training (--skip-if-served" in logs, logs[-2000:]
    assert [v["version"] for v in _versions(stack) if v["current"]] == [served]
    assert client.model_info().version == served


def test_spark_training_in_the_profile_trains_on_the_worker_and_the_service_serves_it(stack: Stack, client) -> None:
    """`compose run spark-training train` (the service's environment: --engine spark on
    spark://spark-master:7077): the driver in its container, the tasks on the worker (a spark:// master runs
    none in the driver), the version published into the shared store and served."""
    target = _target(stack, "SPARK_UI_HOST_PORT")
    before_apps = len(_spark_master_state(target).get("completedapps", []))
    served = client.model_info()
    start = time.monotonic()
    stack.compose("run", "--rm", "-T", "spark-training", "train", "--spark-conf", "spark.executor.memory=512m",
                  "--k", "4", timeout=900)
    _record(spark_training_run_seconds=round(time.monotonic() - start, 1))
    state = _spark_master_state(target)
    assert len(state["completedapps"]) == before_apps + 1, state
    assert state["completedapps"][-1]["state"] == "FINISHED", state["completedapps"][-1]
    deadline = time.monotonic() + 60
    while client.model_info().version == served.version:
        assert time.monotonic() < deadline, "the Spark-trained version is not served"
        time.sleep(0.2)
    info = client.model_info()
    assert info.k == 4 and info.version > served.version, (info.version, info.k)


def test_down_v_leaves_no_container_network_or_volume(stack: Stack) -> None:
    stack.compose("down", "-v", "--remove-orphans", timeout=300)
    assert stack.leftovers() == {}, f"left behind by `down -v`: {stack.leftovers()}"


# ---------------------------------------------------------------------------------------------------
# TLS and tokens: the same images, a stack of its own with an override file (after the main stack is down)

TLS_OVERRIDE = """
services:
  scoring:
    environment:
      SCORING_TLS_CERT: /certs/cert.pem
      SCORING_TLS_KEY: /certs/key.pem
      SCORING_TOKEN_FILE: /certs/token
    volumes: ["{certs}:/certs:ro"]
  trainer:
    environment:
      TRAINING_TLS_CERT: /certs/cert.pem
      TRAINING_TLS_KEY: /certs/key.pem
      TRAINING_TOKEN_FILE: /certs/token
    volumes: ["{certs}:/certs:ro"]
  dashboard:
    environment:
      DASH_SCORING_TLS_CA: /certs/cert.pem
      DASH_SCORING_TOKEN: {token}
      DASH_TRAINER_TLS_CA: /certs/cert.pem
      DASH_TRAINER_TOKEN: {token}
    volumes: ["{certs}:/certs:ro"]
"""


def test_a_stack_with_tls_and_tokens_comes_up_healthy(engine: Engine, images: dict[str, str],
                                                      tmp_path_factory: pytest.TempPathFactory) -> None:
    """SCORING_TLS_* and TRAINING_TLS_* set (a self-signed certificate, as an operator's override file does):
    the health checks must speak TLS, or scoring never turns healthy and the dashboard never starts."""
    import shutil
    import subprocess

    from scoring_service.client import ScoringClient

    if shutil.which("openssl") is None:
        pytest.skip("openssl is not installed")
    certs = tmp_path_factory.mktemp("stack-tls")
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
                    "-keyout", str(certs / "key.pem"), "-out", str(certs / "cert.pem"), "-days", "1", "-subj",
                    "/CN=scoring", "-addext", "subjectAltName=DNS:scoring,DNS:trainer,DNS:localhost"],
                   check=True, capture_output=True)
    token = uuid.uuid4().hex
    (certs / "token").write_text(token + "\n")
    for path in (certs, *certs.iterdir()):  # readable by the images' user (uid 10001)
        path.chmod(0o755 if path.is_dir() else 0o644)
    override = certs / "tls.yml"
    override.write_text(TLS_OVERRIDE.format(certs=certs, token=token))
    env = {"IMAGE_TAG": IMAGE_TAG, **{v: str(free_port()) for v in PUBLISHED_PORTS}}
    stack = Stack(engine, f"segtls{uuid.uuid4().hex[:8]}", env, tmp_path_factory.mktemp("stack-tls-logs"),
                  overrides=[override])
    stack.start_health_checks()
    try:
        # The dashboard waits for scoring to be healthy: `up` fails if the scoring health check does.
        stack.compose("up", "-d", "--no-build", "scoring", "trainer", "dashboard", timeout=UP_TIMEOUT)
        _wait_healthy(stack, ["scoring", "trainer", "dashboard"])
        probe = load_deploy("grpc_health_probe")
        tls = probe.Tls((certs / "cert.pem").read_bytes(), "localhost")  # the published port, from the host
        for variable in ("SCORING_HOST_PORT", "TRAINER_HOST_PORT"):
            assert probe.check(_target(stack, variable), tls=tls) == probe.SERVING
            assert probe.check(_target(stack, variable), timeout=1) != probe.SERVING, "plaintext must fail"
        with ScoringClient(_target(stack, "SCORING_HOST_PORT"), token=token, tls_ca=certs / "cert.pem",
                           authority="localhost", timeout=30) as client:
            assert client.model_info().version == "v0001"
        # Ready: the dashboard reached the scoring service over TLS with the token.
        ready, deadline = f"http://{_target(stack, 'DASH_HOST_PORT')}/health/ready", time.monotonic() + 60
        while http_status(ready) != 200:
            assert time.monotonic() < deadline, f"the dashboard is not ready: {ready}\n{stack.logs()}"
            time.sleep(0.5)
    finally:
        stack.compose("down", "-v", "--remove-orphans", timeout=300, check=False)
        stack.stop_health_checks()
    assert stack.leftovers() == {}, f"left behind by `down -v`: {stack.leftovers()}"

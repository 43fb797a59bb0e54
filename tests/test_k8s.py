"""The Kubernetes manifests (deploy/k8s/): valid against the Kubernetes JSON schemas, and wired as intended.

Validation is kubernetes-validate's (the schemas of every Kubernetes release ship inside the package, so no
network is needed), strict: an unknown or misspelt field is an error. Checked for the oldest release the
manifests need (1.27: native gRPC probes are GA) and the newest the package knows. What a schema cannot
see is checked here: probes, the headless Service, the read-only store, the autoscaler's target, and that
every environment variable is one the program reads and parses.
"""
from __future__ import annotations

from pathlib import Path

import pytest

from tests.deploy_support import load_deploy

yaml = pytest.importorskip("yaml")
kubernetes_validate = pytest.importorskip("kubernetes_validate")

ROOT = Path(__file__).resolve().parents[1]
K8S = ROOT / "deploy" / "k8s"
OLDEST = "1.27.0"  # grpc: probes are GA from 1.27
GENERIC_ENV = {"PYTHONUNBUFFERED"}


def _documents() -> list[tuple[str, dict]]:
    found = []
    for path in sorted(K8S.glob("*.yaml")):
        if path.name == "kustomization.yaml":
            continue
        found += [(path.name, doc) for doc in yaml.safe_load_all(path.read_text()) if doc]
    return found


DOCUMENTS = _documents()


def _one(kind: str, name: str) -> dict:
    matches = [doc for _file, doc in DOCUMENTS if doc["kind"] == kind and doc["metadata"]["name"] == name]
    assert len(matches) == 1, f"deploy/k8s/ has {len(matches)} {kind} {name!r}"
    return matches[0]


def _container(workload: dict) -> dict:
    spec = workload["spec"]["template"]["spec"]
    assert len(spec["containers"]) == 1
    return spec["containers"][0]


def _env(container: dict) -> dict[str, str]:
    return {item["name"]: item["value"] for item in container.get("env", [])}


@pytest.mark.parametrize("version", [OLDEST, kubernetes_validate.latest_version()])
@pytest.mark.parametrize("file,doc", DOCUMENTS, ids=[f"{f}:{d['kind']}/{d['metadata']['name']}" for f, d in DOCUMENTS])
def test_manifest_is_valid_against_the_kubernetes_schema(file: str, doc: dict, version: str) -> None:
    try:
        kubernetes_validate.validate(doc, version, strict=True)
    except kubernetes_validate.ValidationError as exc:
        pytest.fail(f"deploy/k8s/{file}: {doc['kind']}/{doc['metadata']['name']} is not valid for Kubernetes "
                    f"{version}: {exc.message} at {'.'.join(map(str, exc.path))}")


def test_the_schemas_refuse_a_broken_manifest() -> None:
    scoring = _one("Deployment", "scoring")
    broken = yaml.safe_load(yaml.safe_dump(scoring))
    _container(broken)["readinessProbe"]["grpc"]["prot"] = 50051  # misspelt field
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(broken, OLDEST, strict=True)
    del _container(broken)["readinessProbe"]["grpc"]["prot"]
    _container(broken)["readinessProbe"]["grpc"]["port"] = "grpc"  # a grpc probe takes a number only
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(broken, OLDEST, strict=True)


def test_kustomization_lists_every_manifest() -> None:
    listed = yaml.safe_load((K8S / "kustomization.yaml").read_text())["resources"]
    assert sorted(listed) == sorted({file for file, _doc in DOCUMENTS})


def test_scoring_is_probed_over_grpc_and_balanced_by_a_headless_service() -> None:
    scoring = _one("Deployment", "scoring")
    container = _container(scoring)
    grpc_port = next(p["containerPort"] for p in container["ports"] if p["name"] == "grpc")
    assert _env(container)["SCORING_PORT"] == str(grpc_port)
    for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
        assert container[probe]["grpc"]["port"] == grpc_port, f"{probe} is not the gRPC health check"
        assert container[probe]["grpc"].get("service", "") == "", "the empty service: SERVING with the default model"
    service = _one("Service", "scoring")
    assert service["spec"]["clusterIP"] == "None", "client-side balancing needs a headless Service"
    labels = scoring["spec"]["template"]["metadata"]["labels"]
    assert service["spec"]["selector"].items() <= labels.items()
    assert scoring["spec"]["selector"]["matchLabels"].items() <= labels.items()
    assert any(p["port"] == grpc_port for p in service["spec"]["ports"])
    dashboard_env = _env(_container(_one("Deployment", "dashboard")))
    assert dashboard_env["DASH_SCORING"] == f"dns:///{service['metadata']['name']}:{grpc_port}", \
        "the dashboard must reach every replica through the headless Service's name"
    grace = scoring["spec"]["template"]["spec"]["terminationGracePeriodSeconds"]
    assert grace > float(_env(container).get("SCORING_GRACE", 10)), "the kubelet must outwait the drain"


def test_store_is_shared_read_only_by_scoring_and_written_by_the_training_job() -> None:
    claim = _one("PersistentVolumeClaim", "model-store")
    assert "ReadWriteMany" in claim["spec"]["accessModes"], "pods on several nodes share the store"

    def store_mount(workload: dict) -> tuple[dict, dict]:
        spec = workload["spec"]["template"]["spec"]
        volume = next(v for v in spec["volumes"] if v.get("persistentVolumeClaim", {}).get("claimName") == "model-store")
        mount = next(m for m in _container(workload)["volumeMounts"] if m["name"] == volume["name"])
        return volume, mount

    scoring = _one("Deployment", "scoring")
    volume, mount = store_mount(scoring)
    assert volume["persistentVolumeClaim"]["readOnly"] is True and mount["readOnly"] is True
    assert _env(_container(scoring))["SCORING_STORE"] == mount["mountPath"]
    job = _one("Job", "segmentation-training")
    volume, mount = store_mount(job)
    assert not volume["persistentVolumeClaim"].get("readOnly") and not mount.get("readOnly"), "training publishes"
    assert _env(_container(job))["TRAINING_STORE"] == mount["mountPath"]
    assert job["spec"]["template"]["spec"]["restartPolicy"] in ("Never", "OnFailure")
    trainer = _one("Deployment", "trainer")
    volume, mount = store_mount(trainer)
    assert not volume["persistentVolumeClaim"].get("readOnly") and not mount.get("readOnly"), "the trainer publishes"
    assert trainer["spec"]["replicas"] == 1 and trainer["spec"]["strategy"]["type"] == "Recreate", \
        "the trainer's jobs live in its process: one at a time"
    env = _env(_container(job))
    assert env["TRAINING_MODEL"] == _env(_container(scoring))["SCORING_MODEL"], "training and serving name one model"


def test_autoscaler_scales_the_scoring_deployment_on_cpu() -> None:
    hpa = _one("HorizontalPodAutoscaler", "scoring")
    target = hpa["spec"]["scaleTargetRef"]
    assert (target["kind"], target["name"]) == ("Deployment", "scoring")
    assert 1 <= hpa["spec"]["minReplicas"] < hpa["spec"]["maxReplicas"]
    assert any(m["resource"]["name"] == "cpu" for m in hpa["spec"]["metrics"])
    assert _container(_one("Deployment", "scoring"))["resources"]["requests"]["cpu"], \
        "CPU utilisation is measured against the request"


@pytest.mark.parametrize("kind,name,module", [("Deployment", "scoring", "scoring_service"),
                                              ("Job", "segmentation-training", "training_job"),
                                              ("Deployment", "trainer", "training_job"),
                                              ("Deployment", "dashboard", "dash_ui")])
def test_container_settings_are_read_and_accepted_by_their_program(kind: str, name: str, module: str) -> None:
    reference = load_deploy("config_reference")
    program = next(p for p in reference.PROGRAMS if p.module == module)
    known = {o.env for c in reference.program_commands(program) for o in c.options if o.env}
    container = _container(_one(kind, name))
    env = _env(container)
    unknown = sorted(set(env) - known - GENERIC_ENV)
    assert not unknown, f"{kind}/{name} sets {unknown}, which python -m {module} does not read"
    parser = reference.capture_parser(module, env, program.env_prefixes)
    try:
        parser.parse_args(container.get("args", []))
    except SystemExit:
        pytest.fail(f"{kind}/{name}: python -m {module} {container.get('args', [])} refuses its environment {env}")
    image = container["image"].split(":")[0]
    assert image == f"segmentation-{ {'scoring_service': 'scoring', 'training_job': 'training', 'dash_ui': 'dashboard'}[module]}"

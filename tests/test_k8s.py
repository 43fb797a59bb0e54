"""The Kubernetes manifests (deploy/k8s/): valid against the Kubernetes JSON schemas, and wired as intended.

Validation is kubernetes-validate's (the schemas of every Kubernetes release ship inside the package, so no
network is needed), strict: an unknown or misspelt field is an error. Checked for the oldest release the
manifests are checked against (1.27) and the newest the package knows. What a schema cannot see is checked
here: probes, the headless Service, the read-only store, the autoscaler's target, the training Job and its
retraining template, the network policy, the containers' privileges, and that every environment variable is
one the program reads and parses.
"""
from __future__ import annotations

from pathlib import Path

import pytest

from tests.deploy_support import load_deploy

yaml = pytest.importorskip("yaml")
kubernetes_validate = pytest.importorskip("kubernetes_validate")

ROOT = Path(__file__).resolve().parents[1]
K8S = ROOT / "deploy" / "k8s"
OLDEST = "1.27.0"
PROBE = "/app/deploy/grpc_health_probe.py"  # where the scoring and training images hold the health probe
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


def _pod_spec(workload: dict) -> dict:
    """The pod template's spec of a Deployment, a Job or a CronJob."""
    spec = workload["spec"]["jobTemplate"]["spec"] if workload["kind"] == "CronJob" else workload["spec"]
    return spec["template"]["spec"]


def _container(workload: dict) -> dict:
    spec = _pod_spec(workload)
    assert len(spec["containers"]) == 1
    return spec["containers"][0]


WORKLOADS = [(d["kind"], d["metadata"]["name"]) for _f, d in DOCUMENTS if d["kind"] in ("Deployment", "Job", "CronJob")]


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
    _container(broken)["readinessProbe"]["exec"]["comand"] = ["true"]  # misspelt field
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(broken, OLDEST, strict=True)
    del _container(broken)["readinessProbe"]["exec"]["comand"]
    _container(broken)["readinessProbe"]["periodSeconds"] = "5"  # a number, not a string
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(broken, OLDEST, strict=True)


def test_kustomization_lists_every_manifest() -> None:
    listed = yaml.safe_load((K8S / "kustomization.yaml").read_text())["resources"]
    assert sorted(listed) == sorted({file for file, _doc in DOCUMENTS})


def _probe_port(container: dict, probe: str) -> tuple[list[str], int]:
    """The probe's command and the port it asks (the probe's default: <prefix>PORT of the container)."""
    command = container[probe]["exec"]["command"]
    assert command[:2] == ["python", PROBE], f"{probe} is not the gRPC health probe shipped in the image: {command}"
    prefix = command[command.index("--env-prefix") + 1] if "--env-prefix" in command else "SCORING_"
    targets = [a for a in command[2:] if ":" in a]
    return command, int(targets[0].rsplit(":", 1)[1]) if targets else int(_env(container)[f"{prefix}PORT"])


@pytest.mark.parametrize("name,probes", [("scoring", ("startupProbe", "readinessProbe", "livenessProbe")),
                                         ("trainer", ("readinessProbe", "livenessProbe"))])
def test_grpc_services_are_probed_by_the_tls_aware_probe(name: str, probes: tuple[str, ...]) -> None:
    """The kubelet's native grpc: probe cannot speak TLS (kubernetes/kubernetes#119093): with the service's
    TLS turned on the pods would never be Ready. The probe script reads the container's own TLS settings."""
    container = _container(_one("Deployment", name))
    grpc_port = next(p["containerPort"] for p in container["ports"] if p["name"] == "grpc")
    prefix = {"scoring": "SCORING_", "trainer": "TRAINING_"}[name]
    for probe in probes:
        assert "grpc" not in container[probe], f"{name}: the native {probe} fails once TLS is on"
        command, port = _probe_port(container, probe)
        assert port == grpc_port, f"{name}: {probe} asks port {port}, the service listens on {grpc_port}"
        assert ("--env-prefix" in command) == (prefix != "SCORING_") and "--plaintext" not in command
        assert "--service" not in command, "the empty service: SERVING with the default model"
        assert container[probe]["timeoutSeconds"] >= 3, "a Python process must have time to start"
    component = "scoring" if name == "scoring" else "training"
    dockerfile = (ROOT / "deploy" / f"Dockerfile.{component}").read_text()
    assert f"deploy/grpc_health_probe.py {PROBE.removeprefix('/app/')}" in dockerfile, \
        f"the {component} image must hold the probe at {PROBE}"


def test_scoring_is_balanced_by_a_headless_service() -> None:
    scoring = _one("Deployment", "scoring")
    container = _container(scoring)
    grpc_port = next(p["containerPort"] for p in container["ports"] if p["name"] == "grpc")
    assert _env(container)["SCORING_PORT"] == str(grpc_port)
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
        spec = _pod_spec(workload)
        volume = next(v for v in spec["volumes"] if v.get("persistentVolumeClaim", {}).get("claimName") == "model-store")
        mount = next(m for m in _container(workload)["volumeMounts"] if m["name"] == volume["name"])
        return volume, mount

    scoring = _one("Deployment", "scoring")
    volume, mount = store_mount(scoring)
    assert volume["persistentVolumeClaim"]["readOnly"] is True and mount["readOnly"] is True
    assert _env(_container(scoring))["SCORING_STORE"] == mount["mountPath"]
    for job in (_one("Job", "segmentation-training"), _one("CronJob", "segmentation-retrain")):
        volume, mount = store_mount(job)
        assert not volume["persistentVolumeClaim"].get("readOnly") and not mount.get("readOnly"), "training publishes"
        assert _env(_container(job))["TRAINING_STORE"] == mount["mountPath"]
        assert _pod_spec(job)["restartPolicy"] in ("Never", "OnFailure")
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
                                              ("CronJob", "segmentation-retrain", "training_job"),
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


def test_the_training_job_trains_once_and_a_suspended_cronjob_is_the_retraining_template() -> None:
    """`kubectl apply -k` (or a GitOps sync) may create the Job again at any time: it must not publish a new
    version then (--skip-if-served), and it must stay, so that applying again changes nothing. Retraining is a
    Job created from the CronJob (`kubectl create job --from=cronjob/...`), which can be edited first."""
    job = _one("Job", "segmentation-training")
    assert _container(job)["args"] == ["train", "--skip-if-served"]
    assert "ttlSecondsAfterFinished" not in job["spec"], "a deleted Job is re-created by the next apply"
    cron = _one("CronJob", "segmentation-retrain")
    assert cron["spec"]["suspend"] is True, "the template must not train on its schedule by default"
    assert cron["spec"]["concurrencyPolicy"] == "Forbid"
    retrain = _container(cron)
    assert retrain["args"] == ["train"], "a retraining always trains"
    once = _container(job)
    for key in ("image", "env", "volumeMounts", "resources", "securityContext"):
        assert retrain[key] == once[key], f"the retraining template differs from the Job in {key}"
    assert _pod_spec(cron)["volumes"] == _pod_spec(job)["volumes"]
    docs = (ROOT / "docs" / "kubernetes.md").read_text() + (K8S / "training-job.yaml").read_text()
    assert "--from=cronjob/segmentation-retrain" in docs and "--from=job/" not in docs


@pytest.mark.parametrize("kind,name", WORKLOADS, ids=[f"{k}/{n}" for k, n in WORKLOADS])
def test_every_container_runs_unprivileged(kind: str, name: str) -> None:
    workload = _one(kind, name)
    pod = _pod_spec(workload)["securityContext"]
    assert pod["runAsNonRoot"] is True and pod["runAsUser"] == 10001
    if "fsGroup" in pod:
        assert pod.get("fsGroupChangePolicy") == "OnRootMismatch", \
            "without it the kubelet changes the owner of every file of the volumes at every pod start"
    context = _container(workload).get("securityContext", {})
    assert context.get("allowPrivilegeEscalation") is False, f"{kind}/{name}"
    assert context.get("capabilities", {}).get("drop") == ["ALL"], f"{kind}/{name}"


def test_a_deployment_an_autoscaler_scales_sets_no_replicas() -> None:
    """Each `kubectl apply` would reset the count the autoscaler chose to the manifest's."""
    for hpa in (d for _f, d in DOCUMENTS if d["kind"] == "HorizontalPodAutoscaler"):
        target = _one("Deployment", hpa["spec"]["scaleTargetRef"]["name"])
        assert "replicas" not in target["spec"], f"Deployment/{target['metadata']['name']} is scaled by {hpa}"


def test_only_the_dashboard_may_call_the_trainer() -> None:
    policy = _one("NetworkPolicy", "trainer")
    trainer, dashboard = _one("Deployment", "trainer"), _one("Deployment", "dashboard")
    assert policy["spec"]["podSelector"]["matchLabels"].items() <= trainer["spec"]["template"]["metadata"]["labels"].items()
    assert policy["spec"]["policyTypes"] == ["Ingress"]
    [rule] = policy["spec"]["ingress"]
    [source] = rule["from"]
    assert set(source) == {"podSelector"}, "pods of this namespace only"
    assert source["podSelector"]["matchLabels"].items() <= dashboard["spec"]["template"]["metadata"]["labels"].items()
    assert not source["podSelector"]["matchLabels"].items() <= trainer["spec"]["template"]["metadata"]["labels"].items()
    grpc_port = next(p["containerPort"] for p in _container(trainer)["ports"] if p["name"] == "grpc")
    assert [p["port"] for p in rule["ports"]] == [grpc_port]
    assert _env(_container(dashboard))["DASH_TRAINER"].endswith(f":{grpc_port}")

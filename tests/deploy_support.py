"""Test helper for the deployment tests: run the three programs as real processes on loopback ports.

Each process writes its output to a file (no pipe to fill up), is started the way docker-compose.yml and
deploy/run_local.py start it, and is stopped with SIGTERM, then SIGKILL.
"""
from __future__ import annotations

import contextlib
import dataclasses
import importlib.util
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path
from types import ModuleType
from typing import Iterator, Sequence

ROOT = Path(__file__).resolve().parents[1]
DEPLOY = ROOT / "deploy"
PYTHON = sys.executable
BUNDLED_DATA = ROOT / "data" / "online_retail_sample.csv.gz"


def load_deploy(name: str) -> ModuleType:
    """Import ``deploy/<name>.py`` (deploy/ is a folder of scripts, not a package)."""
    if str(DEPLOY) not in sys.path:
        sys.path.insert(0, str(DEPLOY))  # run_local imports its neighbour grpc_health_probe
    module = sys.modules.get(f"deploy_{name}")
    if module is None:
        spec = importlib.util.spec_from_file_location(f"deploy_{name}", DEPLOY / f"{name}.py")
        assert spec and spec.loader
        module = importlib.util.module_from_spec(spec)
        sys.modules[spec.name] = module
        spec.loader.exec_module(module)
    return module


def env_for_children() -> dict[str, str]:
    """The test process's environment, with the repository importable and output unbuffered."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SCORING_", "TRAINING_", "DASH_"))}
    env["PYTHONUNBUFFERED"] = "1"
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), env.get("PYTHONPATH", "")) if p)
    return env


def free_port() -> int:
    """A loopback port free right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Proc:
    """A started program whose stdout and stderr go to one log file."""

    def __init__(self, name: str, argv: Sequence[str], log_dir: Path, env: dict[str, str] | None = None) -> None:
        self.name = name
        self.argv = list(argv)
        self.log_path = log_dir / f"{name}.log"
        self._log = open(self.log_path, "wb")  # noqa: SIM115 - closed in stop()
        self.process = subprocess.Popen(self.argv, stdout=self._log, stderr=subprocess.STDOUT,
                                        stdin=subprocess.DEVNULL, env=env or env_for_children(), cwd=ROOT)

    @property
    def alive(self) -> bool:
        """True while it runs."""
        return self.process.poll() is None

    def output(self) -> str:
        """Everything it printed so far."""
        return self.log_path.read_text(errors="replace")

    def wait(self, timeout: float) -> int:
        """Wait for it to exit; returns the exit code."""
        return self.process.wait(timeout)

    def stop(self, timeout: float = 15.0) -> int:
        """SIGTERM, then SIGKILL after ``timeout`` s; returns the exit code."""
        if self.alive:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
        code = self.process.wait()
        self._log.close()
        return code

    def describe(self) -> str:
        """A failure message with the command and its last lines."""
        lines = self.output().splitlines()[-25:]
        return f"{self.name} ({' '.join(self.argv)}) exit {self.process.poll()}:\n" + "\n".join(lines)


def train(store: Path, log_dir: Path, *extra: str, python_flags: Sequence[str] = (), name: str = "training",
          timeout: float = 120.0) -> Proc:
    """Run the training job on the bundled data into ``store`` to completion; asserts success."""
    proc = Proc(name, [PYTHON, *python_flags, "-m", "training_job", "train", "--data", str(BUNDLED_DATA),
                       "--preset", "transactions", "--store", str(store), *extra], log_dir)
    code = proc.wait(timeout)
    proc.stop()
    assert code == 0, proc.describe()
    return proc


def start_scoring(store: Path, log_dir: Path, *extra: str, python_flags: Sequence[str] = (),
                  timeout: float = 60.0) -> tuple[Proc, str]:
    """Start ``python -m scoring_service`` on an ephemeral port and wait for SERVING; returns (proc, target)."""
    probe = load_deploy("grpc_health_probe")
    port_file = log_dir / "scoring.port"
    port_file.unlink(missing_ok=True)
    proc = Proc("scoring", [PYTHON, *python_flags, "-m", "scoring_service", "--store", str(store), "--port", "0",
                            "--port-file", str(port_file), "--metrics-port", "-1", "--poll-interval", "0.1",
                            "--log-format", "text", *extra], log_dir)
    deadline = time.monotonic() + timeout
    while not (port_file.exists() and port_file.read_text().strip()):
        if not proc.alive or time.monotonic() > deadline:
            proc.stop()
            raise AssertionError("the scoring service wrote no port file\n" + proc.describe())
        time.sleep(0.05)
    target = f"127.0.0.1:{port_file.read_text().strip()}"
    try:
        probe.wait_until_serving(target, max(1.0, deadline - time.monotonic()), alive=lambda: proc.alive)
    except (RuntimeError, TimeoutError) as exc:
        proc.stop()
        raise AssertionError(f"{exc}\n{proc.describe()}") from None
    return proc, target


def http_status(url: str, timeout: float = 5.0) -> int:
    """The HTTP status of a GET (0 when nothing answers)."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as reply:
            return reply.status
    except urllib.error.HTTPError as exc:
        return exc.code
    except (urllib.error.URLError, OSError):
        return 0


def start_dashboard(target: str, log_dir: Path, python_flags: Sequence[str] = (),
                    timeout: float = 60.0) -> tuple[Proc, str]:
    """Start ``python -m dash_ui`` against ``target`` and wait for HTTP 200 on /; returns (proc, url)."""
    port = free_port()
    proc = Proc("dashboard", [PYTHON, *python_flags, "-m", "dash_ui", "--scoring", target, "--host", "127.0.0.1",
                              "--port", str(port)], log_dir)
    url = f"http://127.0.0.1:{port}/"
    deadline = time.monotonic() + timeout
    while http_status(url) != 200:
        if not proc.alive or time.monotonic() > deadline:
            proc.stop()
            raise AssertionError(f"the dashboard did not answer 200 at {url}\n" + proc.describe())
        time.sleep(0.2)
    return proc, url


@contextlib.contextmanager
def stopping(*procs: Proc) -> Iterator[None]:
    """Stop the given processes on the way out, the last one first."""
    try:
        yield
    finally:
        for proc in reversed(procs):
            proc.stop()


def imported_modules(importtime_output: str) -> set[str]:
    """Names of the modules a ``python -X importtime`` run imported, parsed from its stderr."""
    names = set()
    for line in importtime_output.splitlines():
        if line.startswith("import time:") and "|" in line:
            name = line.rsplit("|", 1)[1].strip()
            if name and name != "imported package":
                names.add(name)
    return names


# ---------------------------------------------------------------------------------------------------
# A container engine and the compose stack (tests/test_deploy_stack.py)

COMPOSE_FILE = ROOT / "docker-compose.yml"
ENGINE_SCRIPT = ROOT.parent / "shared" / "tools" / "container-engine.sh"
# Where an engine's API socket is looked for when DOCKER_HOST is unset: Docker's, and the one
# ../shared/tools/container-engine.sh starts (podman's Docker-compatible API).
ENGINE_SOCKETS = ("/var/run/docker.sock", "/tmp/container-engine/podman.sock")
PROJECT_LABEL = "com.docker.compose.project"


def _ping(host: str) -> tuple[bool, bool]:
    """(the engine at DOCKER_HOST-style ``host`` answers /_ping, it is podman)."""
    import http.client

    if host.startswith("unix://"):
        path = host.removeprefix("unix://")

        class UnixConnection(http.client.HTTPConnection):
            def connect(self) -> None:
                self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
                self.sock.settimeout(5)
                self.sock.connect(path)

        conn: http.client.HTTPConnection = UnixConnection("localhost", timeout=5)
    elif host.startswith("tcp://"):
        conn = http.client.HTTPConnection(host.removeprefix("tcp://"), timeout=5)
    else:
        return False, False
    try:
        conn.request("GET", "/_ping")
        reply = conn.getresponse()
        return reply.status == 200, reply.getheader("Libpod-Api-Version") is not None
    except OSError:
        return False, False
    finally:
        conn.close()


def _compose_tool() -> tuple[str, ...] | None:
    """`docker compose` (v2) when the docker CLI has it, else Debian's `docker-compose` (v1), else None."""
    docker = shutil.which("docker")
    if docker and subprocess.run([docker, "compose", "version"], capture_output=True, timeout=30).returncode == 0:
        return (docker, "compose")
    tool = shutil.which("docker-compose")
    return (tool,) if tool else None


@dataclasses.dataclass(frozen=True)
class Engine:
    """A Docker-compatible engine: its API (for the compose tool), its CLI, and whether it is podman."""

    host: str
    cli: str
    compose_tool: tuple[str, ...]
    podman: bool

    def env(self, **extra: str) -> dict[str, str]:
        """The environment of engine commands: no program settings of this shell, DOCKER_HOST set."""
        env = {k: v for k, v in os.environ.items()
               if not k.startswith(("SCORING_", "TRAINING_", "DASH_", "COMPOSE_")) and k != "MODEL_NAME"}
        return {**env, "DOCKER_HOST": self.host, **extra}

    def run(self, *args: str, timeout: float = 120, check: bool = True) -> subprocess.CompletedProcess:
        """Run the engine's CLI; asserts success unless ``check`` is false."""
        result = subprocess.run([self.cli, *args], capture_output=True, text=True, timeout=timeout, env=self.env(),
                                stdin=subprocess.DEVNULL)
        assert not check or result.returncode == 0, f"{self.cli} {' '.join(args)}: exit {result.returncode}\n" \
                                                    f"{result.stdout[-2000:]}{result.stderr[-3000:]}"
        return result

    def build(self, dockerfile: str, tag: str, build_args: dict[str, str], log: Path,
              timeout: float = 1500) -> None:
        """Build one image from the repository root (the engine's layer cache makes a rebuild quick)."""
        argv = [self.cli, "build", "-f", dockerfile, "-t", tag]
        if self.podman:
            argv += ["--network", "host"]  # the stand-in engine's builds reach PyPI through the host network
            # podman's default OCI image format has no HEALTHCHECK: it drops the Dockerfiles' (with a warning)
            argv += ["--format", "docker"]
        for name, value in build_args.items():
            argv += ["--build-arg", f"{name}={value}"]
        with open(log, "wb") as out:
            code = subprocess.run([*argv, "."], cwd=ROOT, stdout=out, stderr=subprocess.STDOUT, env=self.env(),
                                  stdin=subprocess.DEVNULL, timeout=timeout).returncode
        assert code == 0, f"{' '.join(argv)} failed ({code}):\n{log.read_text(errors='replace')[-4000:]}"

    def image_size(self, tag: str) -> int:
        """Size of an image in bytes, as the engine reports it."""
        return int(self.run("image", "inspect", "--format", "{{.Size}}", tag).stdout.strip())

    def image_healthcheck(self, tag: str) -> list[str]:
        """The HEALTHCHECK command an image declares ([] when it has none)."""
        found = json.loads(self.run("image", "inspect", "--format", "{{json .Config.Healthcheck}}", tag).stdout)
        return list((found or {}).get("Test") or [])

    def health(self, container: str) -> str:
        """A container's health status as the engine reports it ("healthy", "starting" ...; "" without a check)."""
        state = json.loads(self.run("inspect", "--format", "{{json .State}}", container).stdout)
        return ((state.get("Health") or state.get("Healthcheck") or {}).get("Status")) or ""

    def has_image(self, name: str) -> bool:
        """True when the engine holds an image of that name locally."""
        return self.run("image", "inspect", name, check=False).returncode == 0


def find_engine() -> Engine | str:
    """The container engine this machine offers, or why there is none (a sentence for a skip)."""
    tool = _compose_tool()
    if tool is None:
        return "no compose tool: neither `docker compose` nor docker-compose is installed"
    hosts = [os.environ["DOCKER_HOST"]] if os.environ.get("DOCKER_HOST") else \
        [f"unix://{s}" for s in ENGINE_SOCKETS if Path(s).exists()]
    if not hosts:
        return (f"no container engine: DOCKER_HOST is unset and none of {', '.join(ENGINE_SOCKETS)} exists; "
                f"as root, `eval \"$({os.path.relpath(ENGINE_SCRIPT, ROOT)})\"` sets one up (.ci/run does)")
    for host in hosts:
        answers, podman = _ping(host)
        if answers:
            cli = "podman" if podman else "docker"
            if shutil.which(cli) is None:
                return f"the engine at {host} answers, but its CLI `{cli}` is not installed"
            return Engine(host=host, cli=cli, compose_tool=tool, podman=podman)
    return f"no container engine answers at {', '.join(hosts)}"


def compose_config(tool: Sequence[str], env: dict[str, str]) -> dict:
    """docker-compose.yml as the compose tool resolves it (variables filled in from ``env``), as a dict."""
    argv = [*tool, "-f", str(COMPOSE_FILE), "config"]
    if len(tool) > 1:  # `docker compose` (v2) prints JSON itself
        result = subprocess.run([*argv, "--format", "json"], capture_output=True, text=True, cwd=ROOT, env=env,
                                timeout=60)
        assert result.returncode == 0, result.stderr
        return json.loads(result.stdout)
    result = subprocess.run(argv, capture_output=True, text=True, cwd=ROOT, env=env, timeout=60)
    assert result.returncode == 0, result.stderr
    # The project's venv has no YAML parser; Debian's docker-compose has one (it reads YAML itself).
    interpreter = Path(tool[0]).read_text(errors="replace").splitlines()[0].removeprefix("#!").split()
    as_json = subprocess.run([*interpreter, "-c", "import json, sys, yaml; json.dump(yaml.safe_load(sys.stdin), "
                                                  "sys.stdout)"], input=result.stdout, capture_output=True,
                             text=True, timeout=60)
    assert as_json.returncode == 0, as_json.stderr
    return json.loads(as_json.stdout)


class Stack:
    """One compose project of docker-compose.yml, under its own name, ports and image tag."""

    def __init__(self, engine: Engine, project: str, env: dict[str, str], log_dir: Path,
                 overrides: Sequence[Path] = ()) -> None:
        self.engine = engine
        self.project = project
        self.files = [COMPOSE_FILE, *overrides]  # docker-compose.yml, then override files merged over it
        self.env = env  # the compose file's variables (ports, IMAGE_TAG ...)
        self.log_dir = log_dir
        self._pump_stop = threading.Event()
        self._pump: threading.Thread | None = None

    def compose(self, *args: str, timeout: float = 300, check: bool = True) -> subprocess.CompletedProcess:
        """Run the compose tool on this project; asserts success unless ``check`` is false."""
        files = [arg for file in self.files for arg in ("-f", str(file))]
        argv = [*self.engine.compose_tool, *files, "-p", self.project, *args]
        result = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, cwd=ROOT,
                                env=self.engine.env(**self.env), stdin=subprocess.DEVNULL)
        with open(self.log_dir / "compose.log", "a") as log:
            log.write(f"$ {' '.join(args)}  (exit {result.returncode})\n{result.stdout}{result.stderr}\n")
        assert not check or result.returncode == 0, f"compose {' '.join(args)}: exit {result.returncode}\n" \
                                                    f"{result.stdout[-3000:]}{result.stderr[-3000:]}"
        return result

    def logs(self) -> str:
        """The services' logs so far (for failure messages)."""
        return self.compose("logs", "--no-color", "--tail", "40", check=False, timeout=60).stdout

    def _names(self, kind: str) -> list[str]:
        listed = self.engine.run(kind, "ls", *(["-a"] if kind == "container" else []), "--format",
                                 "{{.Names}}" if kind == "container" else "{{.Name}}", timeout=60).stdout.split()
        labelled = self.engine.run(kind, "ls", *(["-a"] if kind == "container" else []), "--filter",
                                   f"label={PROJECT_LABEL}={self.project}", "--format",
                                   "{{.Names}}" if kind == "container" else "{{.Name}}", timeout=60).stdout.split()
        mine = {n for n in listed if n.startswith((f"{self.project}_", f"{self.project}-"))}
        return sorted(mine | set(labelled))

    def leftovers(self) -> dict[str, list[str]]:
        """The project's containers, networks and volumes that still exist (by label or name)."""
        return {kind: names for kind in ("container", "network", "volume") if (names := self._names(kind))}

    def service_containers(self, service: str) -> list[str]:
        """Ids of the running containers of one service of the project."""
        return self.engine.run("ps", "-q", "--filter", f"label={PROJECT_LABEL}={self.project}", "--filter",
                               f"label=com.docker.compose.service={service}", timeout=60).stdout.split()

    def container_ids(self) -> list[str]:
        """Ids of the project's running containers."""
        return self.engine.run("ps", "-q", "--filter", f"label={PROJECT_LABEL}={self.project}",
                               timeout=60).stdout.split()

    def start_health_checks(self) -> None:
        """Under podman, run the containers' health checks every 2 s (podman schedules them with systemd
        timers, which this kind of machine lacks); Docker runs them itself."""
        if not self.engine.podman or self._pump is not None:
            return

        def pump() -> None:
            while not self._pump_stop.wait(2.0):
                try:
                    for cid in self.container_ids():
                        subprocess.run([self.engine.cli, "healthcheck", "run", cid], capture_output=True,
                                       timeout=30, stdin=subprocess.DEVNULL)
                except (subprocess.SubprocessError, AssertionError, OSError):
                    continue

        self._pump = threading.Thread(target=pump, name=f"health-{self.project}", daemon=True)
        self._pump.start()

    def stop_health_checks(self) -> None:
        """Stop the podman health-check loop."""
        self._pump_stop.set()
        if self._pump is not None:
            self._pump.join(35)
            self._pump = None

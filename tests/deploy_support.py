"""Test helper for the deployment tests: run the three programs as real processes on loopback ports.

Each process writes its output to a file (no pipe to fill up), is started the way docker-compose.yml and
deploy/run_local.py start it, and is stopped with SIGTERM, then SIGKILL.
"""
from __future__ import annotations

import contextlib
import importlib.util
import os
import signal
import socket
import subprocess
import sys
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

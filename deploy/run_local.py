"""Run the whole platform locally, without Docker: train if needed, serve, show the dashboard.

``.venv/bin/python deploy/run_local.py`` does what docker-compose.yml does, with local processes and in
the same order: the training job (only when the store has no model yet, or with ``--retrain``), then the
scoring service, which must answer the standard gRPC health check with SERVING before the dashboard
starts. Children's logs are forwarded with a prefix; Ctrl-C or SIGTERM stops them in reverse order
(SIGTERM, then SIGKILL after ``--stop-timeout``). A service that exits on its own is started again on the
same port (compose's ``restart: unless-stopped``) after 1, 2, 4 ... s, the others left running; more than
``MAX_RESTARTS`` restarts of one service within ``RESTART_WINDOW`` seconds stop everything. Exit codes: 0
stopped by the user, 1 a child failed, 2 bad usage (a port in use, a missing data file).
"""
from __future__ import annotations

import argparse
import contextlib
import errno
import logging
import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Sequence

ROOT = Path(__file__).resolve().parents[1]
# Run as a script: make the repository's packages and this folder's probe importable.
sys.path[:0] = [str(ROOT), str(Path(__file__).resolve().parent)]

log = logging.getLogger("run_local")

DEFAULT_DATA = ROOT / "data" / "online_retail_sample.csv.gz"
DEFAULT_PRESET = "transactions"
EXIT_OK, EXIT_CHILD_FAILED, EXIT_USAGE = 0, 1, 2
#: A service exiting on its own is started again at most this many times within RESTART_WINDOW seconds.
MAX_RESTARTS = 5
RESTART_WINDOW = 120.0


def wait_until_serving(target: str, timeout: float, alive: Callable[[], bool]) -> str:
    """grpc_health_probe's wait for SERVING; grpcio is imported only here, so that --help runs without it."""
    from grpc_health_probe import wait_until_serving as wait  # beside this file, not a package

    return wait(target, timeout, alive=alive)


class StartError(Exception):
    """A child could not be started or died while starting; the message says which and why."""


class Interrupted(Exception):
    """A stop was asked for while waiting for a child to be ready."""


# ---------------------------------------------------------------------------------------------------
# Child processes


def _die_with_parent() -> None:
    """In the child: get SIGTERM if the supervisor dies (Linux), so that no orphan keeps a port."""
    with contextlib.suppress(OSError, AttributeError):
        import ctypes

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


@dataclass
class Child:
    """One supervised process whose merged stdout/stderr is forwarded line by line with a prefix."""

    name: str
    argv: list[str]
    env: dict[str, str]
    process: subprocess.Popen | None = None
    tail: deque = field(default_factory=lambda: deque(maxlen=30))
    _pump: threading.Thread | None = None

    def start(self) -> "Child":
        """Start the process in its own session: Ctrl-C reaches only the supervisor, which stops children in order."""
        self.process = subprocess.Popen(self.argv, env=self.env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                        stdin=subprocess.DEVNULL, start_new_session=True,
                                        preexec_fn=_die_with_parent if sys.platform == "linux" else None)
        log.info("starting %s (pid %d): %s", self.name, self.process.pid, " ".join(self.argv[1:]))
        self._pump = threading.Thread(target=self._forward, name=f"logs-{self.name}", daemon=True)
        self._pump.start()
        return self

    def _forward(self) -> None:
        assert self.process is not None and self.process.stdout is not None
        width = 8
        for raw in iter(self.process.stdout.readline, b""):
            line = raw.decode("utf-8", errors="replace").rstrip("\n")
            self.tail.append(line)
            sys.stderr.write(f"{self.name:<{width}}| {line}\n")
            sys.stderr.flush()

    @property
    def alive(self) -> bool:
        """True while the process runs."""
        return self.process is not None and self.process.poll() is None

    @property
    def returncode(self) -> int | None:
        """The exit code once it has exited."""
        return None if self.process is None else self.process.poll()

    def wait(self, timeout: float | None = None) -> int:
        """Wait for the exit and for the last forwarded line."""
        assert self.process is not None
        code = self.process.wait(timeout)
        if self._pump is not None:
            self._pump.join(timeout=2)
        return code

    def stop(self, timeout: float) -> int | None:
        """SIGTERM, wait up to ``timeout`` s, then SIGKILL; returns the exit code."""
        if self.process is None:
            return None
        if self.alive:
            log.info("stopping %s (pid %d)", self.name, self.process.pid)
            with contextlib.suppress(ProcessLookupError):
                self.process.send_signal(signal.SIGTERM)
            try:
                return self.wait(timeout)
            except subprocess.TimeoutExpired:
                log.warning("%s did not stop within %.0f s: killing it", self.name, timeout)
                with contextlib.suppress(ProcessLookupError):
                    self.process.kill()
        return self.wait()

    def failure(self, what: str) -> StartError:
        """A StartError that quotes the exit code and the child's last lines."""
        lines = "\n".join(f"    {line}" for line in list(self.tail)[-10:])
        return StartError(f"{self.name} {what} (exit code {self.returncode})" + (f"; its last lines:\n{lines}"
                                                                                  if lines else ""))


# ---------------------------------------------------------------------------------------------------
# Ports and readiness


def port_free(host: str, port: int) -> bool:
    """True when nothing listens on host:port (SO_REUSEADDR, so that TIME_WAIT leftovers do not count)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError as exc:
            if exc.errno in (errno.EADDRINUSE, errno.EACCES):
                return False
            raise
    return True


def free_port(host: str) -> int:
    """A port the kernel considers free now (for children that cannot bind port 0 and report it)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]


def check_ports(host: str, ports: dict[str, int]) -> None:
    """Raise StartError naming every port (by its flag) that is already taken."""
    busy = [f"{flag} {port}" for flag, port in ports.items() if port > 0 and not port_free(host, port)]
    if busy:
        raise StartError(f"port(s) already in use on {host}: {', '.join(busy)}. Another copy of the platform "
                         "may be running (stop it), or choose other ports with these flags (0 picks a free one).")


def wait_for_file(path: Path, child: Child, timeout: float, stopping: threading.Event) -> str:
    """The content of a file the child writes once it is ready; StartError if it dies or times out."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if path.exists() and (text := path.read_text().strip()):
            return text
        if stopping.is_set():
            raise Interrupted
        if not child.alive:
            raise child.failure("exited while starting")
        time.sleep(0.1)
    raise StartError(f"{child.name} wrote no {path.name} within {timeout:.0f} s")


def wait_for_http(url: str, child: Child, timeout: float, stopping: threading.Event) -> None:
    """Wait until ``url`` answers 200; StartError if the child dies or it times out."""
    deadline = time.monotonic() + timeout
    last = "no answer yet"
    while time.monotonic() < deadline:
        if stopping.is_set():
            raise Interrupted
        if not child.alive:
            raise child.failure("exited while starting")
        try:
            with urllib.request.urlopen(url, timeout=2) as reply:
                if reply.status == 200:
                    return
                last = f"HTTP {reply.status}"
        except (urllib.error.URLError, OSError) as exc:
            last = str(getattr(exc, "reason", exc))
        time.sleep(0.25)
    raise StartError(f"{child.name} did not answer 200 at {url} within {timeout:.0f} s (last: {last})")


# ---------------------------------------------------------------------------------------------------
# The supervisor


def child_env() -> dict[str, str]:
    """The children's environment: unbuffered output (for prompt log forwarding) and the repo importable."""
    env = dict(os.environ)
    env["PYTHONUNBUFFERED"] = "1"
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), env.get("PYTHONPATH", "")) if p)
    return env


def has_model(store: Path, model: str) -> bool:
    """True when the store already has a CURRENT version of ``model``."""
    from segmentation_core.store import ModelStore  # the repository's own store, read-only here

    return ModelStore(store).current(model) is not None


def _display(path: Path) -> str:
    with contextlib.suppress(ValueError):
        return "./" + str(path.resolve().relative_to(Path.cwd().resolve()))
    return str(path)


def train_command(args: argparse.Namespace) -> list[str]:
    """The training job's command line for these arguments."""
    return [sys.executable, "-m", "training_job", "train", "--data", str(args.data), "--preset", args.preset,
            "--store", str(args.store), "--model", args.model]


def banner(args: argparse.Namespace, scoring: str, dash_port: int, trainer: str = "") -> str:
    """What the user reads once everything runs: addresses and how to retrain."""
    retrain = " ".join([".venv/bin/python -m training_job train", "--data", _display(args.data),
                        "--preset", args.preset, "--store", _display(args.store)])
    metrics = (f"  metrics          http://{args.host}:{args.metrics_port}/metrics\n"
               if args.metrics_port > 0 else "")
    return (f"\nCustomer segmentation is running (model {args.model!r}, store {_display(args.store)}):\n"
            f"  dashboard        http://{args.host}:{dash_port}/\n"
            f"  scoring (gRPC)   {scoring}   (grpc.health.v1 health checks and server reflection are on)\n"
            + (f"  training (gRPC)  {trainer}   (upload, profile, train and publish from the dashboard's Data, "
               f"Train and Compare pages)\n" if trainer else "")
            + f"{metrics}"
            f"Retrain while it runs; the scoring service swaps the new version in and the dashboard follows:\n"
            f"  {retrain}\n"
            f"Press Ctrl-C to stop.\n")


class Supervisor:
    """Starts the children in compose's order, watches them, and stops them in reverse order."""

    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.env = child_env()
        self.children: list[Child] = []
        self.stopping = threading.Event()
        # How to start each running service again (on the port it has), and when it was last restarted.
        self.relaunch: dict[str, Callable[[Path], object]] = {}
        self.restarts: dict[str, deque] = {}
        self.dash_port = 0

    def _start(self, name: str, argv: list[str]) -> Child:
        child = Child(name, argv, self.env).start()
        self.children.append(child)
        return child

    def train(self) -> None:
        """Run the training job to completion (compose: ``training`` runs once, must succeed)."""
        child = self._start("training", train_command(self.args))
        while child.alive and not self.stopping.is_set():
            time.sleep(0.2)
        if self.stopping.is_set():
            return
        if child.wait() != 0:
            raise child.failure("failed")
        self.children.remove(child)

    def serve(self, workdir: Path, port: int | None = None) -> str:
        """Start the scoring service (on ``port``, else ``--scoring-port``) and wait until it is SERVING; returns
        HOST:PORT."""
        a = self.args
        port_file = workdir / "scoring.port"
        target = self._start_grpc("scoring", "scoring service", "exited while loading the model", port_file, [
            sys.executable, "-m", "scoring_service", "--store", str(a.store), "--host", a.host,
            "--port", str(a.scoring_port if port is None else port), "--port-file", str(port_file), "--model", a.model,
            "--metrics-port", str(a.metrics_port), "--log-format", "text"])
        self.relaunch["scoring"] = lambda folder: self.serve(folder, _port_of(target))
        return target

    def trainer(self, workdir: Path, port: int | None = None) -> str:
        """Start the training service (compose: ``trainer``; on ``port``, else ``--trainer-port``) and wait until it
        is SERVING; returns HOST:PORT."""
        a = self.args
        port_file = workdir / "trainer.port"
        target = self._start_grpc("trainer", "training service", "exited while starting", port_file, [
            sys.executable, "-m", "training_job", "serve", "--store", str(a.store), "--data-dir", str(a.data_dir),
            "--host", a.host, "--port", str(a.trainer_port if port is None else port), "--port-file", str(port_file),
            "--log-format", "text"])
        self.relaunch["trainer"] = lambda folder: self.trainer(folder, _port_of(target))
        return target

    def _start_grpc(self, name: str, title: str, died: str, port_file: Path, command: list[str]) -> str:
        """Start a gRPC program that writes its port to port_file and wait until it is SERVING; returns HOST:PORT."""
        a = self.args
        child = self._start(name, command)
        port = wait_for_file(port_file, child, a.start_timeout, self.stopping)
        target = f"{a.host}:{port}"
        try:
            wait_until_serving(target, a.start_timeout, alive=lambda: child.alive and not self.stopping.is_set())
        except RuntimeError:
            if self.stopping.is_set():
                raise Interrupted from None
            raise child.failure(died) from None
        except TimeoutError as exc:
            raise StartError(f"{name}: {exc}") from None
        log.info("%s at %s is SERVING", title, target)
        return target

    def dashboard(self, scoring: str, trainer: str = "") -> int:
        """Start the dashboard against the scoring (and training) service and wait for HTTP 200 on /; returns
        its port."""
        a = self.args
        port = a.dash_port or self.dash_port or free_port(a.host)
        self.dash_port = port
        child = self._start("dash", [sys.executable, "-m", "dash_ui", "--scoring", scoring, "--host", a.host,
                                     "--port", str(port), "--log-format", "text",
                                     *(["--trainer", trainer] if trainer else [])])
        wait_for_http(f"http://{a.host}:{port}/", child, a.start_timeout, self.stopping)
        self.relaunch["dash"] = lambda _folder: self.dashboard(scoring, trainer)
        return port

    def run(self) -> int:
        """The whole life: start, print addresses, watch until a signal or a child's death, stop."""
        a = self.args
        try:
            if not a.data.is_file() and (a.retrain or not has_model(a.store, a.model)):
                raise StartError(f"--data {a.data} does not exist")
            check_ports(a.host, {"--scoring-port": a.scoring_port, "--metrics-port": a.metrics_port,
                                 "--dash-port": a.dash_port, "--trainer-port": a.trainer_port})
            if a.retrain or not has_model(a.store, a.model):
                log.info("training model %r on %s (the store %s has %s)", a.model, _display(a.data),
                         _display(a.store), "a model, but --retrain was given" if a.retrain else "no model yet")
                self.train()
            if self.stopping.is_set():
                raise Interrupted
            with tempfile.TemporaryDirectory(prefix="run_local-") as tmp:
                scoring = self.serve(Path(tmp))
                trainer = self.trainer(Path(tmp)) if a.trainer_port >= 0 else ""
            dash_port = self.dashboard(scoring, trainer)
            sys.stdout.write(banner(a, scoring, dash_port, trainer))
            sys.stdout.flush()
            return self.watch()
        except Interrupted:
            return EXIT_OK
        except StartError as exc:
            log.error("%s", exc)
            return EXIT_USAGE if not self.children else EXIT_CHILD_FAILED
        finally:
            self.stop()

    def watch(self) -> int:
        """Block until a stop is asked for (exit 0) or a child keeps exiting on its own (exit 1); a child that exits
        is started again (:meth:`restart`)."""
        while not self.stopping.wait(0.5):
            for child in list(self.children):
                if not child.alive and not self.restart(child):
                    return EXIT_CHILD_FAILED
        return EXIT_OK

    def restart(self, child: Child) -> bool:
        """Start a service that exited on its own again, on its port, after a back-off; False when it has been
        restarted ``MAX_RESTARTS`` times within ``RESTART_WINDOW`` seconds (or cannot be)."""
        recent = self.restarts.setdefault(child.name, deque())
        while recent and time.monotonic() - recent[0] > RESTART_WINDOW:
            recent.popleft()
        if len(recent) >= MAX_RESTARTS or child.name not in self.relaunch:
            log.error("%s exited unexpectedly with code %s%s; stopping the others", child.name, child.returncode,
                      f" ({len(recent)} restarts in the last {RESTART_WINDOW:.0f} s)" if recent else "")
            return False
        delay = 2 ** len(recent)
        log.warning("%s exited unexpectedly with code %s; starting it again in %d s (restart %d of at most %d "
                    "within %.0f s)", child.name, child.returncode, delay, len(recent) + 1, MAX_RESTARTS,
                    RESTART_WINDOW)
        if self.stopping.wait(delay):
            return True
        recent.append(time.monotonic())
        position = self.children.index(child)
        self.children.remove(child)
        before = len(self.children)
        try:
            with tempfile.TemporaryDirectory(prefix="run_local-") as tmp:
                self.relaunch[child.name](Path(tmp))
        except Interrupted:
            return True
        except StartError as exc:
            log.error("%s", exc)  # dead again: the next pass restarts it or gives up
        else:
            log.info("%s is back", child.name)
        finally:
            if len(self.children) > before:  # in its old place: the dashboard is still stopped first
                self.children.insert(position, self.children.pop())
        return True

    def stop(self) -> None:
        """Stop every child, the last started first (the dashboard before the service it calls)."""
        for child in reversed(self.children):
            code = child.stop(self.args.stop_timeout)
            log.info("%s stopped (exit code %s)", child.name, code)
        self.children.clear()

    def request_stop(self, signum: int, _frame: object) -> None:
        """Signal handler: ask the main loop to stop (it may be waiting for a child to start)."""
        log.info("received %s: stopping", signal.Signals(signum).name)
        self.stopping.set()


def _port_of(target: str) -> int:
    """The port of HOST:PORT."""
    return int(target.rsplit(":", 1)[1])


def build_parser() -> argparse.ArgumentParser:
    """The supervisor's own flags."""
    p = argparse.ArgumentParser(prog="deploy/run_local.py", description=__doc__.splitlines()[0])
    p.add_argument("--store", type=Path, default=Path("./model-store"), help="model store folder")
    p.add_argument("--model", default="customers", help="model name")
    p.add_argument("--data", type=Path, default=DEFAULT_DATA, help="training data when training is needed")
    p.add_argument("--preset", default=DEFAULT_PRESET, help="training preset for --data (or auto)")
    p.add_argument("--retrain", action="store_true", help="train a new version even when the store has one")
    p.add_argument("--host", default="127.0.0.1", help="address the service and the dashboard listen on")
    p.add_argument("--scoring-port", type=int, default=50051, help="gRPC port (0 = a free one)")
    p.add_argument("--metrics-port", type=int, default=9100, help="Prometheus port (0 = a free one, -1 = off)")
    p.add_argument("--dash-port", type=int, default=8050, help="dashboard port (0 = a free one)")
    p.add_argument("--trainer-port", type=int, default=50052,
                   help="training service gRPC port (0 = a free one, -1 = no training service)")
    p.add_argument("--data-dir", type=Path, default=Path("./training-data"),
                   help="the training service's folder for uploaded tables and job records")
    p.add_argument("--start-timeout", type=float, default=120.0, help="seconds each child may take to be ready")
    p.add_argument("--stop-timeout", type=float, default=15.0, help="seconds from SIGTERM to SIGKILL")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point; returns the exit code."""
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s run_local: %(message)s")
    supervisor = Supervisor(args)
    signal.signal(signal.SIGINT, supervisor.request_stop)
    signal.signal(signal.SIGTERM, supervisor.request_stop)
    code = supervisor.run()
    if code == EXIT_OK:
        log.info("all stopped")
    else:
        log.error("stopped after a failure (exit code %d)", code)
    return code


if __name__ == "__main__":
    sys.exit(main())

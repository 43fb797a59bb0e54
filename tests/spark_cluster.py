"""A real Spark standalone cluster on loopback for tests: one master and N workers, started with ``spark-class``.

The PyPI pyspark ships no start-master/start-worker scripts, so each daemon is
``spark-class org.apache.spark.deploy.master.Master`` / ``...deploy.worker.Worker``, a JVM in its own process
group (the worker's executors and their Python workers join the worker's group), ports chosen by the JVMs
(``--port 0``) and read back from the logs. ``stop()`` ends every group: no JVM outlives the cluster.
"""
from __future__ import annotations

import os
import re
import signal
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path


def spark_home() -> Path:
    """The Spark distribution inside the installed pyspark package (jars, bin/spark-class, bin/spark-submit)."""
    import pyspark

    return Path(pyspark.__file__).resolve().parent


def spark_env(**extra: str) -> dict[str, str]:
    """The environment of a Spark daemon or driver on loopback."""
    return {**os.environ, "SPARK_HOME": str(spark_home()), "SPARK_LOCAL_IP": "127.0.0.1",
            "SPARK_NO_DAEMONIZE": "1", **extra}


@dataclass
class _Daemon:
    name: str
    process: subprocess.Popen
    log: Path

    def text(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""


@dataclass
class StandaloneCluster:
    """A master and ``workers`` workers (``cores`` cores and ``memory`` each) under ``folder``."""

    folder: Path
    workers: int = 2
    cores: int = 1
    memory: str = "1g"
    daemons: list[_Daemon] = field(default_factory=list)
    master_url: str = ""

    def start(self, timeout: float = 120.0) -> "StandaloneCluster":
        """Start the master, then the workers; return once every worker has registered."""
        self.folder.mkdir(parents=True, exist_ok=True)
        try:
            master = self._spawn("master", "org.apache.spark.deploy.master.Master",
                                 "--host", "127.0.0.1", "--port", "0", "--webui-port", "0")
            found = self._wait(master, r"Starting Spark master at (spark://[\d.]+:\d+)", timeout)
            self.master_url = found.group(1)
            self._wait(master, r"I have been elected leader", timeout)
            workers = [self._spawn(f"worker{i}", "org.apache.spark.deploy.worker.Worker",
                                   "--host", "127.0.0.1", "--port", "0", "--webui-port", "0",
                                   "--cores", str(self.cores), "--memory", self.memory,
                                   "--work-dir", str(self.folder / f"worker{i}-work"), self.master_url)
                       for i in range(self.workers)]
            for worker in workers:
                self._wait(worker, r"Successfully registered with master", timeout)
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        """SIGTERM every daemon's process group, SIGKILL what is left after 20 s."""
        for daemon in reversed(self.daemons):
            _signal_group(daemon.process, signal.SIGTERM)
        deadline = time.monotonic() + 20
        for daemon in self.daemons:
            try:
                daemon.process.wait(max(deadline - time.monotonic(), 0.1))
            except subprocess.TimeoutExpired:
                pass
            _signal_group(daemon.process, signal.SIGKILL)  # executors a worker left behind, if any
            daemon.process.wait()
        self.daemons.clear()

    def process_groups(self) -> list[int]:
        """The process group ids of the daemons (each led by its spark-class JVM)."""
        return [d.process.pid for d in self.daemons]

    def logs(self) -> str:
        """The daemons' logs, for a failure message."""
        return "\n".join(f"---- {d.name} ----\n{d.text()[-3000:]}" for d in self.daemons)

    def _spawn(self, name: str, main_class: str, *args: str) -> _Daemon:
        log = self.folder / f"{name}.log"
        handle = log.open("wb")
        command = [str(spark_home() / "bin" / "spark-class"), main_class, *args]
        env = spark_env(SPARK_DAEMON_MEMORY="256m", SPARK_WORKER_DIR=str(self.folder / f"{name}-work"))
        process = subprocess.Popen(command, stdout=handle, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                   env=env, cwd=self.folder, start_new_session=True)
        handle.close()
        daemon = _Daemon(name, process, log)
        self.daemons.append(daemon)
        return daemon

    def _wait(self, daemon: _Daemon, pattern: str, timeout: float) -> re.Match[str]:
        deadline = time.monotonic() + timeout
        while True:
            found = re.search(pattern, daemon.text())
            if found:
                return found
            if daemon.process.poll() is not None:
                raise RuntimeError(f"spark {daemon.name} exited ({daemon.process.returncode}):\n"
                                   f"{daemon.text()[-3000:]}")
            if time.monotonic() > deadline:
                raise RuntimeError(f"spark {daemon.name}: {pattern!r} not seen in {timeout:.0f} s:\n"
                                   f"{daemon.text()[-3000:]}")
            time.sleep(0.2)


def _signal_group(process: subprocess.Popen, sig: int) -> None:
    try:
        os.killpg(process.pid, sig)
    except (ProcessLookupError, PermissionError):
        pass


def live_processes_of_groups(groups: list[int]) -> list[str]:
    """The processes still alive in any of ``groups`` (pid and command), read from /proc."""
    alive = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
            state, pgid = fields[0], int(fields[2])
        except (OSError, IndexError, ValueError):
            continue
        if pgid in groups and state != "Z":
            cmdline = (stat.parent / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            alive.append(f"{stat.parent.name}: {cmdline[:150]}")
    return alive

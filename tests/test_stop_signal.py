"""Both gRPC programs stop on SIGTERM whichever of their threads the signal lands on.

The kernel hands a process-directed signal to any thread; one that lands on a gRPC thread does not wake a main
thread blocked on a lock, so a server waiting with a plain ``Event.wait()`` slept through it for ever (a trainer
was found alive 30 minutes after its SIGTERM). The test aims the signal at a non-main thread with tgkill."""
from __future__ import annotations

import ctypes
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.server_support import wait_for

ROOT = Path(__file__).resolve().parents[1]
SYS_TGKILL = {"x86_64": 234, "aarch64": 131}.get(os.uname().machine)


def _tgkill(pid: int, tid: int, signum: int) -> None:
    """Send signum to one thread (tid) of process pid."""
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.syscall(SYS_TGKILL, pid, tid, signum) != 0:
        raise OSError(ctypes.get_errno(), "tgkill failed")


def _program(tmp_path: Path, which: str) -> list[str]:
    port_file = tmp_path / f"{which}.port"
    if which == "scoring":
        return [sys.executable, "-m", "scoring_service", "--store", str(tmp_path / "store"), "--port", "0",
                "--metrics-port", "0", "--port-file", str(port_file)]
    return [sys.executable, "-m", "training_job", "serve", "--store", str(tmp_path / "store"),
            "--data-dir", str(tmp_path / "data"), "--port", "0", "--port-file", str(port_file)]


@pytest.mark.skipif(SYS_TGKILL is None or not Path("/proc/self/task").is_dir(), reason="needs Linux tgkill")
@pytest.mark.parametrize("which", ["scoring", "trainer"])
def test_sigterm_on_a_non_main_thread_stops_the_server(tmp_path: Path, which: str) -> None:
    (tmp_path / "store").mkdir()
    log = open(tmp_path / "server.log", "w")
    process = subprocess.Popen(_program(tmp_path, which), cwd=ROOT, stdout=log, stderr=subprocess.STDOUT)
    try:
        wait_for(lambda: (tmp_path / f"{which}.port").exists() or process.poll() is not None, timeout=60)
        assert process.poll() is None, (tmp_path / "server.log").read_text()[-2000:]
        time.sleep(0.5)  # let the main thread settle into its wait
        threads = sorted(int(t) for t in os.listdir(f"/proc/{process.pid}/task") if int(t) != process.pid)
        assert threads, "the server runs no thread besides its main one"
        _tgkill(process.pid, threads[-1], signal.SIGTERM)
        try:
            code = process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            pytest.fail(f"{which} still running 20 s after SIGTERM reached one of its threads")
        assert code == 0
        assert "received SIGTERM" in (tmp_path / "server.log").read_text()
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
        log.close()


def test_leave_process_exits_at_once_whatever_the_threads_hold(tmp_path: Path) -> None:
    """leave_process (both programs, after their server stops): no interpreter finalization to hang in, the
    logs flushed first."""
    program = ("import logging, threading, time\n"
               "from segmentation_core.logs import leave_process\n"
               "logging.basicConfig(level=logging.INFO)\n"
               "threading.Thread(target=time.sleep, args=(3600,), name='stuck-handler').start()\n"
               "leave_process(logging.getLogger('t'), code=0)\n")
    started = time.monotonic()
    done = subprocess.run([sys.executable, "-c", program], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0 and "exiting (code 0)" in done.stderr
    assert time.monotonic() - started < 30


def test_a_trainer_stopped_while_profiling_an_upload_exits(tmp_path: Path) -> None:
    """SIGTERM right after an upload, while its profile runs in a daemon thread inside pyarrow: the process
    used to hang in pyarrow's thread-pool destructor at exit (about one stop in three); it exits now."""
    from tests.test_training_service import Trainer
    from tests.test_upload_limits import gzip_bomb

    table = tmp_path / "small.csv.gz"
    table.write_bytes(gzip_bomb(2))  # 233,016 rows: its profile takes a while
    for attempt in range(4):
        (tmp_path / f"t{attempt}" / "data").mkdir(parents=True)
        trainer = Trainer(tmp_path / f"t{attempt}" / "store", tmp_path / f"t{attempt}" / "data")
        trainer.client.upload(table)
        trainer.client.close()
        trainer.process.send_signal(signal.SIGTERM)
        try:
            assert trainer.process.wait(timeout=20) == 0
        except subprocess.TimeoutExpired:
            trainer.process.kill()
            pytest.fail(f"attempt {attempt}: the trainer still runs 20 s after SIGTERM")
        finally:
            trainer.log.close()


@pytest.mark.skipif(SYS_TGKILL is None or not Path("/proc/self/task").is_dir(), reason="needs Linux tgkill")
def test_sigterm_on_a_non_main_thread_stops_the_dashboard(tmp_path: Path) -> None:
    """The dashboard (waitress), with pages served and pyarrow loaded (as after an upload), exits 0 soon after
    a SIGTERM that lands on one of its worker threads, through the same exit as the gRPC programs."""
    import urllib.request

    from tests.browser_support import free_port, wait_for_port

    port = free_port()
    log = open(tmp_path / "dash.log", "w")
    process = subprocess.Popen([sys.executable, "-m", "dash_ui", "--scoring", "127.0.0.1:1", "--port", str(port)],
                               cwd=ROOT, stdout=log, stderr=subprocess.STDOUT)
    try:
        wait_for_port(port, timeout=60, process=process)
        for page in ("/", "/data", "/batch"):
            assert urllib.request.urlopen(f"http://127.0.0.1:{port}{page}", timeout=30).status == 200
        assert "arrow" in Path(f"/proc/{process.pid}/maps").read_text()
        threads = sorted(int(t) for t in os.listdir(f"/proc/{process.pid}/task") if int(t) != process.pid)
        _tgkill(process.pid, threads[-1], signal.SIGTERM)
        try:
            code = process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            pytest.fail("the dashboard still runs 20 s after SIGTERM reached one of its threads")
        assert code == 0
        assert "exiting (code 0)" in (tmp_path / "dash.log").read_text()
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
        log.close()

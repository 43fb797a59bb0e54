"""``python -m scoring_service``: serve the models of a store over gRPC (see ``--help``).

Process-wide tuning happens here, before numpy is imported, because it cannot be undone later:
one BLAS thread (a batch of 10,000 rows is too small for threads to pay, and idle OpenBLAS threads spin
on the core gRPC needs) and glibc malloc thresholds that keep the big per-batch buffers out of mmap/munmap
(without it every batch page-faults its buffers back in).
"""
from __future__ import annotations

import os

for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import ctypes  # noqa: E402
import dataclasses  # noqa: E402
import logging  # noqa: E402
import signal  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

M_TRIM_THRESHOLD, M_MMAP_THRESHOLD = -1, -3  # from glibc's malloc.h


def _tune_malloc() -> None:
    """Raise glibc's mmap threshold to 64 MiB and trim threshold to 256 MiB (no-op elsewhere)."""
    try:
        libc = ctypes.CDLL("libc.so.6")
        libc.mallopt(M_MMAP_THRESHOLD, 64 << 20)
        libc.mallopt(M_TRIM_THRESHOLD, 256 << 20)
    except (OSError, AttributeError):
        pass


_tune_malloc()

from segmentation_core.logs import configure_logging  # noqa: E402
from scoring_service.server import serve  # noqa: E402
from segmentation_core.grpc_server import StopSignal, write_port_file  # noqa: E402
from segmentation_core.logs import leave_process  # noqa: E402
from scoring_service.settings import Settings, parse_settings  # noqa: E402

log = logging.getLogger("scoring_service")
WORKER_START_TIMEOUT = 60.0


def _start_workers(settings: Settings, port: int) -> list[subprocess.Popen]:
    """Start the extra --workers processes on the port this one bound (SO_REUSEPORT); return once each
    listens (so that --port-file, written after, means every worker is ready)."""
    children, ready_files = [], []
    for index in range(1, settings.workers):
        ready = Path(tempfile.gettempdir()) / f"scoring-worker-{os.getpid()}-{index}.port"
        ready.unlink(missing_ok=True)
        ready_files.append(ready)
        env = {**os.environ, "SCORING_PORT": str(port), "SCORING_WORKER_INDEX": str(index)}
        children.append(subprocess.Popen([sys.executable, "-m", "scoring_service", *sys.argv[1:], "--port", str(port),
                                          "--worker-index", str(index), "--port-file", str(ready)], env=env))
    deadline = time.monotonic() + WORKER_START_TIMEOUT
    for child, ready in zip(children, ready_files):
        while not ready.exists() and child.poll() is None and time.monotonic() < deadline:
            time.sleep(0.02)
        if not ready.exists():
            log.error("worker process %d did not start listening", child.pid)
        ready.unlink(missing_ok=True)
    return children


def main(argv: list[str] | None = None) -> int:
    """Run the server until SIGTERM or SIGINT, then drain and exit 0."""
    settings = parse_settings(argv)
    configure_logging(settings.log_format, settings.log_level)
    first_of_many = settings.workers > 1 and settings.worker_index == 0
    stop = StopSignal(log)
    try:
        # With several workers, the port file is written once all of them listen (below).
        server = serve(dataclasses.replace(settings, port_file="") if first_of_many else settings, freeze_gc=True)
    except (OSError, ValueError) as exc:
        log.error("cannot start: %s", exc)
        return 1
    children = _start_workers(settings, server.port) if settings.worker_index == 0 else []
    if children and settings.port_file:
        write_port_file(settings.port_file, server.port)
    stop.wait()
    for child in children:
        child.send_signal(signal.SIGTERM)
    server.stop()
    for child in children:
        child.wait(timeout=settings.grace + 5)
    leave_process(log)


if __name__ == "__main__":
    sys.exit(main())

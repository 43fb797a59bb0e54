"""python -m dash_ui --scoring HOST:PORT [--port 8050] [--host 127.0.0.1] [--threads 8] [--debug]

Served by waitress, a production WSGI server: one process (batch jobs and caches live in it), a pool
of threads; SIGTERM or Ctrl-C lets the requests in progress finish (up to 5 s) and exits 0 (at once: no
interpreter finalization, as the gRPC programs).
`--debug` runs Dash's debug mode on Flask's development server instead.
"""
from __future__ import annotations

import ctypes
import logging
import os
import signal
import sys
from typing import TYPE_CHECKING, Sequence

from dash_ui.settings import DashSettings, parse_settings
from segmentation_core.logs import configure_logging, leave_process

M_ARENA_MAX, M_MMAP_THRESHOLD = -8, -3  # glibc's malloc.h


def tune_memory() -> None:
    """Hand large freed blocks back to the system: a fixed 1 MiB mmap threshold for glibc malloc (its dynamic one
    rises after the first big free, and a parsed upload's freed columns then stay in the heap), two malloc
    arenas (an upload is parsed in one request thread and validated in another: memory one thread's arena
    freed is not reused by the next) and the system allocator for Arrow (its jemalloc pool keeps what it
    freed). Before pyarrow is imported; a no-op where glibc is not."""
    os.environ.setdefault("ARROW_DEFAULT_MEMORY_POOL", "system")
    try:
        libc = ctypes.CDLL("libc.so.6")
        libc.mallopt(M_MMAP_THRESHOLD, 1 << 20)
        libc.mallopt(M_ARENA_MAX, 2)
    except (OSError, AttributeError):
        pass


if TYPE_CHECKING:
    from dash import Dash

    from dash_ui.service import DashboardService


def build(args: DashSettings) -> tuple[Dash, DashboardService]:
    """The app and its started scoring service, as the settings say (also for dash_ui.wsgi)."""
    tune_memory()
    # Imported here: the settings are parsed (and --help or a bad value answered) before dash loads.
    from dash_ui.app import create_app
    from dash_ui.service import DashboardService, default_client_factory
    from dash_ui.trainer import TrainerAccess

    factory = default_client_factory(args.scoring, token=args.token, tls_ca=args.tls_ca)
    service = DashboardService(args.scoring, factory, retry_seconds=args.retry_seconds).start()
    trainer = TrainerAccess(args.trainer, token=args.trainer_token, tls_ca=args.trainer_tls_ca)
    return create_app(service, trainer), service


def main(argv: Sequence[str] | None = None) -> int:
    """Serve the dashboard until SIGTERM or Ctrl-C."""
    args = parse_settings(argv)
    configure_logging(args.log_format)
    app, service = build(args)
    logging.getLogger("dash_ui").info("dashboard on http://%s:%d/ for scoring service %s",
                                      args.host, args.port, args.scoring)
    if args.debug:
        app.run(host=args.host, port=args.port, debug=True, use_reloader=False)
        return 0
    import waitress

    # waitress's loop ends on SystemExit as on KeyboardInterrupt: it closes the server, then returns.
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(0))
    waitress.serve(app.server, host=args.host, port=args.port, threads=args.threads)
    service.stop()
    log = logging.getLogger("dash_ui")
    log.info("dashboard stopped")
    # A batch job's daemon thread may be inside pyarrow: skip the interpreter finalization that can hang there.
    leave_process(log, code=0)


if __name__ == "__main__":
    sys.exit(main())

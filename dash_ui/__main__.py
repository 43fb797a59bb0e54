"""python -m dash_ui --scoring HOST:PORT [--port 8050] [--host 127.0.0.1] [--threads 8] [--debug]

Served by waitress, a production WSGI server: one process (batch jobs and caches live in it), a pool
of threads; SIGTERM or Ctrl-C lets the requests in progress finish (up to 5 s) and exits 0.
`--debug` runs Dash's debug mode on Flask's development server instead.
"""
from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
from typing import Sequence

import waitress

from dash_ui.app import create_app
from dash_ui.service import DashboardService, default_client_factory
from dash_ui.trainer import TrainerAccess
from segmentation_core.logs import FORMATS, configure_logging

#: Request threads: a few browser tabs each polling the status, drawing pages and running callbacks
#: that wait on the scoring service (batch scoring runs in threads of its own).
DEFAULT_THREADS = 8


def positive_int(text: str) -> int:
    """An argparse type: a whole number >= 1."""
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"{value} should be >= 1")
    return value


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    env = os.environ
    parser = argparse.ArgumentParser(prog="python -m dash_ui", description="The customer-segmentation dashboard.")
    parser.add_argument("--scoring", default=env.get("DASH_SCORING", "127.0.0.1:50051"),
                        help="scoring service HOST:PORT (env DASH_SCORING; default 127.0.0.1:50051)")
    parser.add_argument("--port", type=int, default=int(env.get("DASH_PORT", "8050")),
                        help="HTTP port (env DASH_PORT; default 8050)")
    parser.add_argument("--host", default=env.get("DASH_HOST", "127.0.0.1"),
                        help="HTTP address to listen on (env DASH_HOST; default 127.0.0.1; 0.0.0.0 in containers)")
    parser.add_argument("--token", default=env.get("DASH_SCORING_TOKEN") or None,
                        help="bearer token for the scoring service (env DASH_SCORING_TOKEN)")
    parser.add_argument("--tls-ca", default=env.get("DASH_SCORING_TLS_CA") or None,
                        help="CA certificate (PEM) for TLS to the scoring service (env DASH_SCORING_TLS_CA)")
    parser.add_argument("--trainer", default=env.get("DASH_TRAINER", ""),
                        help="training service HOST:PORT behind the Data, Train and Compare pages (env DASH_TRAINER; "
                             "default none: those pages say training is unavailable)")
    parser.add_argument("--trainer-token", default=env.get("DASH_TRAINER_TOKEN") or None,
                        help="bearer token for the training service (env DASH_TRAINER_TOKEN)")
    parser.add_argument("--trainer-tls-ca", default=env.get("DASH_TRAINER_TLS_CA") or None,
                        help="CA certificate (PEM) for TLS to the training service (env DASH_TRAINER_TLS_CA)")
    parser.add_argument("--retry-seconds", type=float, default=float(env.get("DASH_RETRY_SECONDS", "2")),
                        help="wait between reconnection attempts (env DASH_RETRY_SECONDS; default 2)")
    # A string default goes through `type` too: a bad DASH_THREADS is a usage error, not a traceback.
    parser.add_argument("--threads", type=positive_int, default=env.get("DASH_THREADS", str(DEFAULT_THREADS)),
                        help=f"request threads of the HTTP server (env DASH_THREADS; default {DEFAULT_THREADS})")
    parser.add_argument("--log-format", default=env.get("DASH_LOG_FORMAT", "json"), choices=FORMATS,
                        help="log line format: one JSON object per line, or text (env DASH_LOG_FORMAT; default json)")
    parser.add_argument("--debug", action="store_true", default=env.get("DASH_DEBUG", "") == "1",
                        help="Dash debug mode, on Flask's development server instead of waitress "
                             "(env DASH_DEBUG=1); never in production")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    configure_logging(args.log_format)
    factory = default_client_factory(args.scoring, token=args.token, tls_ca=args.tls_ca)
    service = DashboardService(args.scoring, factory, retry_seconds=args.retry_seconds).start()
    trainer = TrainerAccess(args.trainer, token=args.trainer_token, tls_ca=args.trainer_tls_ca)
    app = create_app(service, trainer)
    logging.getLogger("dash_ui").info("dashboard on http://%s:%d/ for scoring service %s",
                                      args.host, args.port, args.scoring)
    if args.debug:
        app.run(host=args.host, port=args.port, debug=True, use_reloader=False)
        return 0
    # waitress's loop ends on SystemExit as on KeyboardInterrupt: it closes the server, then returns.
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(0))
    waitress.serve(app.server, host=args.host, port=args.port, threads=args.threads)
    service.stop()
    logging.getLogger("dash_ui").info("dashboard stopped")
    return 0


if __name__ == "__main__":
    sys.exit(main())

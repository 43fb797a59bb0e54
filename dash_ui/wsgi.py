"""WSGI entry point for another server than `python -m dash_ui`'s own (waitress), e.g.
`waitress-serve --threads 8 dash_ui.wsgi:server` or `gunicorn -w 1 --threads 8 dash_ui.wsgi:server`.

Configured by the environment as `python -m dash_ui` is (DASH_SCORING, DASH_SCORING_TOKEN,
DASH_SCORING_TLS_CA, DASH_RETRY_SECONDS). One worker process: batch jobs and caches live in the process.
"""
from __future__ import annotations

import os

from dash_ui.app import create_app
from dash_ui.service import DashboardService, default_client_factory

_target = os.environ.get("DASH_SCORING", "127.0.0.1:50051")
service = DashboardService(
    _target,
    default_client_factory(_target, token=os.environ.get("DASH_SCORING_TOKEN") or None,
                           tls_ca=os.environ.get("DASH_SCORING_TLS_CA") or None),
    retry_seconds=float(os.environ.get("DASH_RETRY_SECONDS", "2")),
).start()
app = create_app(service)
server = app.server

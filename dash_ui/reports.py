"""The dashboard's report route: a version's training report, fetched from the training service (GetReport).

```
GET /report/<model>/<version>               the report page, to open in a new tab
GET /report/<model>/<version>?download=1    the same bytes as a file download (<model>-<version>-report.html)
```
The dashboard never reads the store: the training service sends the report after checking it against the
version's manifest. The page runs its own script (it inflates its chart code and draws the charts), so it is
served in a sandbox (``Content-Security-Policy: sandbox allow-scripts``): its scripts run in an origin of their
own, not the dashboard's. Without a training service, or for a version without a report, the route answers a
short page that says why (503, 404).
"""
from __future__ import annotations

import html
import logging
from urllib.parse import quote

import flask
import grpc

from dash_ui.trainer import TrainerAccess

log = logging.getLogger(__name__)

ROUTE = "/report/<model>/<version>"
#: The report's own scripts may run, in an opaque origin of their own (no access to the dashboard's). No stricter
#: source list: one with default-src 'none' stopped the map's WebGL ("WebGL is not supported").
SANDBOX = "sandbox allow-scripts"


def report_url(model: str, version: str, *, download: bool = False) -> str:
    """The dashboard's address of a version's training report."""
    return f"/report/{quote(model, safe='')}/{quote(version, safe='')}" + ("?download=1" if download else "")


def _explain(status: int, message: str) -> flask.Response:
    page = (f"<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'><title>Training report</title></head>"
            f"<body><h1>No training report</h1><p id='report-error'>{html.escape(message)}</p></body></html>")
    return flask.Response(page, status=status, mimetype="text/html")


def install_report_route(server: flask.Flask, trainer: TrainerAccess) -> None:
    """Serve ``ROUTE`` on the dashboard's Flask server, through ``trainer``."""
    from training_job.client import TrainingError

    def report(model: str, version: str) -> flask.Response:
        if not trainer.available():
            return _explain(503, f"The training report comes from the training service. {trainer.unavailable_reason()}")
        try:
            found = trainer.client.report(version, model=model)
        except TrainingError as exc:
            log.info("report of %s %s not sent: %s", model, version, exc)
            return _explain(404 if exc.code == grpc.StatusCode.NOT_FOUND else 502, exc.message)
        response = flask.Response(found.html, mimetype="text/html")
        disposition = "attachment" if flask.request.args.get("download") else "inline"
        response.headers["Content-Disposition"] = f'{disposition}; filename="{found.model}-{found.version}-report.html"'
        response.headers["Content-Security-Policy"] = SANDBOX
        response.headers["X-Content-Type-Options"] = "nosniff"
        return response

    server.add_url_rule(ROUTE, "training_report", report, methods=["GET"])

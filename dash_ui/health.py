"""The dashboard's own HTTP endpoints beside Dash's: `/health` (JSON) and 404 for unknown paths.

Dash answers every path with the app's page, so a probe of `/health` or a mistyped URL used to get 200
and HTML. `install` adds a Flask route for `/health` and `/health/ready`, and gives the page that Dash
serves for a path no page owns the status 404 (the browser still shows the app's "Page not found").
"""
from __future__ import annotations

from typing import Collection

import flask

from dash_ui.service import OK, DashboardService

#: Paths served as they are by Flask and Dash themselves, never 404ed here.
_OWN_PREFIXES = ("/_dash", "/_reload-hash", "/_favicon", "/assets/", "/health")
#: Flask endpoints of the dashboard's own that answer HTML for themselves (dash_ui.reports).
_OWN_ENDPOINTS = {"training_report"}


def health_body(service: DashboardService) -> dict[str, object]:
    """What `/health` says: the dashboard answers; whether the scoring service does (no network:
    the service's watch thread and health probe keep the status current)."""
    status = service.status()
    return {
        "status": "ok" if status.state == OK else "degraded",
        "scoring": {"reachable": status.state == OK or status.state == "no-model", "state": status.state,
                    "target": status.target, "model": status.model, "version": status.version,
                    "message": status.message},
    }


def install(server: flask.Flask, service: DashboardService, pages: Collection[str]) -> None:
    """Adds `/health` (200 while the dashboard runs: liveness), `/health/ready` (503 until the scoring
    service serves a model: readiness) and the 404 status for paths outside `pages`."""
    known = {p.rstrip("/") or "/" for p in pages}

    @server.route("/health")
    def health() -> flask.Response:
        return flask.jsonify(health_body(service))

    @server.route("/health/ready")
    def ready() -> tuple[flask.Response, int]:
        body = health_body(service)
        return flask.jsonify(body), 200 if body["status"] == "ok" else 503

    @server.after_request
    def unknown_path(response: flask.Response) -> flask.Response:
        path = flask.request.path
        if (flask.request.method == "GET" and response.status_code == 200 and not path.startswith(_OWN_PREFIXES)
                and flask.request.endpoint not in _OWN_ENDPOINTS
                and response.mimetype == "text/html" and (path.rstrip("/") or "/") not in known):
            response.status_code = 404
        return response

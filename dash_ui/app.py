"""The Dash application: `create_app(service)` builds it, routes URLs to pages, polls the service status."""
from __future__ import annotations

import logging
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl

import dash
import dash_bootstrap_components as dbc
from dash import Input, Output, State, html, no_update

from dash_ui import figures
from dash_ui.layout import app_shell, status_badge, status_banner, update_notice, waiting_card
from dash_ui.pages import PAGES
from dash_ui.service import DOWN, NO_MODEL, OK, DashboardService, ServiceError, ServiceStatus

log = logging.getLogger(__name__)
ASSETS = Path(__file__).resolve().parent / "assets"


def create_app(service: DashboardService) -> dash.Dash:
    """A Dash app showing `service` (start its watch thread with `service.start()`)."""
    app = dash.Dash(
        __name__, title="Customer segments", assets_folder=str(ASSETS), suppress_callback_exceptions=True,
        serve_locally=True, update_title=None,
    )
    app.layout = app_shell()
    figures.warm_up()
    _register_shell_callbacks(app, service)
    for page in PAGES.values():
        page.register_callbacks(app, service)
    return app


def status_key(status: dict[str, Any] | None) -> tuple[str, str, str]:
    """What, in a status, requires re-rendering the page: the state and the served version."""
    status = status or {}
    return status.get("state", ""), status.get("model", ""), status.get("version", "")


def render_page(service: DashboardService, pathname: str | None, search: str | None) -> Any:
    """The page for a URL, or a waiting card: never a traceback."""
    page = PAGES.get((pathname or "/").rstrip("/") or "/")
    if page is None:
        return html.Div([html.H3("Page not found"), html.P(f"There is no page at {pathname}."),
                         dbc.Button("Go to the overview", href="/")], id="not-found")
    params = dict(parse_qsl((search or "").lstrip("?")))
    try:
        status = service.status()
        if service.cached_model_view() is None and status.state in (DOWN, NO_MODEL):
            return waiting_card(status.message)  # the watch thread keeps trying; the page follows
        return page.layout(service, params)
    except ServiceError as exc:
        return waiting_card(exc.message)
    except Exception:  # noqa: BLE001 - log the traceback, show a sentence
        log.exception("rendering %s failed", pathname)
        return dbc.Alert("This page could not be drawn; the error is in the dashboard's log.", color="danger")


def _register_shell_callbacks(app: dash.Dash, service: DashboardService) -> None:
    @app.callback(Output("service-status", "data"), Output("service-badge", "children"),
                  Output("service-banner", "children"), Output("update-notice", "children"),
                  Input("status-poll", "n_intervals"), State("service-status", "data"))
    def poll_status(_: int, previous: dict[str, Any] | None) -> tuple[Any, Any, Any, Any]:
        status: ServiceStatus = service.status()
        current = status.as_dict()
        changed = status_key(current) != status_key(previous)
        if not changed and status.state == OK:
            return no_update, no_update, no_update, no_update
        banner = status_banner(status, service.retry_seconds)
        notice: Any = no_update
        if (changed and status.state == OK and previous and previous.get("version")
                and previous.get("version") != status.version):
            notice = update_notice(status)
        return (current if changed else no_update), status_badge(status), banner, notice

    @app.callback(Output("page-content", "children"), Output("rendered-key", "data"),
                  Input("url", "pathname"), Input("service-status", "data"),
                  State("url", "search"), State("rendered-key", "data"))
    def route(pathname: str, status: dict[str, Any] | None, search: str, rendered: str | None) -> Any:
        # A status change re-renders the page only when it changes what the page would show (a new
        # version, or a first model after waiting): not on the first poll, not for an outage.
        if dash.ctx.triggered_id == "service-status" and rendered == render_key(service):
            return no_update, no_update
        return render_page(service, pathname, search), render_key(service)


def render_key(service: DashboardService) -> str:
    """What a page was drawn from: the model version, or nothing (a waiting card)."""
    view = service.cached_model_view()
    return f"{view.model} {view.version}" if view is not None else ""

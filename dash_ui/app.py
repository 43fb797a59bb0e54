"""The Dash application: `create_app(service)` builds it, routes URLs to pages, polls the service status."""
from __future__ import annotations

import logging
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import dash
import dash_bootstrap_components as dbc
import flask
from dash import Input, Output, State, html, no_update

from dash_ui import health, plotly_bundle
from segmentation_core.charts import figures
from dash_ui.layout import app_shell, status_badge, status_banner, update_notice, waiting_card
from dash_ui.pages import PAGES
from dash_ui.pages.model import register_version_buttons
from dash_ui.service import DOWN, NO_MODEL, OK, DashboardService, ServiceError, ServiceStatus
from dash_ui.pages import batch as batch_page
from dash_ui.reports import install_report_route
from dash_ui.trainer import TrainerAccess
from dash_ui.uploads import install_upload_routes

log = logging.getLogger(__name__)
ASSETS = Path(__file__).resolve().parent / "assets"


def create_app(service: DashboardService, trainer: TrainerAccess | None = None) -> dash.Dash:
    """A Dash app showing `service` (start its watch thread with `service.start()`); `trainer` is the training
    service behind the Data, Train and Compare pages (None: those pages say training is unavailable)."""
    trainer = trainer or TrainerAccess("")
    app = dash.Dash(
        __name__, title="Customer segments", assets_folder=str(ASSETS), suppress_callback_exceptions=True,
        serve_locally=True, update_title=None,
    )
    app.layout = lambda: initial_layout(service)
    plotly_bundle.install(app)  # the dashboard's partial plotly.js instead of the full one
    health.install(app.server, service, PAGES)
    figures.warm_up()
    _register_shell_callbacks(app, service)
    install_upload_routes(app.server, trainer, batch_page.UPLOADS)
    install_report_route(app.server, trainer)
    for page in PAGES.values():
        if getattr(page, "USES_TRAINER", False):
            page.register_callbacks(app, service, trainer)
        else:
            page.register_callbacks(app, service)
    register_version_buttons(app, service, trainer)
    service.on_sample(lambda view: prerender(service))
    return app


def prerender(service: DashboardService) -> None:
    """Renders every page once, off the request path, so that their figures are cached
    (dash_ui.figure_cache) before the first visit of a new version."""
    for path in PAGES:
        render_page(service, path, "")


def initial_layout(service: DashboardService) -> Any:
    """The shell, with the page of the URL being opened already in it when the model is known.

    dash-renderer asks for the layout (/_dash-layout) from the page being opened, whose URL the request
    carries as its Referer. Drawing that page into the layout saves a round trip: before, the shell came
    empty, then the `route` callback's answer brought the page, and only then did its graphs start
    loading plotly.js. The browser then finds the page drawn for the served version (`rendered-key`)
    and does not call `route` at all. Without a Referer, or before the first model is known (a page
    would wait on the service here, holding up the whole shell), the shell comes empty and `route`
    draws the page, as before.
    """
    if not flask.has_request_context() or service.cached_model_view() is None:
        return app_shell()
    referrer = urlsplit(flask.request.referrer or "")
    if not referrer.path or referrer.netloc != flask.request.host:
        return app_shell()
    page = render_page(service, referrer.path, referrer.query)
    return app_shell(page, rendered_key=page_key(service, referrer.path))


def page_key(service: DashboardService, pathname: str | None) -> str:
    """What the content of `page-content` was drawn for: the model version and the page."""
    return f"{render_key(service)}|{(pathname or '/').rstrip('/') or '/'}"


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
        if getattr(page, "NEEDS_MODEL", True) and service.cached_model_view() is None and status.state in (DOWN, NO_MODEL):
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

    # Whether the page must be drawn (again) is decided in the browser first: asking the server when
    # nothing changes would still mark page-content as loading until the answer (a spinner, and a page
    # that is not ready) on every visit. The server checks again (`page_key`): the browser's view of the
    # version comes from the status poll and may lag.
    app.clientside_callback(
        """
        function (pathname, status, rendered) {
            const path = (pathname || "/").replace(/\\/+$/, "") || "/";
            if (rendered && !status) {
                return window.dash_clientside.no_update;  // drawn with the layout: wait for the status
            }
            const version = status && (status.model || status.version) ? status.model + " " + status.version : "";
            if (rendered === version + "|" + path) {
                return window.dash_clientside.no_update;
            }
            return {path: path, at: Date.now()};
        }
        """,
        Output("route-request", "data"),
        Input("url", "pathname"), Input("service-status", "data"), State("rendered-key", "data"),
    )

    @app.callback(Output("page-content", "children"), Output("rendered-key", "data"),
                  Input("route-request", "data"),
                  State("url", "pathname"), State("url", "search"), State("rendered-key", "data"),
                  prevent_initial_call=True)
    def route(_: Any, pathname: str, search: str, rendered: str | None) -> Any:
        # The page is drawn again only when that changes what it shows: another page, a new version, a
        # first model after waiting; not on the first poll, not for an outage, not when the layout came
        # with the page already drawn (initial_layout).
        if rendered == page_key(service, pathname):
            return no_update, no_update
        page = render_page(service, pathname, search)
        return page, page_key(service, pathname)


def render_key(service: DashboardService) -> str:
    """What a page was drawn from: the model version, or nothing (a waiting card)."""
    view = service.cached_model_view()
    return f"{view.model} {view.version}" if view is not None else ""

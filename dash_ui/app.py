"""The Dash application: `create_app(service)` builds it, routes URLs to pages, polls the service status."""
from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import dash
import dash_bootstrap_components as dbc
import flask
from dash import Input, Output, State, dcc, html, no_update

from dash_ui import health, plotly_bundle
from segmentation_core.charts import figures
from dash_ui.layout import (NAV_ITEMS, app_shell, status_badge, status_banner, unknown_model_card, update_notice,
                            waiting_card)
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
    page = page_children(service, referrer.path, referrer.query)
    return app_shell(page, rendered_key=page_key(service, referrer.path, model_of(referrer.query)))


def model_of(search: str | None) -> str:
    """The model a URL's query names (`?model=mall`), "" for the default model."""
    return dict(parse_qsl((search or "").lstrip("?"))).get("model", "").strip()


def page_key(service: DashboardService, pathname: str | None, model: str = "") -> str:
    """What the content of `page-content` was drawn for: the model version and the page."""
    return f"{render_key(service, model)}|{(pathname or '/').rstrip('/') or '/'}"


def status_key(status: dict[str, Any] | None) -> tuple[Any, ...]:
    """What, in a status, requires re-rendering the page: the state and the served versions."""
    status = status or {}
    return (status.get("state", ""), status.get("model", ""), status.get("version", ""),
            tuple(sorted((status.get("served") or {}).items())))


def page_children(service: DashboardService, pathname: str | None, search: str | None) -> list[Any]:
    """What `page-content` holds for a URL: the page (`render_page`) after a `page-model` store naming the
    model the URL chose ("" for the default model), which the page's callbacks read to act on that model."""
    model = model_of(search)
    return [dcc.Store(id="page-model", data="" if service.is_default(model) else model),
            render_page(service, pathname, search)]


def render_page(service: DashboardService, pathname: str | None, search: str | None) -> Any:
    """The page for a URL (for the model its `?model=` names), or a waiting card: never a traceback."""
    page = PAGES.get((pathname or "/").rstrip("/") or "/")
    if page is None:
        return html.Div([html.H3("Page not found"), html.P(f"There is no page at {pathname}."),
                         dbc.Button("Go to the overview", href="/")], id="not-found")
    params = dict(parse_qsl((search or "").lstrip("?")))
    model = "" if service.is_default(model_of(search)) else model_of(search)
    needs_model = getattr(page, "NEEDS_MODEL", True)
    try:
        status = service.status()
        if needs_model and model:
            service.model_view(model)  # an unknown model is named here, before the page asks
        elif needs_model and service.cached_model_view() is None and status.state in (DOWN, NO_MODEL):
            return waiting_card(status.message)  # the watch thread keeps trying; the page follows
        return page.layout(service, params)
    except ServiceError as exc:
        if model and exc.code == "NOT_FOUND":
            return unknown_model_card(exc.message, pathname or "/", service.served_versions())
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
        current = {**status.as_dict(), "served": service.served_versions()}
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
        function (pathname, search, status, rendered) {
            const path = (pathname || "/").replace(/\\/+$/, "") || "/";
            if (rendered && !status) {
                return window.dash_clientside.no_update;  // drawn with the layout: wait for the status
            }
            const model = (new URLSearchParams(search || "").get("model") || "").trim();
            let version = status && (status.model || status.version) ? status.model + " " + status.version : "";
            if (model && status && model !== status.model) {  // another model: its served version (render_key)
                version = model + " " + ((status.served || {})[model] || "");
            }
            if (rendered === version + "|" + path) {
                return window.dash_clientside.no_update;
            }
            return {path: path, model: model, at: Date.now()};
        }
        """,
        Output("route-request", "data"),
        Input("url", "pathname"), Input("url", "search"), Input("service-status", "data"),
        State("rendered-key", "data"),
    )
    _register_model_choice(app)

    @app.callback(Output("page-content", "children"), Output("rendered-key", "data"),
                  Input("route-request", "data"),
                  State("url", "pathname"), State("url", "search"), State("rendered-key", "data"),
                  prevent_initial_call=True)
    def route(_: Any, pathname: str, search: str, rendered: str | None) -> Any:
        # The page is drawn again only when that changes what it shows: another page, a new version, a
        # first model after waiting; not on the first poll, not for an outage, not when the layout came
        # with the page already drawn (initial_layout).
        key = page_key(service, pathname, model_of(search))
        if rendered == key:
            return no_update, no_update
        return page_children(service, pathname, search), key


def _register_model_choice(app: dash.Dash) -> None:
    """The navbar's model chooser and links, all in the browser: the URL's `?model=` is the one place the
    chosen model lives (a link shows what its sender saw), so the navbar links carry it from page to page and
    choosing a model only changes it."""
    app.clientside_callback(
        """
        function (status, search) {
            const served = (status && status.served) || {};
            const names = Object.keys(served).sort();
            const options = names.map(n => ({label: n + " " + (served[n] || "(none served)"), value: n}));
            const model = (new URLSearchParams(search || "").get("model") || "").trim() || (status && status.model) || null;
            return [options, model, names.length > 1 ? {} : {display: "none"}];
        }
        """,
        Output("model-choice", "options"), Output("model-choice", "value"), Output("model-chooser", "style"),
        Input("service-status", "data"), Input("url", "search"),
    )
    app.clientside_callback(
        """
        function (value, search, status) {
            const current = (new URLSearchParams(search || "").get("model") || "").trim() || (status && status.model) || "";
            if (!value || value === current) {
                return window.dash_clientside.no_update;
            }
            return "?model=" + encodeURIComponent(value);  // another model's segments and features: no other parameter holds
        }
        """,
        Output("url", "search", allow_duplicate=True),
        Input("model-choice", "value"), State("url", "search"), State("service-status", "data"),
        prevent_initial_call=True,
    )
    paths = [path for path, _ in NAV_ITEMS]
    app.clientside_callback(
        """
        function (pathname, search) {
            const paths = %s;
            const model = (new URLSearchParams(search || "").get("model") || "").trim();
            const query = model ? "?model=" + encodeURIComponent(model) : "";
            const here = (pathname || "/").replace(/\\/+$/, "") || "/";
            return [...paths.map(p => p + query), ...paths.map(p => p === here), "/" + query];
        }
        """ % json.dumps(paths),
        *[Output(f"nav-{label.lower()}", "href") for _, label in NAV_ITEMS],
        *[Output(f"nav-{label.lower()}", "active") for _, label in NAV_ITEMS],
        Output("nav-brand", "href"),
        Input("url", "pathname"), Input("url", "search"),
    )


def render_key(service: DashboardService, model: str = "") -> str:
    """What a page was drawn from: the model version, or nothing (a waiting card)."""
    if model and not service.is_default(model):
        return f"{model} {service.served_versions().get(model, '')}"
    view = service.cached_model_view()
    return f"{view.model} {view.version}" if view is not None else ""

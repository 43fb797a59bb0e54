"""The application shell: navbar, service banner, page container; small builders shared by pages."""
from __future__ import annotations

from typing import Any, Iterable
from urllib.parse import urlencode

import dash_bootstrap_components as dbc
from dash import dcc, html

from dash_ui.service import DOWN, NO_MODEL, OK, STARTING, ServiceStatus

#: (path, label) of every page, in navbar order.
NAV_ITEMS: tuple[tuple[str, str], ...] = (
    ("/", "Overview"),
    ("/segments", "Segments"),
    ("/model", "Model"),
    ("/predict", "Predict"),
    ("/batch", "Batch"),
    ("/data", "Data"),
    ("/train", "Train"),
    ("/compare", "Compare"),
    ("/monitoring", "Monitoring"),
)
STATUS_POLL_MS = 2000


def navbar() -> dbc.Navbar:
    links = [dbc.NavItem(dbc.NavLink(label, href=path, active="exact", id=f"nav-{label.lower()}"))
             for path, label in NAV_ITEMS]
    return dbc.Navbar(
        dbc.Container([
            dbc.NavbarBrand("Customer segments", href="/", className="fw-semibold", id="nav-brand"),
            dbc.Nav(links, navbar=True, className="me-auto"),
            model_chooser(),
            html.Span(id="service-badge", children=status_badge(None)),
        ], fluid=True),
        color="dark", dark=True, className="mb-3",
    )


def model_chooser() -> html.Div:
    """The model every page shows, when the store has more than one (hidden until then): each model with
    its served version; choosing one sets the URL's `?model=` (dash_ui.app)."""
    return html.Div(dcc.Dropdown(id="model-choice", clearable=False, searchable=False, placeholder="model"),
                    id="model-chooser", className="model-chooser me-3", style={"display": "none"},
                    title="The model every page shows")


def with_model(href: str, model: str | None) -> str:
    """A link to `href` (a page path) that shows `model` ("" or None: the default model)."""
    return f"{href}?{urlencode({'model': model})}" if model else href


def unknown_model_card(message: str, pathname: str, served: dict[str, str]) -> dbc.Alert:
    """What a page shows for a `?model=` the store does not have: the service's sentence naming the models
    there are, and a link to this page for each."""
    links = [html.Li(dcc.Link(f"{name} ({version or 'none served'})", href=with_model(pathname, name)))
             for name, version in sorted(served.items())]
    return dbc.Alert([html.H4("Unknown model", className="alert-heading"), html.P(message, className="mb-1"),
                      html.Ul(links, className="mb-0") if links else None],
                     color="warning", className="mt-4", id="unknown-model")


def app_shell(page: Any = None, rendered_key: str | None = None) -> html.Div:
    """The layout every URL shares; the page itself goes into `page-content` (already there when
    `page` is given, with the `rendered_key` it was drawn for)."""
    return html.Div([
        dcc.Location(id="url", refresh=False),
        dcc.Store(id="service-status"),
        dcc.Store(id="rendered-key", data=rendered_key),
        dcc.Store(id="route-request"),
        # The workbench's uploaded dataset and training job, kept across pages for the browser tab's session.
        dcc.Store(id="wb-dataset", storage_type="session"),
        dcc.Store(id="wb-job", storage_type="session"),
        dcc.Interval(id="status-poll", interval=STATUS_POLL_MS, n_intervals=0),
        navbar(),
        dbc.Container([
            html.Div(id="service-banner"),
            html.Div(id="update-notice"),
            dcc.Loading(html.Div(page, id="page-content"), type="default", delay_show=300),
        ], fluid=True, className="pb-5"),
    ])


def status_badge(status: ServiceStatus | None) -> Any:
    """The navbar's word on the service: reachable or not, and the model/version it serves."""
    if status is None or status.state == STARTING:
        return dbc.Badge("connecting ...", color="secondary", className="service-badge p-2", id="service-state")
    if status.state == OK:
        text = f"● {status.target} · {status.model} {status.version}"
        return dbc.Badge(text, color="success", className="service-badge p-2", id="service-state",
                         title="Scoring service reachable")
    if status.state == NO_MODEL:
        return dbc.Badge(f"● {status.target} · no model", color="warning", text_color="dark",
                         className="service-badge p-2", id="service-state")
    return dbc.Badge(f"● {status.target} unreachable", color="danger", className="service-badge p-2",
                     id="service-state")


def status_banner(status: ServiceStatus | None, retry_seconds: float) -> Any:
    """A banner while the service is down or has no model; nothing when all is well."""
    if status is None or status.state in (OK, STARTING):
        return None
    title = ("The scoring service is unreachable" if status.state == DOWN
             else "The scoring service serves no model yet")
    retry = f"Retrying every {retry_seconds:g} s (attempt {status.attempts})."
    stale = (f" Pages show {status.model} {status.version} as last seen; predictions are paused."
             if status.version else "")
    return dbc.Alert([
        html.H5(title, className="alert-heading mb-1"),
        html.P(status.message, className="mb-1"),
        html.Small(retry + stale),
    ], color="danger" if status.state == DOWN else "warning", id="service-alert", className="mb-3")


def update_notice(status: ServiceStatus) -> Any:
    return dbc.Alert(
        f"A new model version is served: {status.model} {status.version} (was {status.previous_version}), "
        f"seen {status.changed_at}. This page now shows it.",
        color="info", dismissable=True, id="model-update-alert", className="mb-3",
    )


def waiting_card(message: str) -> dbc.Card:
    """What a page shows when it has nothing to show yet (service down, no model)."""
    return dbc.Card(dbc.CardBody([
        html.H4("Waiting for the scoring service", className="card-title"),
        html.P(message, className="text-muted mb-0"),
    ]), className="mt-4", id="waiting-card")


def page_header(title: str, subtitle: str | None = None) -> html.Div:
    return html.Div([
        html.H2(title, className="mb-0"),
        html.P(subtitle, className="text-muted") if subtitle else None,
    ], className="mb-3")


def segment_swatch(colour: str) -> html.Span:
    return html.Span(className="segment-swatch", style={"backgroundColor": colour})


def segment_label(name: str, colour: str) -> html.Span:
    """A segment's name after a swatch of its colour (`Segment.colour`)."""
    return html.Span([segment_swatch(colour), name], className="segment-label")


def segment_legend(segments: Iterable[Any], id: str) -> html.P:
    """One coloured label per segment (`Segment`s): the key to every chart's colours."""
    return html.P(["Segments: ", *[html.Span(segment_label(s.name, s.colour), className="me-3") for s in segments]],
                  className="small", id=id)


def stat(label: str, value: str, *, id: str | None = None) -> html.Div:
    kwargs = {"id": id} if id else {}
    return html.Div([html.Div(label, className="stat-label"), html.Div(value, className="stat-value", **kwargs)],
                    className="stat")


def graph(id: str, figure: Any, *, height: int | None = None) -> dcc.Graph:
    style = {"height": f"{height}px"} if height else None
    return dcc.Graph(id=id, figure=figure, config={"displaylogo": False, "displayModeBar": "hover"}, style=style)


def options(values: Iterable[str]) -> list[dict[str, str]]:
    return [{"label": v, "value": v} for v in values]

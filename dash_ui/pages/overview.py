"""Overview: a card per segment and the segment map (projection or two features, 2-D or 3-D)."""
from __future__ import annotations

from typing import Any, Mapping

import dash_bootstrap_components as dbc
from dash import Input, Output, State, dcc, html

from dash_ui import customer_value
from segmentation_core.charts import figures
from segmentation_core.number_format import format_amount
from segmentation_core.wording import algorithm_name, structure_sentence
from dash_ui.figure_cache import cached, version_key
from dash_ui.layout import graph, options, page_header, stat
from dash_ui.models import ModelView, SampleView, separating_features
from dash_ui.service import DashboardService, ServiceError
from scoring_service.client import Segment

PATH = "/"
TITLE = "Overview"
MAP_MODES = (("projection", "Projection (2-D)"), ("features", "Two features"), ("3d", "Projection (3-D)"))


def segment_card(segment: Segment) -> dbc.Card:
    colour = segment.colour
    return dbc.Card(dbc.CardBody([
        html.H5(segment.name, className="card-title segment-name", style={"color": colour}),
        html.Div([stat("Customers", f"{segment.size:,}"), stat("Share", f"{segment.share:.1%}"),
                  *([stat("Mean CLV", format_amount(segment.clv.mean_clv)),
                     stat("Share of value", f"{segment.clv.share_of_clv:.1%}")] if segment.clv else [])],
                 className="mb-2"),
        html.P(segment.description, className="card-text small"),
        html.P([html.Strong("Suggested action: "), segment.action], className="card-text small mb-0"),
    ]), className="segment-card shadow-sm", style={"borderTopColor": colour},
        id={"type": "segment-card", "segment": segment.id})


def segment_cards(view: ModelView) -> dbc.Row:
    return dbc.Row([dbc.Col(segment_card(s), xs=12, md=6, xl=4, xxl=True, className="mb-3") for s in view.segments],
                   id="overview-cards")


def default_map(view: ModelView, sample: SampleView) -> tuple[str, str | None, str | None]:
    """(mode, x, y) the map opens with: the projection when the service sent one."""
    x, y = (separating_features(view, 2) + view.numeric_names * 2)[:2] if view.numeric_names else (None, None)
    return ("projection" if sample.has_projection else "features"), x, y


def map_controls(view: ModelView, sample: SampleView) -> dbc.Row:
    modes = [{"label": label, "value": value, "disabled": value != "features" and not sample.has_projection}
             for value, label in MAP_MODES]
    mode, x, y = default_map(view, sample)
    return dbc.Row([
        dbc.Col(dbc.RadioItems(id="overview-map-mode", options=modes, inline=True, value=mode), md=6),
        dbc.Col(dcc.Dropdown(id="overview-map-x", options=options(view.numeric_names), value=x,
                             clearable=False, disabled=mode != "features"), md=3),
        dbc.Col(dcc.Dropdown(id="overview-map-y", options=options(view.numeric_names), value=y,
                             clearable=False, disabled=mode != "features"), md=3),
    ], className="mb-2 g-2 align-items-center")


def _structure_note(structure: str) -> str:
    """What the segments are, after a dot (``segmentation_core.wording.structure_sentence``, the Model page's and
    the report's words too); "" for models trained before it was recorded."""
    sentence = structure_sentence(structure)
    return f" · {sentence}" if sentence else ""


def layout(service: DashboardService, params: Mapping[str, str]) -> Any:
    view = service.model_view(params.get("model"))
    try:
        sample = service.sample(view)
        map_card = dbc.Card(dbc.CardBody([
            html.H4("Segment map", className="card-title"),
            html.P(f"{len(sample.frame):,} sampled training customers (at most {figures.MAX_MAP_POINTS:,} drawn); "
                   "crosses mark the centroids.", className="text-muted small"),
            map_controls(view, sample),
            # The first figure comes with the page (one round trip less); the callback redraws on change.
            graph("overview-map", map_figure(view, sample, *default_map(view, sample)), height=560),
        ]), className="section-card")
    except ServiceError as exc:
        map_card = dbc.Alert(f"The segment map is unavailable: {exc.message}", color="warning")
    return html.Div([
        page_header(f"{view.model} {view.version}: {view.k} segments",
                    f"{view.training_customers:,} customers modelled with {algorithm_name(view.algorithm)}, "
                    f"created {view.created_at}{_structure_note(view.segment_structure)}"),
        segment_cards(view),
        customer_value.clv_card(view, "overview-clv-table"),
        map_card,
    ], id="overview-page")


def register_callbacks(app: Any, service: DashboardService) -> None:
    @app.callback(Output("overview-map", "figure"),
                  Output("overview-map-x", "disabled"), Output("overview-map-y", "disabled"),
                  Input("overview-map-mode", "value"), Input("overview-map-x", "value"),
                  Input("overview-map-y", "value"), State("page-model", "data"), prevent_initial_call=True)
    def draw_map(mode: str, x: str, y: str, model: str | None = None) -> tuple[Any, bool, bool]:
        try:
            view = service.model_view(model)
            sample = service.sample(view)
        except ServiceError as exc:
            return figures.empty_figure(exc.message), True, True
        return map_figure(view, sample, mode, x, y), mode != "features", mode != "features"


def map_figure(view: ModelView, sample: SampleView, mode: str, x: str | None, y: str | None) -> Any:
    return cached(("overview-map", *version_key(view), sample.version, mode, x, y),
                  lambda: _map_figure(view, sample, mode, x, y))


def _map_figure(view: ModelView, sample: SampleView, mode: str, x: str | None, y: str | None) -> Any:
    names, colours = view.segment_names, view.segment_colours
    if mode == "3d":
        return figures.segment_map_3d(sample.frame, sample.centroids, "map_x", "map_y", "map_z", names,
                                      colours=colours, titles=("component 1", "component 2", "component 3"))
    if mode == "features" and x and y:
        return figures.segment_map(sample.frame, sample.centroids, x, y, names, colours=colours)
    return figures.segment_map(sample.frame, sample.centroids, "map_x", "map_y", names, colours=colours,
                               x_title="component 1", y_title="component 2")

"""Segments: a segment's profile against the base, the radar, distributions, the statistics table."""
from __future__ import annotations

from typing import Any, Mapping
from urllib.parse import parse_qsl, urlencode

import dash_bootstrap_components as dbc
import pandas as pd
from dash import Input, Output, State, dcc, html, no_update

from dash_ui import customer_value
from segmentation_core.charts import figures
from dash_ui.figure_cache import cached, version_key
from segmentation_core.csv_safety import to_safe_csv
from segmentation_core.number_format import number_kind
from dash_ui.grid import KIND_KEY, Column, data_grid
from dash_ui.layout import graph, page_header
from dash_ui.models import ModelView, SampleView
from dash_ui.service import DashboardService, ServiceError

PATH = "/segments"
TITLE = "Segments"
TABLE_COLUMNS = (("segment", "Segment", "text"), ("feature", "Feature", "text"), ("count", "Count", "numeric"),
                 ("share", "Share", "numeric"), ("mean", "Mean", "numeric"), ("median", "Median", "numeric"),
                 ("min", "Min", "numeric"), ("max", "Max", "numeric"), ("std", "Std", "numeric"))


def selected_segment(view: ModelView, params: Mapping[str, str]) -> int:
    """The segment named by `?segment=ID` when it exists, else the largest (id 0)."""
    try:
        wanted = int(params.get("segment", ""))
    except ValueError:
        wanted = -1
    ids = [s.id for s in view.segments]
    return wanted if wanted in ids else (ids[0] if ids else 0)


def stats_table_frame(view: ModelView) -> pd.DataFrame:
    """The statistics table as shown and downloaded: segments first (by id), then all customers."""
    frame = view.stats.copy()
    frame["_order"] = frame["segment_id"].where(frame["segment_id"] >= 0, 10**6)
    frame = frame.sort_values(["_order", "feature"], kind="stable").drop(columns="_order")
    return frame[["segment_id", *[c for c, _, _ in TABLE_COLUMNS]]]


def stats_table(view: ModelView) -> Any:
    frame = stats_table_frame(view)
    colour_rules = [(f"params.data.segment_id === {s.id}", {"color": s.colour, "fontWeight": "600"})
                    for s in view.segments]
    kinds = {"share": "percent", "count": "integer"}
    columns = [Column(cid, name, kinds.get(cid, "number" if kind == "numeric" else "text"),
                      styles=colour_rules if cid == "segment" else ())
               for cid, name, kind in TABLE_COLUMNS]
    rows = [{**row, KIND_KEY: number_kind(row["feature"], (row["min"], row["max"]))} for row in frame.to_dict("records")]
    return data_grid("segments-stats-table", rows, columns, filters=True)


def layout(service: DashboardService, params: Mapping[str, str]) -> Any:
    view = service.model_view(params.get("model"))
    chosen = selected_segment(view, params)
    sample = _sample_or_none(service, view)
    profile, radar = segment_figures(view, sample, chosen)
    features = view.feature_names
    try:
        first = distribution(view, service.sample(view), features[0]) if features else figures.empty_figure("")
    except ServiceError as exc:
        first = figures.empty_figure(exc.message)
    seg_options = [{"label": s.name, "value": s.id} for s in view.segments]
    return html.Div([
        page_header("Segments", f"{view.model} {view.version}: profiles in original units"),
        dbc.Row([
            dbc.Col(dbc.Label("Segment", html_for="segments-segment"), width="auto"),
            dbc.Col(dcc.Dropdown(id="segments-segment", options=seg_options, value=chosen, clearable=False), md=4),
        ], className="mb-3 align-items-center"),
        dbc.Row([
            dbc.Col(dbc.Card(dbc.CardBody(graph("segments-profile", profile))),
                    lg=7, className="mb-3"),
            dbc.Col(dbc.Card(dbc.CardBody(graph("segments-radar", radar))),
                    lg=5, className="mb-3"),
        ]),
        dbc.Card(dbc.CardBody([
            dbc.Row([
                dbc.Col(html.H4("Distribution by segment", className="card-title"), md=8),
                dbc.Col(dcc.Dropdown(id="segments-feature", options=[{"label": f, "value": f} for f in features],
                                     value=features[0] if features else None, clearable=False), md=4),
            ], className="align-items-center"),
            graph("segments-distribution", first),
        ]), className="section-card"),
        dbc.Card(dbc.CardBody([
            dbc.Row([
                dbc.Col(html.H4("Statistics per segment and feature", className="card-title"), md=8),
                dbc.Col(dbc.Button("Download CSV", id="segments-download-button", color="primary", outline=True),
                        md=4, className="text-end"),
            ], className="align-items-center mb-2"),
            stats_table(view),
            dcc.Download(id="segments-download"),
        ]), className="section-card"),
        customer_value.clv_card(view, "segments-clv-table"),
        customer_value.basket_card(view, "segments-basket-table"),
    ], id="segments-page")


def segment_figures(view: ModelView, sample: SampleView | None, segment_id: int) -> tuple[Any, Any]:
    """The profile and the radar of one segment (the radar places segments among the customers of the
    plot `sample`; without it, a figure that says so)."""
    return cached(("segments-profile-radar", *version_key(view), sample.version if sample else "", segment_id),
                  lambda: _segment_figures(view, sample, segment_id))


def _segment_figures(view: ModelView, sample: SampleView | None, segment_id: int) -> tuple[Any, Any]:
    names, colours = view.segment_names, view.segment_colours
    radar = (figures.radar_figure(sample.frame, view.numeric_names, names, colours=colours, highlight=segment_id)
             if sample is not None else figures.empty_figure("The plot sample is not available"))
    return figures.profile_figure(view.stats, segment_id, view.numeric_names, names, colours=colours), radar


def _sample_or_none(service: DashboardService, view: ModelView) -> SampleView | None:
    try:
        return service.sample(view)
    except ServiceError:
        return None


def distribution(view: ModelView, sample: SampleView, feature: str) -> Any:
    return cached(("segments-distribution", *version_key(view), sample.version, feature),
                  lambda: _distribution(view, sample, feature))


def _distribution(view: ModelView, sample: SampleView, feature: str) -> Any:
    categorical = feature in {f.name for f in view.categorical_features}
    return figures.distribution_figure(sample.frame, feature, view.segment_names, colours=view.segment_colours,
                                       categorical=categorical)


def register_callbacks(app: Any, service: DashboardService) -> None:
    @app.callback(Output("segments-profile", "figure"), Output("segments-radar", "figure"),
                  Output("url", "search"),
                  Input("segments-segment", "value"), State("url", "search"), State("page-model", "data"),
                  prevent_initial_call=True)
    def draw_segment(segment_id: int, search: str | None, model: str | None = None) -> tuple[Any, Any, str]:
        try:
            view = service.model_view(model)
        except ServiceError as exc:
            return figures.empty_figure(exc.message), figures.empty_figure(exc.message), no_update
        # dcc.Dropdown reports its value once as it mounts, despite prevent_initial_call: the page
        # already shows that segment, so nothing to redraw (that was a second round trip and a second
        # drawing of both charts on every visit).
        params = dict(parse_qsl((search or "").lstrip("?")))
        if int(segment_id) == selected_segment(view, params):
            return no_update, no_update, no_update
        query = urlencode({**params, "segment": int(segment_id)})  # the model the URL names stays
        return (*segment_figures(view, _sample_or_none(service, view), int(segment_id)), f"?{query}")

    @app.callback(Output("segments-distribution", "figure"), Input("segments-feature", "value"),
                  State("page-model", "data"), prevent_initial_call=True)
    def draw_distribution(feature: str, model: str | None = None) -> Any:
        try:
            view = service.model_view(model)
            return distribution(view, service.sample(view), feature)
        except ServiceError as exc:
            return figures.empty_figure(exc.message)

    @app.callback(Output("segments-download", "data"), Input("segments-download-button", "n_clicks"),
                  State("page-model", "data"), prevent_initial_call=True)
    def download(_: int, model: str | None = None) -> Any:
        try:
            view = service.model_view(model)
        except ServiceError:
            return no_update
        frame = stats_table_frame(view)
        return dict(content=to_safe_csv(frame), filename=f"segment-stats-{view.model}-{view.version}.csv",
                    type="text/csv")

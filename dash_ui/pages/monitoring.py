"""Monitoring: how the traffic the scoring service sees compares with the model's training data.

Drift per feature (PSI bars with the bands), live against training histograms of a chosen feature, the
segment mix and the confidence and outlier rate over the window's slices, and a "retrain recommended"
banner with the service's reasons. Everything comes from GetDriftReport, asked again every POLL_MS (the
page updates by itself) of every scoring replica the dashboard's target names: each replica counts only
its own traffic, so their reports are combined per version (``ScoringClient.drift_reports``) and the page
says how many replicas answered and which version each serves.
"""
from __future__ import annotations

from datetime import datetime, timezone
from typing import Any, Mapping

import dash_bootstrap_components as dbc
from dash import Input, Output, State, dcc, html

from dash_ui import drift_figures
from dash_ui.layout import graph, page_header, segment_swatch, stat
from dash_ui.models import segment_colour
from dash_ui.service import DashboardService, ServiceError
from scoring_service.client import DriftReport, DriftVerdict, ReplicaDrift

PATH = "/monitoring"
TITLE = "Monitoring"
POLL_MS = 5000
VERDICT_TEXT = {
    DriftVerdict.STABLE: ("Stable", "success"),
    DriftVerdict.MODERATE: ("Moderate drift: watch", "warning"),
    DriftVerdict.RETRAIN: ("Retrain recommended", "danger"),
    DriftVerdict.INSUFFICIENT_DATA: ("Not enough live rows yet", "secondary"),
    DriftVerdict.NO_REFERENCE: ("No reference for this version", "secondary"),
}


def verdict_banner(report: DriftReport) -> dbc.Alert:
    """The verdict as a banner, its reasons as a list."""
    title, colour = VERDICT_TEXT.get(report.verdict, ("No verdict", "secondary"))
    return dbc.Alert([
        html.H5(title, className="alert-heading mb-1", id="monitoring-verdict"),
        html.Ul([html.Li(r) for r in report.reasons], className="mb-0", id="monitoring-reasons"),
    ], color=colour, className="mb-3", id="monitoring-banner-alert")


def _when(seconds: float) -> str:
    return datetime.fromtimestamp(seconds, tz=timezone.utc).strftime("%H:%M:%S UTC") if seconds else "-"


def stats_row(report: DriftReport) -> html.Div:
    """Rows, errors, window and the rates against training."""
    def rate(live: float, training: float, fmt: str) -> str:
        return f"{format(live, fmt)} (training {format(training, fmt)})" if report.rows else "-"
    return html.Div([
        stat("Version", f"{report.model} {report.version}"),
        stat("Rows in the window", f"{report.rows:,}", id="monitoring-rows"),
        stat("In the histograms", f"{report.sampled_rows:,}"),
        stat("Row errors", f"{report.row_errors:,}", id="monitoring-row-errors"),
        stat("Window", f"{_when(report.window_start)} - {_when(report.window_end)}"),
        stat("Mean confidence", rate(report.mean_confidence, report.training_mean_confidence, ".3f")),
        stat("Outlier rate", rate(report.outlier_rate, report.training_outlier_rate, ".1%")),
    ], className="d-flex flex-wrap gap-4 mb-3", id="monitoring-stats")


def replicas_line(drift: ReplicaDrift) -> dbc.Alert | html.Div:
    """How many scoring replicas answered, which version each covers, and which did not answer (a single
    server that answered: nothing to say)."""
    if len(drift.asked) == 1 and not drift.failed:
        return html.Div(id="monitoring-replicas")
    parts: list[Any] = [html.Strong(f"{drift.answered} of {len(drift.asked)} scoring replicas answered"), "; "]
    for i, v in enumerate(drift.versions):
        shown = " (shown)" if i == 0 and len(drift.versions) > 1 else ""
        parts.append(f"{v.report.model} {v.report.version}{shown}: {len(v.replicas)} "
                     f"replica{'s' if len(v.replicas) != 1 else ''} ({', '.join(v.replicas)}), "
                     f"{v.report.rows:,} rows" + ("; " if i < len(drift.versions) - 1 else "."))
    if len(drift.versions) > 1:
        parts.append(" The replicas serve different versions: each version is reported on its own.")
    items = [html.Li(f"{name} did not answer: {why}") for name, why in drift.failed]
    return dbc.Alert([html.Div(parts), html.Ul(items, className="mb-0") if items else None],
                     color="warning" if drift.failed else "light", className="mb-3 py-2", id="monitoring-replicas")


def _feature_options(report: DriftReport) -> list[dict[str, str]]:
    options = [{"label": f"{f.feature} (PSI {f.psi:.3f})" if f.psi == f.psi else f.feature, "value": f.feature}
               for f in report.features]
    return options + ([{"label": "segment mix", "value": "segment"}] if report.segment_mix is not None else [])


def mix_table(report: DriftReport, names: Mapping[int, str], colours: Any, training: list[float]) -> dbc.Table:
    """Each segment's share of the training customers and of the live rows in the window."""
    live = report.segment_mix.live_share if report.segment_mix is not None and report.rows else ()
    rows = [html.Tr([html.Td([segment_swatch(segment_colour(colours, i)), names.get(i, f"Segment {i}")]),
                     html.Td(f"{share:.1%}"), html.Td(f"{live[i]:.1%}" if i < len(live) else "-")])
            for i, share in enumerate(training)]
    return dbc.Table([html.Thead(html.Tr([html.Th("Segment"), html.Th("Training"), html.Th("Live")])),
                      html.Tbody(rows)], size="sm", className="mb-0", id="monitoring-mix-table")


def content(service: DashboardService, drift: ReplicaDrift, feature: str | None) -> tuple[Any, ...]:
    """Banner, stats (the replicas that answered, the segment mix table), feature options and chosen
    feature, and the four figures of the combined report of the version on the most replicas."""
    report = drift.report
    chosen = drift_figures.feature_by_name(report, feature)
    names, colours, training = _segments(service, report)
    stats = html.Div([replicas_line(drift), stats_row(report),
                      dbc.Row(dbc.Col(mix_table(report, names, colours, training), lg=6), className="mb-3")])
    return (verdict_banner(report), stats, _feature_options(report),
            chosen.feature if chosen is not None else None, drift_figures.psi_figure(report),
            drift_figures.histogram_figure(chosen),
            drift_figures.segment_mix_over_time(report, names, colours, training),
            drift_figures.rates_over_time(report))


def _segments(service: DashboardService, report: DriftReport) -> tuple[dict[int, str], Any, list[float]]:
    """Segment names, colours and training shares of the report's version (from ModelInfo when it is that
    version's, else from the report's own segment mix)."""
    try:
        view = service.model_view(report.model)
    except ServiceError:
        view = None
    if view is not None and view.version == report.version:
        return (view.segment_names, view.segment_colours,
                [s.share for s in sorted(view.segments, key=lambda s: s.id)])
    mix = report.segment_mix
    return (dict(enumerate(mix.bins)) if mix is not None else {}), None, (list(mix.training_share) if mix else [])


def layout(service: DashboardService, params: Mapping[str, str]) -> Any:
    try:
        drift = service.replica_drift(params.get("model"))
    except ServiceError as exc:
        return html.Div([page_header("Monitoring"),
                         dbc.Alert(f"The drift report is unavailable: {exc.message}", color="warning")],
                        id="monitoring-page")
    banner, stats, options, chosen, psi, histogram, mix, rates = content(service, drift, params.get("feature"))
    return html.Div([
        page_header("Monitoring", "Live traffic of the served version against its training data, over the scoring "
                                  "service's rolling window (every replica's, combined); updates every "
                                  f"{POLL_MS // 1000} s."),
        dcc.Interval(id="monitoring-poll", interval=POLL_MS, n_intervals=0),
        dcc.Store(id="monitoring-auto-feature", data=chosen),  # the feature picked for the user, not by them
        html.Div(banner, id="monitoring-banner"),
        html.Div(stats, id="monitoring-stats-box"),
        dbc.Row([
            dbc.Col(dbc.Card(dbc.CardBody(graph("monitoring-psi", psi)), className="section-card"), lg=6),
            dbc.Col(dbc.Card(dbc.CardBody([
                dcc.Dropdown(id="monitoring-feature", options=options, value=chosen, clearable=False),
                graph("monitoring-histogram", histogram),
            ]), className="section-card"), lg=6),
        ], className="g-3 mb-3"),
        dbc.Row([
            dbc.Col(dbc.Card(dbc.CardBody(graph("monitoring-mix", mix)), className="section-card"), lg=6),
            dbc.Col(dbc.Card(dbc.CardBody(graph("monitoring-rates", rates)), className="section-card"), lg=6),
        ], className="g-3"),
    ], id="monitoring-page")


def register_callbacks(app: Any, service: DashboardService) -> None:
    @app.callback(Output("monitoring-banner", "children"), Output("monitoring-stats-box", "children"),
                  Output("monitoring-feature", "options"), Output("monitoring-feature", "value"),
                  Output("monitoring-psi", "figure"), Output("monitoring-histogram", "figure"),
                  Output("monitoring-mix", "figure"), Output("monitoring-rates", "figure"),
                  Output("monitoring-auto-feature", "data"),
                  Input("monitoring-poll", "n_intervals"), Input("monitoring-feature", "value"),
                  State("monitoring-auto-feature", "data"), State("page-model", "data"), prevent_initial_call=True)
    def refresh(_: int, feature: str | None, auto: str | None, model: str | None = None) -> tuple[Any, ...]:
        # Until the user picks a feature, the histogram follows the most drifted one.
        picked_by_user = feature is not None and feature != auto
        try:
            drift = service.replica_drift(model)
        except ServiceError as exc:
            alert = dbc.Alert(f"The drift report is unavailable: {exc.message}", color="warning")
            empty = drift_figures.empty_figure(exc.message)
            return alert, None, [], None, empty, empty, empty, empty, None
        parts = content(service, drift, feature if picked_by_user else None)
        return (*parts, auto if picked_by_user else parts[3])

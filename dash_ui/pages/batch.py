"""Batch: upload CSV, Parquet or Excel, see the validation report, score with progress, see and download results.

The file goes to the dashboard as the body of ``POST /upload/batch`` (dash_ui.uploads: streamed from disk by
the browser, spooled to a temporary file, read by the one table reader, bounded); the page gets back the
key of the parsed table in ``UPLOADS``."""
from __future__ import annotations

import functools
from typing import Any, Mapping

import dash_bootstrap_components as dbc
import pandas as pd
from dash import Input, Output, State, dcc, html, no_update

from segmentation_core.charts import figures
from dash_ui.batch import (JobRegistry, UploadStore, ValidationReport, download_csv, download_name, score_table,
                           validate_frame)
from dash_ui.grid import Column, data_grid, js_string
from dash_ui.layout import graph, page_header, segment_legend
from dash_ui.models import segment_colour
from dash_ui.service import DashboardService, ServiceError
from dash_ui.uploads import BATCH_ROUTE, upload_script
from segmentation_core.errors import DataError
from segmentation_core.recipe import TransactionReport, aggregate, check_features, is_log_table

PATH = "/batch"
TITLE = "Batch"
MAX_TABLE_ROWS = 1000
POLL_MS = 400

UPLOADS = UploadStore()  # tables parsed by the upload route (dash_ui.uploads), by key
_JOBS = JobRegistry(keep=4)
UPLOAD_JS = upload_script(BATCH_ROUTE, "batch", errors_to_output=True)


def upload_zone() -> Any:
    """The file chooser (an <input type=file> that assets/file_upload.js puts into #batch-upload; choosing a file
    uploads it), its progress bar and message."""
    return html.Div([
        html.Div([html.H5("Choose a CSV, Parquet or Excel file (or drop it on the chooser)"),
                  html.Div("One row per customer, one column per feature; the results keep its id and feature "
                           "columns.",
                           className="small text-muted mb-2")],
                 id="batch-upload", className="upload-zone mb-2"),
        html.Button(id="batch-upload-button", n_clicks=0, style={"display": "none"}),
        dbc.Progress(id="batch-upload-progress", value=0, className="mb-1", style={"height": "0.8rem"}),
        html.Div(id="batch-upload-message", className="small text-muted mb-3"),
        dcc.Store(id="batch-uploaded"),
    ])


def _cells(count: int, noun: str) -> str:
    """'1 empty cell', '2 empty cells'."""
    return f"{count:,} {noun}" + ("" if count == 1 else "s")


def report_view(filename: str, report: ValidationReport, feature_names: list[str]) -> Any:
    items: list[Any] = [html.Li(f"{report.rows:,} rows read from {filename}.")]
    if report.missing_columns:
        items.append(html.Li([html.Strong("Missing columns: "), ", ".join(report.missing_columns),
                              f". Expected: {', '.join(feature_names)}."], className="text-danger",
                             id="batch-missing-columns"))
    if report.extra_columns:
        items.append(html.Li(f"Not features (the results keep only the id of them): "
                             f"{', '.join(report.extra_columns)}.",
                             className="text-muted"))
    for feature, count in report.empty_cells.items():
        if count:
            items.append(html.Li(f"{feature}: {_cells(count, 'empty cell')}, imputed by the model.",
                                 className="text-muted"))
    for feature, count in report.invalid.items():
        if count:
            items.append(html.Li(f"{feature}: {_cells(count, 'value')} outside the valid range, treated as missing "
                                 f"(imputed by the model, as training did).", className="text-warning"))
    for feature, count in report.out_of_range.items():
        if count:
            items.append(html.Li(f"{feature}: {_cells(count, 'value')} outside the training range.",
                                 className="text-warning"))
    bad = None
    if report.bad_row_count:
        bad = html.Div([
            html.Strong(f"{_cells(report.bad_row_count, 'row')} with an error (the others are scored):"),
            html.Ul([html.Li(f"line {p.line}: {p.message}") for p in report.bad_rows], id="batch-bad-rows"),
            html.Small(f"... and {report.bad_row_count - len(report.bad_rows):,} more"
                       if report.bad_row_count > len(report.bad_rows) else ""),
        ], className="text-danger")
    colour = "success" if report.can_score and not report.bad_row_count else \
        ("warning" if report.can_score else "danger")
    title = "Ready to score" if report.can_score else "Cannot score this file"
    return dbc.Alert([html.H5(title, className="alert-heading"), html.Ul(items, className="mb-1"), bad],
                     color=colour, id="batch-report-alert")


def log_report_view(filename: str, report: TransactionReport, customers: ValidationReport | None = None) -> Any:
    """What the model's recipe makes of an uploaded raw log (it is aggregated here, then scored), and how its
    customers' features compare with the training range (``customers``: the aggregated table's check)."""
    items = [
        html.Li(f"{report.rows_in:,} lines read from {filename}: a transaction log in the layout the model was "
                f"trained on, aggregated here with the model's own recipe."),
        html.Li(f"{report.customers:,} customers, {report.purchases:,} purchases, {report.first_date[:10]} to "
                f"{report.last_date[:10]}; as of {report.snapshot_date} (the training rule).", id="batch-log-as-of"),
        html.Li(f"Left out by the cleaning rules: {report.cancellations:,} cancellations, "
                f"{report.non_positive_quantity + report.non_positive_value:,} non-positive quantities or values, "
                f"{report.missing_customer_id:,} without a customer id, {report.duplicate_rows:,} duplicates.",
                className="text-muted"),
    ]
    outside = {f: n for f, n in (customers.out_of_range if customers is not None else {}).items() if n}
    for feature, count in outside.items():
        items.append(html.Li(f"{feature}: {count:,} customers outside the training range.", className="text-warning"))
    return dbc.Alert([html.H5("Ready to score", className="alert-heading"), html.Ul(items, className="mb-1")],
                     color="warning" if outside else "success", id="batch-report-alert")


def table_column(name: Any, values: pd.Series,
                 styles: list[tuple[str, dict[str, str]]] | None = None) -> Column:
    """A results column: numbers right-aligned with four significant digits, text as is."""
    kind = "number" if pd.api.types.is_float_dtype(values) else "text"
    if str(name) == "confidence":  # as Predict writes it: 61.2%, >99.9% (not 1)
        kind = "percent"
    return Column(str(name), str(name), kind, styles=styles or ())


def results_view(job_id: str, merged: pd.DataFrame, names: Mapping[int, str], version: str,
                 colours: Mapping[int, str] | None) -> Any:
    """The scored file: its segment mix and the first rows, segments in their colours (`colours`, the
    served model's `segment_colours`)."""
    shown = merged.head(MAX_TABLE_ROWS)
    errors = int((merged["segment_id"] < 0).sum()) if "segment_id" in merged else 0
    colour_rules = [(f"params.data.segment_id === {sid}", {"color": segment_colour(colours, sid), "fontWeight": "600"})
                    for sid in names]
    column_styles = {"segment_name": colour_rules,
                     "error": [(f"params.data.error && params.data.error !== {js_string('')}", {"color": "#dc3545"})]}
    return html.Div([
        dbc.Row([
            dbc.Col(html.H4(f"{len(merged):,} rows scored by {version}"
                            + (f", {errors:,} with an error" if errors else ""), id="batch-results-title"), md=8),
            dbc.Col(dbc.Button("Download results (CSV)", id="batch-download-button", color="primary"),
                    md=4, className="text-end"),
        ], className="align-items-center mb-2"),
        graph("batch-mix", figures.segment_mix_figure(merged["segment_id"], names, colours=colours,
                                                        title="Segment mix of the file")),
        html.Small(f"First {MAX_TABLE_ROWS:,} of {len(merged):,} rows shown; the download has all."
                   if len(merged) > MAX_TABLE_ROWS else "", className="text-muted"),
        data_grid("batch-results-table", shown.astype(object).where(shown.notna(), None).to_dict("records"),
                  [table_column(c, shown[c], column_styles.get(str(c))) for c in shown.columns]),
    ])


def layout(service: DashboardService, params: Mapping[str, str]) -> Any:
    view = service.model_view(params.get("model"))
    return html.Div([
        page_header("Batch scoring", f"Features of {view.model} {view.version}: {', '.join(view.feature_names)}"),
        segment_legend(view.segments, "batch-segments"),
        upload_zone(),
        html.Div(id="batch-report"),
        dbc.Button("Score the file", id="batch-score", color="primary", disabled=True, className="mb-3"),
        dbc.Progress(id="batch-progress", value=0, striped=True, animated=True, className="mb-2",
                     style={"height": "1.4rem"}),
        html.Div(id="batch-status", className="small text-muted mb-3"),
        dcc.Interval(id="batch-poll", interval=POLL_MS, disabled=True),
        dcc.Store(id="batch-upload-key"),
        dcc.Store(id="batch-job-id"),
        dcc.Download(id="batch-download"),
        html.Div(id="batch-results"),
    ], id="batch-page")


def register_callbacks(app: Any, service: DashboardService) -> None:
    app.clientside_callback(UPLOAD_JS, Output("batch-uploaded", "data"), Input("batch-upload-button", "n_clicks"),
                            prevent_initial_call=True)

    @app.callback(Output("batch-report", "children"), Output("batch-upload-key", "data"),
                  Output("batch-score", "disabled"), Output("batch-results", "children", allow_duplicate=True),
                  Input("batch-uploaded", "data"), State("page-model", "data"), prevent_initial_call=True)
    def on_upload(uploaded: dict[str, str] | None, model: str | None = None) -> tuple[Any, Any, bool, Any]:
        uploaded = uploaded or {}
        stored = UPLOADS.get(uploaded.get("key"))
        if stored is None:
            message = uploaded.get("error") or "The upload is gone (the dashboard keeps the last 8); upload it again."
            return dbc.Alert(message, color="danger", id="batch-report-alert"), None, True, None
        filename, frame = stored
        try:
            view = service.model_view(model)
        except ServiceError as exc:
            return dbc.Alert(exc.message, color="danger", id="batch-report-alert"), None, True, None
        if view.recipe is not None and is_log_table(view.recipe, view.numeric_names, frame.columns):
            try:  # the whole recipe once here: a bad column, date or amount is named before scoring
                check_features(view.numeric_names, f"{view.model} {view.version}", view.recipe)
                customers, log_report = aggregate(frame, view.recipe)
            except DataError as exc:
                return dbc.Alert(f"Cannot score this log: {exc}", color="danger", id="batch-report-alert"), \
                    None, True, None
            ranges = validate_frame(customers.reset_index(drop=True), view)  # the customers against training
            return log_report_view(filename, log_report, ranges), uploaded["key"], False, None
        report = validate_frame(frame, view)
        key = uploaded["key"] if report.can_score else None
        return report_view(filename, report, view.feature_names), key, not report.can_score, None

    @app.callback(Output("batch-job-id", "data"), Output("batch-poll", "disabled"),
                  Output("batch-score", "disabled", allow_duplicate=True),
                  Input("batch-score", "n_clicks"), State("batch-upload-key", "data"), State("page-model", "data"),
                  prevent_initial_call=True)
    def on_score(_: int, key: str, model: str | None = None) -> tuple[Any, bool, bool]:
        upload = UPLOADS.get(key)
        if upload is None:
            return None, True, True
        filename, frame = upload
        view = service.model_view(model)
        if view.recipe is not None and is_log_table(view.recipe, view.numeric_names, frame.columns):
            def score_log(_frame: pd.DataFrame, progress: Any) -> pd.DataFrame:
                scored = service.score_log(frame, progress=progress, model=view.model)
                result = scored.result
                result.attrs["version"] = f"{view.model} {view.version}"
                result.attrs["delimiter"] = frame.attrs.get("delimiter", ",")
                result.attrs["filename"] = filename
                return result

            job = _JOBS.start(frame, score_log, unit="customers", rows_known=False)
            return job.id, False, True

        def score(_frame: pd.DataFrame, progress: Any) -> pd.DataFrame:
            result = score_table(functools.partial(service.predict_frame, model=view.model), frame, view, progress)
            result.attrs["filename"] = filename
            return result

        job = _JOBS.start(frame, score)
        return job.id, False, True

    @app.callback(Output("batch-progress", "value"), Output("batch-progress", "label"),
                  Output("batch-status", "children"), Output("batch-poll", "disabled", allow_duplicate=True),
                  Output("batch-results", "children"), Output("batch-score", "disabled", allow_duplicate=True),
                  Input("batch-poll", "n_intervals"), State("batch-job-id", "data"), State("page-model", "data"),
                  prevent_initial_call=True)
    def on_poll(_: int, job_id: str, model: str | None = None) -> tuple[Any, ...]:
        job = _JOBS.get(job_id)
        if job is None:
            return 0, "", "", True, no_update, False
        percent = round(100 * job.fraction)
        if job.state == "running":
            return percent, f"{percent}%", job.status, False, no_update, True
        if job.state == "failed":
            return percent, "failed", "", True, dbc.Alert(f"Scoring failed: {job.message}", color="danger",
                                                          id="batch-error"), False
        scored = job.result[job.result["segment_id"] >= 0]
        names = dict(zip(scored["segment_id"].astype(int), scored["segment_name"]))
        version = str(job.result.attrs.get("version", "")) if job.result is not None else ""
        view = service.cached_model_view(model)  # the service colours a segment by its id, in every version
        return (100, "100%", job.status, True,
                results_view(job.id, job.result, names, version, view.segment_colours if view else None), False)

    @app.callback(Output("batch-download", "data"), Input("batch-download-button", "n_clicks"),
                  State("batch-job-id", "data"), prevent_initial_call=True)
    def on_download(n_clicks: int, job_id: str) -> Any:
        job = _JOBS.get(job_id)
        if not n_clicks or job is None or job.result is None:
            return no_update
        name = download_name(str(job.result.attrs.get("filename", "")), str(job.result.attrs.get("version", "")))
        return dict(content=download_csv(job.result), filename=name, type="text/csv")

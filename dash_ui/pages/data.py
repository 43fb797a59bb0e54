"""Data: upload a table (streamed to the training service with a progress bar) and explore its profile:
overview, preview, statistics, distributions and box plots, categorical breakdowns, correlation heatmap,
what cleaning would drop, and for a transaction log the per-customer RFM features."""
from __future__ import annotations

from dataclasses import asdict
from typing import Any, Mapping

import dash_bootstrap_components as dbc
from dash import Input, Output, State, dcc, html

from dash_ui import workbench_figures as wf
from dash_ui.grid import KIND_KEY, Column, data_grid
from dash_ui.layout import graph, page_header, stat
from dash_ui.service import DashboardService, ServiceError
from dash_ui.trainer import TrainerAccess
from dash_ui.uploads import DATA_ROUTE, upload_script
from segmentation_core.number_format import number_kind

PATH = "/data"
TITLE = "Data"
NEEDS_MODEL = False
USES_TRAINER = True
MAX_FIGURES = 24

# Streams the chosen File as the request body (dash_ui.uploads), with progress; resolves to the new dataset id
# for the session store.
UPLOAD_JS = upload_script(DATA_ROUTE, "data")


def layout(service: DashboardService, params: Mapping[str, str]) -> Any:
    return html.Div([
        page_header("Data", "Upload a customer table or a transaction log (CSV, TSV, .gz, Parquet, .xlsx) "
                            "and look at it before training."),
        html.Div(id="data-trainer-state"),
        dbc.Card(dbc.CardBody([
            html.H4("Upload", className="card-title"),
            dbc.Row([
                # The <input type="file"> is put in by assets/file_upload.js (Dash has no such component).
                dbc.Col(html.Div(id="data-file-holder"), md=7),
                dbc.Col(dbc.Button("Upload", id="data-upload-button", color="primary", n_clicks=0), md="auto"),
            ], className="g-2 align-items-center"),
            dbc.Progress(id="data-upload-progress", value=0, className="mt-3", style={"height": "1.4rem"}),
            html.Div(id="data-upload-message", className="small mt-2"),
        ]), className="section-card"),
        html.Div(id="data-profile", className="mt-3"),
    ])


def profile_view(profile: Any) -> Any:
    """The whole profile of one table (a training_job.client.DataProfile)."""
    missing = sum(c.missing for c in profile.columns)
    cells = max(1, profile.rows * max(1, len(profile.columns)))
    overview = dbc.Card(dbc.CardBody([
        html.H4(f"{profile.name}", className="card-title", id="data-profile-name"),
        html.Div([stat("Rows", f"{profile.rows:,}", id="data-rows"),
                  stat("Columns", str(profile.column_count), id="data-columns"),
                  stat("Missing cells", f"{missing:,} ({missing / cells:.1%})", id="data-missing"),
                  stat("Kind", profile.kind, id="data-kind"),
                  stat("Suggested preset", profile.suggested_preset, id="data-suggested-preset"),
                  stat("Customers after cleaning", f"{profile.customers:,}", id="data-customers")]),
        html.P(schema_sentence(profile), className="small mb-0"),
    ]), className="section-card")
    return html.Div([overview, preview_card(profile), statistics_card(profile), cleaning_card(profile),
                     distributions_card("Distributions", profile.columns, "data-dist"),
                     heatmap_card(profile),
                     *([distributions_card("Per-customer RFM features (what a model of this log clusters)",
                                           profile.rfm, "data-rfm")] if profile.rfm else [])])


def schema_sentence(profile: Any) -> str:
    parts = [f"Id column: {profile.id_column or 'none (row numbers)'}",
             f"numeric features: {', '.join(profile.numeric) or 'none'}"]
    if profile.categorical:
        parts.append(f"categorical features: {', '.join(profile.categorical)}")
    if profile.dates:
        parts.append(f"dates: {', '.join(profile.dates)}")
    if profile.dropped:
        parts.append("left out: " + "; ".join(f"{c} ({why})" for c, why in profile.dropped))
    return ". ".join(parts) + "."


def preview_card(profile: Any) -> dbc.Card:
    columns = [Column(field=f"c{i}", header=name) for i, name in enumerate(profile.preview_columns)]
    rows = [{f"c{i}": value for i, value in enumerate(row)} for row in profile.preview_rows]
    return dbc.Card(dbc.CardBody([html.H4("First rows", className="card-title"),
                                  data_grid("data-preview", rows, columns, page_size=10)]), className="section-card")


def statistics_card(profile: Any) -> dbc.Card:
    """One row per column: counts, and its summary written as its values are (a year column's without
    thousands separators)."""
    fields = ("mean", "std", "min", "q25", "median", "q75", "max")
    columns = [Column("name", "Column"), Column("role", "Role"), Column("dtype", "Type"),
               Column("missing", "Missing", "integer"), Column("distinct", "Distinct", "integer"),
               *[Column(f, f, "number") for f in fields]]
    rows = []
    for c in profile.columns:
        row = {"name": c.name, "role": c.role, "dtype": c.dtype, "missing": c.missing, "distinct": c.distinct,
               KIND_KEY: number_kind(c.name, (c.summary.get("min"), c.summary.get("max")))}
        row.update({f: c.summary[f] for f in fields if f in c.summary})
        rows.append(row)
    return dbc.Card(dbc.CardBody([html.H4("Statistics", className="card-title"),
                                  data_grid("data-stats", rows, columns, page_size=15)]), className="section-card")


def cleaning_card(profile: Any) -> dbc.Card:
    if profile.cleaning_error:
        body: Any = dbc.Alert(profile.cleaning_error, color="warning", id="data-cleaning-error")
    elif not profile.cleaning_steps:
        body = html.P("Cleaning would drop nothing.", id="data-cleaning")
    else:
        body = html.Ul([html.Li(f"{reason}: {rows:,}") for reason, rows in profile.cleaning_steps], id="data-cleaning")
    return dbc.Card(dbc.CardBody([html.H4("What cleaning would do", className="card-title"),
                                  html.P(f"{profile.rows_in:,} rows in, {profile.customers:,} customers to train on.",
                                         className="small"), body]), className="section-card")


def distributions_card(title: str, columns: Any, prefix: str) -> dbc.Card:
    """One column's distribution at a time (histogram and box plot, or top levels), chosen from a list:
    one graph instead of one per column keeps the page interactive in well under 2 s."""
    columns = list(columns)[:MAX_FIGURES]
    first = next((c for c in columns if c.histogram_counts and c.role != "id"), columns[0] if columns else None)
    return dbc.Card(dbc.CardBody([
        html.H4(title, className="card-title"),
        dcc.Dropdown(id=f"{prefix}-column", options=[{"label": c.name, "value": c.name} for c in columns],
                     value=first.name if first else None, clearable=False, style={"maxWidth": "420px"}),
        dcc.Store(id=f"{prefix}-columns", data=[asdict(c) for c in columns]),
        graph(f"{prefix}-graph", wf.column_figure(asdict(first)) if first else wf.empty_figure("No columns")),
    ]), className="section-card")


def heatmap_card(profile: Any) -> dbc.Card:
    return dbc.Card(dbc.CardBody([html.H4("Correlations of the numeric columns", className="card-title"),
                                  graph("data-heatmap", wf.correlation_heatmap(profile.correlation_columns,
                                                                               profile.correlation))]),
                    className="section-card")


def served_profile(service: DashboardService, model: str | None = None) -> Any:
    """The profile of the served model's own training data (stored in its manifest), or a hint."""
    from training_job.client import DataProfile

    try:
        stored = service.training_profile(model)
    except ServiceError:
        stored = None
    if not stored:
        return html.P("Upload a table to see its profile.", className="text-muted")
    view = service.cached_model_view(model)
    title = f"Training data of the served model{f' ({view.model} {view.version})' if view else ''}"
    return html.Div([html.H3(title, className="h5 mt-2", id="data-served-title"),
                     profile_view(DataProfile.from_dict(stored))])


def trainer_state(trainer: TrainerAccess) -> Any:
    """An alert when the training service cannot be used, else nothing."""
    if trainer.available():
        return None
    return dbc.Alert(trainer.unavailable_reason(), color="warning", id="training-unavailable")


def register_callbacks(app: Any, service: DashboardService, trainer: TrainerAccess) -> None:
    for prefix in ("data-dist", "data-rfm"):
        @app.callback(Output(f"{prefix}-graph", "figure"), Input(f"{prefix}-column", "value"),
                      State(f"{prefix}-columns", "data"), prevent_initial_call=True)
        def show_column(name: str | None, columns: list[dict] | None) -> Any:
            column = next((c for c in columns or [] if c["name"] == name), None)
            return wf.column_figure(column) if column else wf.empty_figure("Choose a column")

    app.clientside_callback(UPLOAD_JS, Output("wb-dataset", "data"), Input("data-upload-button", "n_clicks"),
                            prevent_initial_call=True)

    @app.callback(Output("data-trainer-state", "children"), Output("data-profile", "children"),
                  Input("wb-dataset", "data"), Input("data-trainer-state", "id"), State("page-model", "data"))
    def show_profile(dataset_id: str | None, _: str, model: str | None = None) -> tuple[Any, Any]:
        state = trainer_state(trainer)
        if not dataset_id or state is not None:
            return state, served_profile(service, model)
        from training_job.client import TrainingError

        try:
            profile = trainer.client.profile(dataset_id)
        except TrainingError as exc:
            return None, dbc.Alert(exc.message, color="danger", id="data-profile-error")
        return None, profile_view(profile)

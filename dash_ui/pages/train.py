"""Train: choose preset or auto, columns, k (auto, fixed, range), algorithm; submit to the training service;
watch the progress bar, stage, log and the k-search chart fill in; cancel."""
from __future__ import annotations

from typing import Any, Mapping

import dash_bootstrap_components as dbc
import pandas as pd
from dash import Input, Output, State, dcc, html, no_update

from segmentation_core.charts import figures
from segmentation_core.wording import algorithm_name
from dash_ui.layout import graph, page_header, stat, with_model
from dash_ui.pages.data import trainer_state
from dash_ui.service import DashboardService
from dash_ui.trainer import TrainerAccess

PATH = "/train"
TITLE = "Train"
NEEDS_MODEL = False
USES_TRAINER = True
POLL_MS = 1000
LOG_LINES = 40
ALGORITHMS = (("kmeans", "k-means"), ("minibatch-kmeans", "mini-batch k-means (large tables)"),
              ("gmm", "Gaussian mixture"))


def layout(service: DashboardService, params: Mapping[str, str]) -> Any:
    from training_job.client import MAX_K, MIN_K

    controls = dbc.Card(dbc.CardBody([
        html.H4("Training settings", className="card-title"),
        html.P(id="train-dataset", className="small"),
        dbc.Row([
            dbc.Col([dbc.Label("Preset"), dcc.Dropdown(id="train-preset", clearable=False, value="auto",
                                                       options=[{"label": "auto (inferred)", "value": "auto"}])], md=4),
            dbc.Col([dbc.Label("Algorithm"), dcc.Dropdown(id="train-algorithm", value="", clearable=False,
                                                          options=[{"label": "as the preset says", "value": ""}]
                                                          + [{"label": label, "value": v} for v, label in ALGORITHMS])],
                    md=4),
            dbc.Col([dbc.Label("Model name"), dbc.Input(id="train-model", value=params.get("model") or service.default_model() or "customers")], md=4),
        ], className="g-2"),
        dbc.Row([
            dbc.Col([dbc.Label("Numeric columns (empty: the preset's)"),
                     dcc.Dropdown(id="train-numeric", multi=True, options=[])], md=6),
            dbc.Col([dbc.Label("Categorical columns (empty: the preset's)"),
                     dcc.Dropdown(id="train-categorical", multi=True, options=[])], md=6),
        ], className="g-2 mt-1"),
        dbc.Row([
            dbc.Col([dbc.Label("Number of segments"),
                     dbc.RadioItems(id="train-k-mode", inline=True, value="preset",
                                    options=[{"label": "as the preset says", "value": "preset"},
                                             {"label": "auto", "value": "auto"}, {"label": "fixed", "value": "fixed"},
                                             {"label": "auto within a range", "value": "range"}])], md=6),
            dbc.Col([dbc.Label("k"), dbc.Input(id="train-k", type="number", min=MIN_K, max=MAX_K, step=1, value=5)],
                    md=2),
            dbc.Col([dbc.Label("k from"), dbc.Input(id="train-k-min", type="number", min=MIN_K, max=MAX_K, step=1,
                                                    value=2)], md=2),
            dbc.Col([dbc.Label("k to"), dbc.Input(id="train-k-max", type="number", min=MIN_K, max=MAX_K, step=1,
                                                  value=10)], md=2),
        ], className="g-2 mt-1"),
        dbc.Checkbox(id="train-publish", label="Publish at once (otherwise keep it to compare first)", value=False,
                     className="mt-2"),
        html.Div([dbc.Button("Train", id="train-submit", color="primary", n_clicks=0, className="me-2"),
                  dbc.Button("Cancel", id="train-cancel", color="secondary", outline=True, n_clicks=0)],
                 className="mt-3"),
        html.Div(id="train-message", className="small mt-2"),
    ]), className="section-card")
    progress = dbc.Card(dbc.CardBody([
        html.H4("Progress", className="card-title"),
        dbc.Progress(id="train-progress", value=0, style={"height": "1.4rem"}),
        html.Div([stat("Job", "-", id="train-job"), stat("State", "-", id="train-state"),
                  stat("Stage", "-", id="train-stage")], className="mt-2"),
        html.P(id="train-job-settings", className="small mb-1"),
        html.Div(id="train-result"),
        graph("train-k-chart", figures.empty_figure("The k search fills in here as it runs")),
        html.Pre(id="train-log", className="small bg-light p-2", style={"maxHeight": "320px", "overflowY": "auto"}),
    ]), className="section-card")
    return html.Div([page_header("Train", "Train a model on the uploaded table; watch it run."),
                     html.Div(id="train-trainer-state"), controls, progress,
                     dcc.Interval(id="train-poll", interval=POLL_MS, n_intervals=0),
                     dcc.Store(id="train-shown")])


def column_options(profile: Any) -> tuple[list[str], list[str]]:
    """Numeric and categorical columns a request may name: for a log, its per-customer features."""
    if profile.kind == "transactions":
        return [c.name for c in profile.rfm], []
    numeric = [c.name for c in profile.columns if c.dtype == "number" and c.role != "id"]
    categorical = [c.name for c in profile.columns if c.dtype == "text" and c.role in ("categorical", "dropped")
                   and c.distinct <= 50]
    return numeric, categorical


def k_fields(mode: str, k: Any, k_min: Any, k_max: Any) -> dict[str, Any]:
    """The request's k fields for the chosen mode; ValueError naming the box whose number is missing or outside
    the segments a model can have (the browser empties a number box whose value is outside its min and max,
    which must not fall back silently to the preset's k)."""
    if mode == "auto":
        return {"k": "auto"}
    if mode == "fixed":
        return {"k": str(_segments(k, "k"))}
    if mode == "range":
        return {"k": "auto", "k_min": _segments(k_min, "k from"), "k_max": _segments(k_max, "k to")}
    return {}


def describe_request(request: dict[str, Any]) -> str:
    """The settings a job was submitted with, in words (the form above shows the defaults again when the
    page is reopened, not these)."""
    k, k_min, k_max = str(request.get("k") or ""), request.get("k_min") or 0, request.get("k_max") or 0
    if k == "auto":
        k_text = f"auto within {k_min}-{k_max}" if k_min or k_max else "auto"
    else:
        k_text = f"{k} (fixed)" if k else "as the preset says"
    columns = [*request.get("numeric_columns", []), *request.get("categorical_columns", [])]
    return (f"preset {request.get('preset') or 'auto'}, k {k_text}, "
            f"algorithm {algorithm_name(request.get('algorithm', '')) or 'as the preset says'}, "
            f"model {request.get('model') or 'customers'}, columns {', '.join(columns) or 'as the preset says'}, "
            + ("published at once" if request.get("publish") else "kept to compare first"))


def settings_line(job: Any) -> str:
    verb = "runs" if job.state == "RUNNING" else ("waits to run" if job.state == "QUEUED" else "ran")
    return f"{job.job_id} {verb} with: {describe_request(job.request)}."


def _segments(value: Any, box: str) -> int:
    """A number of segments typed in the form's ``box``."""
    from training_job.client import MAX_K, MIN_K

    if value in (None, "") or not float(value).is_integer() or not MIN_K <= int(value) <= MAX_K:
        raise ValueError(f"{box}: enter a whole number of segments from {MIN_K} to {MAX_K}")
    return int(value)


def result_view(job: Any) -> Any:
    if job.state == "SUCCEEDED" and job.result is not None:
        r = job.result
        what = "published (now served)" if r.published else "kept, not served yet"
        if job.request.get("publish") and not r.published:  # the trainer refused: it would break callers
            what = ("kept, not served: publishing it was refused because its input schema would break the served "
                    "version's callers (Compare shows why and offers the choice)")
        return dbc.Alert([html.Strong(f"{r.model} {r.version}: k = {r.k}, {what}. "),
                          dcc.Link("Compare with the served model", href=with_model("/compare", r.model), id="train-compare-link")],
                         color="success", id="train-done", className="mt-2")
    if job.state in ("FAILED", "CANCELLED"):
        return dbc.Alert(f"{job.state.title()}: {job.error}", color="danger" if job.state == "FAILED" else "secondary",
                         id="train-failed", className="mt-2")
    return None


def k_chart(job: Any) -> Any:
    if not job.k_search:
        return figures.empty_figure("The k search fills in here as it runs")
    frame = pd.DataFrame(job.k_search).set_index("k").sort_index()
    chosen = job.result.k if job.result is not None else -1
    return figures.k_search_figure(frame, chosen)


def register_callbacks(app: Any, service: DashboardService, trainer: TrainerAccess) -> None:
    @app.callback(Output("train-trainer-state", "children"), Output("train-dataset", "children"),
                  Output("train-preset", "options"), Output("train-preset", "value"),
                  Output("train-numeric", "options"), Output("train-categorical", "options"),
                  Output("train-submit", "disabled"),
                  Input("wb-dataset", "data"), Input("train-trainer-state", "id"), State("page-model", "data"))
    def prepare(dataset_id: str | None, _: str, model: str | None = None) -> tuple:
        state = trainer_state(trainer)
        auto = [{"label": "auto (inferred)", "value": "auto"}]
        if state is not None:
            return state, "", auto, "auto", [], [], True
        if not dataset_id:
            return None, dcc.Link("Upload a table on the Data page first.", href=with_model("/data", model)), auto, "auto", [], [], True
        from training_job.client import TrainingError

        try:
            profile = trainer.client.profile(dataset_id)
        except TrainingError as exc:
            return dbc.Alert(exc.message, color="danger"), "", auto, "auto", [], [], True
        numeric, categorical = column_options(profile)
        presets = auto + ([{"label": f"{profile.suggested_preset} (suggested)", "value": profile.suggested_preset}]
                          if profile.suggested_preset != "auto" else [])
        text = f"Data: {profile.name}, {profile.rows:,} rows, {profile.customers:,} customers after cleaning."
        return None, text, presets, profile.suggested_preset, numeric, categorical, False

    @app.callback(Output("wb-job", "data"), Output("train-message", "children"),
                  Input("train-submit", "n_clicks"),
                  State("wb-dataset", "data"), State("train-preset", "value"), State("train-algorithm", "value"),
                  State("train-model", "value"), State("train-numeric", "value"), State("train-categorical", "value"),
                  State("train-k-mode", "value"), State("train-k", "value"), State("train-k-min", "value"),
                  State("train-k-max", "value"), State("train-publish", "value"), prevent_initial_call=True)
    def submit(n_clicks: int, dataset_id: str | None, preset: str, algorithm: str, model: str, numeric: list | None,
               categorical: list | None, k_mode: str, k: Any, k_min: Any, k_max: Any, publish: bool) -> tuple:
        from training_job.client import TrainingError

        if not n_clicks:  # a button drawn anew fires once with 0 clicks
            return no_update, no_update
        if not dataset_id:
            return no_update, "Upload a table on the Data page first."
        try:
            job = trainer.client.submit(dataset_id, preset=preset or "auto", algorithm=algorithm or "",
                                        model=(model or "").strip(), numeric_columns=numeric or [],
                                        categorical_columns=categorical or [], publish=bool(publish),
                                        **k_fields(k_mode, k, k_min, k_max))
        except (TrainingError, ValueError, RuntimeError) as exc:
            return no_update, dbc.Alert(getattr(exc, "message", str(exc)), color="danger", id="train-error")
        return job.job_id, f"Submitted as {job.job_id}."

    @app.callback(Output("train-message", "children", allow_duplicate=True),
                  Input("train-cancel", "n_clicks"), State("wb-job", "data"), prevent_initial_call=True)
    def cancel(n_clicks: int, job_id: str | None) -> Any:
        from training_job.client import TrainingError

        if not n_clicks:
            return no_update
        if not job_id:
            return "No job to cancel."
        try:
            job = trainer.client.cancel(job_id)
        except TrainingError as exc:
            return exc.message
        return f"{job_id}: cancel requested ({job.state.lower()})."

    @app.callback(Output("train-progress", "value"), Output("train-progress", "label"),
                  Output("train-job", "children"), Output("train-state", "children"),
                  Output("train-stage", "children"), Output("train-log", "children"),
                  Output("train-k-chart", "figure"), Output("train-result", "children"),
                  Output("train-job-settings", "children"), Output("train-shown", "data"),
                  Input("train-poll", "n_intervals"), Input("wb-job", "data"), State("train-shown", "data"))
    def watch(_: int, job_id: str | None, shown: str | None) -> tuple:
        if not job_id or not trainer.target:
            return (no_update,) * 10
        from training_job.client import TrainingError

        try:
            job = trainer.client.job(job_id)
        except TrainingError:
            return (no_update,) * 10
        key = f"{job.job_id}|{job.state}|{job.stage}|{job.progress:.3f}|{len(job.log)}|{len(job.k_search)}"
        if key == shown:
            return (no_update,) * 10
        percent = round(100 * job.progress)
        return (percent, f"{percent}%", job.job_id, job.state.lower(), job.stage,
                "\n".join(job.log[-LOG_LINES:]), k_chart(job), result_view(job), settings_line(job), key)

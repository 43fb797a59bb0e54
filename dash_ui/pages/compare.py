"""Compare and publish: the version a training job made beside the served one (segment sizes and names, the
matching of new to served segments, the agreement of the two labelings on the new data as the trainer
computed it, quality metrics); Publish makes it CURRENT, Discard leaves it kept but not served. A publish the
training service refuses because the version's input schema would break the served version's callers shows the
refusal and offers "Publish anyway", which asks first (as the Model page's Roll back does)."""
from __future__ import annotations

import logging
from typing import Any, Mapping

import dash_bootstrap_components as dbc
from dash import Input, Output, State, dcc, html, no_update

from dash_ui.grid import Column, data_grid
from dash_ui.layout import page_header, stat
from dash_ui.pages.data import trainer_state
from dash_ui.reports import report_url
from dash_ui.service import DashboardService, ServiceError
from dash_ui.trainer import TrainerAccess, schema_refusal_text
from segmentation_core.number_format import format_amount

log = logging.getLogger(__name__)

PATH = "/compare"
TITLE = "Compare"
NEEDS_MODEL = False
USES_TRAINER = True
QUALITY = (("silhouette", "Silhouette (higher is better)"), ("calinski_harabasz", "Calinski-Harabasz (higher)"),
           ("davies_bouldin", "Davies-Bouldin (lower is better)"), ("stability", "Stability (higher)"))


def layout(service: DashboardService, params: Mapping[str, str]) -> Any:
    return html.Div([page_header("Compare and publish", "The newly trained version beside the served one."),
                     html.Div(id="compare-trainer-state"), html.Div(id="compare-body"),
                     html.Div([dbc.Button("Publish", id="compare-publish", color="success", n_clicks=0, className="me-2"),
                               dbc.Button("Discard", id="compare-discard", color="secondary", outline=True, n_clicks=0)],
                              className="mt-3"),
                     html.Div(id="compare-message", className="mt-2")])


def baseline_role(result: Any, served: str) -> str:
    """What the version the job was compared with (``result.compared_version``) is now, given the version
    of the model served now: "served", "replaced" (by the candidate) or "served when trained"."""
    if served == result.compared_version:
        return "served"
    return "replaced" if served == result.version else "served when trained"


def comparison_view(job: Any, baseline: Any, served: str) -> Any:
    """The comparison of a succeeded job's version (``job.result``, the candidate) with the version served
    when it trained (``result.compared_version``, whose ModelInfo is ``baseline``, or None); ``served`` is
    the version of the model served now. The matching and the agreement were computed against that
    version, so its figures stay beside the candidate's whatever is served later, named by version."""
    r = job.result
    before = r.compared_version
    live = served == r.version
    role = baseline_role(r, served) if before else ""
    before_label = f"{before} ({role})" if before else ""
    old_names = {s.id: s.name for s in baseline.segments} if baseline is not None else {}
    total = sum(r.segment_sizes) or 1
    rows = []
    for i, (name, size) in enumerate(zip(r.segment_names, r.segment_sizes)):
        match = r.matching[i] if i < len(r.matching) else -1
        rows.append({"id": i, "name": name, "size": size, "share": size / total,
                     "served": old_names.get(match, f"segment {match}") if match >= 0 else "-",
                     "overlap": r.matching_share[i] if i < len(r.matching_share) else None})
    segments = data_grid("compare-segments", rows, [
        Column("id", "New id", "integer"), Column("name", "New segment"), Column("size", "Customers", "integer"),
        Column("share", "Share", "percent"),
        Column("served", f"Segment of {before_label}" if before else "Served segment (none)"),
        Column("overlap", "Of its customers there", "percent")])
    quality_rows = [{"metric": label, "new": format_amount(r.quality.get(key)),
                     "served": format_amount(baseline.quality.get(key)) if baseline is not None else "n/a"}
                    for key, label in QUALITY if key in r.quality]
    quality = data_grid("compare-quality", quality_rows, [
        Column("metric", "Metric"), Column("new", f"New {r.version}"),
        Column("served", before_label or "Served (none)")])
    agreement = (f"Adjusted Rand index {r.ari:.3f} between the segments of {r.version} and of {before} on the new "
                 "data's customers (1 = the same grouping, 0 = no more alike than chance)." if r.ari is not None
                 else f"No agreement figure: {r.comparison_note}")
    elsewhere = f" ({served} is served)" if served and served != before else ""
    state = "served" if live else f"kept, not served{elsewhere}"
    notice = []
    if live:  # drawn from the state, so it outlives the redraw a new served version brings, and a reload
        replaced = f": it replaced {before}, whose figures stay beside it below." if before else "."
        notice = [dbc.Alert(f"{r.model} {r.version} is served{replaced}", color="success", id="compare-served",
                            className="mb-2")]
    return html.Div([
        *notice,
        dbc.Card(dbc.CardBody([
            html.H4(f"{r.model} {r.version} ({'served' if live else 'new'}) vs {before_label or 'nothing served before'}",
                    className="card-title"),
            html.Div([stat("New k", str(r.k), id="compare-new-k"),
                      stat(f"k of {before}" if before else "Served k", str(baseline.k) if baseline is not None else "-",
                           id="compare-baseline-k"),
                      stat("Agreement (ARI)", format_amount(r.ari), id="compare-ari"),
                      stat("State", state, id="compare-state")]),
            html.P(agreement, className="small mb-0"),
            html.P(html.A(f"Open the training report of {r.version}", href=report_url(r.model, r.version),
                          target="_blank", rel="noopener", id="compare-report-link"),
                   className="small mb-0 mt-1"),
        ]), className="section-card"),
        dbc.Card(dbc.CardBody([html.H4("Segments", className="card-title"), segments]), className="section-card"),
        dbc.Card(dbc.CardBody([html.H4("Quality", className="card-title"), quality]), className="section-card"),
    ])


def refusal_view(model: str, version: str, served: str, message: str) -> Any:
    """A publish refused because ``version``'s input schema would break the callers of the served version: the
    refusal in the dashboard's words (the model, both versions, each change, the ways on: schema_refusal_text), and
    the override as an explicit choice that asks first, naming both versions."""
    button = dbc.Button("Publish anyway", id="compare-publish-anyway", color="danger", outline=True, n_clicks=0,
                        size="sm", title=f"serve {version} although callers of {served or 'the served version'} "
                                         "would fail")
    question = (f"Publish {model} {version} although it breaks the callers of {served or 'the served version'}? "
                f"Every request still sending a feature {version} does not have is refused from now on. "
                f"Only do so once the callers send what {version} expects; otherwise train it under another model "
                "name (the Train page's Model name).")
    return dbc.Alert([html.Strong("Not published: it would break the served model's callers. "),
                      html.Span(message, id="compare-refusal"),
                      html.Div(dcc.ConfirmDialogProvider(button, id="compare-publish-anyway-confirm", message=question),
                               className="mt-2")],
                     color="danger", id="compare-refused")


def register_callbacks(app: Any, service: DashboardService, trainer: TrainerAccess) -> None:
    def served_now(model: str) -> str:
        """The version of `model` served now: asked of the scoring service (the job's own `published`
        flag is frozen at the job's end, and the navbar's view may lag a publish by a poll)."""
        try:
            return service.served_version(model)
        except ServiceError:
            view = service.cached_model_view()
            return view.version if view is not None and view.model == model else ""

    def baseline_info(result: Any) -> Any:
        """The version the job was compared with, by its name (not whatever is served now), or None."""
        if not result.compared_version:
            return None
        try:
            return service.version_info(result.model, result.compared_version)
        except ServiceError as exc:
            log.info("compare: %s %s unavailable: %s", result.model, result.compared_version, exc.message)
            return None

    @app.callback(Output("compare-trainer-state", "children"), Output("compare-body", "children"),
                  Output("compare-publish", "disabled"), Output("compare-discard", "disabled"),
                  Input("wb-job", "data"), Input("compare-trainer-state", "id"))
    def show(job_id: str | None, _: str) -> tuple:
        state = trainer_state(trainer)
        if state is not None:
            return state, None, True, True
        if not job_id:
            return None, html.P("Train a model on the Train page first.", className="text-muted"), True, True
        from training_job.client import TrainingError

        try:
            job = trainer.client.job(job_id)
        except TrainingError as exc:
            return None, dbc.Alert(exc.message, color="danger"), True, True
        if job.state != "SUCCEEDED" or job.result is None:
            return None, html.P(f"Job {job.job_id} is {job.state.lower()}: nothing to compare yet.",
                                id="compare-waiting"), True, True
        served = served_now(job.result.model)
        published = served == job.result.version
        return None, comparison_view(job, baseline_info(job.result), served), published, published

    def publish_job(job_id: str, allow_breaking_schema: bool) -> tuple:
        """Publish the job's version: the message to show and whether Publish is now disabled."""
        from training_job.client import TrainingError

        try:
            job = trainer.client.job(job_id)
            if job.result is None:
                return "This job made no version.", True
            info = trainer.client.publish(job.result.version, model=job.result.model,
                                          allow_breaking_schema=allow_breaking_schema)
        except TrainingError as exc:
            if exc.breaking_schema:
                return refusal_view(job.result.model, job.result.version, served_now(job.result.model),
                                    schema_refusal_text(exc)), no_update
            return dbc.Alert(exc.message, color="danger"), no_update
        return dbc.Alert(f"{info.model} {info.version} is now served; every page follows within seconds.",
                         color="success", id="compare-published"), True

    @app.callback(Output("compare-message", "children"), Output("compare-publish", "disabled", allow_duplicate=True),
                  Input("compare-publish", "n_clicks"), State("wb-job", "data"), prevent_initial_call=True)
    def publish(n_clicks: int, job_id: str | None) -> tuple:
        if not n_clicks or not job_id:  # a button drawn anew fires once with 0 clicks
            return no_update, no_update
        return publish_job(job_id, allow_breaking_schema=False)

    @app.callback(Output("compare-message", "children", allow_duplicate=True),
                  Output("compare-publish", "disabled", allow_duplicate=True),
                  Input("compare-publish-anyway-confirm", "submit_n_clicks"), State("wb-job", "data"),
                  prevent_initial_call=True)
    def publish_anyway(confirmed: int, job_id: str | None) -> tuple:
        """The override, only after the dialog's OK (a Cancel fires nothing)."""
        if not confirmed or not job_id:
            return no_update, no_update
        return publish_job(job_id, allow_breaking_schema=True)

    @app.callback(Output("compare-message", "children", allow_duplicate=True), Output("wb-job", "data",
                                                                                      allow_duplicate=True),
                  Input("compare-discard", "n_clicks"), State("wb-job", "data"), prevent_initial_call=True)
    def discard(n_clicks: int, job_id: str | None) -> tuple:
        if not n_clicks or not job_id:
            return no_update, no_update
        return (f"Discarded: the version of {job_id} stays kept in the store, not served (the Model page can "
                "still publish it)."), None

"""Model: the k search with the chosen k marked, quality and stability, training data, versions."""
from __future__ import annotations

from typing import Any, Mapping

import dash_bootstrap_components as dbc
from dash import Input, Output, State, ctx, dcc, html, no_update

from segmentation_core.charts import figures
from segmentation_core.number_format import format_amount
from segmentation_core.wording import QUALITY_KEYS, label, structure_sentence
from dash_ui.figure_cache import cached, version_key
from dash_ui.grid import Column, data_grid
from dash_ui.layout import graph, page_header, segment_label, stat
from dash_ui.models import ModelView
from dash_ui.reports import report_url
from dash_ui.service import DashboardService, ServiceError
from dash_ui.trainer import schema_refusal_text
from scoring_service.client import ModelEntry

PATH = "/model"
TITLE = "Model"
QUALITY_LABELS = tuple((key, label(key)) for key in QUALITY_KEYS)




def quality_card(view: ModelView) -> dbc.Card:
    known = [stat(name, format_amount(view.quality[key]), id=f"model-quality-{key.replace('_', '-')}")
             for key, name in QUALITY_LABELS if key in view.quality]
    others = [stat(label(key), format_amount(v)) for key, v in sorted(view.quality.items())
              if key not in dict(QUALITY_LABELS)]
    return dbc.Card(dbc.CardBody([
        html.H4("Quality of the served model", className="card-title"),
        html.Div([stat("Algorithm", view.algorithm), stat("k", str(view.k), id="model-k"), *known, *others]),
        html.P(["Stability is the agreement of segmentations fitted on resamples of the training data "
                "(1 = identical)." if "stability" in view.quality else ""], className="small text-muted mb-0"),
        html.P(view.confidence_note, id="model-confidence-note", className="small text-warning mb-0")
        if view.confidence_note else None,
    ]), className="section-card")


def k_search_card(view: ModelView) -> dbc.Card:
    """The k choice as an analyst reads it: the rule's verdict, the elbow and the silhouette against k, the
    rule's other statistics folded away; with a fixed k (one row: single dots), the segment sizes instead."""
    structure = structure_sentence(view.segment_structure)
    verdict = html.Div([
        html.P([html.Strong("The segments are "), structure], className="small mb-1", id="model-structure")
        if structure else None,
        html.P([html.Strong(f"Rule: {view.k_rule or 'n/a'}. "), view.k_rule_explanation], className="small"),
    ])
    if not figures.k_was_searched(view.k_table):
        sizes = cached(("model-k-sizes", *version_key(view)), lambda: figures.segment_sizes_figure(
            {s.id: s.size for s in view.segments}, view.segment_names, colours=view.segment_colours,
            title=f"Customers in each of the {view.k} segments"))
        return dbc.Card(dbc.CardBody([
            html.H4("Choosing k", className="card-title"), verdict,
            html.P(f"k was fixed at {view.k} (no search over k ran): the segment sizes below and the quality "
                   "metrics above are what there is to judge it by.", className="small", id="model-k-fixed"),
            graph("model-k-sizes", sizes),
        ]), className="section-card")
    known = [m for m, _, _ in figures.K_METRICS]  # the textbook metrics first, then the rule's own by name
    internals = sorted((m for m in view.k_table.columns if m not in figures.ANALYST_K_METRICS),
                       key=lambda m: (m not in known, known.index(m) if m in known else 0, m))
    folded: list[Any] = []
    if internals:
        folded = [html.Details([
            html.Summary("The rule's internals: every statistic it computed for each k"),
            graph("model-k-internals", cached(("model-k-internals", *version_key(view)),
                                              lambda: figures.k_search_figure(view.k_table, view.k, internals))),
        ], id="model-k-details")]
    return dbc.Card(dbc.CardBody([
        html.H4("Choosing k", className="card-title"), verdict,
        graph("model-k-search", cached(("model-k-search", *version_key(view)), lambda: figures.k_search_figure(
            view.k_table, view.k, figures.ANALYST_K_METRICS))),
        *folded,
    ]), className="section-card")


def training_card(view: ModelView) -> dbc.Card:
    rows = [("Source", view.data_source or "n/a"), ("Rows read", f"{view.training_rows:,}"),
            ("Customers modelled", f"{view.training_customers:,}"),
            ("Numeric features", ", ".join(view.numeric_names) or "none"),
            ("Categorical features", ", ".join(f.name for f in view.categorical_features) or "none"),
            ("Data fingerprint", view.data_fingerprint[:16] + ("..." if len(view.data_fingerprint) > 16 else "")),
            ("Created", view.created_at)]
    return dbc.Card(dbc.CardBody([
        html.H4("Training data", className="card-title"),
        dbc.Table([html.Tbody([html.Tr([html.Th(k, className="w-25"), html.Td(v)]) for k, v in rows])],
                  size="sm", className="mb-0", id="model-training-table"),
    ]), className="section-card")


def segments_card(view: ModelView) -> dbc.Card:
    head = html.Thead(html.Tr([html.Th(h) for h in ("Id", "Segment", "Customers", "Share", "Outlier beyond")]))
    body = html.Tbody([html.Tr([html.Td(s.id), html.Td(segment_label(s.name, s.colour)), html.Td(f"{s.size:,}"),
                                html.Td(f"{s.share:.1%}"), html.Td(format_amount(s.outlier_distance))])
                       for s in view.segments])
    return dbc.Card(dbc.CardBody([
        html.H4("Segments of this version", className="card-title"),
        dbc.Table([head, body], size="sm", hover=True, className="mb-0", id="model-segments-table"),
        html.Small("Outlier beyond: the distance to the centroid (standardized units) past which a customer is "
                   "flagged as an outlier of the segment.", className="text-muted"),
    ]), className="section-card")


def versions_rows(models: list[ModelEntry], model: str) -> list[dict[str, Any]]:
    """Rows of the versions table for `model`: newest first, the served one marked."""
    entry = next((m for m in models if m.name == model), None)
    if entry is None:
        return []
    return [{"served": "★ served" if v.current or v.version == entry.served_version else "",
             "version": v.version, "created_at": v.created_at, "algorithm": v.algorithm, "k": v.k,
             "loaded": "yes" if v.loaded else "", "refused": v.refused_reason}
            for v in sorted(entry.versions, key=lambda v: v.version, reverse=True)]


def trained_at(created_at: str) -> str:
    """A manifest's ISO time ("2026-12-05T13:02:11Z") to the minute, as people read it."""
    return created_at[:16].replace("T", " ") if len(created_at) >= 16 and created_at[10:11] == "T" else created_at


def version_options(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The Publish dropdown's choices: each version with what tells them apart (k, algorithm, when trained);
    the served one and refused ones are listed but cannot be chosen."""
    options = []
    for r in rows:
        why = ", served" if r["served"] else (f", refused: {r['refused']}" if r["refused"] else "")
        options.append({"label": f"{r['version']} - k {r['k']}, {r['algorithm']}, trained {trained_at(r['created_at'])}"
                                 f"{why}", "value": r["version"], "disabled": bool(r["served"] or r["refused"])})
    return options


def served_note(service: DashboardService, view: ModelView) -> Any:
    """Since when the served version is served and what it replaced, when this dashboard saw the change:
    what a Publish or a Roll back did, still there once the page is drawn again for the new version."""
    status = service.status()
    if status.model != view.model or status.version != view.version or not status.previous_version:
        return None
    return html.P(f"{view.version} is served since {status.changed_at} (it replaced {status.previous_version}).",
                  className="small text-success mb-1", id="model-served-note")


def versions_card(service: DashboardService, view: ModelView) -> dbc.Card:
    rows: list[dict[str, Any]] = []
    target: str | None = None
    try:
        models = service.versions()
        rows, target = versions_rows(models, view.model), rollback_target(models, view.model)
        body: Any = data_grid(
            "model-versions-table", rows, [Column("served", "", styles=[("params.data.served", {"color": "#0f5132"})]),
                                           Column("version", "Version"), Column("created_at", "Created"),
                                           Column("algorithm", "Algorithm"), Column("k", "k", "integer"),
                                           Column("loaded", "Loaded"), Column("refused", "Refused because")],
            page_size=10, row_styles=[("params.data.served !== ''", {"backgroundColor": "#d1e7dd", "fontWeight": "600"})],
        )
    except ServiceError as exc:
        body = dbc.Alert(f"The version list is unavailable: {exc.message}", color="warning")
    buttons = html.Div([
        dbc.Row([
            dbc.Col(dcc.Dropdown(id="model-version-choice", options=version_options(rows),
                                 placeholder="a kept version to serve", clearable=False), md=6),
            dbc.Col(dbc.Button("Publish", id="model-publish", color="success", n_clicks=0, size="sm"), md="auto"),
            dbc.Col(rollback_button(view, target), md="auto"),
        ], className="g-2 align-items-center mt-2"),
        html.Div(id="model-version-message", className="small mt-2"),
        html.Div(id="model-version-done", className="small mt-2"),
        dcc.Store(id="model-version-done-store", storage_type="session"),
    ])
    return dbc.Card(dbc.CardBody([html.H4(f"Versions of {view.model}", className="card-title"),
                                  served_note(service, view), body, buttons]), className="section-card")


def report_links(view: ModelView) -> Any:
    """The served version's training report (from the training service, through the dashboard's report route):
    open it in a new tab, or download it."""
    return html.P([
        html.A("Open the training report", href=report_url(view.model, view.version), target="_blank",
               rel="noopener", id="model-report-link"),
        " (a new tab) · ",
        html.A("download it", href=report_url(view.model, view.version, download=True), id="model-report-download"),
        f" ({view.model}-{view.version}-report.html, opens offline)",
    ], className="small mb-2", id="model-report")


def layout(service: DashboardService, params: Mapping[str, str]) -> Any:
    view = service.model_view(params.get("model"))
    return html.Div([
        page_header("Model", f"{view.model} {view.version}"),
        report_links(view),
        quality_card(view),
        k_search_card(view),
        segments_card(view),
        dbc.Row([dbc.Col(training_card(view), lg=6), dbc.Col(versions_card(service, view), lg=6)]),
    ], id="model-page")


def register_callbacks(app: Any, service: DashboardService) -> None:
    """The Model page is static per version (its Publish/Rollback buttons: register_version_buttons)."""


def rollback_button(view: ModelView, target: str | None) -> Any:
    """Roll back (undo the last publish or promote, as `python -m training_job rollback`), which asks first (it
    changes what every caller is served at once); disabled when no version served before is kept."""
    button = dbc.Button("Roll back", id="model-rollback", color="warning", outline=True, n_clicks=0, size="sm",
                        disabled=target is None,
                        title=f"serve {target}, the version served before {view.version}" if target
                        else "no version served before this one is kept")
    question = (f"Roll back {view.model} from {view.version} to {target}? Every caller is served {target} from "
                f"now on; {view.version} stays kept and can be published again.")
    # The version the question names goes with the click: a rollback that would serve another (CURRENT moved since
    # the page was drawn) is refused by the training service, changing nothing.
    return html.Div([dcc.ConfirmDialogProvider(button, id="model-rollback-confirm", message=question),
                     dcc.Store(id="model-rollback-target", data=target)])


def rollback_target(models: list[ModelEntry], model: str) -> str | None:
    """The version a rollback of ``model`` serves: the one served before the current one (the store's history,
    as the scoring service lists it), if any is kept."""
    entry = next((m for m in models if m.name == model), None)
    return (entry.rollback_to or None) if entry is not None else None


def override_view(kind: str, model: str, version: str, served: str, text: str) -> Any:
    """A publish (``kind`` "publish") or rollback ("rollback") to ``version`` refused because its input schema would
    break the callers of ``served``: the refusal in the dashboard's words, and the override ("Publish anyway" /
    "Roll back anyway", as Compare's) as an explicit choice that asks first, naming both versions."""
    verb = "Publish" if kind == "publish" else "Roll back"
    button = dbc.Button(f"{verb} anyway", id=f"model-{kind}-anyway", color="danger", outline=True, n_clicks=0,
                        size="sm", title=f"serve {version} although callers of {served} would fail")
    question = (f"{verb} {model} {'to ' if kind == 'rollback' else ''}{version} although it breaks the callers of "
                f"{served}? Every request still sending a feature {version} does not have is refused from now on. "
                f"Only do so once the callers send what {version} expects.")
    return dbc.Alert([html.Strong(f"Not {'published' if kind == 'publish' else 'rolled back'}: it would break the "
                                  "served model's callers. "),
                      html.Span(text, id="model-refusal"),
                      html.Div(dcc.ConfirmDialogProvider(button, id=f"model-{kind}-anyway-confirm", message=question),
                               className="mt-2"),
                      dcc.Store(id="model-refused-version", data=version)],
                     color="danger", className="mb-0", id="model-refused")


def register_version_buttons(app: Any, service: DashboardService, trainer: Any) -> None:
    """Publish (a chosen kept version) and Roll back, through the training service; a refusal for a breaking input
    schema change offers the override after a confirmation. What a change did stays said (``model-version-done``)
    while the version it served is served, through the page's redraws (a session store the page reads back)."""
    def change(kind: str, model: str, version: str, allow_breaking_schema: bool) -> tuple:
        """Publish or roll back to ``version``: (the message, the done record for the session store)."""
        from training_job.client import TrainingError

        try:
            if kind == "rollback":  # refused, changing nothing, when the store's target is another (CURRENT moved)
                info = trainer.client.rollback(model=model, expected=version,
                                               allow_breaking_schema=allow_breaking_schema)
            else:
                info = trainer.client.publish(version, model=model, allow_breaking_schema=allow_breaking_schema)
        except TrainingError as exc:
            if exc.breaking_schema:
                served = exc.schema_refusal.served if exc.schema_refusal is not None else "the served version"
                return override_view(kind, model, version, served, schema_refusal_text(
                    exc, rollback=kind == "rollback")), no_update
            return dbc.Alert(exc.message, color="danger", className="mb-0"), no_update
        how = " (rolled back)" if kind == "rollback" else ""
        return None, {"model": info.model, "version": info.version,
                           "text": f"{info.model} {info.version} is now served{how}."}

    @app.callback(Output("model-version-message", "children"), Output("model-version-done-store", "data"),
                  Input("model-publish", "n_clicks"), Input("model-rollback-confirm", "submit_n_clicks"),
                  State("model-version-choice", "value"), State("model-rollback-target", "data"),
                  State("page-model", "data"), prevent_initial_call=True)
    def change_version(publish_clicks: int, rollback_clicks: int, chosen: str | None, target: str | None,
                       model: str | None = None) -> tuple:
        if not (publish_clicks or rollback_clicks):  # buttons drawn anew fire once with 0 clicks
            return no_update, no_update
        if not trainer.available():
            return dbc.Alert(trainer.unavailable_reason(), color="warning", className="mb-0"), no_update
        view = service.model_view(model)
        if ctx.triggered_id == "model-rollback-confirm":
            if not target:
                return "No version served before this one is kept: publish a kept version instead.", no_update
            return change("rollback", view.model, target, False)
        if not chosen:
            return "Choose a kept version first.", no_update
        if chosen == view.version:
            return f"{view.model} {chosen} is already served.", no_update
        return change("publish", view.model, chosen, False)

    for kind in ("publish", "rollback"):
        @app.callback(Output("model-version-message", "children", allow_duplicate=True),
                      Output("model-version-done-store", "data", allow_duplicate=True),
                      Input(f"model-{kind}-anyway-confirm", "submit_n_clicks"), State("model-refused-version", "data"),
                      State("page-model", "data"), prevent_initial_call=True)
        def override(confirmed: int, version: str | None, model: str | None = None, kind: str = kind) -> tuple:
            """The override, only after the dialog's OK (a Cancel fires nothing)."""
            if not confirmed or not version:
                return no_update, no_update
            if not trainer.available():
                return dbc.Alert(trainer.unavailable_reason(), color="warning", className="mb-0"), no_update
            return change(kind, service.model_view(model).model, version, True)

    @app.callback(Output("model-version-done", "children"), Input("model-version-done-store", "data"))
    def show_done(done: dict | None) -> Any:
        """What the last Publish or Roll back did, while the version it served is served (drawn again with the page,
        as Compare's "is served" note)."""
        if not done:
            return None
        try:
            served = service.served_version(done.get("model", ""))
        except ServiceError:
            return None
        if served != done.get("version"):
            return None
        return dbc.Alert(done.get("text", ""), color="success", className="mb-0", id="model-version-done-alert")

"""Predict: a form generated from the model's feature schema, the result, the customer on the map."""
from __future__ import annotations

import math
from typing import Any, Mapping, Sequence

import dash_bootstrap_components as dbc
from dash import ALL, Input, Output, State, dcc, html

from segmentation_core.charts import figures
from segmentation_core.errors import number_error
from segmentation_core.number_format import format_amount, format_number, format_percent, number_kind
from segmentation_core.parsing import typed_number
from dash_ui.figure_cache import cached, version_key
from dash_ui.layout import graph, options, page_header, segment_label, segment_legend, stat
from dash_ui.models import ModelView, segment_colour, separating_features
from dash_ui.service import DashboardService, ServiceError
from scoring_service.client import CategoricalFeature, NumericFeature, Prediction

PATH = "/predict"
TITLE = "Predict"
NUMBER_ID = "predict-number"
CATEGORY_ID = "predict-category"
MESSAGE_ID = "predict-field-message"
CLV_ID = "predict-clv-input"
#: The CLV inputs a transaction-log model with CLV accepts (segmentation_core.clv.INPUTS), with their help.
CLV_FIELDS = (("RepeatPurchases", "Purchase days after the first (a whole number)"),
              ("LastPurchaseTime", "First to last purchase day, in {unit}"),
              ("CustomerAge", "First purchase day to yesterday, in {unit}"),
              ("AvgRepeatValue", "Mean spend per repeat purchase day (0 without one)"))
#: A number box as text: the browser's type="number" box drops what it cannot read ('12,5' arrived as 125,
#: 'abc' and '1e400' as nothing), so the text comes as typed and segmentation_core.parsing.typed_number reads it.
NUMBER_BOX = {"type": "text", "autocomplete": "off"}
#: Validation levels: an error blocks the prediction; a warning and a note do not.
ERROR, WARNING, INFO, OK = "error", "warning", "info", ""


def feature_number(feature: NumericFeature, value: float) -> str:
    """A value of `feature` as the dashboard writes numbers: a year-like feature's without separators."""
    return format_number(value, number_kind(feature.name, (feature.minimum, feature.maximum)))


def training_range(feature: NumericFeature) -> str:
    """"1,730 to 666,666" (Year_Birth: "1893 to 1996")."""
    return f"{feature_number(feature, feature.minimum)} to {feature_number(feature, feature.maximum)}"


def typed_value(name: str, value: Any) -> float:
    """A value typed into the field `name` as a finite number; ValueError naming the field otherwise."""
    try:
        number = typed_number(value)
    except ValueError as exc:
        raise ValueError(f"{name}: {exc}") from None
    if not math.isfinite(number):
        raise ValueError(number_error(name, value))
    return number


def validate_number(value: Any, feature: NumericFeature) -> tuple[str, str]:
    """(level, message) for a value typed into `feature`'s field."""
    if value is None or value == "":
        return INFO, f"Missing: the model uses the training median {feature_number(feature, feature.impute)}."
    try:
        number = typed_value(feature.name, value)
    except ValueError as exc:
        return ERROR, f"{exc}."
    if number < feature.minimum or number > feature.maximum:
        return WARNING, f"Outside the training range {training_range(feature)}: the segment is an extrapolation."
    return OK, ""


def field_messages(view: ModelView, numbers: Mapping[str, Any],
                   categories: Mapping[str, Any]) -> dict[str, tuple[str, str]]:
    """{numeric feature: (level, message)} under each number field; nothing at all when every field is empty:
    there is then no customer to impute a field for (the service refuses it: no feature values)."""
    if all(numbers.get(f.name) in (None, "") for f in view.numeric_features) \
            and all(categories.get(f.name) in (None, "") for f in view.categorical_features):
        return {}
    return {f.name: validate_number(numbers.get(f.name), f) for f in view.numeric_features}


def validate_form(view: ModelView, numbers: Mapping[str, Any], categories: Mapping[str, Any]) -> list[str]:
    """The blocking errors of a filled form, one sentence each."""
    errors = []
    for f in view.numeric_features:
        level, message = validate_number(numbers.get(f.name), f)
        if level == ERROR:
            errors.append(message)
    return errors


def customer_from_form(view: ModelView, numbers: Mapping[str, Any], categories: Mapping[str, Any]) -> dict[str, Any]:
    """The customer to send: numbers as floats (None when missing), categories as text (None when missing)."""
    customer: dict[str, Any] = {}
    for f in view.numeric_features:
        value = numbers.get(f.name)
        customer[f.name] = None if value in (None, "") else typed_number(value)
    for f in view.categorical_features:
        value = categories.get(f.name)
        customer[f.name] = None if value in (None, "") else str(value)
    return customer


def clv_inputs(values: Mapping[str, Any]) -> tuple[dict[str, float], list[str]]:
    """The CLV inputs typed into the form ({} when none) and the blocking errors (some but not all, text)."""
    given = {name: values.get(name) for name, _ in CLV_FIELDS if values.get(name) not in (None, "")}
    if not given:
        return {}, []
    missing = [name for name, _ in CLV_FIELDS if name not in given]
    if missing:
        return {}, [f"Lifetime value: fill all four inputs or none ({', '.join(missing)} missing)."]
    numbers, errors = {}, []
    for name, value in given.items():
        try:
            numbers[name] = typed_value(name, value)
        except ValueError as exc:
            errors.append(f"Lifetime value: {exc}.")
    return ({}, errors) if errors else (numbers, [])


def clv_fields(view: ModelView) -> Any:
    """Optional inputs for the customer's lifetime value (a model with CLV only)."""
    if view.clv is None:
        return None
    unit = view.clv.time_unit
    return html.Div([
        html.H5("Lifetime value (optional: all four, as the recipe computes them, or none)", className="mt-3"),
        dbc.Row([dbc.Col([
            dbc.Label(name, html_for=f"predict-clv-{name}"),
            dbc.Input(id={"type": CLV_ID, "feature": name}, name=name, **NUMBER_BOX),
            dbc.FormText(help_text.format(unit=unit)),
        ], md=6, lg=3, className="mb-2") for name, help_text in CLV_FIELDS]),
    ], id="predict-clv-fields")


def _initial(value: float) -> float | int:
    return int(value) if float(value).is_integer() else round(float(value), 4)


def number_field(f: NumericFeature) -> dbc.Col:
    return dbc.Col([
        dbc.Label(f.name, html_for=f"predict-field-{f.name}"),
        dbc.Input(id={"type": NUMBER_ID, "feature": f.name}, name=f.name, value=_initial(f.impute), debounce=True,
                  **NUMBER_BOX),
        dbc.FormText(f"Training range {training_range(f)}"),
        html.Div(id={"type": MESSAGE_ID, "feature": f.name}, className="field-message"),
    ], md=6, lg=4, className="mb-2")


def category_field(f: CategoricalFeature) -> dbc.Col:
    return dbc.Col([
        dbc.Label(f.name),
        dbc.Select(id={"type": CATEGORY_ID, "feature": f.name}, name=f.name,
                   options=[{"label": "(missing)", "value": ""}] + options(f.levels), value=f.impute),
        dbc.FormText(f"{len(f.levels)} levels seen in training"),
        html.Div(id={"type": MESSAGE_ID, "feature": f"cat:{f.name}"}, className="field-message"),
    ], md=6, lg=4, className="mb-2")


def form(view: ModelView) -> dbc.Card:
    fields = [number_field(f) for f in view.numeric_features] + [category_field(f) for f in view.categorical_features]
    return dbc.Card(dbc.CardBody([
        html.H4("Customer", className="card-title"),
        dbc.Row(fields),
        clv_fields(view),
        dbc.Button("Predict segment", id="predict-button", color="primary", className="mt-2"),
    ]), className="section-card", id="predict-form")


def result_card(prediction: Prediction, colour: str, confidence_note: str = "") -> dbc.Card:
    """The prediction, in the colour of its segment; `confidence_note`: the model's word when its confidence was
    not calibrated (`ModelView.confidence_note`), said beside the confidence."""
    return dbc.Card(dbc.CardBody([
        html.H4(segment_label(prediction.segment_name, colour), id="predict-segment",
                style={"color": colour}),
        html.Div([
            stat("Confidence", format_percent(prediction.confidence), id="predict-confidence"),
            stat("Distance to centroid", format_amount(prediction.distance)),
            stat("Outlier", "yes" if prediction.outlier else "no", id="predict-outlier"),
        ]),
        html.P(confidence_note, id="predict-confidence-note", className="small text-warning mb-0")
        if confidence_note else None,
        html.P("An outlier is farther from its centroid than 99% of the segment's training customers."
               if prediction.outlier else "", className="small text-warning mb-0"),
        html.Div([
            stat("Expected purchases", format_amount(prediction.clv.expected_purchases)),
            stat("P(alive)", f"{prediction.clv.p_alive:.0%}"),
            stat("Expected order value", format_amount(prediction.clv.expected_order_value)),
            stat("Lifetime value", format_amount(prediction.clv.clv), id="predict-clv"),
        ], className="mt-2") if prediction.clv is not None else None,
        html.Small(f"Answered by {prediction.model} {prediction.version}", className="text-muted"),
    ]), className="section-card", style={"borderLeft": f"6px solid {colour}"})


def layout(service: DashboardService, params: Mapping[str, str]) -> Any:
    view = service.model_view(params.get("model"))
    x, y = (separating_features(view, 2) + view.numeric_names * 2)[:2] if view.numeric_names else (None, None)
    return html.Div([
        page_header("Predict one customer", f"Scored by {view.model} {view.version}"),
        segment_legend(view.segments, "predict-segments"),
        form(view),
        html.Div(id="predict-result"),
        dcc.Store(id="predict-customer"),
        dbc.Card(dbc.CardBody([
            dbc.Row([
                dbc.Col(html.H4("The customer among the segments", className="card-title"), md=6),
                dbc.Col(dcc.Dropdown(id="predict-map-x", options=options(view.numeric_names), value=x,
                                     clearable=False), md=3),
                dbc.Col(dcc.Dropdown(id="predict-map-y", options=options(view.numeric_names), value=y,
                                     clearable=False), md=3),
            ], className="align-items-center"),
            graph("predict-map", customer_map(service, view, None, x, y), height=480),
        ]), className="section-card"),
    ], id="predict-page")


def _by_feature(ids: Sequence[Mapping[str, str]], values: Sequence[Any]) -> dict[str, Any]:
    return {i["feature"]: v for i, v in zip(ids, values)}


def register_callbacks(app: Any, service: DashboardService) -> None:
    @app.callback(Output({"type": MESSAGE_ID, "feature": ALL}, "children"),
                  Output({"type": MESSAGE_ID, "feature": ALL}, "className"),
                  Output({"type": NUMBER_ID, "feature": ALL}, "invalid"),
                  Input({"type": NUMBER_ID, "feature": ALL}, "value"),
                  Input({"type": CATEGORY_ID, "feature": ALL}, "value"),
                  State({"type": NUMBER_ID, "feature": ALL}, "id"), State({"type": CATEGORY_ID, "feature": ALL}, "id"),
                  State({"type": MESSAGE_ID, "feature": ALL}, "id"), State("page-model", "data"),
                  prevent_initial_call=True)
    def check_fields(numbers: list, cats: list, number_ids: list, cat_ids: list,
                     message_ids: list, model: str | None = None) -> tuple[list, list, list]:
        view = service.cached_model_view(model)
        checked = field_messages(view, _by_feature(number_ids, numbers), _by_feature(cat_ids, cats)) if view else {}
        shown = [checked.get(i["feature"], (OK, "")) for i in message_ids]
        return ([message for _, message in shown], [f"field-message {level}".strip() for level, _ in shown],
                [checked.get(i["feature"], (OK, ""))[0] == ERROR for i in number_ids])

    @app.callback(Output("predict-result", "children"), Output("predict-customer", "data"),
                  Input("predict-button", "n_clicks"),
                  State({"type": NUMBER_ID, "feature": ALL}, "value"), State({"type": NUMBER_ID, "feature": ALL}, "id"),
                  State({"type": CATEGORY_ID, "feature": ALL}, "value"),
                  State({"type": CATEGORY_ID, "feature": ALL}, "id"),
                  State({"type": CLV_ID, "feature": ALL}, "value"), State({"type": CLV_ID, "feature": ALL}, "id"),
                  State("page-model", "data"), prevent_initial_call=True)
    def predict(_: int, numbers: list, number_ids: list, cats: list, cat_ids: list, clv_values: list,
                clv_ids: list, model: str | None = None) -> tuple[Any, Any]:
        try:
            view = service.model_view(model)
            number_values, cat_values = _by_feature(number_ids, numbers), _by_feature(cat_ids, cats)
            lifetime, clv_errors = clv_inputs(_by_feature(clv_ids, clv_values))
            errors = validate_form(view, number_values, cat_values) + clv_errors
            if errors:  # the result and the customer on the map belonged to other inputs: both go
                return dbc.Alert([html.Strong("Please correct: "), html.Ul([html.Li(e) for e in errors])],
                                 color="danger", id="predict-error"), None
            customer = customer_from_form(view, number_values, cat_values)
            prediction = service.predict({**customer, **lifetime}, model=view.model)
        except ServiceError as exc:
            return dbc.Alert(f"No prediction: {exc.message}", color="danger", id="predict-error"), None
        placed = {f.name: (customer[f.name] if customer[f.name] is not None else f.impute)
                  for f in view.numeric_features}
        colour = segment_colour(view.segment_colours, prediction.segment_id)
        return result_card(prediction, colour, view.confidence_note), {"values": placed, "segment_name": prediction.segment_name}

    @app.callback(Output("predict-map", "figure"), Input("predict-customer", "data"),
                  Input("predict-map-x", "value"), Input("predict-map-y", "value"), State("page-model", "data"),
                  prevent_initial_call=True)
    def draw_map(customer: Any, x: str, y: str, model: str | None = None) -> Any:
        try:
            return customer_map(service, service.model_view(model), customer, x, y)
        except ServiceError as exc:
            return figures.empty_figure(exc.message)


def customer_map(service: DashboardService, view: ModelView, customer: Any, x: str | None, y: str | None) -> Any:
    """The sample on two features in original units, with the predicted customer when there is one."""
    try:
        sample = service.sample(view)
    except ServiceError as exc:
        return figures.empty_figure(exc.message)
    if not x or not y:
        return figures.empty_figure("The model has no numeric features to map")
    values = (customer or {}).get("values")
    if not values:  # the map without a customer: the same on every visit
        return cached(("predict-map", *version_key(view), sample.version, x, y),
                      lambda: figures.segment_map(sample.frame, sample.centroids, x, y, view.segment_names,
                                                  colours=view.segment_colours))
    label = f"This customer ({customer['segment_name']})"
    return figures.segment_map(sample.frame, sample.centroids, x, y, view.segment_names,
                               colours=view.segment_colours, customer=values, customer_label=label)

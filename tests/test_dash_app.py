"""The app shell without a browser: routing, pages rendered from a real scoring server, ids in kebab-case.

One server per module (`start_server`) on a store with two versions of 'customers', v0002 served; the
dashboard reaches it through its real client.
"""
from __future__ import annotations

import dataclasses
import json
import re

import dash
import pandas as pd
import plotly.utils
import pytest

from dash_ui.app import create_app, render_page, status_key
from dash_ui.layout import status_badge, status_banner
from dash_ui.models import fallback_colour
from dash_ui.pages import PAGES
from dash_ui.service import DOWN, OK, DashboardService, ServiceStatus
from scoring_service.client import ModelInfo, ScoringClient
from scoring_service.server import ScoringServer
from segmentation_core.charts import figures
from segmentation_core.store import ModelStore
from tests import model_factory
# `server` (on this module's `store`) and `dashboards` are the fixtures of test_dash_service, shared.
from tests.server_support import start_server, target, wait_for
from tests.test_dash_service import Dashboards, NoColours, dashboards, server  # noqa: F401, F811 - fixtures

pytestmark = pytest.mark.timeout(120)

# The pages that show the served model (the workbench's Data, Train and Compare show uploaded data and jobs).
MODEL_PAGES = [path for path, page in PAGES.items() if getattr(page, "NEEDS_MODEL", True)]


KEBAB = re.compile(r"^[a-z0-9]+(-[a-z0-9]+)*$")


def walk(component):
    """Every Dash component in a tree."""
    yield component
    children = getattr(component, "children", None)
    if children is None:
        return
    for child in children if isinstance(children, (list, tuple)) else [children]:
        if hasattr(child, "to_plotly_json"):
            yield from walk(child)


def text_of(component) -> str:
    parts = []
    for c in walk(component):
        children = getattr(c, "children", None)
        for child in children if isinstance(children, (list, tuple)) else [children]:
            if isinstance(child, (str, int, float)):
                parts.append(str(child))
        for prop in ("options", "data", "rowData"):
            value = getattr(c, prop, None)
            if isinstance(value, list):
                parts.append(repr(value))
    return " ".join(parts)


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> ModelStore:
    """'customers' v0001 and v0002 (Mall, 5 k-means segments); v0002 is served."""
    store = ModelStore(tmp_path_factory.mktemp("dash-app-store"))
    model_factory.publish(store, "customers", "mall", k=5)
    model_factory.publish(store, "customers", "mall", k=5, seed=1)
    return store


@pytest.fixture(scope="module")
def info(server: ScoringServer) -> ModelInfo:
    """What the server sends about the served model: the expected names and colours."""
    with ScoringClient(target(server)) as client:
        return client.model_info()


@pytest.fixture()
def service(server: ScoringServer, dashboards: Dashboards) -> DashboardService:
    """A dashboard service on the module's server (not started: no watch thread)."""
    return dashboards.service(target(server))


def names_of(info: ModelInfo) -> list[str]:
    """The segment names the server sent, by id."""
    return [s.name for s in sorted(info.segments, key=lambda s: s.id)]


def colours_of(info: ModelInfo) -> list[str]:
    """The segment colours the server sent, by id (upper case, as `drawn_colours` gives them)."""
    return [s.colour.upper() for s in sorted(info.segments, key=lambda s: s.id)]


@pytest.mark.parametrize("path", MODEL_PAGES, ids=[p.strip("/") or "overview" for p in MODEL_PAGES])
def test_every_page_renders_the_segment_names_with_kebab_case_ids(service, info, path):
    page = render_page(service, path, "")
    text = text_of(page)
    assert names_of(info) == [f"Segment {i}" for i in range(5)]
    if path != "/model":  # the model page lists segments in a table of its own
        assert all(name in text for name in names_of(info)), text[:500]
    ids = [c.id for c in walk(page) if isinstance(getattr(c, "id", None), str)]
    assert ids and all(KEBAB.match(i) for i in ids), [i for i in ids if not KEBAB.match(i)]


def drawn_colours(component) -> set[str]:
    """Every colour a page draws with (hex, upper case), plotly's templates left out."""
    def strip(node):
        if isinstance(node, dict):
            return {k: strip(v) for k, v in node.items() if k != "template"}
        return [strip(v) for v in node] if isinstance(node, list) else node

    text = json.dumps(strip(json.loads(json.dumps(component.to_plotly_json(), cls=plotly.utils.PlotlyJSONEncoder))))
    return {c.upper() for c in re.findall(r"#[0-9A-Fa-f]{6}\b", text)}


@pytest.mark.parametrize("path", MODEL_PAGES, ids=[p.strip("/") or "overview" for p in MODEL_PAGES])
def test_every_page_draws_each_segment_in_the_colour_the_service_sent(service, info, path):
    from dash_ui import figure_cache

    figure_cache.clear()
    service.sample()  # the pages draw their maps and distributions
    drawn = drawn_colours(render_page(service, path, ""))
    sent = colours_of(info)
    assert len(set(sent)) == 5 and set(sent) <= drawn
    assert not drawn & {fallback_colour(i).upper() for i in range(5)}  # what a server sending no colours gets


@pytest.mark.parametrize("path", ["/", "/segments"], ids=["overview", "segments"])
def test_pages_of_a_server_that_sends_no_colours_draw_the_fallback(store, dashboards, info, path):
    # The real server always sends Segment.colour; one older than that field is the real server with the
    # colours blanked on the wire by an interceptor. This also shows the pages follow ModelInfo, not a palette.
    from dash_ui import figure_cache

    older = start_server(store.root, interceptors=[NoColours()])
    try:
        service = dashboards.service(target(older))
        figure_cache.clear()  # same version and creation time as the module's server: its figures are cached
        service.sample()
        drawn = drawn_colours(render_page(service, path, ""))
    finally:
        older.stop(grace=0)
        figure_cache.clear()
    assert {fallback_colour(i).upper() for i in range(5)} <= drawn
    assert not drawn & set(colours_of(info))


def test_the_batch_results_show_each_segment_in_the_colour_the_service_sent(service, info):
    from dash_ui.models import NO_SEGMENT_COLOUR
    from dash_ui.pages import batch

    frame = model_factory.mall().frame[[*model_factory.MALL_NUMERIC, "Gender"]].head(40).astype(object)
    frame.loc[3, "Age"] = "abc"  # one row the client refuses: no segment
    scored = service.predict_frame(frame)  # through the real server's PredictStream
    merged = pd.concat([frame, scored], axis=1)
    assert (merged["segment_id"] == -1).sum() == 1 and "abc" in merged.loc[3, "error"]
    view = service.model_view()
    results = batch.results_view("job", merged, view.segment_names, f"customers {view.version}",
                                 view.segment_colours)
    mix = next(c for c in walk(results) if getattr(c, "id", None) == "batch-mix").figure
    table = next(c for c in walk(results) if getattr(c, "id", None) == "batch-results-table")
    sent = [s.colour for s in sorted(info.segments, key=lambda s: s.id)]
    ids = sorted(set(merged["segment_id"]) - {-1})
    assert len(ids) >= 2  # forty customers fall in more than one segment
    assert [c.upper() for c in mix.data[0].marker.color] == [sent[i].upper() for i in ids] + [NO_SEGMENT_COLOUR.upper()]
    segment_column = next(c for c in table.columnDefs if c["field"] == "segment_name")
    assert [rule["style"]["color"] for rule in segment_column["cellStyle"]["styleConditions"]] == sent


def test_the_model_page_lists_segments_and_marks_the_served_version(service, info):
    page = render_page(service, "/model", "")
    text = text_of(page)
    assert all(name in text for name in names_of(info))
    assert "'served': '★ served', 'version': 'v0002'" in text and "'served': '', 'version': 'v0001'" in text


def test_the_model_page_offers_each_version_with_its_k_and_training_time_but_not_the_served_one(service):
    page = render_page(service, "/model", "")
    choice = next(c for c in walk(page) if getattr(c, "id", None) == "model-version-choice")
    options = {o["value"]: o for o in choice.options}
    assert list(options) == ["v0002", "v0001"]
    assert options["v0002"]["disabled"] and options["v0002"]["label"].endswith(", served")
    assert not options["v0001"]["disabled"]
    assert re.fullmatch(r"v0001 - k 5, kmeans, trained \d{4}-\d\d-\d\d \d\d:\d\d", options["v0001"]["label"])


def test_unknown_path_and_unreachable_service_give_pages_not_tracebacks(service, store, dashboards):
    assert "There is no page" in text_of(render_page(service, "/nope", ""))
    gone = start_server(store.root)
    gone.stop(grace=0)
    page = render_page(dashboards.service(target(gone)), "/", "")
    assert page.id == "waiting-card" and "does not answer" in text_of(page)


def test_segments_page_reads_the_segment_from_the_query_string(service):
    page = render_page(service, "/segments", "?segment=1")
    dropdown = next(c for c in walk(page) if getattr(c, "id", None) == "segments-segment")
    assert dropdown.value == 1
    page = render_page(service, "/segments", "?segment=banana")
    assert next(c for c in walk(page) if getattr(c, "id", None) == "segments-segment").value == 0


def test_segments_page_of_a_model_with_23_numeric_features_draws_every_profile_chart(
        tmp_path, dashboards, scoring_server_factory):
    # The marketing campaign under preset auto has 23 numeric features: 8 rows of charts, which a fixed
    # vertical spacing of 0.18 refused ("This page could not be drawn").
    from dash_ui import figure_cache

    store = ModelStore(tmp_path / "store")
    model_factory.publish(store, "customers", "wide", k=4)
    service = dashboards.service(target(scoring_server_factory(store.root)))
    figure_cache.clear()  # another module's model may share the version and creation second
    try:
        page = render_page(service, "/segments", "?segment=2")
    finally:
        figure_cache.clear()
    assert "could not be drawn" not in text_of(page)
    profile = next(c for c in walk(page) if getattr(c, "id", None) == "segments-profile").figure
    features = model_factory.dataset("wide").numeric
    assert len(features) == model_factory.WIDE_FEATURES == 23
    assert [a.text for a in profile.layout.annotations[:23]] == features
    assert len([t for t in profile.data if t.type == "bar"]) == 2 * 23
    assert profile.layout.height >= 8 * figures.PROFILE_ROW_PX


def test_badge_and_banner_follow_the_state():
    ok = ServiceStatus(OK, "h:1", model="customers", version="v0003")
    assert "customers v0003" in status_badge(ok).children and status_banner(ok, 2) is None
    down = ServiceStatus(DOWN, "h:1", model="customers", version="v0003", message="gone", attempts=4)
    banner = status_banner(down, 2)
    assert "unreachable" in text_of(banner) and "attempt 4" in text_of(banner)
    assert status_key(ok.as_dict()) != status_key(down.as_dict())


def test_create_app_exposes_a_flask_server(service):
    app = create_app(service)
    assert isinstance(app, dash.Dash) and app.server is not None
    client = app.server.test_client()
    assert client.get("/").status_code == 200
    assert client.get("/assets/bootstrap.min.css").status_code == 200


def test_health_says_whether_the_scoring_service_answers_and_unknown_paths_are_404(store, dashboards):
    live = start_server(store.root)
    service = dashboards.service(target(live), retry_seconds=0.2).start()
    client = create_app(service).server.test_client()
    try:
        wait_for(lambda: service.status().state == OK and service.status().version == "v0002")
        health = client.get("/health")
        assert health.status_code == 200 and health.mimetype == "application/json"
        body = health.get_json()
        assert body["status"] == "ok" and body["scoring"]["reachable"] is True
        assert body["scoring"]["target"] == target(live) and body["scoring"]["version"] == "v0002"
        assert client.get("/health/ready").status_code == 200
        for path in ("/", "/segments", "/model/", "/batch"):
            assert client.get(path).status_code == 200, path
        missing = client.get("/no-such-page")
        assert missing.status_code == 404 and b"_dash-config" in missing.data  # the app still says "not found"
        assert client.get("/assets/no-such.css").status_code == 404
    finally:
        live.stop(grace=0)
    wait_for(lambda: service.status().state == DOWN)
    down = client.get("/health")
    assert down.status_code == 200 and down.get_json()["status"] == "degraded"
    assert down.get_json()["scoring"]["reachable"] is False and down.get_json()["scoring"]["message"]
    assert client.get("/health/ready").status_code == 503


def test_figures_are_built_once_per_version_and_pages_prerendered(service, monkeypatch):
    from dash_ui import figure_cache
    from segmentation_core.charts import figures
    from dash_ui.app import prerender

    figure_cache.clear()
    built: list[str] = []
    # The fixture's models were trained with a fixed k: the Model page draws the segment sizes.
    real = figures.segment_sizes_figure
    monkeypatch.setattr(figures, "segment_sizes_figure", lambda *a, **k: (
        built.append("k") if k.get("title", "").startswith("Customers in each") else None) or real(*a, **k))
    service.sample()
    prerender(service)  # what the dashboard does when a version's sample has arrived
    assert built == ["k"] and len(figure_cache._CACHE) >= 4
    first = render_page(service, "/model", "")
    again = render_page(service, "/model", "")
    assert built == ["k"] and "k was fixed at 5" in text_of(first)
    graph = lambda page: next(c for c in walk(page) if getattr(c, "id", None) == "model-k-sizes")  # noqa: E731
    assert graph(first).figure is graph(again).figure


def test_the_segment_dropdown_reporting_its_value_on_mount_redraws_nothing(service):
    app = create_app(service)
    callback = next(v for k, v in app.callback_map.items() if "segments-profile.figure" in k)
    draw = callback["callback"].__wrapped__
    assert draw(0, "") == (dash.no_update,) * 3  # the page opened on segment 0 already shows it
    assert draw(1, "?segment=1") == (dash.no_update,) * 3
    profile, radar, search = draw(1, "")
    assert search == "?segment=1" and "Segment 1" in profile.layout.title.text


def test_the_layout_comes_with_the_page_of_the_url_being_opened(service):
    app = create_app(service)
    client = app.server.test_client()
    empty = client.get("/_dash-layout").get_json()  # no Referer, no model yet: the shell only
    assert "segments-page" not in str(empty)
    service.model_view()
    layout = client.get("/_dash-layout", headers={"Referer": "http://localhost/segments?segment=1"}).get_json()
    text = str(layout)
    assert "segments-page" in text and "'value': 1" in text and "customers v0002|/segments" in text
    foreign = client.get("/_dash-layout", headers={"Referer": "http://elsewhere.example/segments"}).get_json()
    assert "segments-page" not in str(foreign)
    # The route callback, as the page starts, finds the page drawn and leaves it.
    route = next(v for k, v in app.callback_map.items() if "page-content.children" in k)["callback"].__wrapped__
    with app.server.test_request_context():
        assert route({}, "/segments", "?segment=1", "customers v0002|/segments") == (dash.no_update,) * 2
        page, key = route({}, "/model", "", "customers v0002|/segments")
    assert key == "customers v0002|/model" and [c.id for c in page] == ["page-model", "model-page"]


def test_the_overview_the_model_page_and_the_report_say_the_verdict_in_one_sentence(service):
    from dash_ui.pages import model
    from dash_ui.pages.overview import _structure_note
    from segmentation_core.wording import structure_sentence

    continuum = ("a partition of a continuum: no groups proven apart from each other were found at this number of "
                 "segments, so the segments cut the customer base into usable parts")
    assert structure_sentence("partition of a continuum") == continuum
    # Was "the customers form no groups apart" beside a Model page saying "the 10 groups the data leaves open".
    assert "no groups apart" not in continuum
    assert _structure_note("natural groups") == (" · natural groups: the customers form groups apart from each "
                                                 "other, one segment each")
    assert _structure_note("unproven groups") == (" · unproven groups: too few customers per group to prove or rule "
                                                  "out gaps between them")
    assert _structure_note("partition of a continuum") == f" · {continuum}"
    # A value added to the contract after this dashboard was built is shown as sent, never as a continuum;
    # a model trained before structures were recorded shows nothing.
    assert _structure_note("several populations") == " · several populations"
    assert _structure_note("") == ""
    view = dataclasses.replace(service.model_view(), segment_structure="partition of a continuum")
    shown = next(c for c in walk(model.k_search_card(view)) if getattr(c, "id", None) == "model-structure")
    assert shown.children[0].children == "The segments are " and shown.children[1] == continuum
    older = dataclasses.replace(view, segment_structure="")
    assert not any(getattr(c, "id", None) == "model-structure" for c in walk(model.k_search_card(older)))


def test_the_train_form_offers_k_up_to_the_most_segments_and_never_sends_a_k_it_emptied(service):
    from dash_ui.pages import train
    from training_job.client import MAX_K

    boxes = [c for c in walk(train.layout(service, {})) if getattr(c, "id", None) in ("train-k", "train-k-min",
                                                                                         "train-k-max")]
    assert len(boxes) == 3 and {(b.min, b.max) for b in boxes} == {(2, MAX_K)}
    assert train.k_fields("fixed", MAX_K, None, None) == {"k": str(MAX_K)}
    assert train.k_fields("range", None, 2, MAX_K) == {"k": "auto", "k_min": 2, "k_max": MAX_K}
    # The browser empties a number box whose value is outside its min..max (the callback gets None): refused
    # with the limits, not sent as an empty k (which means the preset's k).
    for mode, values, box in [("fixed", (None, 2, 10), "k"), ("fixed", (MAX_K + 1, 2, 10), "k"),
                              ("range", (5, 1, 10), "k from"), ("range", (5, 2, None), "k to")]:
        with pytest.raises(ValueError, match=f"^{box}: enter a whole number of segments from 2 to {MAX_K}$"):
            train.k_fields(mode, *values)


def _callback(app, output: str):
    return next(v for k, v in app.callback_map.items() if output in k)["callback"].__wrapped__


def _predict_ids(view) -> tuple[list[dict], list[dict]]:
    """The Predict form's number and category field ids for ``view``'s features."""
    from dash_ui.pages import predict

    return ([{"type": predict.NUMBER_ID, "feature": f.name} for f in view.numeric_features],
            [{"type": predict.CATEGORY_ID, "feature": f.name} for f in view.categorical_features])


def test_a_refused_predict_form_clears_the_previous_result_and_the_customer_on_the_map(service):
    app = create_app(service)
    send, draw = _callback(app, "predict-result.children"), _callback(app, "predict-map.figure")
    view = service.model_view()
    ids, cat_ids = _predict_ids(view)
    cats = [f.impute for f in view.categorical_features]
    good = [f.impute for f in view.numeric_features]
    card, customer = send(1, good, ids, cats, cat_ids, [], [])
    assert customer["segment_name"].startswith("Segment ") and "Confidence" in text_of(card)
    x, y = view.numeric_names[:2]
    assert any(t.name.startswith("This customer") for t in draw(customer, x, y).data)
    bad = ["abc"] + good[1:]
    alert, cleared = send(2, bad, ids, cats, cat_ids, [], [])
    # Was (alert, no_update): the star of the previous inputs stayed on the map beside "Please correct".
    assert alert.id == "predict-error" and "Please correct" in text_of(alert) and cleared is None
    assert not any((t.name or "").startswith("This customer") for t in draw(cleared, x, y).data)


def test_a_model_whose_confidence_was_not_calibrated_or_predates_it_says_so_on_the_model_and_predict_pages(
        tmp_path, scoring_server_factory, dashboards, service):
    from dash_ui.pages import model

    skipped = {"temperature": 1.0, "smoothing": 0.0, "agreement": None, "rows": 0, "panel": ["kmeans"],
               "method": "not fitted: 40 rows per half, fewer than 30 per segment"}
    store = ModelStore(tmp_path)
    model_factory.publish(store, "customers", "mall", k=5, confidence=skipped)
    small = dashboards.service(target(scoring_server_factory(tmp_path)))
    view = small.model_view()
    note = ("Confidence not calibrated (40 rows per half, fewer than 30 per segment): the model's raw posterior, "
            "often near 100%; read it as a ranking, not a probability.")
    assert view.confidence_note == note
    shown = next(c for c in walk(model.quality_card(view)) if getattr(c, "id", None) == "model-confidence-note")
    assert shown.children == note
    send = _callback(create_app(small), "predict-result.children")
    ids, cat_ids = _predict_ids(view)
    card, _ = send(1, [f.impute for f in view.numeric_features], ids,
                   [f.impute for f in view.categorical_features], cat_ids, [], [])
    assert next(c for c in walk(card) if getattr(c, "id", None) == "predict-confidence-note").children == note
    # A version trained before the calibration (its manifest has no `confidence`) is not calibrated either.
    before = service.model_view()
    assert before.confidence_note == ("Confidence not calibrated (trained before the calibration existed): the "
                                      "model's raw posterior, often near 100%; read it as a ranking, not a probability.")
    assert next(c for c in walk(model.quality_card(before))
                if getattr(c, "id", None) == "model-confidence-note").children == before.confidence_note
    # A calibrated model shows no note.
    fitted = {**skipped, "temperature": 0.5, "smoothing": 0.1, "agreement": 0.9, "rows": 400,
              "method": "cross-fit agreement with a panel of models, two halves"}
    model_factory.publish(ModelStore(tmp_path / "fitted"), "customers", "mall", k=5, confidence=fitted)
    calibrated = dashboards.service(target(scoring_server_factory(tmp_path / "fitted"))).model_view()
    assert calibrated.confidence_note == ""
    assert not any(getattr(c, "id", None) == "model-confidence-note" for c in walk(model.quality_card(calibrated)))


def test_the_model_page_links_the_report_and_the_route_says_why_without_a_training_service(service):
    from dash_ui.pages import model

    view = service.model_view()
    links = next(c for c in walk(model.layout(service, {})) if getattr(c, "id", None) == "model-report")
    opened = next(c for c in walk(links) if getattr(c, "id", None) == "model-report-link")
    download = next(c for c in walk(links) if getattr(c, "id", None) == "model-report-download")
    assert (opened.href, opened.target) == (f"/report/{view.model}/{view.version}", "_blank")
    assert download.href == f"/report/{view.model}/{view.version}?download=1"
    client = create_app(service).server.test_client()  # no --trainer
    reply = client.get(f"/report/{view.model}/{view.version}")
    assert reply.status_code == 503 and reply.mimetype == "text/html"
    assert re.search(r"<p id='report-error'>(.*?)</p>", reply.get_data(as_text=True)).group(1) == (
        "The training report comes from the training service. Training is unavailable: no training service is "
        "configured (start the dashboard with --trainer).")


def test_a_schema_refusal_is_worded_for_the_dashboards_buttons_not_the_command_line():
    import grpc

    from dash_ui.trainer import schema_refusal_text
    from training_job.client import SchemaRefusal, TrainingError

    parts = SchemaRefusal("customers", "v0001", "v0002", ("numeric feature(s) 'Age' removed", "'Gender' changed"))
    cli = "model 'customers': v0002 was not made CURRENT: ... (train --model NAME) ... --allow-breaking-schema"
    error = TrainingError(grpc.StatusCode.FAILED_PRECONDITION, cli, breaking_schema=True, schema_refusal=parts)
    assert schema_refusal_text(error) == (
        "customers v0002 was not made CURRENT: its input schema would break the callers of the served v0001: "
        "numeric feature(s) 'Age' removed; 'Gender' changed. v0002 is kept and v0001 stays served. To keep existing "
        "callers working, train this table under another Model name on the Train page; or, once callers send what "
        "v0002 expects, choose Publish anyway.")
    rollback = schema_refusal_text(error, rollback=True)
    assert rollback.startswith("customers was not rolled back to v0002: its input schema would break the callers "
                               "of the served v0001: ")
    assert rollback.endswith("choose Roll back anyway.") and "model name" not in rollback.lower()
    # A service that sent no parts: its own message.
    assert schema_refusal_text(TrainingError(grpc.StatusCode.FAILED_PRECONDITION, cli, breaking_schema=True)) == cli


def test_predict_with_every_field_empty_says_nothing_per_field_and_a_confidence_short_of_one_is_not_100(service):
    from dash_ui.pages import predict

    app = create_app(service)
    check, send = _callback(app, "predict-field-message"), _callback(app, "predict-result.children")
    view = service.model_view()
    ids, cat_ids = _predict_ids(view)
    message_ids = [{"type": predict.MESSAGE_ID, "feature": i["feature"]} for i in ids] + \
        [{"type": predict.MESSAGE_ID, "feature": f"cat:{i['feature']}"} for i in cat_ids]
    empty, no_cats = [""] * len(ids), [""] * len(cat_ids)
    messages, _, invalid = check(empty, no_cats, ids, cat_ids, message_ids)
    assert messages == [""] * len(message_ids) and not any(invalid)  # was "the model uses the training median"
    answer, _ = send(1, empty, ids, no_cats, cat_ids, [], [])
    assert "No prediction" in text_of(answer) and "median" not in text_of(answer)
    one = [view.numeric_features[0].impute] + empty[1:]
    messages, _, _ = check(one, no_cats, ids, cat_ids, message_ids)
    assert "training median" in messages[1]  # beside a value, an empty field is imputed
    card, _ = send(2, one, ids, no_cats, cat_ids, [], [])
    shown = next(c for c in walk(card) if getattr(c, "id", None) == "predict-confidence")
    assert text_of(shown).endswith("%") and text_of(shown) != "100%"


def test_overview_says_k_means_not_the_config_value(service):
    text = text_of(render_page(service, "/", ""))
    assert "modelled with k-means" in text and "kmeans" not in text

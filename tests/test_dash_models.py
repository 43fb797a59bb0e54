"""The dashboard with every model of the store, not only the default one (`?model=NAME`).

One real scoring server on a loopback port over a store with two models: 'customers' (the default: a
23-feature table, 4 segments) and 'mall' (the Mall customers: Age, Annual Income, Spending Score, Gender;
5 segments), both published by `tests/model_factory.py`. The dashboard reaches it through its real client.
"""
from __future__ import annotations

import dash
import pytest

from dash_ui.app import create_app, page_children, render_page, status_key
from dash_ui.pages import PAGES
from dash_ui.service import ServiceError
from scoring_service.server import ScoringServer
from segmentation_core.store import ModelStore
from tests import model_factory
from tests.server_support import start_server, target, wait_for
from tests.test_dash_app import text_of, walk
from tests.test_dash_service import Dashboards

pytestmark = pytest.mark.timeout(120)

MALL_FEATURES = ("Age", "Annual Income (k$)", "Spending Score (1-100)")
DEFAULT_FEATURE = "Feature 00"  # the default model's, never the mall model's


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> ModelStore:
    store = ModelStore(tmp_path_factory.mktemp("dash-models-store"))
    model_factory.publish(store, "customers", "wide", k=4)
    model_factory.publish(store, "mall", "mall", k=5)
    return store


@pytest.fixture(scope="module")
def server(store: ModelStore):
    server = start_server(store.root)
    wait_for(lambda: server.registry.list_served().keys() >= {"customers", "mall"})
    yield server
    server.stop(grace=0)


@pytest.fixture()
def service(server: ScoringServer):
    dashboards = Dashboards()
    service = dashboards.service(target(server)).start()
    wait_for(lambda: service.cached_model_view() is not None)
    yield service
    dashboards.close()


def _callback(app, output: str):
    return next(v for k, v in app.callback_map.items() if output in k)["callback"].__wrapped__


def test_the_service_gives_each_model_its_own_view_sample_and_predictions(service):
    default, mall = service.model_view(), service.model_view("mall")
    assert (default.model, default.k, mall.model, mall.k) == ("customers", 4, "mall", 5)
    assert set(MALL_FEATURES) <= set(mall.feature_names) and DEFAULT_FEATURE not in mall.feature_names
    by_name = service.model_view("customers")  # the default model by name: the watched view
    assert (by_name.model, by_name.version, by_name.created_at) == (default.model, default.version, default.created_at)
    assert service.model_view("mall") is mall  # cached by (model, version)
    assert service.cached_model_view("mall") is mall
    sample = service.sample(mall)
    assert sample.version == mall.version and set(MALL_FEATURES) <= set(sample.frame.columns)
    assert DEFAULT_FEATURE in service.sample(default).frame.columns
    prediction = service.predict({"Age": 30, "Annual Income (k$)": 80, "Spending Score (1-100)": 85,
                                  "Gender": "Female"}, model="mall")
    assert prediction.model == "mall" and prediction.segment_name in mall.segment_names.values()
    assert service.served_versions() == {"customers": default.version, "mall": mall.version}


def test_an_unknown_model_is_refused_with_the_names_of_those_there_are(service):
    with pytest.raises(ServiceError) as err:
        service.model_view("nope")
    assert err.value.code == "NOT_FOUND"
    assert err.value.message == "There is no model named 'nope' in the store. Models: customers, mall."
    for path in ("/", "/segments", "/predict", "/monitoring"):
        page = render_page(service, path, "?model=nope")
        assert page.id == "unknown-model", path
        text = text_of(page)
        assert "There is no model named 'nope'" in text and "Traceback" not in text
        links = [c.href for c in walk(page) if getattr(c, "href", None)]
        assert links == [f"{path}?model=customers", f"{path}?model=mall"]


@pytest.mark.parametrize("path", ["/", "/segments", "/model", "/predict", "/batch"])
def test_every_page_for_model_mall_shows_mall_and_not_the_default_model(service, path):
    mall = service.model_view("mall")
    text = text_of(render_page(service, path, "?model=mall"))
    assert f"mall {mall.version}" in text
    assert "Segment 4" in text or path == "/batch"  # mall has 5 segments, the default model 4
    assert any(f in text for f in MALL_FEATURES) or path in ("/",), path
    assert DEFAULT_FEATURE not in text
    # Without ?model= the page is the default model's, as before.
    assert DEFAULT_FEATURE in text_of(render_page(service, path, "")) or path in ("/", "/model")


def test_the_monitoring_data_and_train_pages_follow_the_chosen_model(service):
    monitoring = text_of(render_page(service, "/monitoring", "?model=mall"))
    # No traffic yet: the segment mix table lists the mall model's 5 segments (the default model has 4).
    assert "Segment 4" in monitoring and DEFAULT_FEATURE not in monitoring
    train = render_page(service, "/train", "?model=mall")
    field = next(c for c in walk(train) if getattr(c, "id", None) == "train-model")
    assert field.value == "mall"
    default_field = next(c for c in walk(render_page(service, "/train", "")) if getattr(c, "id", None) == "train-model")
    assert default_field.value == "customers"


def test_page_callbacks_act_on_the_model_the_page_shows(service):
    app = create_app(service)
    store, page = page_children(service, "/predict", "?model=mall")
    assert (store.id, store.data, page.id) == ("page-model", "mall", "predict-page")
    mall = service.model_view("mall")
    from dash_ui.pages import predict

    send = _callback(app, "predict-result.children")
    ids = [{"type": predict.NUMBER_ID, "feature": f} for f in MALL_FEATURES]
    cat_ids = [{"type": predict.CATEGORY_ID, "feature": "Gender"}]
    card, customer = send(1, [30, 80, 85], ids, ["Female"], cat_ids, [], [], "mall")
    assert f"Answered by mall {mall.version}" in text_of(card)
    assert customer["segment_name"] in mall.segment_names.values()
    # The same form sent for the default model is refused: its features are another table's.
    refused, _ = send(1, [30, 80, 85], ids, ["Female"], cat_ids, [], [], "")
    assert refused.id == "predict-error"
    draw = _callback(app, "overview-map.figure")
    figure, _, _ = draw("features", "Age", "Annual Income (k$)", "mall")
    assert {t.name for t in figure.data if t.name} >= set(mall.segment_names.values())


def test_the_route_and_the_status_know_each_models_served_version(service):
    app = create_app(service)
    route = _callback(app, "page-content.children")
    mall = service.model_view("mall")
    with app.server.test_request_context():
        page, key = route({}, "/segments", "?model=mall", None)
        assert key == f"mall {mall.version}|/segments" and page[1].id == "segments-page"
        assert route({}, "/segments", "?model=mall&segment=2", key) == (dash.no_update,) * 2
        _, unknown_key = route({}, "/", "?model=nope", None)
        assert unknown_key == "nope |/"  # what the browser computes for a model the status does not list
    poll = _callback(app, "service-status.data")
    status, *_ = poll(1, None)
    assert status["served"] == {"customers": service.model_view().version, "mall": mall.version}
    assert status_key(status) != status_key({**status, "served": {**status["served"], "mall": "v0002"}})


def test_the_segment_choice_keeps_the_model_in_the_url(service):
    draw = _callback(create_app(service), "segments-profile.figure")
    _, _, search = draw(3, "?model=mall", "mall")
    assert search == "?model=mall&segment=3"


def test_a_new_version_of_another_model_is_seen_within_the_ttl(service, store, monkeypatch):
    from dash_ui import service as service_module

    monkeypatch.setattr(service_module, "SERVED_TTL_SECONDS", 0.0)
    before = service.model_view("mall")
    version = model_factory.publish(store, "mall", "mall", k=5, seed=1)
    wait_for(lambda: service.served_versions().get("mall") == version)
    after = service.model_view("mall")
    assert after.version == version != before.version
    assert service.model_view().model == "customers"  # the default model's watch is untouched


@pytest.mark.parametrize("path", [p for p, page in PAGES.items() if getattr(page, "NEEDS_MODEL", True)])
def test_no_page_of_another_model_draws_a_traceback(service, path):
    text = text_of(render_page(service, path, "?model=mall"))
    assert "could not be drawn" not in text and "Waiting for the scoring service" not in text

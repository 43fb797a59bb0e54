"""The app shell without a browser: routing, pages rendered from a fake service, ids in kebab-case."""
from __future__ import annotations

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
from tests.test_dash_service import COLOURS, SEGMENTS, FakeClient

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
        for prop in ("options", "data"):
            value = getattr(c, prop, None)
            if isinstance(value, list):
                parts.append(repr(value))
    return " ".join(parts)


@pytest.fixture()
def service():
    return DashboardService("fake:1", FakeClient)


@pytest.mark.parametrize("path", list(PAGES), ids=[p.strip("/") or "overview" for p in PAGES])
def test_every_page_renders_the_segment_names_with_kebab_case_ids(service, path):
    page = render_page(service, path, "")
    text = text_of(page)
    if path != "/model":  # the model page lists segments in a table of its own
        assert all(name in text for name in SEGMENTS), text[:500]
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


@pytest.mark.parametrize("path", list(PAGES), ids=[p.strip("/") or "overview" for p in PAGES])
def test_every_page_draws_each_segment_in_the_colour_the_service_sent(service, path):
    from dash_ui import figure_cache

    figure_cache.clear()
    service.sample()  # the pages draw their maps and distributions
    drawn = drawn_colours(render_page(service, path, ""))
    assert set(COLOURS) <= drawn
    assert not drawn & {fallback_colour(0), fallback_colour(1), "#0072B2", "#E69F00"}  # the fallback, an old palette


def test_the_batch_results_show_each_segment_in_the_colour_the_service_sent(service):
    from dash_ui.pages import batch

    merged = pd.DataFrame({"segment_id": [1, 0, -1], "segment_name": ["Careful Spenders", "Target Group", ""],
                           "error": ["", "", "Age: not a number"]})
    view = service.model_view()
    results = batch.results_view("job", merged, {0: SEGMENTS[0], 1: SEGMENTS[1]}, "customers v0001",
                                 view.segment_colours)
    mix = next(c for c in walk(results) if getattr(c, "id", None) == "batch-mix").figure
    table = next(c for c in walk(results) if getattr(c, "id", None) == "batch-results-table")
    assert list(mix.data[0].marker.color)[:2] == COLOURS
    assert [rule["color"] for rule in table.style_data_conditional[:2]] == COLOURS


def test_the_model_page_lists_segments_and_marks_the_served_version(service):
    class Versions(FakeClient):
        def list_models(self):
            from segmentation.v1 import scoring_pb2
            entry = scoring_pb2.ModelEntry(name="customers", served_version="v0002", is_default=True)
            entry.versions.add(version="v0001", k=2)
            entry.versions.add(version="v0002", k=2, current=True, loaded=True)
            return [entry]

    svc = DashboardService("fake:1", Versions)
    page = render_page(svc, "/model", "")
    text = text_of(page)
    assert all(name in text for name in SEGMENTS)
    assert "'served': '★ served', 'version': 'v0002'" in text and "'served': '', 'version': 'v0001'" in text


def test_unknown_path_and_unreachable_service_give_pages_not_tracebacks():
    assert "There is no page" in text_of(render_page(DashboardService("fake:1", FakeClient), "/nope", ""))
    dead = FakeClient()
    dead.down = True
    page = render_page(DashboardService("fake:1", lambda: dead), "/", "")
    assert page.id == "waiting-card" and "does not answer" in text_of(page)


def test_segments_page_reads_the_segment_from_the_query_string(service):
    page = render_page(service, "/segments", "?segment=1")
    dropdown = next(c for c in walk(page) if getattr(c, "id", None) == "segments-segment")
    assert dropdown.value == 1
    page = render_page(service, "/segments", "?segment=banana")
    assert next(c for c in walk(page) if getattr(c, "id", None) == "segments-segment").value == 0


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


def test_figures_are_built_once_per_version_and_pages_prerendered(service, monkeypatch):
    from dash_ui import figure_cache, figures
    from dash_ui.app import prerender

    figure_cache.clear()
    built: list[str] = []
    real = figures.k_search_figure
    monkeypatch.setattr(figures, "k_search_figure", lambda *a, **k: built.append("k") or real(*a, **k))
    service.sample()
    prerender(service)  # what the dashboard does when a version's sample has arrived
    assert built == ["k"] and len(figure_cache._CACHE) >= 4
    first = render_page(service, "/model", "")
    again = render_page(service, "/model", "")
    assert built == ["k"]
    graph = lambda page: next(c for c in walk(page) if getattr(c, "id", None) == "model-k-search")  # noqa: E731
    assert graph(first).figure is graph(again).figure


def test_figure_cache_keeps_the_newest_entries():
    from dash_ui.figure_cache import FigureCache

    cache = FigureCache(max_entries=2)
    assert cache.get("a", lambda: 1) == 1 and cache.get("a", lambda: 2) == 1
    cache.get("b", lambda: 3)
    cache.get("c", lambda: 4)
    assert len(cache) == 2 and cache.get("a", lambda: 5) == 5


def test_the_segment_dropdown_reporting_its_value_on_mount_redraws_nothing(service):
    app = create_app(service)
    callback = next(v for k, v in app.callback_map.items() if "segments-profile.figure" in k)
    draw = callback["callback"].__wrapped__
    assert draw(0, "") == (dash.no_update,) * 3  # the page opened on segment 0 already shows it
    assert draw(1, "?segment=1") == (dash.no_update,) * 3
    profile, radar, search = draw(1, "")
    assert search == "?segment=1" and "Careful Spenders" in profile.layout.title.text


def test_the_layout_comes_with_the_page_of_the_url_being_opened(service):
    app = create_app(service)
    client = app.server.test_client()
    empty = client.get("/_dash-layout").get_json()  # no Referer, no model yet: the shell only
    assert "segments-page" not in str(empty)
    service.model_view()
    layout = client.get("/_dash-layout", headers={"Referer": "http://localhost/segments?segment=1"}).get_json()
    text = str(layout)
    assert "segments-page" in text and "'value': 1" in text and "customers v0001|/segments" in text
    foreign = client.get("/_dash-layout", headers={"Referer": "http://elsewhere.example/segments"}).get_json()
    assert "segments-page" not in str(foreign)
    # The route callback, as the page starts, finds the page drawn and leaves it.
    route = next(v for k, v in app.callback_map.items() if "page-content.children" in k)["callback"].__wrapped__
    with app.server.test_request_context():
        assert route({}, "/segments", "?segment=1", "customers v0001|/segments") == (dash.no_update,) * 2
        page, key = route({}, "/model", "", "customers v0001|/segments")
    assert key == "customers v0001|/model" and page.id == "model-page"

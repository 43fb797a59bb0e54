"""The app shell without a browser: routing, pages rendered from a fake service, ids in kebab-case."""
from __future__ import annotations

import re

import dash
import pytest

from dash_ui.app import create_app, render_page, status_key
from dash_ui.layout import status_badge, status_banner
from dash_ui.pages import PAGES
from dash_ui.service import DOWN, OK, DashboardService, ServiceStatus
from tests.test_dash_service import SEGMENTS, FakeClient

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

"""The partial plotly.js bundle (segmentation_core/charts/plotly_bundle) of the dashboard and the training
report: the plotly.js version of the plotly Python package, every trace type the charts draw, the bytes that were built, served where dcc.Graph
loads plotly.js from, and used by a real page in headless Chromium."""
from __future__ import annotations

import ast
import gzip
import hashlib
import json
import re
import threading
from pathlib import Path

import plotly.graph_objects as go
import pytest
from plotly.basedatatypes import BaseTraceType
from plotly.offline import get_plotlyjs_version

from dash_ui import plotly_bundle
from segmentation_core.charts import bundle
from tests.browser_support import browser_missing_reason, chrome, page_ready_script, wait_until

REPO = Path(__file__).resolve().parents[1]
#: Code that draws charts with the bundle: the dashboard, the shared charts, the training report.
DRAWING = (REPO / "dash_ui", REPO / "segmentation_core" / "charts", REPO / "training_job" / "report.py")
HERE = bundle.HERE


def trace_types_drawn() -> dict[str, set[str]]:
    """{trace type: {files}} for every plotly.graph_objects trace class dash_ui's code names
    (`go.Scattergl`, `from plotly.graph_objects import Bar`, ...)."""
    found: dict[str, set[str]] = {}
    files = [f for place in DRAWING for f in ([place] if place.is_file() else sorted(place.rglob("*.py")))]
    for path in files:
        if "node_modules" in path.parts:
            continue
        tree = ast.parse(path.read_text(), filename=str(path))
        aliases, names = set(), set()
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                aliases |= {a.asname or a.name for a in node.names if a.name == "plotly.graph_objects"}
            elif isinstance(node, ast.ImportFrom) and node.module == "plotly":
                aliases |= {a.asname or a.name for a in node.names if a.name == "graph_objects"}
            elif isinstance(node, ast.ImportFrom) and node.module == "plotly.graph_objects":
                names |= {a.name for a in node.names}
            if isinstance(node, (ast.Import, ast.ImportFrom)):
                module = node.module if isinstance(node, ast.ImportFrom) else None
                imported = [module or ""] + [a.name for a in node.names]
                assert not any(m.startswith(("plotly.express", "plotly.figure_factory")) for m in imported), (
                    f"{path.relative_to(REPO)} imports plotly.express or figure_factory, whose trace types this "
                    "test cannot see: build figures from plotly.graph_objects")
        for node in ast.walk(tree):
            name = None
            if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id in aliases:
                name = node.attr
            elif isinstance(node, ast.Name) and node.id in names:
                name = node.id
            cls = getattr(go, name, None) if name else None
            if isinstance(cls, type) and issubclass(cls, BaseTraceType):
                found.setdefault(cls().type, set()).add(str(path.relative_to(REPO)))
    return found


def test_the_bundle_is_the_plotly_js_of_the_plotly_python_package():
    version = get_plotlyjs_version()
    manifest = bundle.manifest()
    assert manifest["plotly.js"] == version, (
        f"the bundle is plotly.js {manifest['plotly.js']}, the plotly Python package ships {version}: "
        f"`npm install --save-exact plotly.js@{version}` and ./build.sh in segmentation_core/charts/plotly_bundle")
    package = json.loads((HERE / "package.json").read_text())
    lock = json.loads((HERE / "package-lock.json").read_text())
    assert package["devDependencies"]["plotly.js"] == version
    assert lock["packages"]["node_modules/plotly.js"]["version"] == version
    assert re.fullmatch(r"\d+\.\d+\.\d+", package["devDependencies"]["esbuild"])  # pinned, not a range
    assert bundle.BUNDLE.read_text()[:200].startswith(f"/* plotly.js v{version} ")


def test_the_committed_bundle_is_the_one_built_and_lists_its_traces():
    manifest = bundle.manifest()
    code = bundle.BUNDLE.read_bytes()
    assert (len(code), hashlib.sha256(code).hexdigest()) == (manifest["bytes"], manifest["sha256"]), (
        "plotly-dashboard.min.js is not what build.sh wrote: run ./build.sh in segmentation_core/charts/plotly_bundle")
    build = (HERE / "build.mjs").read_text()
    traces = json.loads(re.search(r"export const TRACES = (\[[^\]]*\]);", build).group(1))
    assert traces == manifest["traces"]
    assert len(code) < 2_500_000  # the full plotly.min.js is 4.8 MB


def test_every_trace_type_the_dashboard_draws_is_in_the_bundle():
    used = trace_types_drawn()
    assert {"scattergl", "scatter3d"} <= set(used)  # the segment maps: the scan does see the figures
    missing = {t: sorted(files) for t, files in used.items() if t not in bundle.manifest()["traces"]}
    assert not missing, (f"trace types drawn but not in the plotly.js bundle: {missing}; add them to TRACES in "
                         "segmentation_core/charts/plotly_bundle/build.mjs and run ./build.sh there")


@pytest.fixture()
def app():
    from dash_ui.app import create_app
    from dash_ui.service import DashboardService
    from tests.test_dash_service import FakeClient

    return create_app(DashboardService("fake:1", FakeClient))


def test_dash_serves_the_bundle_where_dcc_graph_loads_plotly_js(app):
    import dash

    renderer = Path(dash.__file__).parent / "dash-renderer" / "build" / "dash_renderer.min.js"
    assert plotly_bundle.DCC_PLOTLY_PATH in renderer.read_text(), (
        "dash-renderer no longer loads plotly.js from the URL dash_ui.plotly_bundle answers")
    client = app.server.test_client()
    page = client.get("/").get_data(as_text=True)
    assert "plotly.min.js" not in page  # loaded by the first graph drawn, not by every page
    first = client.get("/" + plotly_bundle.DCC_PLOTLY_PATH)
    assert first.status_code == 200 and first.data == bundle.BUNDLE.read_bytes()
    assert first.mimetype == "text/javascript" and "no-cache" in first.headers["Cache-Control"]
    again = client.get("/" + plotly_bundle.DCC_PLOTLY_PATH, headers={"If-None-Match": first.headers["ETag"]})
    assert again.status_code == 304 and not again.data
    zipped = client.get("/" + plotly_bundle.DCC_PLOTLY_PATH, headers={"Accept-Encoding": "gzip, deflate, br"})
    assert zipped.headers["Content-Encoding"] == "gzip" and "Accept-Encoding" in zipped.headers["Vary"]
    assert gzip.decompress(zipped.data) == first.data and len(zipped.data) < len(first.data) / 2


TRACE_CHECK = """
const types = arguments[0], done = arguments[arguments.length - 1];
const registered = Object.keys(Plotly.PlotSchema.get().traces).sort();
const drawn = {};
(async () => {
  for (const type of types) {
    const div = document.createElement('div');
    div.style.width = '400px'; div.style.height = '300px';
    document.body.appendChild(div);
    const trace = type === 'scatterpolar' ? {type, r: [1, 2, 3], theta: [0, 90, 180]}
                : type === 'box' ? {type, y: [1, 2, 3, 4]}
                : {type, x: [1, 2, 3], y: [1, 3, 2], z: [2, 1, 3]};
    try {
      await Plotly.newPlot(div, [trace]);
      drawn[type] = div._fullData[0].type === type && div._fullData[0].visible === true;
    } catch (e) { drawn[type] = String(e); }
    Plotly.purge(div); div.remove();
  }
  done({version: Plotly.version, registered, drawn});
})();
"""


@pytest.mark.browser
@pytest.mark.slow
@pytest.mark.skipif(browser_missing_reason() is not None, reason=str(browser_missing_reason()))
def test_a_real_page_draws_with_the_bundle_and_every_trace_type_works(app):
    from werkzeug.serving import make_server

    server = make_server("127.0.0.1", 0, app.server, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        with chrome() as driver:
            driver.get(f"http://127.0.0.1:{server.server_port}/")
            wait_until(lambda: driver.find_elements("css selector", "#overview-map canvas")
                       and driver.execute_script(page_ready_script()), 60, message="the overview's map")
            loaded = driver.execute_script(
                "return performance.getEntriesByType('resource').map(e => e.name).filter(n => n.includes('plotly'))")
            assert loaded == [f"http://127.0.0.1:{server.server_port}/{plotly_bundle.DCC_PLOTLY_PATH}"]
            driver.set_script_timeout(60)
            used = sorted(trace_types_drawn())
            result = driver.execute_async_script(TRACE_CHECK, used)
    finally:
        server.shutdown()
        thread.join(10)
    assert result["version"] == get_plotlyjs_version()
    assert result["registered"] == sorted(bundle.manifest()["traces"])
    assert result["drawn"] == {t: True for t in used}

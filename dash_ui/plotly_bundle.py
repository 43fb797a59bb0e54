"""The dashboard's plotly.js: the partial bundle of `segmentation_core.charts.bundle` (2.1 MB), served in
place of the full plotly.min.js (4.8 MB) that the plotly Python package ships.

dcc.Graph loads plotly.js when a page first draws a graph (never on pages without one), from the URL
dash-renderer gives it for a locally served app (`DCC_PLOTLY_PATH`), unless `window.Plotly` is already
defined. `install(app)` answers that URL with the partial bundle, so the loading stays Dash's own
(lazy, one request, revalidated with an ETag) and only the bytes change; gzipped (0.7 MB) for
browsers that accept it, as Dash serves nothing compressed itself. tests/test_plotly_bundle.py checks
that dash-renderer still asks for that URL and that a real page draws with this bundle.
"""
from __future__ import annotations

import dash
import flask

from segmentation_core.charts import bundle

#: Where dcc.Graph loads plotly.js from (set by dash-renderer when serve_locally), below the app's prefix.
DCC_PLOTLY_PATH = "_dash-component-suites/plotly/package_data/plotly.min.js"


def install(app: dash.Dash) -> None:
    """Serves the partial bundle where dcc.Graph loads plotly.js from."""
    code, digest = bundle.code()
    zipped = bundle.gzipped()  # now, not in the first visitor's request

    def serve() -> flask.Response:
        compressed = "gzip" in flask.request.accept_encodings
        response = flask.Response(zipped if compressed else code, mimetype="text/javascript")
        if compressed:
            response.content_encoding = "gzip"
        response.vary.add("Accept-Encoding")
        response.set_etag(digest + ("-gz" if compressed else ""))
        response.cache_control.no_cache = True  # revalidated (304) on later page loads, as Dash's own files
        return response.make_conditional(flask.request)

    # A rule without variables: Flask matches it before Dash's `_dash-component-suites/<package>/<path>`.
    app.server.add_url_rule(app.config.routes_pathname_prefix + DCC_PLOTLY_PATH, "dash-ui-plotly-bundle", serve)

"""The dashboard's pages. Each module has `PATH`, `TITLE`, `layout(service, params)` and
`register_callbacks(app, service)`; `PAGES` maps a URL path to its module."""
from __future__ import annotations

from dash_ui.pages import batch, model, overview, predict, segments

PAGES = {page.PATH: page for page in (overview, segments, model, predict, batch)}

__all__ = ["PAGES"]

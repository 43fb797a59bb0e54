"""The dashboard's pages. Each module has `PATH`, `TITLE`, `layout(service, params)` and
`register_callbacks(app, service)`; `PAGES` maps a URL path to its module. The workbench pages (Data,
Train, Compare) set `USES_TRAINER` (their callbacks also get the TrainerAccess) and `NEEDS_MODEL = False`
(they work before any model is served)."""
from __future__ import annotations

from dash_ui.pages import batch, compare, data, model, monitoring, overview, predict, segments, train

PAGES = {page.PATH: page for page in (overview, segments, model, predict, batch, data, train, compare, monitoring)}

__all__ = ["PAGES"]

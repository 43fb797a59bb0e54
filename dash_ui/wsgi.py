"""WSGI entry point for another server than `python -m dash_ui`'s own (waitress), e.g.
`waitress-serve --threads 8 dash_ui.wsgi:server` or `gunicorn -w 1 --threads 8 dash_ui.wsgi:server`.

Configured by the environment as `python -m dash_ui` is (the same DASH_* settings, dash_ui/settings.py;
a bad value stops the import with one line). One worker process: batch jobs and caches live in it.
"""
from __future__ import annotations

from dash_ui.__main__ import build
from dash_ui.settings import parse_settings

app, service = build(parse_settings([]))
server = app.server

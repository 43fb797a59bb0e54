"""Figures that depend only on the served model version, built once per version and kept.

A page visit used to rebuild its figures every time (plotly's validators and `make_subplots` are slow:
50-130 ms of server time per page, on a machine that also runs the browser). The figures of a version
never change, so the pages ask `cached(key, build)` with a key that starts with the model and version;
only the last few versions' entries are kept (the served one, and the one before during a swap), in
`segmentation_core.bounded_cache`, which builds a figure once even when the background prerender and a
visitor ask for it together.
"""
from __future__ import annotations

from typing import Any, Callable, Hashable

from segmentation_core.bounded_cache import BoundedCache

#: Most figures kept (a few per page and version, a few versions).
MAX_ENTRIES = 256

_CACHE: BoundedCache[Hashable, Any] = BoundedCache(MAX_ENTRIES)


def cached(key: Hashable, build: Callable[[], Any]) -> Any:
    """`build()`'s figure for `key`, which must name the model version it was drawn from
    (`version_key(view)`) and everything else the figure depends on."""
    return _CACHE.get_or_build(key, build)


def version_key(view: Any) -> tuple[str, str, str]:
    """A served version, told apart from another store's version of the same name by its creation time."""
    return view.model, view.version, view.created_at


def clear() -> None:
    """Drops every figure (tests)."""
    _CACHE.clear()

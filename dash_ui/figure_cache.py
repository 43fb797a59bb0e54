"""Figures that depend only on the served model version, built once per version and kept.

A page visit used to rebuild its figures every time (plotly's validators and `make_subplots` are slow:
50-130 ms of server time per page, on a machine that also runs the browser). The figures of a version
never change, so the pages ask `cached(key, build)` with a key that starts with the model and version;
only the last few versions' entries are kept (the served one, and the one before during a swap).
"""
from __future__ import annotations

import threading
from collections import OrderedDict
from typing import Any, Callable, Hashable

#: Most figures kept (a few per page and version, a few versions).
MAX_ENTRIES = 256


class FigureCache:
    """A bounded, thread-safe map from figure keys to figures, least recently used dropped first."""

    def __init__(self, max_entries: int = MAX_ENTRIES) -> None:
        self.max_entries = max_entries
        self._entries: OrderedDict[Hashable, Any] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: Hashable, build: Callable[[], Any]) -> Any:
        """The value for `key`, built by `build()` the first time (not under the lock: two threads may
        both build it once; the figures are equal)."""
        with self._lock:
            if key in self._entries:
                self._entries.move_to_end(key)
                return self._entries[key]
        value = build()
        with self._lock:
            self._entries[key] = value
            while len(self._entries) > self.max_entries:
                self._entries.popitem(last=False)
        return value

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()

    def __len__(self) -> int:
        return len(self._entries)


_CACHE = FigureCache()


def cached(key: Hashable, build: Callable[[], Any]) -> Any:
    """`build()`'s figure for `key`, which must name the model version it was drawn from
    (`version_key(view)`) and everything else the figure depends on."""
    return _CACHE.get(key, build)


def version_key(view: Any) -> tuple[str, str, str]:
    """A served version, told apart from another store's version of the same name by its creation time."""
    return view.model, view.version, view.created_at


def clear() -> None:
    _CACHE.clear()

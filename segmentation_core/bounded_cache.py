"""One bounded cache for every program: a thread-safe map that keeps at most `max_entries` values,
the least recently used dropped first.

Standard library only (the scoring server uses it for pinned versions). `get_or_build` builds a missing
value once however many threads ask for it at the same time (the others wait for that build), so an
expensive value (a figure, a loaded model version) is never built twice for one key.
"""
from __future__ import annotations

import threading
from collections import OrderedDict
from typing import Callable, Generic, Hashable, TypeVar

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")


class BoundedCache(Generic[K, V]):
    """A thread-safe, bounded map from keys to values, least recently used dropped first."""

    def __init__(self, max_entries: int) -> None:
        if max_entries < 1:
            raise ValueError(f"max_entries={max_entries} should be >= 1")
        self.max_entries = max_entries
        self._entries: OrderedDict[K, V] = OrderedDict()
        self._building: dict[K, threading.Event] = {}
        self._lock = threading.Lock()

    def get(self, key: K, default: V | None = None) -> V | None:
        """The value of `key` (now the most recently used), or `default`."""
        with self._lock:
            if key not in self._entries:
                return default
            self._entries.move_to_end(key)
            return self._entries[key]

    def put(self, key: K, value: V) -> None:
        """Keeps `value` under `key`, dropping the least recently used entries beyond the bound."""
        with self._lock:
            self._entries[key] = value
            self._entries.move_to_end(key)
            while len(self._entries) > self.max_entries:
                self._entries.popitem(last=False)

    def get_or_build(self, key: K, build: Callable[[], V]) -> V:
        """The value of `key`, built by `build()` when missing: once, while concurrent callers for the same
        key wait for it (a failed build raises in its caller; a waiter then tries itself)."""
        while True:
            with self._lock:
                if key in self._entries:
                    self._entries.move_to_end(key)
                    return self._entries[key]
                pending = self._building.get(key)
                mine = pending is None
                if mine:
                    pending = self._building[key] = threading.Event()
            assert pending is not None
            if not mine:
                pending.wait()
                continue
            try:
                value = build()
                self.put(key, value)
                return value
            finally:
                with self._lock:
                    self._building.pop(key, None)
                pending.set()

    def pop(self, key: K, default: V | None = None) -> V | None:
        """Removes `key`; its value, or `default`."""
        with self._lock:
            return self._entries.pop(key, default)

    def items(self) -> list[tuple[K, V]]:
        """A snapshot of the entries, least recently used first."""
        with self._lock:
            return list(self._entries.items())

    def clear(self) -> None:
        """Drops every entry."""
        with self._lock:
            self._entries.clear()

    def __contains__(self, key: object) -> bool:
        with self._lock:
            return key in self._entries

    def __len__(self) -> int:
        with self._lock:
            return len(self._entries)

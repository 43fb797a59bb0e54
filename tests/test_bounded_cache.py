"""segmentation_core.bounded_cache: the one bounded cache of the dashboard and the scoring service."""
from __future__ import annotations

import threading
import time

import pytest

from segmentation_core.bounded_cache import BoundedCache


def test_keeps_the_most_recently_used_entries():
    cache: BoundedCache[str, int] = BoundedCache(2)
    assert cache.get_or_build("a", lambda: 1) == 1 and cache.get_or_build("a", lambda: 2) == 1
    cache.put("b", 3)
    assert cache.get("a") == 1  # a is now the most recently used: b goes first
    cache.put("c", 4)
    assert [k for k, _ in cache.items()] == ["a", "c"] and "b" not in cache and len(cache) == 2
    assert cache.pop("a") == 1 and cache.get("a", -1) == -1
    cache.clear()
    assert len(cache) == 0
    with pytest.raises(ValueError, match="max_entries=0"):
        BoundedCache(0)


def test_a_value_asked_for_by_many_threads_at_once_is_built_once():
    cache: BoundedCache[str, int] = BoundedCache(4)
    builds: list[int] = []
    start = threading.Barrier(8)

    def build() -> int:
        builds.append(1)
        time.sleep(0.2)  # long enough for every thread to arrive while it runs
        return 42

    results: list[int] = []

    def ask() -> None:
        start.wait()
        results.append(cache.get_or_build("figure", build))

    threads = [threading.Thread(target=ask) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    assert results == [42] * 8 and len(builds) == 1


def test_a_failed_build_raises_in_its_caller_and_the_next_caller_builds_again():
    cache: BoundedCache[str, int] = BoundedCache(2)

    def broken() -> int:
        raise RuntimeError("scoring service down")

    with pytest.raises(RuntimeError, match="down"):
        cache.get_or_build("k", broken)
    assert "k" not in cache and cache.get_or_build("k", lambda: 7) == 7

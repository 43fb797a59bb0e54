"""The soak benchmark's short mode (bench/bench_soak.py --quick): 20 s of mixed load against a real server
(Predict, PredictStream, WatchModel, a publish every 4 s); no call may fail, every watcher sees every version,
and the server's memory does not grow after warm-up. The 10-minute run's figures are in README "Reliability"."""
from __future__ import annotations

import pytest

from bench import bench_soak

pytestmark = pytest.mark.timeout(120)


def test_a_short_soak_of_mixed_load_fails_no_call_and_holds_memory_flat() -> None:
    figures = bench_soak.soak(20.0, publish_every=4.0, predict_threads=1, predict_rate=50.0, stream_threads=1,
                              batch_rate=5.0, stream_batches=20, watchers=3, sample_every=1.0)
    assert figures["failed_total"] == 0, figures["failures"]
    assert len(figures["versions_published"]) >= 4, figures["versions_published"]
    assert figures["calls_ok"]["Predict"] > 300
    assert figures["calls_ok"]["PredictStream batch"] > 30
    assert figures["watchers_saw_every_version"] and figures["watch_reopen_saw_last"]
    assert figures["rss_growth"] < bench_soak.RSS_GROWTH_LIMIT, figures["rss_mb"]
    assert not figures["threads_left_running"]

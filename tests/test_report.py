"""The training report page (training_job.report)."""

from __future__ import annotations

import html
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from training_job.report import segment_colours, write_report

EVIL = "<script>alert('x')</script>"
METRICS = ("inertia", "silhouette", "calinski_harabasz", "davies_bouldin", "gap_statistic")


def _manifest() -> dict:
    """The manifest shape the training job publishes (see the brief), with three segments."""
    names = ["Champions", f"At Risk {EVIL}", "Can't Lose Them"]
    sizes = [1200, 2000, 1138]
    means = [(12.0, 9.0, 4200.0), (140.0, 3.0, 900.0), (250.0, 1.0, 300.0)]
    segments = []
    for i, (name, size, (r, f, m)) in enumerate(zip(names, sizes, means, strict=True)):
        segments.append({
            "id": i, "name": name, "description": f"Recency {r:.0f} days.", "action": f"Do thing {i} {EVIL}",
            "size": size, "share": size / sum(sizes),
            "centroid": {"Recency": r, "Frequency": f, "Monetary": m},
            "stats": {
                feat: {"mean": v, "median": v, "min": 0.0, "max": 3 * v, "std": v / 3}
                for feat, v in (("Recency", r), ("Frequency", f), ("Monetary", m))
            },
            "categories": {"Country": {"United Kingdom": 0.9 - 0.1 * i, f"Evil {EVIL}": 0.1 + 0.1 * i}},
        })
    rows = [
        {"k": k, "inertia": 1000.0 / k, "silhouette": 0.3 + 0.02 * k, "calinski_harabasz": 300.0 + 50 * k,
         "davies_bouldin": 1.2 - 0.05 * k, "gap_statistic": 0.1 * k, "converged": True, "note": "text"}
        for k in range(2, 9)
    ]
    return {
        "model": "customers", "version": "20261122T031500Z-1a2b3c", "created_at": "2026-11-22T03:15:00Z",
        "data": {"path": f"/data/online_retail{EVIL}.csv.gz", "rows_in": 541909, "customers": 4338,
                 "fingerprint": "sha256:abc123"},
        "feature_schema": {
            "numeric": [{"name": "Recency", "transform": "log1p"}, {"name": "Frequency", "transform": "log1p"},
                        {"name": "Monetary", "transform": "log1p"}],
            "categorical": [{"name": "Country", "levels": ["United Kingdom", f"Evil {EVIL}"]}],
        },
        "algorithm": {"name": "kmeans", "params": {"n_init": 10, "random_state": 0}},
        "k_search": {"rule": "silhouette, then elbow", "explanation": f"k=5 has the best silhouette {EVIL}",
                     "chosen_k": 5, "rows": rows},
        "quality": {"silhouette": 0.41, "calinski_harabasz": 812.0, "davies_bouldin": 0.8, "stability": 0.93},
        "cleaning": {"kind": "transactions", "rows_in": 541909, "missing": {"CustomerID": {"count": 135080,
                     "action": f"dropped {EVIL}"}}, "ignored_columns": ["Description"], "transactions": None},
        "segments": segments,
    }


def _sample(n: int = 300) -> pd.DataFrame:
    rng = np.random.default_rng(0)
    seg = rng.integers(0, 3, n)
    return pd.DataFrame({
        "Recency": rng.uniform(0, 300, n), "Frequency": rng.integers(1, 20, n).astype(float),
        "Monetary": rng.uniform(10, 5000, n), "Country": rng.choice(["United Kingdom", "France"], n),
        "segment_id": seg, "map_x": rng.normal(seg, 0.3), "map_y": rng.normal(-seg, 0.3),
    })


@pytest.fixture(scope="module")
def page(tmp_path_factory: pytest.TempPathFactory) -> str:
    path = tmp_path_factory.mktemp("report") / "report.html"
    write_report(_manifest(), _sample(), path)
    return path.read_text(encoding="utf-8")


def test_page_holds_names_metrics_and_chosen_k(page: str) -> None:
    for segment in _manifest()["segments"]:
        assert html.escape(segment["name"]) in page
    for metric in METRICS:
        assert f'"text":"{metric}"' in page, metric  # a chart titled by the metric
    assert "chosen k = 5" in page
    assert "20261122T031500Z-1a2b3c" in page and "silhouette, then elbow" in page


def test_page_embeds_plotly_once_and_loads_nothing(page: str) -> None:
    assert page.count("plotly.js v") == 1  # the bundle's banner: inlined exactly once
    assert "Plotly.newPlot" in page
    assert not re.search(r"<script[^>]+src=", page)


def test_strings_are_escaped(page: str) -> None:
    assert EVIL not in page
    assert "&lt;script&gt;alert(" in page
    # Only plotly's own tags: the bundle, and one per chart (5 metrics + profile + map).
    assert page.count("<script") == 1 + len(METRICS) + 2


def test_cleaning_summary_is_a_table(page: str) -> None:
    assert "<th>missing.CustomerID.count</th><td>135,080</td>" in page
    assert "<th>ignored_columns</th><td>Description</td>" in page


def test_report_without_stats_uses_the_sample(tmp_path: Path) -> None:
    manifest = _manifest()
    for segment in manifest["segments"]:
        del segment["stats"]
    write_report(manifest, _sample(), tmp_path / "report.html")
    assert "Champions" in (tmp_path / "report.html").read_text(encoding="utf-8")


def test_bad_manifest_is_refused(tmp_path: Path) -> None:
    manifest = _manifest()
    del manifest["k_search"]
    with pytest.raises(ValueError, match="k_search"):
        write_report(manifest, _sample(), tmp_path / "report.html")
    assert not (tmp_path / "report.html").exists()


def test_segment_colours_are_distinct_and_stable() -> None:
    assert len(set(segment_colours(40))) == 40
    assert segment_colours(2) == ["#0072B2", "#E69F00"]
    assert segment_colours(3) == segment_colours(12)[:3]
    assert segment_colours(0) == []

"""The training report page (training_job.report)."""

from __future__ import annotations

import base64
import gzip
import html
import json
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from segmentation_core.charts import bundle
from tests.browser_support import browser_missing_reason, chrome, screenshot, wait_until
from training_job.report import segment_colours, write_report

EVIL = "<script>alert('x')</script>"


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
                     "chosen_k": 5, "rows": rows, "structure": "unproven groups"},
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


def _charts(page: str) -> dict[str, dict]:
    """Every chart of the page: its div id -> its figure (the JSON block the page's loader draws)."""
    blocks = re.findall(r'<script type="application/json" data-chart="([^"]+)">(.*?)</script>', page, re.S)
    return {div: json.loads(text) for div, text in blocks}


def _titles(figure: dict) -> list[str]:
    return [a["text"] for a in figure["layout"].get("annotations", [])]


def test_page_holds_names_metrics_and_chosen_k(page: str) -> None:
    for segment in _manifest()["segments"]:
        assert html.escape(segment["name"]) in page
    assert "chosen k = 5" in page
    # What the k rule says they are, in the sentence the Overview and the Model page use (wording.structure_sentence).
    assert ('<b>The segments are</b> <span id="structure">unproven groups: too few customers per group to prove or '
            "rule out gaps between them</span>") in page
    assert "20261122T031500Z-1a2b3c" in page and "silhouette, then elbow" in page


def test_choosing_k_shows_the_elbow_and_silhouette_and_folds_the_rule_s_internals(page: str) -> None:
    charts = _charts(page)
    assert _titles(charts["chart-k-main"]) == ["Inertia (elbow) (lower is better)", "Silhouette (higher is better)"]
    internals = _titles(charts["chart-k-internals"])
    assert internals == ["Calinski-Harabasz (higher is better)", "Davies-Bouldin (lower is better)", "gap statistic"]
    folded = page.split('<details id="k-internals">', 1)[1].split("</details>", 1)[0]
    assert 'data-chart="chart-k-internals"' in folded and 'data-chart="chart-k-main"' not in folded
    chosen = [t for t in charts["chart-k-main"]["data"] if t.get("mode") == "markers"]
    assert [t["x"][0] for t in chosen] == [5, 5]


def test_a_fixed_k_shows_the_segment_sizes_instead_of_single_dots(tmp_path: Path) -> None:
    manifest = _manifest()
    manifest["k_search"]["rows"] = [row for row in manifest["k_search"]["rows"] if row["k"] == 3]
    manifest["k_search"]["chosen_k"] = 3
    write_report(manifest, _sample(), tmp_path / "report.html")
    page = (tmp_path / "report.html").read_text(encoding="utf-8")
    charts = _charts(page)
    assert "chart-k-main" not in charts and 'id="k-internals"' not in page and "k was fixed at 3" in page
    bars = charts["chart-k-sizes"]["data"][0]
    assert bars["x"] == [1200, 2000, 1138] and bars["y"][0] == "Champions"


def test_the_radar_places_each_segment_median_among_all_customers(page: str) -> None:
    radar = _charts(page)["chart-radar"]
    sample = _sample()
    everyone = np.sort(sample["Monetary"].to_numpy())
    for trace in radar["data"]:
        sid = [html.escape(s["name"]) for s in _manifest()["segments"]].index(trace["name"].replace("<br>", " "))
        median = sample.loc[sample["segment_id"] == sid, "Monetary"].median()
        expected = 100 * (np.searchsorted(everyone, median, "left") + np.searchsorted(everyone, median, "right")) / (
            2 * len(everyone))
        assert trace["theta"][:3] == ["Recency", "Frequency", "Monetary"]
        assert trace["r"][2] == pytest.approx(expected) and 0 <= min(trace["r"]) and max(trace["r"]) <= 100


def test_page_carries_the_partial_plotly_bundle_gzipped_once_and_loads_nothing(page: str) -> None:
    packed = re.findall(r'<script type="application/octet-stream" id="plotly-bundle">([^<]+)</script>', page)
    assert len(packed) == 1
    assert gzip.decompress(base64.b64decode(packed[0])) == bundle.BUNDLE.read_bytes()
    assert "Plotly.newPlot" in page and "DecompressionStream" in page
    assert not re.search(r"<script[^>]+src=", page) and "https://" not in page
    assert len(page.encode()) < 1_500_000


def test_strings_are_escaped(page: str) -> None:
    assert EVIL not in page
    assert "&lt;script&gt;alert(" in page
    # Only the page's own scripts: the bundle, the loader, and one JSON block per chart.
    assert page.count("<script") == 2 + len(_charts(page)) and len(_charts(page)) == 5


def test_cleaning_summary_is_a_table_of_labelled_steps(page: str) -> None:
    assert ('<th title="cleaning.missing.CustomerID">Missing values in CustomerID</th>'
            f"<td>135,080 (dropped {html.escape(EVIL)})</td>") in page
    assert '<th title="cleaning.ignored_columns">Columns not used as features</th><td>Description</td>' in page
    assert '<th title="cleaning.rows_in">Rows read</th><td>541,909</td>' in page


def test_every_figure_has_a_human_label_and_its_manifest_key_only_in_the_title(page: str) -> None:
    assert '<th title="data.rows_in">Rows read</th><td>541,909</td>' in page
    assert '<th title="data.customers">Customers modelled</th><td>4,338</td>' in page
    assert '<td title="quality.calinski_harabasz">Calinski-Harabasz</td><td>812</td>' in page
    assert '<td title="quality.davies_bouldin">Davies-Bouldin</td><td>0.8</td>' in page
    # The parameters: a short table (k first), the estimator's own JSON only folded away for an engineer.
    params = page.split('<div id="parameters">', 1)[1].split("</div>", 1)[0]
    assert re.findall(r"<th[^>]*>([^<]*)</th><td>([^<]*)</td>", params) == [("Restarts", "10"), ("Random seed", "0")]
    folded = params.split("<details>", 1)[1]
    assert "<summary>As the estimator takes them</summary>" in folded and "&quot;n_init&quot;: 10" in folded
    # No label a reader sees is a raw key (snake_case or a dotted path); the keys are in titles.
    labels = re.findall(r"<th[^>]*>([^<]*)</th>", page) + re.findall(r'<td title="[^"]*">([^<]*)</td>', page)
    raw = [t for t in labels if re.fullmatch(r"[a-z]+(_[a-z]+)+", t) or re.search(r"\w\.\w+\.", t)]
    assert labels and raw == []
    assert "Data: rows_in" not in page and "calinski_harabasz</" not in page and "missing.CustomerID" not in page.replace(
        'title="cleaning.missing.CustomerID"', "")


NOT_CALIBRATED = ("Confidence not calibrated (100 rows per half, fewer than 30 per segment): the model&#x27;s raw "
                  "posterior, often near 100%; read it as a ranking, not a probability.")
BEFORE_CALIBRATION = ("Confidence not calibrated (trained before the calibration existed): the model&#x27;s raw "
                      "posterior, often near 100%; read it as a ranking, not a probability.")


@pytest.mark.parametrize("confidence, warnings, expected", [
    ({"method": "not fitted: 100 rows per half, fewer than 30 per segment"}, [], [NOT_CALIBRATED]),
    ({"method": "not fitted: 100 rows per half, fewer than 30 per segment"},
     [html.unescape(NOT_CALIBRATED)], [NOT_CALIBRATED]),  # as the job now records it: shown once
    (None, ["few customers"], ["few customers", BEFORE_CALIBRATION]),
    ({"method": "cross-fit agreement with a panel of models, two halves"}, [], []),
], ids=["not-calibrated", "recorded-by-the-job", "before-calibration", "calibrated"])
def test_a_confidence_not_calibrated_is_warned_of_at_the_top(tmp_path: Path, confidence, warnings, expected) -> None:
    manifest = {**_manifest(), "warnings": warnings}
    if confidence is not None:
        manifest["confidence"] = confidence
    write_report(manifest, _sample(), tmp_path / "report.html")
    page = (tmp_path / "report.html").read_text(encoding="utf-8")
    shown = re.findall(r"<li>([^<]*)</li>", page.split('id="warnings"', 1)[1].split("</div>", 1)[0]) \
        if 'id="warnings"' in page else []
    assert shown == expected


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


@pytest.mark.browser
@pytest.mark.slow
@pytest.mark.skipif(browser_missing_reason() is not None, reason=str(browser_missing_reason()))
def test_the_report_draws_every_chart_offline_in_a_browser(tmp_path: Path) -> None:
    path = tmp_path / "report.html"
    write_report(_manifest(), _sample(), path)
    with chrome() as driver:
        driver.get(path.as_uri())  # a file: nothing to fetch, nowhere to fetch it from
        wait_until(lambda: len(driver.find_elements("css selector", ".js-plotly-plot")) == 5, 30,
                   message="the report's five charts")
        assert driver.execute_script("return Plotly.version") == bundle.manifest()["plotly.js"]
        assert driver.execute_script("return performance.getEntriesByType('resource').length") == 0
        driver.find_element("css selector", "details summary").click()  # the rule's internals, unfolded
        width = driver.execute_script("return document.querySelector('#chart-k-internals .main-svg').clientWidth")
        assert width > 500
        screenshot(driver, "report")


def test_the_clv_table_writes_shares_and_the_discount_rate_as_the_overview_does(tmp_path: Path) -> None:
    manifest = _manifest()
    clv = {"mean_clv": 120.5, "total_clv": 144600.0, "share_of_clv": 0.0442, "mean_p_alive": 0.99996,
           "mean_expected_purchases": 1.5, "mean_expected_order_value": 40.0}
    for segment in manifest["segments"]:
        segment["clv"] = clv
    manifest["clv"] = {"bgnbd": {"r": 0.2, "alpha": 4.0, "a": 0.7, "b": 2.0}, "gamma_gamma": {"p": 6, "q": 4, "v": 15},
                       "time_unit": "weeks", "horizon_days": 365, "discount_rate_annual": 0.1,
                       "base": clv | {"share_of_clv": 1.0}}
    write_report(manifest, _sample(), tmp_path / "report.html")
    page = (tmp_path / "report.html").read_text(encoding="utf-8")
    table = page.split("<h2>Customer lifetime value</h2>", 1)[1].split("</table>", 1)[0]
    assert "discounted at 10% a year" in table
    assert "<td>4.4%</td><td>&gt;99.9%</td>" in table and "0.0442" not in table
    assert "<td>1,200</td><td>120.50</td><td>144,600</td>" in table


def test_the_algorithm_is_written_as_people_write_it(page: str) -> None:
    assert '<th title="algorithm.name">Algorithm</th><td>k-means</td>' in page

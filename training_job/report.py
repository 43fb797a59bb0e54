"""The training report: one self-contained HTML page written beside each published model version.

The page embeds plotly.js once, inline, so it opens offline (an air-gapped analyst, an archived artefact).
Every string that comes from the data or the config (segment names, feature names, category levels,
paths, the cleaning summary) is passed through ``html.escape`` before it reaches the page or a chart:
plotly.js renders a subset of HTML in chart text, and it decodes the entities back for display.
"""

from __future__ import annotations

import functools
import html
import json
import logging
import math
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import plotly.graph_objects as go
import plotly.io as pio
from plotly.offline import get_plotlyjs

from segmentation_core.palette import segment_colours

__all__ = ["segment_colours", "write_report"]  # segment_colours re-exported from segmentation_core

logger = logging.getLogger(__name__)

# Scattergl (WebGL) above this many points: SVG scatter gets sluggish with thousands of markers.
_WEBGL_POINTS = 2000
_MAP_HOVER_FEATURES = 6
_CHART_CONFIG = {"displaylogo": False, "responsive": True}
_SEGMENT_KEYS = ("id", "name", "size", "share")
_MANIFEST_KEYS = ("model", "version", "created_at", "data", "feature_schema", "algorithm", "k_search", "segments")


def write_report(manifest: dict, sample: pd.DataFrame, path: Path) -> None:
    """Write the training report for ``manifest`` (and its labelled plot ``sample``) to ``path``."""
    missing = [key for key in _MANIFEST_KEYS if key not in manifest]
    if missing:
        raise ValueError(f"manifest lacks keys {missing}; it has {sorted(manifest)}.")
    for i, seg in enumerate(manifest["segments"]):
        absent = [key for key in _SEGMENT_KEYS if key not in seg]
        if absent:
            raise ValueError(f"manifest segments[{i}] lacks keys {absent}.")
    ids = [int(s["id"]) for s in manifest["segments"]]
    if sorted(ids) != list(range(len(ids))):
        raise ValueError(f"segment ids should be 0..{len(ids) - 1}, got {ids}.")
    absent_columns = [c for c in ("segment_id", "map_x", "map_y") if c not in sample.columns]
    if absent_columns:
        raise ValueError(f"sample lacks columns {absent_columns}; it has {list(sample.columns)}.")
    page = _render(manifest, sample)
    path = Path(path)
    path.write_text(page, encoding="utf-8")
    logger.info("wrote training report %s (%d segments, %d sample rows, %.1f MB)",
                path, len(ids), len(sample), len(page) / 1e6)


# --------------------------------------------------------------------------------------------- page


def _render(manifest: Mapping[str, Any], sample: pd.DataFrame) -> str:
    """The whole page; no input validation."""
    segments = sorted(manifest["segments"], key=lambda s: int(s["id"]))
    colours = segment_colours(len(segments))
    names = [str(s["name"]) for s in segments]
    numeric = [str(f["name"]) for f in manifest["feature_schema"].get("numeric", [])]
    k_search = manifest["k_search"]
    figures = [_k_metric_figure(k_search, metric) for metric in _k_metrics(k_search.get("rows", []))]
    k_divs = "".join(f'<div class="chart">{_figure_div(fig, f"k-{n}")}</div>' for n, fig in enumerate(figures))
    profile = _profile_figure(segments, numeric, sample, colours)
    map_fig = _map_figure(sample, names, numeric, colours)
    title = f"Training report: {manifest['model']} {manifest['version']}"
    return f"""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>{_e(title)}</title>
<style>{_CSS}</style>
<script type="text/javascript">{get_plotlyjs()}</script>
</head>
<body>
<h1>{_e(title)}</h1>
{_header_html(manifest)}
<h2>Choosing k</h2>
<p class="rule"><b>Rule:</b> {_e(k_search.get("rule", ""))} &middot; <b>chosen k = {_e(k_search.get("chosen_k", ""))}</b></p>
<p>{_e(k_search.get("explanation", ""))}</p>
<div class="grid">{k_divs}</div>
<h2>Segments</h2>
<div class="cards">{"".join(_card_html(s, c) for s, c in zip(segments, colours, strict=True))}</div>
<h2>Segment profiles</h2>
<p>Each bar is a segment's mean of a feature, in standard deviations from the mean of all customers (z-score).</p>
{_figure_div(profile, "profile") if profile is not None else "<p>No numeric features.</p>"}
{_value_html(manifest, segments)}
<h2>Map of customers</h2>
<p>A 2-D projection of a sample of {len(sample):,} customers, coloured by segment.</p>
{_figure_div(map_fig, "map")}
<h2>Data cleaning</h2>
{_table_html(_flatten(manifest.get("cleaning") or {}), ("Step", "Value"))}
</body>
</html>
"""


_CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:24px auto;max-width:1200px;color:#222}
h1{font-size:1.6em}h2{margin-top:1.6em;border-bottom:1px solid #ddd;padding-bottom:4px}
table{border-collapse:collapse;font-size:.9em;margin:8px 0}
td,th{border:1px solid #ddd;padding:4px 8px;text-align:left;vertical-align:top}th{background:#f5f5f5}
.grid{display:grid;grid-template-columns:repeat(auto-fill,minmax(360px,1fr));gap:12px}
.cards{display:grid;grid-template-columns:repeat(auto-fill,minmax(280px,1fr));gap:12px}
.card{border:1px solid #ddd;border-left:8px solid var(--c);border-radius:6px;padding:10px 14px}
.card h3{margin:0 0 4px 0}.card .size{color:#555;font-size:.9em}.card .action{background:#f7f7f7;padding:6px}
.meta{display:flex;flex-wrap:wrap;gap:24px}
"""


_CLV_COLUMNS = (("mean_clv", "Mean CLV"), ("total_clv", "Total CLV"), ("share_of_clv", "Share of value"),
                ("mean_p_alive", "Mean P(alive)"), ("mean_expected_purchases", "Expected purchases"),
                ("mean_expected_order_value", "Expected order value"))
_BASKET_LABELS = {"AvgBasketValue": "Average basket value", "AvgItemsPerPurchase": "Items per purchase",
                  "TenureDays": "Tenure (days)", "PurchaseIntervalDays": "Days between purchases"}


def _grid_html(header: Sequence[str], rows: Iterable[Sequence[Any]]) -> str:
    """A table with a header row, every cell escaped (numbers formatted)."""
    head = "".join(f"<th>{_e(h)}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{_e(_fmt(v))}</td>" for v in row) + "</tr>" for row in rows)
    return f"<table><tr>{head}</tr>{body}</table>"


def _value_html(manifest: Mapping[str, Any], segments: Sequence[Mapping[str, Any]]) -> str:
    """Transaction-log models: CLV per segment and basket metrics per segment (empty for other models)."""
    parts = []
    clv = manifest.get("clv")
    if clv:
        bg, gg = clv.get("bgnbd", {}), clv.get("gamma_gamma", {})
        period = f"purchases up to {clv['calibration_end']}" if clv.get("calibration_end") else "the whole log"
        rows = [[s["name"], s.get("size", "")] + [s.get("clv", {}).get(key, "") for key, _ in _CLV_COLUMNS]
                for s in segments]
        base = clv.get("base", {})
        rows.append(["All customers", manifest.get("data", {}).get("customers", "")]
                    + [base.get(key, "") for key, _ in _CLV_COLUMNS])
        parts.append(
            "<h2>Customer lifetime value</h2>"
            f"<p>BG/NBD (r={_fmt(bg.get('r'))}, alpha={_fmt(bg.get('alpha'))}, a={_fmt(bg.get('a'))}, "
            f"b={_fmt(bg.get('b'))}) and Gamma-Gamma (p={_fmt(gg.get('p'))}, q={_fmt(gg.get('q'))}, "
            f"v={_fmt(gg.get('v'))}) fitted on {_e(period)}, times in {_e(clv.get('time_unit'))}; CLV over "
            f"{_e(clv.get('horizon_days'))} days discounted at {_fmt(clv.get('discount_rate_annual'))} a year.</p>"
            + _grid_html(["Segment", "Customers", *[label for _, label in _CLV_COLUMNS]], rows))
    metrics = [m for m in _BASKET_LABELS if any(m in s.get("basket", {}) for s in segments)]
    if metrics:
        rows = [[s["name"]] + [s.get("basket", {}).get(m, {}).get("median", "") for m in metrics] for s in segments]
        base = (manifest.get("base") or {}).get("basket", {})
        rows.append(["All customers"] + [base.get(m, {}).get("median", "") for m in metrics])
        parts.append("<h2>Basket metrics</h2><p>Median per customer, from the transaction log.</p>"
                     + _grid_html(["Segment", *[_BASKET_LABELS[m] for m in metrics]], rows))
    return "".join(parts)


def _e(value: Any) -> str:
    """Escaped text for the page and for chart labels."""
    return html.escape(str(value))


@functools.lru_cache(maxsize=1)
def _white_template() -> dict[str, Any]:
    return pio.templates["plotly_white"].to_plotly_json()


def _figure_div(fig: go.Figure, div_id: str) -> str:
    """A chart as a div, in the plotly_white look; plotly.js itself is in the page head, once. Fixed ids
    keep the page reproducible."""
    # The template goes into the figure's JSON here, once validated: set on each figure through plotly's
    # API it is validated again every time (two thirds of the report's time, ~70 ms a chart).
    figure = fig.to_plotly_json()
    figure["layout"]["template"] = _white_template()
    return pio.to_html(figure, validate=False, full_html=False, include_plotlyjs=False, config=_CHART_CONFIG,
                       default_height="380px", div_id=f"chart-{div_id}")


def _header_html(manifest: Mapping[str, Any]) -> str:
    """Model, version, data and algorithm facts, and the quality metrics."""
    data = manifest.get("data") or {}
    algorithm = manifest.get("algorithm") or {}
    facts = [
        ("Model", manifest["model"]),
        ("Version", manifest["version"]),
        ("Created", manifest["created_at"]),
        *((f"Data: {key}", _fmt(value)) for key, value in data.items()),
        ("Algorithm", algorithm.get("name", "")),
        ("Parameters", json.dumps(algorithm.get("params", {}), sort_keys=True)),
        ("Features", ", ".join(str(f["name"]) for kind in ("numeric", "categorical")
                               for f in manifest["feature_schema"].get(kind, []))),
    ]
    quality = [(key, _fmt(value)) for key, value in (manifest.get("quality") or {}).items()]
    return (f'<div class="meta">{_table_html(facts, ("", ""))}'
            f'{_table_html(quality, ("Quality metric", "Value")) if quality else ""}</div>')


def _table_html(rows: Iterable[tuple[Any, Any]], header: tuple[str, str]) -> str:
    """A two-column table, every cell escaped."""
    body = "".join(f"<tr><th>{_e(a)}</th><td>{_e(b)}</td></tr>" for a, b in rows)
    head = f"<tr><th>{_e(header[0])}</th><th>{_e(header[1])}</th></tr>" if any(header) else ""
    return f"<table>{head}{body}</table>" if body else "<p>Nothing to report.</p>"


def _flatten(value: Any, prefix: str = "") -> list[tuple[str, str]]:
    """Arbitrary JSON as (dotted key, text) rows; empty parts are left out so the table stays small."""
    if isinstance(value, Mapping):
        rows: list[tuple[str, str]] = []
        for key, sub in value.items():
            rows.extend(_flatten(sub, f"{prefix}.{key}" if prefix else str(key)))
        return rows
    if value is None or (isinstance(value, (list, tuple)) and not value):
        return []
    if isinstance(value, (list, tuple)):
        return [(prefix, ", ".join(v if isinstance(v, str) else json.dumps(v) for v in value))]
    return [(prefix, _fmt(value))]


def _fmt(value: Any) -> str:
    """Numbers readable at a glance: 4 significant digits for floats, separators for ints."""
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        return str(value)
    if isinstance(value, (int, np.integer)):
        return f"{int(value):,}"
    return f"{float(value):.4g}"


def _card_html(segment: Mapping[str, Any], colour: str) -> str:
    """One segment card: name, size, share, description, action, dominant category levels."""
    top_levels = []
    for feature, shares in (segment.get("categories") or {}).items():
        if shares:
            level, share = max(shares.items(), key=lambda kv: kv[1])
            top_levels.append(f"{feature}: {level} {float(share):.0%}")
    levels = f'<p class="size">{_e("; ".join(top_levels))}</p>' if top_levels else ""
    return (
        f'<div class="card" style="--c:{_e(colour)}">'
        f"<h3>{_e(segment['name'])}</h3>"
        f'<p class="size">Segment {_e(segment["id"])} &middot; {int(segment["size"]):,} customers &middot; '
        f"{float(segment['share']):.1%}</p>"
        f"<p>{_e(segment.get('description', ''))}</p>"
        f'<p class="action"><b>Action:</b> {_e(segment.get("action", ""))}</p>{levels}</div>'
    )


# ------------------------------------------------------------------------------------------- charts


def _k_metrics(rows: Sequence[Mapping[str, Any]]) -> list[str]:
    """Every numeric per-k key except k itself, in first-seen order."""
    metrics: dict[str, None] = {}
    for row in rows:
        for key, value in row.items():
            if key != "k" and _is_number(value):
                metrics.setdefault(key, None)
    return list(metrics)


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, bool)


def _k_metric_figure(k_search: Mapping[str, Any], metric: str) -> go.Figure:
    """One metric against k, the chosen k marked by a dashed line and a large marker."""
    rows = sorted(k_search.get("rows", []), key=lambda r: r["k"])
    ks = [int(r["k"]) for r in rows]
    ys = [float(r[metric]) if _is_number(r.get(metric)) and math.isfinite(r[metric]) else None for r in rows]
    fig = go.Figure(go.Scatter(x=ks, y=ys, mode="lines+markers", name=_e(metric), line={"color": "#555"}))
    chosen = k_search.get("chosen_k")
    if chosen is not None:
        fig.add_vline(x=chosen, line_dash="dash", line_color="#d62728")
        at = [y for k, y in zip(ks, ys, strict=True) if k == chosen and y is not None]
        if at:
            fig.add_trace(go.Scatter(x=[chosen], y=at, mode="markers", name=_e(f"chosen k = {chosen}"),
                                     marker={"size": 14, "color": "#d62728", "symbol": "diamond"}))
    fig.update_layout(title=_e(metric), xaxis_title="k", showlegend=False, margin={"l": 50, "r": 20, "t": 50, "b": 40})
    fig.update_xaxes(dtick=1)
    return fig


def _base_moments(segments: Sequence[Mapping[str, Any]], feature: str) -> tuple[float, float] | None:
    """Mean and standard deviation of all customers, pooled from per-segment sizes, means and stds."""
    parts = []
    for s in segments:
        stats = (s.get("stats") or {}).get(feature) or {}
        if not (_is_number(stats.get("mean")) and _is_number(stats.get("std"))):
            return None
        parts.append((float(s["size"]), float(stats["mean"]), float(stats["std"])))
    n = sum(p[0] for p in parts)
    if n <= 0:
        return None
    mean = sum(w * m for w, m, _ in parts) / n
    # Law of total variance: within-segment plus between-segment spread.
    var = sum(w * (sd**2 + (m - mean) ** 2) for w, m, sd in parts) / n
    return mean, math.sqrt(var)


def _profile_figure(segments: Sequence[Mapping[str, Any]], numeric: Sequence[str], sample: pd.DataFrame,
                    colours: Sequence[str]) -> go.Figure | None:
    """Grouped bars: per feature, each segment's mean as a z-score against all customers."""
    if not numeric:
        return None
    z = np.full((len(segments), len(numeric)), np.nan)
    for j, feature in enumerate(numeric):
        moments = _base_moments(segments, feature)
        if moments is not None:
            means = [float(s["stats"][feature]["mean"]) for s in segments]
        elif feature in sample.columns:
            # Older manifests without stats: the plot sample is the next best estimate.
            logger.warning("manifest has no stats for %r; the profile chart uses the plot sample", feature)
            col = pd.to_numeric(sample[feature], errors="coerce")
            moments = float(col.mean()), float(col.std(ddof=0))
            by_seg = col.groupby(sample["segment_id"]).mean()
            means = [float(by_seg.get(int(s["id"]), np.nan)) for s in segments]
        else:
            continue
        mean, std = moments
        z[:, j] = [(m - mean) / std if std > 0 else 0.0 for m in means]
    fig = go.Figure()
    labels = [_e(f) for f in numeric]
    for i, s in enumerate(segments):
        fig.add_trace(go.Bar(x=labels, y=z[i], name=_e(s["name"]), marker_color=colours[i],
                             hovertemplate="%{x}: %{y:.2f} sd<extra>" + _e(s["name"]) + "</extra>"))
    fig.update_layout(barmode="group", yaxis_title="z-score of segment mean",
                      legend={"orientation": "h", "y": -0.2}, margin={"l": 60, "r": 20, "t": 20, "b": 40})
    fig.add_hline(y=0, line_color="#888")
    return fig


def _map_figure(sample: pd.DataFrame, names: Sequence[str], numeric: Sequence[str],
                colours: Sequence[str]) -> go.Figure:
    """The 2-D projection, one trace per segment so the legend shows names in segment colours."""
    trace = go.Scattergl if len(sample) > _WEBGL_POINTS else go.Scatter
    hover_features = [f for f in numeric if f in sample.columns][:_MAP_HOVER_FEATURES]
    seg_ids = pd.to_numeric(sample["segment_id"], errors="coerce")
    fig = go.Figure()
    for i, name in enumerate(names):
        part = sample[seg_ids == i]
        hover = [
            "<br>".join([f"<b>{_e(name)}</b>", *(f"{_e(f)}: {_e(_fmt(v))}" for f, v in zip(hover_features, row))])
            for row in part[hover_features].itertuples(index=False)
        ] if hover_features else _e(name)
        fig.add_trace(trace(x=part["map_x"], y=part["map_y"], mode="markers", name=_e(name),
                            marker={"color": colours[i], "size": 6, "opacity": 0.75},
                            hovertext=hover, hoverinfo="text"))
    fig.update_layout(xaxis_title="map x", yaxis_title="map y",
                      margin={"l": 50, "r": 20, "t": 20, "b": 40})
    return fig

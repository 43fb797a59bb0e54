"""The training report: one self-contained HTML page written beside each published model version.

The page opens offline (an air-gapped analyst, an archived artefact): it carries the partial plotly.js
bundle of `segmentation_core.charts.bundle` once, gzipped and base64-encoded (0.9 MB instead of the 4.8 MB
full plotly.js), which the browser inflates with its own DecompressionStream before drawing the charts;
each chart's figure is a JSON block. The charts are `segmentation_core.charts.figures`' builders, the
same functions the dashboard draws with. Every string that comes from the data or the config (segment names, feature names, category levels,
paths, the cleaning summary) is passed through ``html.escape`` before it reaches the page or a chart:
plotly.js renders a subset of HTML in chart text, and it decodes the entities back for display.
"""

from __future__ import annotations

import base64
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
from plotly.utils import PlotlyJSONEncoder

from segmentation_core.charts import bundle, figures
from segmentation_core.clv import dropout_caveat
from segmentation_core.number_format import format_amount, format_count, format_percent
from segmentation_core.palette import segment_colours
from segmentation_core.wording import (LABELS, QUALITY_HINTS, QUALITY_KEYS, algorithm_name, confidence_warning, label,
                                       structure_sentence)

__all__ = ["report_warnings", "segment_colours", "write_report"]  # segment_colours re-exported from segmentation_core

logger = logging.getLogger(__name__)

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
    colours = dict(enumerate(segment_colours(len(segments))))
    names = {int(s["id"]): _e(s["name"]) for s in segments}
    numeric = [str(f["name"]) for f in manifest["feature_schema"].get("numeric", [])]
    safe_sample = sample.rename(columns={f: _e(f) for f in numeric})
    safe_numeric = [_e(f) for f in numeric if f in sample.columns]
    profile = _profile_figure(segments, numeric, sample, colours)
    radar = figures.radar_figure(safe_sample, safe_numeric, names, colours=colours)
    map_fig = figures.segment_map(safe_sample, pd.DataFrame(), "map_x", "map_y", names, colours=colours,
                                  x_title="map x", y_title="map y", max_points=len(sample))
    title = f"Training report: {manifest['model']} {manifest['version']}"
    return f"""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>{_e(title)}</title>
<style>{_CSS}</style>
</head>
<body>
<h1>{_e(title)}</h1>
{_warnings_html(report_warnings(manifest))}
{_header_html(manifest)}
<h2>Choosing k</h2>
{_k_section(manifest["k_search"], segments, names, colours)}
<h2>Segments</h2>
<div class="cards">{"".join(_card_html(s, colours[int(s["id"])]) for s in segments)}</div>
<h2>Segment profiles</h2>
<p>Where each segment's median stands among all customers, feature by feature (percentiles: 50 is the
median customer), and each segment's mean in standard deviations from the mean of all customers (z-score).</p>
<div class="grid2">{_figure_div(radar, "radar", "460px")}{_figure_div(profile, "profile", "460px")}</div>
{_value_html(manifest, segments)}
<h2>Map of customers</h2>
<p>A 2-D projection of a sample of {len(sample):,} customers, coloured by segment.</p>
{_figure_div(map_fig, "map", "520px")}
<h2>Data cleaning</h2>
{_table_html(_cleaning_rows(manifest.get("cleaning") or {}), ("Step", "Value"))}
<script type="application/octet-stream" id="plotly-bundle">{_bundle_base64()}</script>
<script>{_LOADER}</script>
</body>
</html>
"""


def _k_section(k_search: Mapping[str, Any], segments: Sequence[Mapping[str, Any]], names: Mapping[int, str],
               colours: Mapping[int, str]) -> str:
    """The k choice as an analyst reads it: the rule's verdict, the elbow and the silhouette against k,
    and the rule's own statistics folded away. With a fixed k (nothing searched), the segment sizes."""
    table = _k_table(k_search.get("rows", []))
    chosen = k_search.get("chosen_k")
    searched = figures.k_was_searched(table)
    structure = structure_sentence(k_search.get("structure", ""))  # "" in manifests written before it was recorded
    what = f' &middot; <b>The segments are</b> <span id="structure">{_e(structure)}</span>' if structure else ""
    verdict = (f'<p class="rule"><b>Rule:</b> {_e(k_search.get("rule", ""))} &middot; '
               f'<b>{"chosen" if searched else "fixed"} k = {_e(chosen)}</b>'
               f'{what}</p><p>{_e(k_search.get("explanation", ""))}</p>')
    if not searched:
        sizes = figures.segment_sizes_figure({int(s["id"]): int(s["size"]) for s in segments}, names,
                                             colours=colours, title=f"Customers in each of the {len(segments)} segments")
        return (f"{verdict}<p>k was fixed at {_e(chosen)} (no search over k ran): the sizes of the segments "
                f"it gave, and the quality metrics above, are what there is to judge it by.</p>"
                f"{_figure_div(sizes, 'k-sizes', f'{max(250, 45 * len(segments) + 110)}px')}")
    main = figures.k_search_figure(table, chosen, figures.ANALYST_K_METRICS)
    others = [m for m in table.columns if m not in figures.ANALYST_K_METRICS]
    internals = figures.k_search_figure(table, chosen, others)
    rows = math.ceil(len(others) / 2)
    return (f'{verdict}{_figure_div(main, "k-main", "360px")}'
            '<details id="k-internals"><summary>The rule\'s internals: every statistic it computed for each k</summary>'
            f'{_figure_div(internals, "k-internals", f"{330 * rows}px")}</details>')


def _k_table(rows: Sequence[Mapping[str, Any]]) -> pd.DataFrame:
    """The per-k rows as a frame indexed by k, numeric statistics only (flags, lists and text left out)."""
    records = [{key: float(value) for key, value in row.items() if _is_number(value)}
               for row in rows if _is_number(row.get("k"))]
    if not records:
        return pd.DataFrame()
    frame = pd.DataFrame.from_records(records)
    frame["k"] = frame["k"].astype(int)
    return frame.set_index("k").sort_index()


#: Inflates the gzipped plotly.js bundle (the browser's DecompressionStream), runs it, draws every chart.
_LOADER = """
(async function () {
  const config = %s;
  const charts = Array.from(document.querySelectorAll('script[data-chart]'));
  try {
    const packed = document.getElementById('plotly-bundle').textContent.trim();
    const bytes = Uint8Array.from(atob(packed), (c) => c.charCodeAt(0));
    const stream = new Blob([bytes]).stream().pipeThrough(new DecompressionStream('gzip'));
    const code = document.createElement('script');
    code.textContent = await new Response(stream).text();
    document.head.appendChild(code);
  } catch (e) {
    for (const el of charts) {
      document.getElementById(el.dataset.chart).textContent =
        'This browser cannot draw the charts (it needs DecompressionStream: Chrome 80, Firefox 113, Safari 16.4 or later).';
    }
    return;
  }
  for (const el of charts) {
    const figure = JSON.parse(el.textContent);
    Plotly.newPlot(document.getElementById(el.dataset.chart), figure.data, figure.layout, config);
  }
  for (const details of document.querySelectorAll('details')) {  // drawn while folded: resize when opened
    details.addEventListener('toggle', () => {
      for (const div of details.querySelectorAll('.js-plotly-plot')) { Plotly.Plots.resize(div); }
    });
  }
})();
""" % json.dumps(_CHART_CONFIG)


def _bundle_base64() -> str:
    """The partial plotly.js bundle, gzipped, as base64 text."""
    return base64.b64encode(bundle.gzipped()).decode("ascii")


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
.grid2{display:grid;grid-template-columns:repeat(auto-fit,minmax(480px,1fr));gap:12px}
details{margin:8px 0}summary{cursor:pointer;color:#555}
.warnings{background:#fff4e5;border:1px solid #f0b35a;border-radius:6px;padding:8px 14px}
.warnings ul{margin:4px 0}
"""


_CLV_COLUMNS = (("mean_clv", "Mean CLV"), ("total_clv", "Total CLV"), ("share_of_clv", "Share of value"),
                ("mean_p_alive", "Mean P(alive)"), ("mean_expected_purchases", "Expected purchases"),
                ("mean_expected_order_value", "Expected order value"))
#: CLV columns that are shares, written as the Overview writes them (4.4%, 100.0%).
_CLV_PERCENTS = {"share_of_clv", "mean_p_alive"}
_BASKET_LABELS = {"AvgBasketValue": "Average basket value", "AvgItemsPerPurchase": "Items per purchase",
                  "TenureDays": "Tenure (days)", "PurchaseIntervalDays": "Days between purchases"}


def _grid_html(header: Sequence[str], rows: Iterable[Sequence[Any]], titles: Sequence[str] = ()) -> str:
    """A table with a header row, every cell escaped (numbers formatted); ``titles``: each row's first cell's
    title (the manifest's key, for an engineer)."""
    head = "".join(f"<th>{_e(h)}</th>" for h in header)
    lines = []
    for i, row in enumerate(rows):
        title = _title(("", "", titles[i])) if i < len(titles) else ""
        cells = [f"<td{title if j == 0 else ''}>{_e(_fmt(v))}</td>" for j, v in enumerate(row)]
        lines.append("<tr>" + "".join(cells) + "</tr>")
    return f"<table><tr>{head}</tr>{''.join(lines)}</table>"


def _value_html(manifest: Mapping[str, Any], segments: Sequence[Mapping[str, Any]]) -> str:
    """Transaction-log models: CLV per segment and basket metrics per segment (empty for other models)."""
    parts = []
    clv = manifest.get("clv")
    if clv:
        bg, gg = clv.get("bgnbd", {}), clv.get("gamma_gamma", {})
        period = f"purchases up to {clv['calibration_end']}" if clv.get("calibration_end") else "the whole log"
        rows = [[s["name"], s.get("size", "")] + _clv_cells(s.get("clv", {})) for s in segments]
        rows.append(["All customers", manifest.get("data", {}).get("customers", "")] + _clv_cells(clv.get("base", {})))
        parts.append(
            "<h2>Customer lifetime value</h2>"
            f"<p>BG/NBD (r={_fmt(bg.get('r'))}, alpha={_fmt(bg.get('alpha'))}, a={_fmt(bg.get('a'))}, "
            f"b={_fmt(bg.get('b'))}) and Gamma-Gamma (p={_fmt(gg.get('p'))}, q={_fmt(gg.get('q'))}, "
            f"v={_fmt(gg.get('v'))}) fitted on {_e(period)}, times in {_e(clv.get('time_unit'))}; CLV over "
            f"{_e(clv.get('horizon_days'))} days discounted at {_e(_rate(clv.get('discount_rate_annual')))} a year. "
            f"{_e(dropout_caveat(bg))}</p>"
            + _grid_html(["Segment", "Customers", *[label for _, label in _CLV_COLUMNS]], rows))
    metrics = [m for m in _BASKET_LABELS if any(m in s.get("basket", {}) for s in segments)]
    if metrics:
        rows = [[s["name"]] + [s.get("basket", {}).get(m, {}).get("median", "") for m in metrics] for s in segments]
        base = (manifest.get("base") or {}).get("basket", {})
        rows.append(["All customers"] + [base.get(m, {}).get("median", "") for m in metrics])
        parts.append("<h2>Basket metrics</h2><p>Median per customer, from the transaction log.</p>"
                     + _grid_html(["Segment", *[_BASKET_LABELS[m] for m in metrics]], rows))
    return "".join(parts)


def _clv_cells(values: Mapping[str, Any]) -> list[Any]:
    """One row's CLV cells: shares as percentages (format_percent), other numbers left to _fmt."""
    return [format_percent(values[key]) if key in _CLV_PERCENTS and _is_number(values.get(key)) else values.get(key, "")
            for key, _ in _CLV_COLUMNS]


def _rate(value: Any) -> str:
    """A yearly discount rate as the Overview writes it: 10%, 7.5%."""
    if not _is_number(value):
        return str(value)
    return format_percent(value).replace(".0%", "%")


def _e(value: Any) -> str:
    """Escaped text for the page and for chart labels."""
    return html.escape(str(value))


def _figure_div(fig: go.Figure, div_id: str, height: str = "380px") -> str:
    """A chart: its div and its figure as a JSON block that the page's loader draws. Fixed ids keep the
    page reproducible; `</` is escaped so that no text in a figure can end the block."""
    figure = json.dumps(fig.to_plotly_json(), cls=PlotlyJSONEncoder, separators=(",", ":")).replace("</", "<\\/")
    return (f'<div class="chart" id="chart-{div_id}" style="height:{height}"></div>'
            f'<script type="application/json" data-chart="chart-{div_id}">{figure}</script>')


def report_warnings(manifest: Mapping[str, Any]) -> list[str]:
    """What the report warns of: the manifest's ``warnings``, and the confidence's warning when the manifest's
    ``confidence`` says it was not calibrated or the manifest has none (trained before the calibration) and the
    job did not record it."""
    warnings = [str(w) for w in manifest.get("warnings") or []]
    confidence = confidence_warning(manifest.get("confidence"))
    return warnings + [confidence] if confidence and confidence not in warnings else warnings


def _warnings_html(warnings: Sequence[str]) -> str:
    """What the job warned of (the manifest's ``warnings``), above everything else; empty when nothing."""
    if not warnings:
        return ""
    items = "".join(f"<li>{_e(w)}</li>" for w in warnings)
    return f'<div class="warnings" id="warnings"><b>Warnings</b><ul>{items}</ul></div>'


def _header_html(manifest: Mapping[str, Any]) -> str:
    """Model, version, data and algorithm facts, the parameters as a short table, and the quality metrics, each
    under its label (``segmentation_core.wording``; the manifest's key in the label's title)."""
    data = manifest.get("data") or {}
    algorithm = manifest.get("algorithm") or {}
    facts = [
        ("Model", manifest["model"], "model"),
        ("Version", manifest["version"], "version"),
        ("Created", manifest["created_at"], "created_at"),
        *_data_facts(data),
        ("Algorithm", algorithm_name(str(algorithm.get("name", ""))), "algorithm.name"),
        ("Features", ", ".join(str(f["name"]) for kind in ("numeric", "categorical")
                               for f in manifest["feature_schema"].get(kind, [])), "feature_schema"),
    ]
    quality = manifest.get("quality") or {}
    ordered = [*(k for k in QUALITY_KEYS if k in quality), *sorted(k for k in quality if k not in QUALITY_KEYS)]
    quality_table = _grid_html(["Quality metric", "Value", "Reads as"],
                               [(label(k), quality[k], QUALITY_HINTS.get(k, "")) for k in ordered],
                               titles=[f"quality.{k}" for k in ordered]) if ordered else ""
    return (f'<div class="meta">{_table_html(facts, ("", ""))}{_parameters_html(algorithm)}{quality_table}</div>')


def _data_facts(data: Mapping[str, Any]) -> list[tuple[str, str, str]]:
    """The data's facts: the file as the user named it ("File read mall.csv": ``data.name``, the upload's own name,
    not the training service's stored ``ds-....upload.csv``; that path in the label's title), then the counts."""
    facts = []
    for key, value in data.items():
        if key == "name" and "path" in data:
            continue
        if key == "path":
            facts.append((label("path"), str(data.get("name") or value), f"data.path: {value}"))
        else:
            facts.append((label(key), _fmt(value), f"data.{key}"))
    return facts


#: Estimator parameters that say nothing about the model (logging, memory, a fit resumed): left out of the table.
_QUIET_PARAMETERS = {"verbose", "verbose_interval", "copy_x", "warm_start", "compute_labels"}


def _parameters_html(algorithm: Mapping[str, Any]) -> str:
    """The algorithm's parameters as a short labelled table (those that shape the model; unset ones left out),
    the estimator's own names and values folded underneath for an engineer."""
    params = algorithm.get("params") or {}
    order = list(LABELS)  # k first, then restarts, iterations ... (the labels' order); unknown ones last
    keys = sorted((k for k, v in params.items() if k not in _QUIET_PARAMETERS and v is not None),
                  key=lambda k: (order.index(k) if k in order else len(order), k))
    shown = [(label(k), _fmt(params[k]), f"algorithm.params.{k}") for k in keys]
    if not shown:
        return ""
    raw = _e(json.dumps(params, sort_keys=True))
    return (f'<div id="parameters">{_table_html(shown, ("Parameter", "Value"))}'
            f"<details><summary>As the estimator takes them</summary><code>{raw}</code></details></div>")


def _table_html(rows: Iterable[tuple[Any, ...]], header: tuple[str, str]) -> str:
    """A two-column table, every cell escaped; a row's third item, when given, is the label's title (the
    manifest's key, for an engineer)."""
    body = "".join(f"<tr><th{_title(row)}>{_e(row[0])}</th><td>{_e(row[1])}</td></tr>" for row in rows)
    head = f"<tr><th>{_e(header[0])}</th><th>{_e(header[1])}</th></tr>" if any(header) else ""
    return f"<table>{head}{body}</table>" if body else "<p>Nothing to report.</p>"


def _title(row: Sequence[Any]) -> str:
    return f' title="{_e(row[2])}"' if len(row) > 2 and row[2] else ""


def _cleaning_rows(cleaning: Mapping[str, Any]) -> list[tuple[str, str, str]]:
    """What cleaning did, as (label, value, manifest key) rows: a count per step, one row per column for missing,
    implausible and recoded values, the transaction log's steps; empty parts are left out so the table stays
    small."""
    rows: list[tuple[str, str, str]] = []
    for key, value in cleaning.items():
        if key in ("missing", "implausible", "recoded", "transactions"):
            continue
        if value is None or (isinstance(value, (list, tuple)) and not value):
            continue
        rows.append((label(key), _listed(value), f"cleaning.{key}"))
    for column, info in (cleaning.get("missing") or {}).items():
        action = f" ({info['action']})" if info.get("action") else ""
        rows.append((f"Missing values in {column}", f"{_fmt(info.get('count', ''))}{action}", f"cleaning.missing.{column}"))
    for column, info in (cleaning.get("implausible") or {}).items():
        examples = f"; e.g. {_listed(info['examples'])}" if info.get("examples") else ""
        rows.append((f"Implausible values in {column} (set missing)",
                     f"{_fmt(info.get('count', ''))} ({info.get('rule', '')}{examples})", f"cleaning.implausible.{column}"))
    for column, changes in (cleaning.get("recoded") or {}).items():
        rows.append((f"Recoded in {column}", ", ".join(f"{change} ({_fmt(n)})" for change, n in changes.items()),
                     f"cleaning.recoded.{column}"))
    for key, value in (cleaning.get("transactions") or {}).items():
        if isinstance(value, Mapping):
            value = ", ".join(f"{k} {_fmt(v)}" for k, v in value.items())
        if value is None or value == "":
            continue
        rows.append((f"Transaction log: {label(key)[:1].lower()}{label(key)[1:]}", _listed(value),
                     f"cleaning.transactions.{key}"))
    return rows


def _listed(value: Any) -> str:
    """A value for a table cell: a list joined by commas, a number as the dashboard writes it."""
    if isinstance(value, (list, tuple)):
        return ", ".join(v if isinstance(v, str) else _fmt(v) for v in value)
    return _fmt(value)


def _fmt(value: Any) -> str:
    """Numbers as the dashboard writes them (segmentation_core.number_format): ints as counts, floats as
    amounts."""
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        return str(value)
    return format_count(value) if isinstance(value, (int, np.integer)) else format_amount(value)


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


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, bool)


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
                    colours: Mapping[int, str]) -> go.Figure:
    """Per feature, each segment's mean as a z-score against all customers (the manifest's statistics,
    or the plot sample's for older manifests without them)."""
    means = pd.DataFrame(index=[int(s["id"]) for s in segments], dtype=float)
    base: dict[str, tuple[float, float]] = {}
    for feature in numeric:
        moments = _base_moments(segments, feature)
        label = _e(feature)
        if moments is not None:
            means[label] = [float(s["stats"][feature]["mean"]) for s in segments]
        elif feature in sample.columns:
            logger.warning("manifest has no stats for %r; the profile chart uses the plot sample", feature)
            col = pd.to_numeric(sample[feature], errors="coerce")
            moments = float(col.mean()), float(col.std(ddof=0))
            by_seg = col.groupby(sample["segment_id"]).mean()
            means[label] = [float(by_seg.get(int(s["id"]), np.nan)) for s in segments]
        else:
            continue
        base[label] = moments
    names = {int(s["id"]): _e(s["name"]) for s in segments}
    return figures.zscore_profile_figure(means, base, names, colours=colours)

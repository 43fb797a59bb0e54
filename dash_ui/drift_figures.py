"""Figures of the Monitoring page: pure functions from a drift report (the client's typed DriftReport) to
plotly figures, as `segmentation_core.charts.figures` does for the other pages."""
from __future__ import annotations

import math
from datetime import datetime, timezone
from typing import Any, Mapping, Sequence

import numpy as np
import plotly.graph_objects as go

from segmentation_core.charts.figures import _LAYOUT, MODEBAR_PX, empty_figure
from dash_ui.models import segment_colour
from scoring_service.client import DriftReport, FeatureDrift

#: PSI bands: below 0.1 stable, 0.1 to 0.25 moderate, from 0.25 major (segmentation_core.drift).
MODERATE_PSI, MAJOR_PSI = 0.1, 0.25
BAND_COLOURS = {"stable": "#198754", "moderate": "#fd7e14", "major": "#dc3545"}
TRAINING_COLOUR, LIVE_COLOUR = "#6c757d", "#0d6efd"
#: Window slices spanning less than this many seconds are drawn by rows scored, not by time: a batch cut into
#: slices by their row count closes them within milliseconds, and a time axis of those says nothing.
MIN_TIME_SPAN = 60.0
#: The PSI chart's top margin, in pixels: the mode bar, the title (a 15 px line and its 8 px pad, the
#: template's), then the band limits' labels (12 px text) above the plot; inside it they sat on the first bar.
PSI_LABELS_PX = 24
PSI_TOP_PX = MODEBAR_PX + 28 + PSI_LABELS_PX
#: The time charts' legend: on the right, plotly's place, which moves the plot over for it. Below the plot
#: (y=-0.25, horizontal) it sat on the x-axis title ("time (UTC)", "rows scored") whatever the row count.
TIME_LEGEND = dict(orientation="v", x=1.02, xanchor="left", y=1, yanchor="top")


def _finite(value: float) -> bool:
    return value is not None and math.isfinite(value)


def psi_figure(report: DriftReport) -> go.Figure:
    """PSI per feature and for the segment mix, one bar each, coloured by band, with the band limits."""
    rows = [f for f in report.features if _finite(f.psi)]
    if report.segment_mix is not None and _finite(report.segment_mix.psi):
        rows.append(report.segment_mix)
    if not rows:
        return empty_figure("No live rows in the window yet")
    labels = ["segment mix" if f.kind == "segment" else f.feature for f in rows]
    fig = go.Figure(go.Bar(
        x=[f.psi for f in rows], y=labels, orientation="h",
        marker_color=[BAND_COLOURS.get(f.band, TRAINING_COLOUR) for f in rows],
        text=[f"{f.psi:.3f} ({f.band})" for f in rows], textposition="auto",
        hovertemplate="%{y}: PSI %{x:.4f}<extra></extra>", name="PSI",
    ), layout=_LAYOUT)
    top = max(MAJOR_PSI * 1.3, max(f.psi for f in rows) * 1.1)
    for limit, colour, text, where in ((MODERATE_PSI, BAND_COLOURS["moderate"], "0.1", "top left"),
                                       (MAJOR_PSI, BAND_COLOURS["major"], "0.25 major", "top right")):
        fig.add_vline(x=limit, line=dict(color=colour, dash="dash", width=1), annotation_text=text,
                      annotation_position=where, annotation=dict(y=1, yref="paper", yanchor="bottom"))
    fig.update_layout(title_text="Drift per feature (PSI, live against training)", xaxis_title="PSI",
                      xaxis=dict(range=[0, top]), yaxis=dict(autorange="reversed"),
                      height=max(260, 38 * len(rows) + 130), margin=dict(t=PSI_TOP_PX))
    return fig


def histogram_figure(feature: FeatureDrift | None) -> go.Figure:
    """Training and live shares of one feature on the reference's bins, side by side."""
    if feature is None:
        return empty_figure("No feature chosen")
    fig = go.Figure([
        go.Bar(x=list(feature.bins), y=list(feature.training_share), name="training", marker_color=TRAINING_COLOUR,
               hovertemplate="%{x}: %{y:.1%} of training<extra></extra>"),
        go.Bar(x=list(feature.bins), y=list(feature.live_share), name="live", marker_color=LIVE_COLOUR,
               hovertemplate="%{x}: %{y:.1%} of live rows<extra></extra>"),
    ], layout=_LAYOUT)
    psi = f"PSI {feature.psi:.3f} ({feature.band})" if _finite(feature.psi) else "no live rows yet"
    # The legend on the right of the plot (plotly's place), not above it beside the title and the mode bar.
    fig.update_layout(title_text=f"{feature.feature}: live against training, {psi}", barmode="group",
                      yaxis=dict(title="share of rows", tickformat=".0%"), height=360)
    return fig


def segment_mix_over_time(report: DriftReport | None, names: Mapping[int, str],
                          colours: Mapping[int, str] | None = None,
                          training: Sequence[float] = ()) -> go.Figure:
    """Each segment's share of the rows of every window slice, with its training share dotted; before any
    live row, the training mix alone (``training``: shares by segment id)."""
    slices = [s for s in report.slices if s.rows] if report is not None else []
    if not slices:
        if not training:
            return empty_figure("No live rows in the window yet")
        ids = list(range(len(training)))
        fig = go.Figure(go.Bar(
            x=list(training), y=[names.get(i, f"Segment {i}") for i in ids], orientation="h",
            marker_color=[segment_colour(colours, i) for i in ids], text=[f"{v:.1%}" for v in training],
            textposition="auto", hovertemplate="%{y}: %{x:.1%} of training<extra></extra>"), layout=_LAYOUT)
        fig.update_layout(title_text="Segment mix in training (live rows appear here once scored)",
                          xaxis=dict(tickformat=".0%"), yaxis=dict(autorange="reversed"), height=360)
        return fig
    x, xaxis, note = slice_axis(slices)
    fig = go.Figure(layout=_LAYOUT)
    k = len(slices[0].segment_rows)
    for sid in range(k):
        colour = segment_colour(colours, sid)
        name = names.get(sid, f"Segment {sid}")
        fig.add_trace(go.Scatter(x=x, y=[s.segment_rows[sid] / s.rows for s in slices], mode="lines+markers",
                                 name=name, line=dict(color=colour),
                                 hovertemplate=f"{name}: %{{y:.1%}}<extra></extra>"))
        if sid < len(training):
            fig.add_hline(y=training[sid], line=dict(color=colour, dash="dot", width=1))
    fig.update_layout(title_text=f"Segment mix {note} (dotted: training)", yaxis=dict(tickformat=".0%"),
                      xaxis=xaxis, height=360, legend=TIME_LEGEND)
    return fig


def rates_over_time(report: DriftReport) -> go.Figure:
    """Mean confidence and outlier rate of every window slice, with the training baselines dashed."""
    slices = [s for s in report.slices if s.rows]
    if not slices:
        return empty_figure("No live rows in the window yet")
    x, xaxis, note = slice_axis(slices)
    fig = go.Figure([
        go.Scatter(x=x, y=[s.mean_confidence for s in slices], name="mean confidence", mode="lines+markers",
                   line=dict(color=LIVE_COLOUR), hovertemplate="confidence %{y:.3f}<extra></extra>"),
        go.Scatter(x=x, y=[s.outlier_rate for s in slices], name="outlier rate", mode="lines+markers",
                   line=dict(color=BAND_COLOURS["major"]), hovertemplate="outliers %{y:.1%}<extra></extra>"),
    ], layout=_LAYOUT)
    fig.add_hline(y=report.training_mean_confidence, line=dict(color=LIVE_COLOUR, dash="dot", width=1),
                  annotation_text="training confidence", annotation_position="bottom right")
    fig.add_hline(y=report.training_outlier_rate, line=dict(color=BAND_COLOURS["major"], dash="dot", width=1),
                  annotation_text="training outlier rate", annotation_position="top right")
    fig.update_layout(title_text=f"Confidence and outlier rate {note} (dotted: training)",
                      yaxis=dict(range=[0, 1.05]), xaxis=xaxis, height=360, legend=TIME_LEGEND)
    return fig


def slice_axis(slices: Sequence[Any]) -> tuple[list[Any], dict[str, Any], str]:
    """Where each window slice is drawn: at its end time when the slices span at least ``MIN_TIME_SPAN``
    seconds, else at the rows scored up to its end; the x axis's settings and how the title says it."""
    span = slices[-1].end_time - slices[0].start_time
    if span >= MIN_TIME_SPAN:
        return ([datetime.fromtimestamp(s.end_time, tz=timezone.utc) for s in slices],
                dict(title="time (UTC)", hoverformat="%Y-%m-%d %H:%M:%S"), "over time")
    rows = np.cumsum([s.rows for s in slices]).tolist()
    return rows, dict(title="rows scored", tickformat=",d", rangemode="tozero"), f"by rows scored (all within {span:.0f} s)"


def feature_by_name(report: DriftReport, name: str | None) -> FeatureDrift | None:
    """The report's feature called ``name`` (the segment mix for "segment"), or the most drifted one."""
    features: Sequence[FeatureDrift] = report.features
    if name == "segment" and report.segment_mix is not None:
        return report.segment_mix
    for f in features:
        if f.feature == name:
            return f
    finite = [f for f in features if _finite(f.psi)]
    return max(finite, key=lambda f: f.psi) if finite else (features[0] if features else None)

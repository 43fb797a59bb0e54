"""Figures of the workbench pages (Data, Train): pure functions of the training client's typed results."""
from __future__ import annotations

import math
from typing import Sequence

import plotly.graph_objects as go

from segmentation_core.charts.figures import _LAYOUT, empty_figure

#: Width of an axis label's character at the charts' 12 px font, and the room under rotated labels, in pixels.
CHAR_PX, LABEL_MARGIN_PX = 7, 30


def histogram_figure(name: str, edges: Sequence[float], counts: Sequence[int]) -> go.Figure:
    """A column's histogram from the profile's bins."""
    if not counts:
        return empty_figure(f"{name}: no values")
    centres = [(a + b) / 2 for a, b in zip(edges[:-1], edges[1:])]
    widths = [b - a for a, b in zip(edges[:-1], edges[1:])]
    fig = go.Figure(go.Bar(x=centres, y=list(counts), width=widths, marker_color="#0d6efd",
                           hovertemplate="%{x:.4g}: %{y} rows<extra></extra>"))
    fig.update_layout(**_LAYOUT, title=name, height=240, bargap=0.02)
    return fig


def box_figure(name: str, summary: dict[str, float]) -> go.Figure:
    """A box plot drawn from the profile's quartiles, minimum and maximum."""
    if not summary:
        return empty_figure(f"{name}: no values")
    fig = go.Figure(go.Box(name=name, q1=[summary["q25"]], median=[summary["median"]], q3=[summary["q75"]],
                           lowerfence=[summary["min"]], upperfence=[summary["max"]], mean=[summary["mean"]],
                           marker_color="#0d6efd", orientation="h", hoverinfo="x"))
    fig.update_layout(**_LAYOUT, height=150, showlegend=False)
    return fig


def levels_figure(name: str, levels: Sequence[tuple[str, int]], other: int) -> go.Figure:
    """A categorical column's most frequent levels (and the rest as one bar)."""
    if not levels:
        return empty_figure(f"{name}: no values")
    labels = [str(level) for level, _ in levels] + (["(other values)"] if other else [])
    counts = [count for _, count in levels] + ([other] if other else [])
    fig = go.Figure(go.Bar(x=counts[::-1], y=labels[::-1], orientation="h", marker_color="#6f42c1",
                           hovertemplate="%{y}: %{x} rows<extra></extra>"))
    fig.update_layout(**_LAYOUT, title=name, height=max(200, 22 * len(labels) + 80))
    return fig


def correlation_heatmap(columns: Sequence[str], matrix: Sequence[Sequence[float]]) -> go.Figure:
    """The correlation matrix of the numeric columns, -1 (blue) to 1 (red)."""
    if len(columns) < 2:
        return empty_figure("Fewer than two numeric columns: no correlations to show")
    text = [[f"{v:.2f}" if v == v else "" for v in row] for row in matrix]
    fig = go.Figure(go.Heatmap(z=[list(r) for r in matrix], x=list(columns), y=list(columns), zmin=-1, zmax=1,
                               colorscale="RdBu_r", text=text, texttemplate="%{text}" if len(columns) <= 12 else None,
                               hovertemplate="%{y} x %{x}: %{z:.2f}<extra></extra>"))
    # The x labels at 45 degrees take about their length times sin 45 below the plot: that much margin,
    # else plotly cuts long names (29 columns of the marketing campaign's).
    bottom = LABEL_MARGIN_PX + round(CHAR_PX * max(len(str(c)) for c in columns) * math.sin(math.radians(45)))
    size = min(900, 140 + 45 * len(columns)) + bottom
    fig.update_layout(**_LAYOUT, height=size, yaxis=dict(autorange="reversed"))
    fig.update_layout(xaxis=dict(tickangle=-45), margin=dict(b=bottom))
    return fig


def column_figure(column: dict) -> go.Figure:
    """One column of a profile (a ColumnProfile as a dict): its histogram above its box plot for a number,
    its most frequent levels for text."""
    from plotly.subplots import make_subplots

    name = column["name"]
    if not column.get("histogram_counts"):
        return levels_figure(name, [tuple(level) for level in column.get("top_levels", [])],
                             column.get("other_count", 0))
    edges, counts, summary = column["histogram_edges"], column["histogram_counts"], column["summary"]
    fig = make_subplots(rows=2, cols=1, shared_xaxes=True, row_heights=[0.78, 0.22], vertical_spacing=0.04)
    for trace in histogram_figure(name, edges, counts).data:
        fig.add_trace(trace, row=1, col=1)
    for trace in box_figure(name, summary).data:
        fig.add_trace(trace, row=2, col=1)
    fig.update_layout(**_LAYOUT, title=name, height=340, showlegend=False, bargap=0.02)
    fig.update_yaxes(showticklabels=False, row=2, col=1)
    return fig

"""Figure builders of the dashboard and the training report: pure functions from plain data
(DataFrames, mappings) to plotly figures.

No I/O, no Dash, no store here: the dashboard's callbacks fetch through `dash_ui.service` and call these,
the report (`training_job.report`) calls them on the manifest and the plot sample, and the unit tests call
them directly. A segment's colour is given (`colours`: ModelInfo's in the dashboard, the palette's in the
report), looked up by `segmentation_core.charts.colours.segment_colour` only.
"""
from __future__ import annotations

import math
from typing import Any, Callable, Iterable, Mapping, Sequence

import numpy as np
import pandas as pd
import plotly.graph_objects as go
import plotly.io as pio
from plotly.subplots import make_subplots

from segmentation_core.charts.colours import BASE_COLOUR, segment_colour

#: Columns of a statistics frame (`profile_figure`, the dashboard's table): one row per segment and
#: feature, and rows of the whole base with segment id BASE_SEGMENT_ID.
STATS_COLUMNS = ("segment_id", "segment", "feature", "count", "share", "mean", "median", "min", "max", "std")
BASE_SEGMENT_ID = -1
BASE_SEGMENT_NAME = "All customers"

#: Most points a map draws, whatever the sample the service sent.
MAX_MAP_POINTS = 3000
#: k-search metrics drawn, with their titles and which direction is better.
K_METRICS: tuple[tuple[str, str, str], ...] = (
    ("inertia", "Inertia (elbow)", "lower"),
    ("silhouette", "Silhouette", "higher"),
    ("calinski_harabasz", "Calinski-Harabasz", "higher"),
    ("davies_bouldin", "Davies-Bouldin", "lower"),
)
#: The k charts an analyst reads first: the elbow and the silhouette.
ANALYST_K_METRICS = ("inertia", "silhouette")
#: Fewest values of k that make a line worth drawing (a fixed k gives one dot per chart).
MIN_SEARCHED_KS = 3
#: Height of plotly's mode bar (the toolbar at the top right), in pixels. Plotly shows it for good, whatever
#: displayModeBar "hover" says, on a device that reports no hover (a touch screen, headless Chromium), and
#: on hover elsewhere: titles, legends and subplot titles keep below it.
MODEBAR_PX = 30
_MARGIN = dict(l=40, r=20, t=40, b=40)


def _template() -> go.layout.Template:
    """plotly_white with every figure's title below the mode bar, the top margin grown to hold it."""
    template = go.layout.Template(pio.templates["plotly_white"])
    template.layout.title.update(yref="container", y=1, yanchor="top", pad=dict(t=MODEBAR_PX, b=8), automargin=True)
    return template


_LAYOUT = dict(template=_template(), margin=_MARGIN, font=dict(size=12))
#: The profile's small charts, in pixels: a row's plotting height and the gap above the next row (its
#: subplot titles); the top margin holds the figure's title and subtitle.
PROFILE_ROW_PX, PROFILE_GAP_PX, PROFILE_TOP_PX, PROFILE_BOTTOM_PX = 170, 60, 105, 70
#: The k-search charts, in pixels: a row's plotting height and the gap (x-axis title, next row's titles).
K_ROW_PX, K_GAP_PX = 250, 90


def warm_up() -> None:
    """Builds and serializes one figure of every trace type used, so that the first page a user opens
    does not pay for plotly's lazy imports and validators."""
    fig = make_subplots(rows=1, cols=2)
    for trace in (go.Scattergl(x=[0], y=[0]), go.Scatter(x=[0], y=[0]), go.Bar(x=[0], y=[0]), go.Box(y=[0])):
        fig.add_trace(trace, row=1, col=1)
    fig.add_vline(x=0, row=1, col=1)
    polar = go.Figure([go.Scatterpolar(r=[0], theta=["a"]), go.Scatter3d(x=[0], y=[0], z=[0])], layout=_LAYOUT)
    fig.to_json()
    polar.to_json()


def _title(text: str, subtitle: str) -> dict[str, Any]:
    """A one-line title and its subtitle, left-aligned: the mode bar sits top right, and one line (a long
    segment name shortened, `shorten`) cannot grow down over the charts' own titles."""
    return dict(text=text, subtitle=dict(text=subtitle, font=dict(size=12, color="#6c757d")), x=0.01,
                xanchor="left", font=dict(size=15))


def stacked_rows(rows: int, row_px: int, gap_px: int, margin_px: int) -> tuple[int, float]:
    """(figure height, make_subplots' vertical_spacing) for `rows` rows of `row_px` pixels with `gap_px`
    between rows and `margin_px` of top and bottom margins: sizes in pixels, so that any number of rows
    stays readable (a fixed spacing share fails past 1 / (rows - 1) and squeezes the rows long before)."""
    plotting = rows * row_px + (rows - 1) * gap_px
    return plotting + margin_px, gap_px / plotting if rows > 1 else 0.0


def shorten(label: str, width: int) -> str:
    """`label` cut at a word to at most `width` characters, with an ellipsis when cut."""
    label = str(label)
    if len(label) <= width:
        return label
    cut = label[:width - 1].rsplit(" ", 1)[0].rstrip(",;:-")
    return f"{cut}…"


def empty_figure(message: str) -> go.Figure:
    """A blank figure that says why it is blank."""
    fig = go.Figure(layout=_LAYOUT)
    fig.add_annotation(text=message, showarrow=False, font=dict(size=14, color="#6c757d"),
                       xref="paper", yref="paper", x=0.5, y=0.5)
    fig.update_xaxes(visible=False)
    fig.update_yaxes(visible=False)
    return fig


def wrap(label: str, width: int = 24) -> str:
    """`label` broken into lines of about `width` characters (plotly's <br>), for axis labels."""
    lines, line = [], ""
    for word in str(label).split():
        if line and len(line) + 1 + len(word) > width:
            lines.append(line)
            line = word
        else:
            line = f"{line} {word}".strip()
    lines.append(line)
    return "<br>".join(lines)


def bounded_sample(frame: pd.DataFrame, max_points: int = MAX_MAP_POINTS, seed: int = 0) -> pd.DataFrame:
    """At most `max_points` rows of `frame`, the same rows on every call (stratified by segment)."""
    if len(frame) <= max_points:
        return frame
    if "segment_id" not in frame.columns:
        return frame.sample(n=max_points, random_state=seed)
    fraction = max_points / len(frame)
    parts = [
        group.sample(n=max(1, int(math.floor(len(group) * fraction))), random_state=seed)
        for _, group in frame.groupby("segment_id", sort=True)
    ]
    return pd.concat(parts).iloc[:max_points]


def _coords(values: pd.Series) -> np.ndarray:
    """Point coordinates as float32: seven significant digits are plenty for a plot, and the figure
    (base64 typed arrays in plotly's JSON) is half the size."""
    return values.to_numpy(dtype=np.float32, na_value=np.nan)


def _segment_ids(frame: pd.DataFrame, names: Mapping[int, str]) -> list[int]:
    present = set(int(i) for i in frame["segment_id"].unique()) if "segment_id" in frame else set()
    return sorted(present | set(int(i) for i in names))


def _segment_traces(fig: go.Figure, points: pd.DataFrame, centroids: pd.DataFrame, axes: Sequence[str],
                    names: Mapping[int, str], colours: Mapping[int, str] | None, *, trace: type, centroid_trace: type,
                    point_marker: Mapping[str, Any], centroid_marker: Mapping[str, Any],
                    point_extra: Callable[[int], Mapping[str, Any]] = lambda sid: {},
                    centroid_extra: Mapping[str, Any] | None = None) -> None:
    """The segment map's traces, 2-D or 3-D: one `trace` per segment of `points` on the columns `axes`
    (x, y[, z]), then one `centroid_trace` of the centroids when `centroids` has those columns."""
    coords = dict(zip("xyz", axes))
    for sid in _segment_ids(points, names):
        part = points[points["segment_id"] == sid]
        if part.empty:
            continue
        fig.add_trace(trace(
            **{k: _coords(part[col]) for k, col in coords.items()}, mode="markers",
            name=names.get(sid, f"Segment {sid}"), **point_extra(sid),
            marker=dict(color=segment_colour(colours, sid), **point_marker),
        ))
    if not centroids.empty and set(axes) <= set(centroids.columns):
        fig.add_trace(centroid_trace(
            **{k: centroids[col] for k, col in coords.items()}, mode="markers", name="Centroids",
            text=centroids["segment"], **(centroid_extra or {}),
            marker=dict(color=[segment_colour(colours, i) for i in centroids["segment_id"]], **centroid_marker),
        ))


def segment_map(frame: pd.DataFrame, centroids: pd.DataFrame, x: str, y: str, names: Mapping[int, str], *,
                colours: Mapping[int, str] | None = None, x_title: str | None = None, y_title: str | None = None,
                customer: Mapping[str, float] | None = None, customer_label: str = "This customer",
                max_points: int = MAX_MAP_POINTS) -> go.Figure:
    """The sample in 2-D, one WebGL trace per segment, centroids as crosses, optionally one customer.

    `x`/`y` are columns of both frames (a projection such as map_x/map_y, or two features in original
    units); `customer` gives the customer's `x` and `y` values. `colours` maps segment ids to colours
    (`ModelView.segment_colours`, here and in every builder below).
    """
    if frame.empty or x not in frame.columns or y not in frame.columns:
        return empty_figure("No sample to draw")
    fig = go.Figure(layout=_LAYOUT)
    _segment_traces(
        fig, bounded_sample(frame, max_points), centroids, (x, y), names, colours,
        trace=go.Scattergl, centroid_trace=go.Scatter, point_marker=dict(size=6, opacity=0.65),
        point_extra=lambda sid: dict(
            legendgroup=str(sid),
            hovertemplate=f"{names.get(sid, sid)}<br>{x_title or x}=%{{x:.4g}}<br>{y_title or y}=%{{y:.4g}}"
                          "<extra></extra>"),
        centroid_marker=dict(symbol="x", size=16, line=dict(width=2, color="#212529")),
        centroid_extra=dict(hovertemplate="Centroid: %{text}<br>%{x:.4g}, %{y:.4g}<extra></extra>"),
    )
    if customer is not None and x in customer and y in customer:
        fig.add_trace(go.Scatter(
            x=[customer[x]], y=[customer[y]], mode="markers+text", name=customer_label,
            text=[customer_label], textposition="top center",
            marker=dict(symbol="star", size=22, color="#ffd400", line=dict(width=2, color="#212529")),
        ))
    fig.update_layout(xaxis_title=x_title or x, yaxis_title=y_title or y, legend_title_text="Segment",
                      uirevision=f"{x}|{y}")
    return fig


def segment_map_3d(frame: pd.DataFrame, centroids: pd.DataFrame, x: str, y: str, z: str,
                   names: Mapping[int, str], *, colours: Mapping[int, str] | None = None,
                   titles: Sequence[str] | None = None,
                   max_points: int = MAX_MAP_POINTS) -> go.Figure:
    """The sample in 3-D (WebGL), one trace per segment, with centroids."""
    if frame.empty or not {x, y, z} <= set(frame.columns):
        return empty_figure("No 3-D projection to draw")
    titles = list(titles or (x, y, z))
    fig = go.Figure(layout=_LAYOUT)
    _segment_traces(fig, bounded_sample(frame, max_points), centroids, (x, y, z), names, colours,
                    trace=go.Scatter3d, centroid_trace=go.Scatter3d, point_marker=dict(size=3.5, opacity=0.7),
                    centroid_marker=dict(symbol="diamond", size=9, line=dict(width=1, color="#212529")))
    fig.update_layout(scene=dict(xaxis_title=titles[0], yaxis_title=titles[1], zaxis_title=titles[2]),
                      legend_title_text="Segment", uirevision=f"{x}|{y}|{z}")
    return fig


def profile_figure(stats: pd.DataFrame, segment_id: int, features: Sequence[str], names: Mapping[int, str],
                   *, colours: Mapping[int, str] | None = None, columns: int = 3) -> go.Figure:
    """One small chart per feature: the segment's mean against the whole base's, in original units.

    `stats` is `ModelView.stats` (base rows have segment_id -1); whiskers show the median.
    """
    features = [f for f in features if f in set(stats["feature"])]
    if not features:
        return empty_figure("No numeric features")
    rows = math.ceil(len(features) / columns)
    cols = min(columns, len(features))
    height, spacing = stacked_rows(rows, PROFILE_ROW_PX, PROFILE_GAP_PX, PROFILE_TOP_PX + PROFILE_BOTTOM_PX)
    fig = make_subplots(rows=rows, cols=cols, subplot_titles=features, vertical_spacing=spacing)
    seg_name = names.get(segment_id, f"Segment {segment_id}")
    for i, feature in enumerate(features):
        r, c = i // cols + 1, i % cols + 1
        for sid, label, colour in ((segment_id, seg_name, segment_colour(colours, segment_id)),
                                   (BASE_SEGMENT_ID, BASE_SEGMENT_NAME, BASE_COLOUR)):
            row = stats[(stats["segment_id"] == sid) & (stats["feature"] == feature)]
            if row.empty:
                continue
            rec = row.iloc[0]
            fig.add_trace(go.Bar(
                x=[label], y=[rec["mean"]], name=wrap(label, 32), legendgroup=label, showlegend=(i == 0),
                marker_color=colour, opacity=1.0 if sid == segment_id else 0.45,
                customdata=[[rec["median"], rec["min"], rec["max"]]],
                hovertemplate=f"{label}<br>{feature}<br>mean %{{y:.4g}}<br>median %{{customdata[0]:.4g}}"
                              "<br>range %{customdata[1]:.4g} to %{customdata[2]:.4g}<extra></extra>",
            ), row=r, col=c)
    fig.update_layout(**_LAYOUT, barmode="group", height=height)
    # The title starts at the left, on one line, so that a long segment name neither runs into the mode bar
    # (top right) nor over the charts' own titles. The legend sits a fixed 12 px below the last row.
    fig.update_layout(title=_title(f"{shorten(seg_name, 34)} vs all customers", "means in original units"),
                      margin=dict(t=PROFILE_TOP_PX, b=PROFILE_BOTTOM_PX),
                      legend=dict(orientation="h", yanchor="top",
                                  y=-12 / (height - PROFILE_TOP_PX - PROFILE_BOTTOM_PX)))
    fig.update_xaxes(showticklabels=False)
    return fig


#: The statistics a radar shows per feature when there are fewer than three features (a radar needs
#: three axes to say anything): the segment's quartiles; else its median alone.
_FEW_FEATURE_STATS = (("p25", 0.25), ("median", 0.5), ("p75", 0.75))


def radar_axes(features: Sequence[str]) -> list[tuple[str, str, float]]:
    """(axis label, feature, quantile of the segment) of the radar: each feature's median; with fewer
    than three features, its quartiles and median."""
    if len(features) >= 3:
        return [(f, f, 0.5) for f in features]
    return [(f"{f} ({stat})", f, q) for f in features for stat, q in _FEW_FEATURE_STATS]


def percentile_of(values: np.ndarray, value: float) -> float:
    """Where `value` stands among `values` (sorted, no NaN), in percent: the share below it plus half the
    share equal to it (the mid-rank percentile: the median of the values is 50)."""
    if not len(values) or not math.isfinite(value):
        return math.nan
    below = np.searchsorted(values, value, side="left")
    upto = np.searchsorted(values, value, side="right")
    return 100.0 * (below + upto) / (2 * len(values))


def radar_figure(sample: pd.DataFrame, features: Sequence[str], names: Mapping[int, str], *,
                 colours: Mapping[int, str] | None = None, highlight: int | None = None) -> go.Figure:
    """Each segment on a radar: on every axis, where the segment's median stands among all customers of
    `sample` (a percentile, 0-100).

    Percentiles, not the training range: on skewed features (spend, frequency) a few extreme customers
    stretch [min, max] so far that every segment's mean sits at the centre. A percentile spreads the
    segments over the axis whatever the feature's shape and units; the hover gives the median itself.
    """
    features = [f for f in features if f in sample.columns]
    axes = radar_axes(features)
    if len(axes) < 3 or sample.empty or "segment_id" not in sample.columns:
        return empty_figure("A radar needs numeric features and the plot sample")
    columns = {f: pd.to_numeric(sample[f], errors="coerce") for f in features}
    everyone = {f: np.sort(col.dropna().to_numpy(dtype=float)) for f, col in columns.items()}
    fig = go.Figure(layout=_LAYOUT)
    theta = [wrap(label, 16) for label, _, _ in axes]
    theta.append(theta[0])
    for sid in sorted(names):
        members = sample["segment_id"] == sid
        if not members.any():
            continue
        raw = [float(columns[f][members].quantile(q)) for _, f, q in axes]
        pct = [percentile_of(everyone[f], value) for (_, f, _), value in zip(axes, raw)]
        dim = highlight is not None and sid != highlight
        fig.add_trace(go.Scatterpolar(
            r=pct + pct[:1], theta=theta, name=wrap(names[sid], 32), fill="toself",
            line=dict(color=segment_colour(colours, sid), width=3 if sid == highlight else 1.5),
            opacity=0.25 if dim else 0.8, customdata=raw + raw[:1],
            hovertemplate=f"{names[sid]}<br>%{{theta}}: %{{customdata:.4g}}<br>percentile %{{r:.0f}} of all "
                          "customers<extra></extra>",
        ))
    fig.update_layout(polar=dict(radialaxis=dict(range=[0, 100], tickvals=[0, 25, 50, 75, 100],
                                                 ticktext=["0", "p25", "p50", "p75", "p100"], angle=90,
                                                 tickfont=dict(size=10)),
                                 domain=dict(y=[0.05, 1])),
                      legend=dict(orientation="h", y=-0.05, x=0.5, xanchor="center", yanchor="top", font=dict(size=11)),
                      margin=dict(l=70, r=70, t=90, b=20), height=520,
                      title=_title("Medians as percentiles", "of all customers (50: the median customer)"))
    return fig


def distribution_figure(frame: pd.DataFrame, feature: str, names: Mapping[int, str], *,
                        colours: Mapping[int, str] | None = None, categorical: bool = False) -> go.Figure:
    """The feature's distribution in each segment: box plots for numbers, level shares for categories."""
    if frame.empty or feature not in frame.columns:
        return empty_figure(f"No sample values for {feature}")
    fig = go.Figure(layout=_LAYOUT)
    ids = _segment_ids(frame, names)
    if categorical:
        shares = (frame.groupby("segment_id")[feature].value_counts(normalize=True)
                  .rename("share").reset_index())
        for level in shares[feature].drop_duplicates():
            part = shares[shares[feature] == level].set_index("segment_id")["share"]
            fig.add_trace(go.Bar(x=[wrap(names.get(i, str(i))) for i in ids], y=[float(part.get(i, 0.0)) for i in ids],
                                 name=str(level)))
        fig.update_layout(barmode="stack", yaxis_tickformat=".0%", yaxis_title="share of segment",
                          legend_title_text=feature)
    else:
        for sid in ids:
            values = frame.loc[frame["segment_id"] == sid, feature]
            if values.empty:
                continue
            fig.add_trace(go.Box(y=values, name=wrap(names.get(sid, f"Segment {sid}")),
                                 marker_color=segment_colour(colours, sid), boxmean=True, boxpoints=False))
        fig.update_layout(yaxis_title=feature, showlegend=False)
    fig.update_layout(title_text=f"{feature} by segment")
    return fig


def k_was_searched(k_search: pd.DataFrame) -> bool:
    """Whether the k-search table holds enough values of k for its charts to show a choice (with a fixed
    k it holds one: single dots)."""
    return k_search.index.nunique() >= MIN_SEARCHED_KS


def k_search_figure(k_search: pd.DataFrame, chosen_k: int, metrics: Sequence[str] | None = None) -> go.Figure:
    """The k-search metrics against k (`k_search` indexed by k), the chosen k marked on each: `metrics`
    (default: the elbow, silhouette, CH and DB charts, those the table has), any numeric column allowed."""
    known = {m: (title, better) for m, title, better in K_METRICS}
    wanted = list(metrics) if metrics is not None else [m for m, _, _ in K_METRICS]
    drawn = [(m, *known.get(m, (m.replace("_", " "), ""))) for m in wanted if m in k_search.columns
             and pd.api.types.is_numeric_dtype(k_search[m]) and not pd.api.types.is_bool_dtype(k_search[m])]
    if k_search.empty or not drawn:
        return empty_figure("The model carries no k-search table")
    cols = 2 if len(drawn) > 1 else 1
    rows = math.ceil(len(drawn) / cols)
    titles = [f"{title} ({better} is better)" if better else title for _, title, better in drawn]
    top = MODEBAR_PX + 30  # the first row's subplot titles, below the mode bar
    height, spacing = stacked_rows(rows, K_ROW_PX, K_GAP_PX, top + _MARGIN["b"])
    fig = make_subplots(rows=rows, cols=cols, subplot_titles=titles, vertical_spacing=spacing)
    ks = list(k_search.index)
    for i, (metric, title, _) in enumerate(drawn):
        r, c = i // cols + 1, i % cols + 1
        values = k_search[metric]
        fig.add_trace(go.Scatter(x=ks, y=values, mode="lines+markers", name=title, showlegend=False,
                                 line=dict(color="#0d6efd")), row=r, col=c)
        if chosen_k in k_search.index:
            fig.add_trace(go.Scatter(x=[chosen_k], y=[values.loc[chosen_k]], mode="markers", showlegend=(i == 0),
                                     name=f"chosen k = {chosen_k}",
                                     marker=dict(size=14, color="#dc3545", symbol="diamond")), row=r, col=c)
        fig.add_vline(x=chosen_k, line=dict(color="#dc3545", dash="dash", width=1), row=r, col=c)
        fig.update_xaxes(title_text="k", dtick=1, row=r, col=c)
    fig.update_layout(**_LAYOUT, height=height)
    fig.update_layout(legend=dict(orientation="h", y=-0.12, x=0.5, xanchor="center"), margin=dict(t=top))
    return fig


def segment_mix_figure(segment_ids: Iterable[int], names: Mapping[int, str], *,
                       colours: Mapping[int, str] | None = None, title: str = "Segment mix") -> go.Figure:
    """Customers per segment (rows without a segment, id -1, count as 'Error')."""
    counts = pd.Series(list(segment_ids), dtype="int64").value_counts()
    return segment_sizes_figure({int(i): int(n) for i, n in counts.items()}, names, colours=colours, title=title)


def segment_sizes_figure(sizes: Mapping[int, int], names: Mapping[int, str], *,
                         colours: Mapping[int, str] | None = None, title: str = "Segment sizes") -> go.Figure:
    """Horizontal bars of customers per segment id (-1 last, as 'Error'), with counts and shares."""
    ids = sorted((i for i in sizes if sizes[i] > 0), key=lambda i: (i < 0, i))
    if not ids:
        return empty_figure("No scored rows")
    total = sum(int(sizes[i]) for i in ids)
    labels = [wrap(names.get(int(i), "Error" if i < 0 else f"Segment {i}"), 32) for i in ids]
    values = [int(sizes[i]) for i in ids]
    fig = go.Figure(go.Bar(
        x=values, y=labels, orientation="h", marker_color=[segment_colour(colours, i) for i in ids],
        text=[f"{v:,} ({v / total:.1%})" for v in values], textposition="auto",
        hovertemplate="%{y}: %{x:,}<extra></extra>",
    ), layout=_LAYOUT)
    fig.update_layout(title_text=title, xaxis_title="customers", yaxis=dict(autorange="reversed", automargin=True),
                      height=max(250, 45 * len(ids) + 110))
    return fig


def zscore_profile_figure(means: pd.DataFrame, base: Mapping[str, tuple[float, float]], names: Mapping[int, str], *,
                          colours: Mapping[int, str] | None = None) -> go.Figure:
    """Grouped bars: per feature, each segment's mean as a z-score against all customers.

    `means` has one row per segment id and one column per feature; `base` gives each feature's mean and
    standard deviation over all customers.
    """
    features = [f for f in means.columns if f in base]
    if not features or means.empty:
        return empty_figure("No numeric features")
    fig = go.Figure(layout=_LAYOUT)
    for sid in means.index:
        z = [(float(means.loc[sid, f]) - base[f][0]) / base[f][1] if base[f][1] > 0 else 0.0 for f in features]
        name = names.get(int(sid), f"Segment {sid}")
        fig.add_trace(go.Bar(x=features, y=z, name=wrap(name, 32), marker_color=segment_colour(colours, int(sid)),
                             hovertemplate="%{x}: %{y:.2f} sd<extra>" + name + "</extra>"))
    fig.update_layout(barmode="group", yaxis_title="z-score of segment mean",
                      legend=dict(orientation="h", y=-0.2), margin=dict(l=60, r=20, t=20, b=40))
    fig.add_hline(y=0, line_color="#888")
    return fig

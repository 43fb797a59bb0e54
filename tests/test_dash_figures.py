"""Unit tests of the dashboard's pure figure builders and segment colours (no server, no browser)."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from segmentation_core.charts import figures
from dash_ui.models import BASE_COLOUR, NO_SEGMENT_COLOUR, fallback_colour, segment_colour

NAMES = {0: "Careful Spenders", 1: "Target Group", 2: "Standard Customers"}
#: The service's colours (ModelView.segment_colours): not the fallback's, so that a figure ignoring them shows.
COLOURS = {0: "#0072B2", 1: "#E69F00", 2: "hsl(275, 65%, 45%)"}
FEATURES = ["Age", "Annual Income (k$)", "Spending Score (1-100)"]


def _sample(rows: int = 300, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    ids = np.arange(rows) % 3
    frame = pd.DataFrame({f: rng.normal(40 + 10 * ids, 5) for f in FEATURES})
    frame["Gender"] = np.where(ids == 0, "Female", np.where(rng.random(rows) < 0.5, "Male", "Female"))
    frame["map_x"], frame["map_y"], frame["map_z"] = ids * 2.0, -ids * 1.0, ids * 0.5
    frame["segment_id"] = ids
    frame["segment"] = frame["segment_id"].map(NAMES)
    return frame


def _centroids() -> pd.DataFrame:
    return pd.DataFrame({"segment_id": [0, 1, 2], "segment": list(NAMES.values()),
                         "map_x": [0.0, 2.0, 4.0], "map_y": [0.0, -1.0, -2.0], "map_z": [0.0, 0.5, 1.0],
                         **{f: [40.0, 50.0, 60.0] for f in FEATURES}})


def _stats(features: list[str] = FEATURES) -> pd.DataFrame:
    rows = []
    for sid, name in [*NAMES.items(), (-1, "All customers")]:
        for j, f in enumerate(features):
            mean = 50.0 if sid < 0 else 40.0 + 10 * sid + j
            rows.append(dict(segment_id=sid, segment=name, feature=f, count=100, share=1 / 3, mean=mean,
                             median=mean - 1, min=10.0, max=90.0, std=5.0))
    return pd.DataFrame(rows)


def test_a_segment_has_the_service_colour_else_the_fallback_and_errors_are_grey():
    assert segment_colour(COLOURS, 2) == "hsl(275, 65%, 45%)"
    assert segment_colour(COLOURS, np.int64(1)) == "#E69F00"
    assert segment_colour(COLOURS, 7) == fallback_colour(7)  # an id the model did not list
    assert segment_colour(None, 0) == fallback_colour(0) and segment_colour({0: ""}, 0) == fallback_colour(0)
    assert segment_colour(COLOURS, -1) == NO_SEGMENT_COLOUR
    assert len({fallback_colour(i) for i in range(8)}) == 8 and not set(COLOURS.values()) & {
        fallback_colour(i) for i in range(16)}


def test_segment_map_one_webgl_trace_per_segment_coloured_by_palette_with_centroids():
    fig = figures.segment_map(_sample(), _centroids(), "map_x", "map_y", NAMES, colours=COLOURS)
    points = [t for t in fig.data if t.type == "scattergl"]
    assert [t.name for t in points] == list(NAMES.values())
    assert [t.marker.color for t in points] == list(COLOURS.values())
    assert sum(len(t.x) for t in points) == 300
    centroids = [t for t in fig.data if t.name == "Centroids"]
    assert len(centroids) == 1 and list(centroids[0].x) == [0.0, 2.0, 4.0]
    assert list(centroids[0].marker.color) == list(COLOURS.values())


def test_segment_map_draws_a_bounded_sample_stratified_by_segment():
    frame = _sample(30_000)
    fig = figures.segment_map(frame, _centroids(), "map_x", "map_y", NAMES, max_points=3000)
    counts = [len(t.x) for t in fig.data if t.type == "scattergl"]
    assert sum(counts) == 3000
    assert counts == [1000, 1000, 1000]  # every segment keeps its share
    again = figures.segment_map(frame, _centroids(), "map_x", "map_y", NAMES, max_points=3000)
    assert list(again.data[0].x) == list(fig.data[0].x)  # the same points on every call


def test_segment_map_places_the_customer_in_original_units():
    customer = {"Annual Income (k$)": 70.0, "Spending Score (1-100)": 81.0}
    fig = figures.segment_map(_sample(), _centroids(), "Annual Income (k$)", "Spending Score (1-100)", NAMES,
                              customer=customer, customer_label="This customer (Target Group)")
    star = fig.data[-1]
    assert star.name == "This customer (Target Group)"
    assert (star.x[0], star.y[0]) == (70.0, 81.0)
    assert star.marker.symbol == "star"
    assert fig.layout.xaxis.title.text == "Annual Income (k$)"


def test_segment_map_without_the_columns_says_so():
    fig = figures.segment_map(pd.DataFrame(), _centroids(), "map_x", "map_y", NAMES)
    assert fig.data == () and "No sample" in fig.layout.annotations[0].text


def test_segment_map_3d_uses_webgl_3d_traces_with_centroids():
    fig = figures.segment_map_3d(_sample(), _centroids(), "map_x", "map_y", "map_z", NAMES, colours=COLOURS,
                                 titles=("c1", "c2", "c3"))
    assert {t.type for t in fig.data} == {"scatter3d"}
    assert [t.name for t in fig.data] == [*NAMES.values(), "Centroids"]
    assert [t.marker.color for t in fig.data[:3]] == list(COLOURS.values())
    assert list(fig.data[3].marker.color) == list(COLOURS.values())
    assert fig.layout.scene.zaxis.title.text == "c3"


def test_profile_compares_segment_and_base_means_per_feature_in_original_units():
    fig = figures.profile_figure(_stats(), 1, FEATURES, NAMES, colours=COLOURS)
    bars = [t for t in fig.data if t.type == "bar"]
    assert len(bars) == 2 * len(FEATURES)
    seg = [t for t in bars if t.name == "Target Group"]
    base = [t for t in bars if t.name == "All customers"]
    assert [t.y[0] for t in seg] == [50.0, 51.0, 52.0]
    assert [t.y[0] for t in base] == [50.0, 50.0, 50.0]
    assert seg[0].marker.color == COLOURS[1] and base[0].marker.color == BASE_COLOUR
    assert [a.text for a in fig.layout.annotations] == FEATURES


@pytest.mark.parametrize("features, axes", [(FEATURES, 3), (FEATURES[1:], 6)], ids=["three-features", "two-features"])
def test_radar_places_segment_medians_as_percentiles_and_highlights_one_segment(features, axes):
    sample = _sample()
    fig = figures.radar_figure(sample, features, NAMES, colours=COLOURS, highlight=2)
    assert [t.name for t in fig.data] == list(NAMES.values())
    assert [t.line.color for t in fig.data] == list(COLOURS.values())
    target = fig.data[1]
    assert len(target.r) == axes + 1  # closed polygon
    everyone = np.sort(sample[features[0]].to_numpy())
    value = sample.loc[sample["segment_id"] == 1, features[0]].quantile(0.5 if axes == 3 else 0.25)
    below, upto = np.searchsorted(everyone, value, "left"), np.searchsorted(everyone, value, "right")
    assert target.r[0] == pytest.approx(100 * (below + upto) / (2 * len(everyone)))
    assert target.customdata[0] == pytest.approx(value)  # the hover says the value itself
    assert fig.data[2].line.width > fig.data[0].line.width


def test_radar_spreads_segments_of_a_skewed_feature_that_the_range_would_crush():
    """RFM-like: spend is log-normal with a few huge customers; scaled to [min, max] every segment sat
    within a few percent of the centre, as percentiles they span most of the axis."""
    rng = np.random.default_rng(3)
    ids = np.repeat([0, 1, 2], 400)
    spend = rng.lognormal(mean=3 + ids, sigma=0.6)
    spend[:3] = 1e6  # three outliers stretch the range
    frame = pd.DataFrame({"Recency": rng.exponential(30 * (3 - ids)), "Frequency": rng.poisson(1 + 3 * ids) + 1.0,
                          "Monetary": spend, "segment_id": ids})
    fig = figures.radar_figure(frame, ["Recency", "Frequency", "Monetary"], NAMES)
    monetary = [t.r[2] for t in fig.data]
    medians = [frame.loc[ids == i, "Monetary"].median() for i in range(3)]
    crushed = [(m - spend.min()) / (spend.max() - spend.min()) for m in medians]
    assert max(crushed) < 0.01
    assert monetary == sorted(monetary) and monetary[2] - monetary[0] > 60


def test_distribution_numeric_box_per_segment_and_categorical_shares():
    sample = _sample()
    fig = figures.distribution_figure(sample, "Age", NAMES, colours=COLOURS)
    assert [t.type for t in fig.data] == ["box"] * 3
    assert [t.marker.color for t in fig.data] == list(COLOURS.values())
    cat = figures.distribution_figure(sample, "Gender", NAMES, categorical=True)
    female = next(t for t in cat.data if t.name == "Female")
    assert female.y[0] == pytest.approx(1.0)  # segment 0 is all female in the sample
    totals = np.sum([t.y for t in cat.data], axis=0)
    assert totals == pytest.approx([1.0, 1.0, 1.0])


def _row_heights_and_gaps(fig) -> tuple[set[int], set[int]]:
    """The plotting heights of a figure's subplot rows and the gaps between rows, in whole pixels."""
    plotting = fig.layout.height - fig.layout.margin.t - fig.layout.margin.b
    domains = sorted({tuple(axis.domain) for axis in fig.select_yaxes()}, reverse=True)
    heights = {round((top - bottom) * plotting) for bottom, top in domains}
    gaps = {round((below_top - bottom) * plotting) for (bottom, _), (_, below_top) in zip(domains, domains[1:])}
    return heights, {-g for g in gaps}


@pytest.mark.parametrize("count", [1, 5, 19, 23, 40])
def test_profile_draws_any_number_of_features_in_rows_of_the_same_size(count):
    # A fixed vertical_spacing of 0.18 failed from 8 rows (19 features): plotly allows at most 1 / (rows - 1).
    features = [f"Feature {i}" for i in range(count)]
    fig = figures.profile_figure(_stats(features), 1, features, NAMES, colours=COLOURS)
    fig.to_json()  # plotly's validators have run on every property
    assert len(fig.data) == 2 * count and [a.text for a in fig.layout.annotations[:count]] == features
    heights, gaps = _row_heights_and_gaps(fig)
    assert heights == {figures.PROFILE_ROW_PX}
    assert gaps == ({figures.PROFILE_GAP_PX} if count > 3 else set())
    assert fig.layout.height == figures.stacked_rows(-(-count // 3), figures.PROFILE_ROW_PX, figures.PROFILE_GAP_PX,
                                                     figures.PROFILE_TOP_PX + figures.PROFILE_BOTTOM_PX)[0]


def test_stacked_rows_keep_pixel_sizes_within_plotlys_spacing_limit():
    assert figures.stacked_rows(1, 100, 50, 80) == (180, 0.0)
    assert figures.stacked_rows(3, 100, 50, 80) == (480, 0.125)
    for rows in range(2, 60):
        _, spacing = figures.stacked_rows(rows, 100, 50, 80)
        assert spacing < 1 / (rows - 1)


def test_k_search_marks_the_chosen_k_on_every_metric():
    table = pd.DataFrame({"k": [2, 3, 4, 5], "inertia": [400.0, 250.0, 180.0, 160.0],
                          "silhouette": [0.30, 0.45, 0.55, 0.41], "calinski_harabasz": [80.0, 120.0, 150.0, 140.0],
                          "davies_bouldin": [1.1, 0.9, 0.6, 0.8], "stability": [0.9, 0.9, 0.95, 0.8]}).set_index("k")
    assert figures.k_was_searched(table) and not figures.k_was_searched(table.loc[[4]])
    analyst = figures.k_search_figure(table, 4, figures.ANALYST_K_METRICS)
    assert [a.text for a in analyst.layout.annotations] == ["Inertia (elbow) (lower is better)",
                                                            "Silhouette (higher is better)"]
    internals = figures.k_search_figure(table, 4, ["calinski_harabasz", "davies_bouldin", "stability"])
    assert [a.text for a in internals.layout.annotations][-1] == "stability"
    fig = figures.k_search_figure(table, 4)
    chosen = [t for t in fig.data if t.mode == "markers"]
    assert len(chosen) == 4
    assert [t.y[0] for t in chosen] == [180.0, 0.55, 150.0, 0.6]
    assert all(t.x[0] == 4 for t in chosen)
    assert len([s for s in fig.layout.shapes if s.x0 == 4]) == 4  # the dashed line on each chart
    assert figures.k_search_figure(table.iloc[0:0], 4).layout.annotations[0].text.startswith("The model carries")
    for extra in range(6):  # any number of metric rows: the same row heights, never plotly's spacing error
        table[f"metric_{extra}"] = np.arange(4.0)
        heights, _ = _row_heights_and_gaps(figures.k_search_figure(table, 4, list(table.columns)))
        assert heights == {figures.K_ROW_PX}


def test_segment_mix_counts_rows_per_segment_and_errors_last():
    fig = figures.segment_mix_figure([1, 0, 1, -1, 1], NAMES, colours=COLOURS)
    bar = fig.data[0]
    assert list(bar.y) == ["Careful Spenders", "Target Group", "Error"]
    assert list(bar.x) == [1, 3, 1]
    assert list(bar.marker.color) == [COLOURS[0], COLOURS[1], NO_SEGMENT_COLOUR]
    assert bar.text[1] == "3 (60.0%)"


def test_long_segment_names_wrap_on_axes():
    assert figures.wrap("High spend, mostly New York (city), Gold (membership type)", 24) == \
        "High spend, mostly New<br>York (city), Gold<br>(membership type)"
    assert figures.wrap("Short") == "Short"


def test_a_long_segment_name_wraps_in_titles_and_legends_instead_of_running_over_the_charts():
    long = {**NAMES, 1: "High spend, mostly New York (city), Gold (membership type), young"}
    profile = figures.profile_figure(_stats(), 1, FEATURES, long, colours=COLOURS)
    title = profile.layout.title
    assert "<br>" not in title.text and title.text == "High spend, mostly New York… vs all customers"
    assert title.subtitle.text == "means in original units" and title.x < 0.1  # left: the mode bar is right
    assert profile.layout.margin.t >= 100  # title and subtitle above the charts' own titles
    assert all(len(line) <= 32 for t in profile.data for line in t.name.split("<br>"))
    radar = figures.radar_figure(_sample(), FEATURES, long, colours=COLOURS)
    assert all(len(line) <= 32 for t in radar.data for line in t.name.split("<br>"))


def test_every_title_sits_below_the_mode_bar_and_the_k_charts_titles_too():
    # Plotly shows the mode bar for good on a device without hover (touch, headless Chromium): the template
    # puts titles under it; the k charts' subplot titles get a top margin that clears it.
    title = figures.empty_figure("").layout.template.layout.title
    assert (title.yref, title.y, title.yanchor, title.automargin) == ("container", 1, "top", True)
    assert title.pad.t >= figures.MODEBAR_PX
    table = pd.DataFrame({"k": [2, 3, 4], "inertia": [3.0, 2.0, 1.0], "silhouette": [0.2, 0.4, 0.3]}).set_index("k")
    assert figures.k_search_figure(table, 3).layout.margin.t >= figures.MODEBAR_PX + 20


def test_a_29_column_correlation_heatmap_keeps_room_for_its_rotated_labels():
    from dash_ui import workbench_figures as wf

    columns = [f"Num{i}CatalogPurchases" for i in range(29)]
    fig = wf.correlation_heatmap(columns, np.eye(29).tolist())
    assert fig.layout.xaxis.tickangle == -45
    assert fig.layout.margin.b >= wf.CHAR_PX * max(map(len, columns)) * np.sin(np.pi / 4)
    assert fig.layout.height - fig.layout.margin.t - fig.layout.margin.b >= 29 * 25  # rows still readable

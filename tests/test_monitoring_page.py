"""The Monitoring page's content and figures (no browser: the components and figures it renders), from a
real scoring server with real traffic; tests/test_monitoring_browser.py drives it in Chromium."""
from __future__ import annotations

import numpy as np
import pytest

from dash_ui import drift_figures
from dash_ui.app import render_page
from dash_ui.pages import monitoring
from scoring_service.client import ScoringClient
from segmentation_core.store import ModelStore
from tests import model_factory
from tests.server_support import target
from tests.test_dash_app import text_of
from tests.test_dash_service import dashboards  # noqa: F401 - fixture

INCOME = "Annual Income (k$)"


@pytest.fixture()
def drifted(tmp_path, scoring_server_factory, dashboards):  # noqa: F811
    """A served model with a reference, 2,000 rows scored with the income x 1.5, and a dashboard service."""
    model_factory.publish(ModelStore(tmp_path), reference=True)
    server = scoring_server_factory(tmp_path, drift_min_rows=100, drift_sample_rate=0)
    frame = model_factory.mall().frame
    live = frame.iloc[np.arange(2000) % len(frame)].reset_index(drop=True)
    live[INCOME] = live[INCOME] * 1.5
    with ScoringClient(target(server)) as client:
        client.predict_frame(live)
    return dashboards.service(target(server))


def test_the_page_shows_the_verdict_the_drifted_feature_and_the_segments(drifted) -> None:
    page = render_page(drifted, monitoring.PATH, "")
    text = text_of(page)
    assert "Retrain recommended" in text and f"feature '{INCOME}': PSI" in text
    assert "2,000" in text  # rows in the window
    assert all(f"Segment {i}" in text for i in range(5))  # the segment mix table
    report = drifted.drift_report()
    psi = drift_figures.psi_figure(report)
    bars = dict(zip(psi.data[0].y, psi.data[0].x))
    assert bars[INCOME] > 0.25 and bars["Age"] < 0.1 and "segment mix" in bars
    colours = dict(zip(psi.data[0].y, psi.data[0].marker.color))
    assert colours[INCOME] == drift_figures.BAND_COLOURS["major"]
    chosen = drift_figures.feature_by_name(report, None)  # the most drifted, until the user picks one
    assert chosen.feature == INCOME
    histogram = drift_figures.histogram_figure(chosen)
    assert [t.name for t in histogram.data] == ["training", "live"]
    assert sum(histogram.data[1].y) == pytest.approx(1.0) and histogram.data[1].y[-2] > 0.3  # top income bin
    mix = drift_figures.segment_mix_over_time(report, {i: f"Segment {i}" for i in range(5)})
    assert [t.name for t in mix.data] == [f"Segment {i}" for i in range(5)]
    rates = drift_figures.rates_over_time(report)
    assert len(report.slices) == 1 and rates.data[1].y[0] == pytest.approx(report.outlier_rate)  # one batch
    # One batch's rows came within a second: drawn by rows scored, not on a time axis of milliseconds.
    assert list(mix.data[0].x) == list(rates.data[0].x) == [2000]
    assert mix.layout.xaxis.title.text == "rows scored" and "by rows scored" in mix.layout.title.text


def test_slices_spanning_minutes_are_drawn_over_time_and_a_burst_by_rows() -> None:
    from datetime import datetime, timezone

    from scoring_service.client.types import DriftSlice

    def slices(starts: list[float]) -> list:
        return [DriftSlice(start_time=t, end_time=t + 0.5, rows=100 * (i + 1), row_errors=0,
                           segment_rows=[60 * (i + 1), 40 * (i + 1)], mean_confidence=0.9, outlier_rate=0.01)
                for i, t in enumerate(starts)]

    burst = drift_figures.slice_axis(slices([1000.0, 1000.001, 1000.002]))
    assert burst[0] == [100, 300, 600] and burst[1]["title"] == "rows scored" and "within 1 s" in burst[2]
    steady = drift_figures.slice_axis(slices([1000.0, 1600.0, 2200.0]))
    assert steady[0][0] == datetime.fromtimestamp(1000.5, tz=timezone.utc) and steady[2] == "over time"


def test_the_monitoring_charts_keep_labels_legends_and_axis_titles_apart() -> None:
    from types import SimpleNamespace

    from scoring_service.client.types import DriftSlice
    from segmentation_core.charts.figures import MODEBAR_PX

    feature = lambda name, psi: SimpleNamespace(feature=name, kind="numeric", psi=psi, band="major")  # noqa: E731
    report = SimpleNamespace(
        features=[feature("Recency", 1.219), feature("Frequency", 0.36)], segment_mix=None,
        slices=[DriftSlice(start_time=t, end_time=t + 30, rows=100, row_errors=0, segment_rows=[60, 40],
                           mean_confidence=0.8, outlier_rate=0.01) for t in (1000.0, 1100.0, 1200.0)],
        training_mean_confidence=0.81, training_outlier_rate=0.01)
    # The band limits' labels stand above the plot (anchored at its top by their bottom), in a top margin that
    # holds the mode bar, the title and them: inside the plot, "0.1" and "0.25 major" sat on the Recency bar.
    psi = drift_figures.psi_figure(report)
    labels = {a.text: a for a in psi.layout.annotations}
    assert set(labels) == {"0.1", "0.25 major"}
    assert all(a.y == 1 and a.yref in ("paper", "y domain") and a.yanchor == "bottom" for a in labels.values())
    assert labels["0.1"].xanchor == "right" and labels["0.25 major"].xanchor == "left"  # apart from each other
    assert psi.layout.margin.t == drift_figures.PSI_TOP_PX >= MODEBAR_PX + 20 + drift_figures.PSI_LABELS_PX
    # The time charts' legends are on the right (vertical, left of nothing): below the plot, horizontal at
    # y=-0.25, the legend sat on the x-axis title "time (UTC)".
    names = {0: "Lost", 1: "Occasional Light Spenders"}
    for fig in (drift_figures.segment_mix_over_time(report, names, training=[0.5, 0.5]),
                drift_figures.rates_over_time(report)):
        legend = fig.layout.legend
        assert fig.layout.xaxis.title.text == "time (UTC)"
        assert (legend.orientation, legend.x, legend.xanchor, legend.y, legend.yanchor) == ("v", 1.02, "left", 1, "top")

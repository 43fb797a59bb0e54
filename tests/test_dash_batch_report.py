"""The Batch page's report before scoring agrees with the scored results: a real mall model (the training job's
mall preset, with its valid range on income), a real scoring server on a loopback port, the page's own functions."""
from __future__ import annotations

from pathlib import Path

import pytest

from dash_ui.batch import parse_upload, score_table, validate_frame
from dash_ui.pages.batch import report_view
from dash_ui.service import DashboardService, default_client_factory
from tests.server_support import target
from training_job.cli import main

# A blank row, a quoted field over two lines, a number beyond a float, text in a number column, a formula id, an
# income below the preset's valid range (0..), an empty income, and a row with two unreadable numbers.
UPLOAD = ('CustomerID,Genre,Age,Annual Income (k$),Spending Score (1-100)\n'
          '1,Male,19,15,39\n'
          ',,,,\n'
          '3,"Fe\nmale",20,16,6\n'
          '4,Female,23,1e400,77\n'
          '5,Female,31,17,16k\n'
          '=cmd(),Male,22,17,76\n'
          '7,Female,35,-5,6\n'
          '8,Female,23,,94\n'
          '9,Male,40,abc,xyz\n')


@pytest.fixture(scope="module")
def mall_store(tmp_path_factory: pytest.TempPathFactory, datasets_dir: Path) -> Path:
    store = tmp_path_factory.mktemp("batch-report") / "store"
    assert main(["train", "--store", str(store), "--data", str(datasets_dir / "Mall_Customers.csv"),
                 "--preset", "mall"]) == 0
    return store


def _text(component) -> str:
    """The text of a Dash component tree."""
    if isinstance(component, (str, int, float)):
        return str(component)
    if component is None:
        return ""
    children = getattr(component, "children", None)
    if isinstance(children, (list, tuple)):
        return " ".join(_text(c) for c in children)
    return _text(children)


def test_the_report_names_the_rows_and_cells_the_results_do(mall_store: Path, scoring_server_factory) -> None:
    server = scoring_server_factory(mall_store)
    service = DashboardService(target(server), default_client_factory(target(server)))
    frame = parse_upload(UPLOAD.encode(), "mall.csv")
    view = service.model_view()
    report = validate_frame(frame, view)
    result = score_table(service.predict_frame, frame, view)
    errors = [e for e in result["error"] if e]
    # One verdict per row, in the results' words: the blank row too, one field for the row with two bad ones.
    assert [f"line {p.line}: {p.message}" for p in report.bad_rows] == errors
    assert report.bad_row_count == len(errors) == 4
    assert errors[0] == "line 3: no feature values: nothing to score"
    assert errors[-1] == "line 11: Annual Income (k$): 'abc' is not a number"
    # Cells of the scored rows only: the empty income of line 10 (not the blank row's cells).
    assert report.empty_cells == {"Annual Income (k$)": 1, "Spending Score (1-100)": 0}
    # -5 is outside the valid range: imputed as missing by the scoring, not "outside the training range".
    assert report.invalid == {"Annual Income (k$)": 1, "Spending Score (1-100)": 0}
    assert report.out_of_range == {"Annual Income (k$)": 0, "Spending Score (1-100)": 0}
    text = _text(report_view("mall.csv", report, view.feature_names))
    assert "4 rows with an error" in text and "bad rows" not in text
    assert "Annual Income (k$): 1 empty cell, imputed by the model." in text
    assert "Annual Income (k$): 1 value outside the valid range, treated as missing" in text
    assert "training range" not in text
    scored = result[result["segment_id"] >= 0]
    assert len(scored) == len(frame) - 4


def test_the_results_write_the_confidence_as_a_percentage(mall_store: Path, scoring_server_factory) -> None:
    from dash_ui.grid import TEXT_KEY
    from dash_ui.pages.batch import results_view

    server = scoring_server_factory(mall_store)
    service = DashboardService(target(server), default_client_factory(target(server)))
    frame = parse_upload(UPLOAD.encode(), "mall.csv")
    view = service.model_view()
    result = score_table(service.predict_frame, frame, view)
    page = results_view("job", result, view.segment_names, "customers v", view.segment_colours)
    grid = next(c for c in _walk(page) if getattr(c, "id", None) == "batch-results-table")
    texts = [row[TEXT_KEY]["confidence"] for row in grid.rowData if row.get("confidence") is not None]
    assert texts and all(t.endswith("%") for t in texts), texts  # was 1 for 0.99991
    assert ">99.9%" in texts


def _walk(component):
    yield component
    children = getattr(component, "children", None)
    for child in children if isinstance(children, (list, tuple)) else [children]:
        if hasattr(child, "to_plotly_json"):
            yield from _walk(child)

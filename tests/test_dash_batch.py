"""Batch scoring helpers: reading uploads, the validation report, formula-safe CSV, the job registry."""
from __future__ import annotations

import io
import time

import pandas as pd
import pytest

from dash_ui.batch import JobRegistry, UploadError, merge_results, parse_upload, scoring_input, validate_frame
from segmentation_core.csv_safety import csv_safe_frame, neutralize_cell, neutralize_series, to_safe_csv
from dash_ui.models import model_view
from tests.test_dash_service import model_info

VIEW = model_view(model_info())


def test_parse_csv_with_bom_and_semicolons_reads_as_the_training_job_does():
    raw = "\ufeffCustomerID;Age;Annual Income (k$);Gender\n0007;19;15;Male\n0008;21;;Female\n".encode()
    frame = parse_upload(raw, "c.csv")
    assert list(frame.columns) == ["CustomerID", "Age", "Annual Income (k$)", "Gender"]
    assert frame["CustomerID"].tolist() == ["0007", "0008"]  # zero-padded ids stay text
    assert frame.loc[0, "Age"] == 19 and pd.isna(frame.loc[1, "Annual Income (k$)"])


def test_parse_excel():
    buffer = io.BytesIO()
    pd.DataFrame({"Age": [30, 40], "Gender": ["Male", "Female"]}).to_excel(buffer, index=False)
    frame = parse_upload(buffer.getvalue(), "c.xlsx")
    assert list(frame["Age"]) == [30, 40] and list(frame["Gender"]) == ["Male", "Female"]


@pytest.mark.parametrize("contents", [b"", b"\n\n"], ids=["nothing", "blank-lines"])
def test_an_empty_upload_is_an_upload_error(contents):
    with pytest.raises(UploadError):
        parse_upload(contents, "e.csv")


def test_validation_reports_missing_columns_and_bad_rows_by_file_line():
    frame = pd.DataFrame({"age": ["19", "abc", "", "inf", "200"], "Annual Income (k$)": ["15", "16", "17", "18", "x"],
                          "Gender": ["Male", "", "Female", "Male", "Male"], "CustomerID": list("abcde")})
    report = validate_frame(frame, VIEW)
    assert report.missing_columns == ("Spending Score (1-100)",)
    assert not report.can_score
    assert report.extra_columns == ("CustomerID",)
    assert [p.line for p in report.bad_rows] == [3, 5, 6]  # header is line 1
    # One wording with the results grid (segmentation_core.errors.number_error): was "'abc' is not a finite number".
    assert report.bad_rows[0].message == "Age: 'abc' is not a number"
    assert report.bad_rows[1].message == "Age: 'inf' is not a finite number"
    assert "Annual Income (k$): 'x'" in report.bad_rows[2].message and "Age" not in report.bad_rows[2].message
    # Cells of the rows that will be scored: line 3's empty Gender and line 6's Age 200 are on error rows.
    assert report.empty_cells == {"Age": 1, "Annual Income (k$)": 0, "Gender": 0}
    assert report.out_of_range["Age"] == 0
    report = validate_frame(frame.assign(**{"age": ["19", "20", "", "30", "200"], "Annual Income (k$)": "15"}), VIEW)
    assert report.empty_cells["Gender"] == 1 and report.out_of_range["Age"] == 1  # 200 > 70


def test_scoring_input_parses_numbers_keeps_bad_text_and_blank_means_missing():
    frame = pd.DataFrame({"Age": ["19", "abc", " ", "1e400"], "Gender": ["Male", None, "Female", "Male"],
                          "id": ["1", "2", "3", "4"]})
    features = scoring_input(frame, VIEW)
    assert features.loc[3, "Age"] == "1e400"  # beyond a float: the client's error quotes it, not inf
    assert list(features.columns) == ["Age", "Gender"]
    assert features.loc[0, "Age"] == 19.0 and features.loc[1, "Age"] == "abc" and pd.isna(features.loc[2, "Age"])
    assert features.loc[1, "Gender"] == ""


def test_merge_results_is_the_one_scored_layout_errors_at_their_file_lines():
    """The upload's id under its own name, its feature columns (numbers as numbers: a word is blank, the error says
    it), then the results; an input named like a result column is input_<name>; other columns are left out."""
    frame = pd.DataFrame({"CustomerID": ["a", "b"], "Age": ["19", "old"], "Note": ["x", "y"],
                          "segment_id": ["old", "old"]})
    frame.attrs["first_data_line"] = 2
    results = pd.DataFrame({"segment_id": [1, -1], "segment_name": ["X", None], "distance": [0.1, None],
                            "confidence": [0.9, None], "outlier": [False, False], "error": ["", "Age: 'old' is not a number"]})
    merged = merge_results(frame, results, VIEW)
    assert list(merged.columns) == ["CustomerID", "Age", "segment_id", "segment_name", "distance", "confidence",
                                    "outlier", "error"]
    assert list(merged["segment_id"]) == [1, -1] and merged["Age"].iloc[0] == 19 and pd.isna(merged["Age"].iloc[1])
    assert list(merged["error"]) == ["", "line 3: Age: 'old' is not a number"]


def test_an_uploads_bad_rows_and_result_lines_count_blank_lines_as_an_editor_does():
    """The Batch page names a row by its line in the uploaded file: blank lines and Excel's sep= line count."""
    raw = "sep=;\nAge;Annual Income (k$);Gender\n19;15;Male\n\n\nabc;16;Female\n\n21;17;Male\n".encode()
    frame = parse_upload(raw, "c.csv")
    report = validate_frame(frame, VIEW)
    assert [(p.line, p.message) for p in report.bad_rows] == [(6, "Age: 'abc' is not a number")]
    results = pd.DataFrame({"segment_id": [1, -1, 2], "segment_name": ["X", None, "Y"], "distance": [0.1, None, 0.2],
                            "confidence": [0.9, None, 0.8], "outlier": [False, False, False],
                            "error": ["", "Age: 'abc' is not a number", ""]})
    assert list(merge_results(frame, results, VIEW)["error"]) == ["", "line 6: Age: 'abc' is not a number", ""]


@pytest.mark.parametrize("cell", ["=1+1", "+1", "-2+3", "@SUM(A1)", "\tx", "\rx", "=HYPERLINK(\"http://x\")", "-",
                                  "-1e3+1", "-A1"])
def test_formula_cells_are_quoted(cell):
    assert neutralize_cell(cell) == "'" + cell


@pytest.mark.parametrize("cell", ["-500", "-3.5", "-1e3", "-0,5", "-.5"])
def test_a_negative_number_written_as_text_is_data_not_a_formula(cell):
    """A column holding text and -500 (read as text) keeps -500 as it is: no quote turns the number into text."""
    assert neutralize_cell(cell) == cell
    column = pd.Series(["abc", cell, "=cmd"], dtype=object)
    assert neutralize_series(column).tolist() == ["abc", cell, "'=cmd"]
    back = pd.read_csv(io.StringIO(to_safe_csv(pd.DataFrame({"note": ["abc", cell]}))), dtype=str)
    assert back["note"].tolist() == ["abc", cell]


def test_safe_csv_quotes_text_only_and_headers_too():
    frame = pd.DataFrame({"=name": ["=cmd|' /C calc'!A0", "Alice", "-x"], "balance": [-5.0, 3.0, 1.0]})
    text = to_safe_csv(frame)
    back = pd.read_csv(io.StringIO(text))
    assert list(back.columns) == ["'=name", "balance"]
    assert list(back["'=name"]) == ["'=cmd|' /C calc'!A0", "Alice", "'-x"]
    assert list(back["balance"]) == [-5.0, 3.0, 1.0]  # numbers stay numbers
    assert csv_safe_frame(frame) is not frame and frame.iloc[0, 0].startswith("=")  # input untouched


def test_job_registry_reports_progress_result_and_failure():
    jobs = JobRegistry(keep=2)

    def score(frame, progress):
        progress(1, 2)
        time.sleep(0.05)
        progress(2, 2)
        return frame.assign(segment_id=0)

    job = jobs.start(pd.DataFrame({"a": [1, 2]}), score)
    deadline = time.monotonic() + 5
    while job.state == "running" and time.monotonic() < deadline:
        time.sleep(0.01)
    assert job.state == "done" and job.fraction == 1.0 and list(job.result["segment_id"]) == [0, 0]

    def fail(frame, progress):
        raise RuntimeError("stream broke")

    failed = jobs.start(pd.DataFrame({"a": [1]}), fail)
    while failed.state == "running" and time.monotonic() < deadline:
        time.sleep(0.01)
    assert failed.state == "failed" and failed.message == "stream broke"
    jobs.start(pd.DataFrame({"a": [1]}), score)
    assert jobs.get(job.id) is None  # only the last two are kept


@pytest.mark.parametrize("value, message", [
    ("abc", "Age: 'abc' is not a number"), (" 1,5 ", "Age: ' 1,5 ' is not a number"),
    ("inf", "Age: 'inf' is not a finite number"), ("1e400", "Age: '1e400' is out of range (a number is at most ±1.8e308)"), ("-2e308", "Age: '-2e308' is out of range (a number is at most ±1.8e308)"),
    (float("-inf"), "Age: -inf is not a finite number"), (None, "Age: None is not a number"),
], ids=["text", "comma", "inf-text", "overflow-text", "negative-overflow-text", "minus-inf", "none"])
def test_one_wording_for_a_number_that_cannot_be_scored_on_every_path(value, message):
    from segmentation_core.errors import number_error

    assert number_error("Age", value) == message


@pytest.mark.parametrize("filename, version, expected", [
    ("mall.csv", "customers v0003", "mall-scored-customers-v0003.csv"),
    ("Mall Customers.xlsx", "vip 20261122T031500Z-1a2b3c", "Mall_Customers-scored-vip-20261122T031500Z-1a2b3c.csv"),
    ("../log.csv.gz", "customers v0001", "log-scored-customers-v0001.csv"),
], ids=["csv", "excel-with-space", "path-and-gzip"])
def test_the_download_is_named_after_the_upload_and_the_version(filename, version, expected):
    from dash_ui.batch import download_name
    assert download_name(filename, version) == expected


def test_the_chooser_names_every_format_the_page_reads():
    from dash_ui.pages.batch import upload_zone
    assert "Choose a CSV, Parquet or Excel file" in str(upload_zone().to_plotly_json())


def test_an_na_token_in_a_numeric_feature_is_missing_in_the_report_and_the_input_whatever_else_the_column_holds():
    """One '16k' makes the column text; its 'NA' is still missing (parsing.feature_numbers, as every scoring path
    reads it), so the report names only the '16k' row and the scoring input carries NaN, not the text 'NA'."""
    raw = "Age,Annual Income (k$),Gender\n19,NA,Male\n20,16k,Female\n21,17,Male\n".encode()
    frame = parse_upload(raw, "c.csv")
    report = validate_frame(frame, VIEW)
    assert [(p.line, p.message) for p in report.bad_rows] == [(3, "Annual Income (k$): '16k' is not a number")]
    assert report.empty_cells["Annual Income (k$)"] == 1
    income = scoring_input(frame, VIEW)["Annual Income (k$)"]
    assert pd.isna(income.iloc[0]) and income.iloc[1] == "16k" and income.iloc[2] == 17

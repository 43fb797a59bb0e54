"""The one rule for writing numbers (segmentation_core.number_format) and the pages that use it: the cases a
reviewer found hard to read (2.357e+4 distinct customers, a 6.667e+05 income, birth years as 1,893, a
total CLV of 1.418e+5 beside a card's 12,227.50)."""
from __future__ import annotations

import pytest

from dash_ui.customer_value import CLV_COLUMNS
from dash_ui.grid import TEXT_KEY, Column, data_grid
from dash_ui.pages import data, predict
from scoring_service.client import NumericFeature
from segmentation_core.drift import numeric_labels
from segmentation_core.number_format import (AMOUNT, COUNT, PERCENT, YEAR, format_amount, format_count,
                                             format_number, number_kind)
from segmentation_core.tables import read_table
from training_job.client import DataProfile
from training_job.profiling import profile_table

DATASETS = "/work/shared/datasets"


@pytest.mark.parametrize("value, kind, text", [
    (23570, COUNT, "23,570"), (23570.0, COUNT, "23,570"), (0, COUNT, "0"),
    (52247.25, AMOUNT, "52,247.25"), (1730, AMOUNT, "1,730"), (666666, AMOUNT, "666,666"),
    (12227.5, AMOUNT, "12,227.50"), (141812.4, AMOUNT, "141,812"), (3212000.0, AMOUNT, "3,212,000"),
    (2.334, AMOUNT, "2.33"), (0.0123, AMOUNT, "0.0123"), (0.5, AMOUNT, "0.5"), (-3.5, AMOUNT, "-3.50"),
    (9.99e14, AMOUNT, "999,000,000,000,000"), (1e15, AMOUNT, "1.000e+15"), (1e-11, AMOUNT, "1e-11"),
    (1893, YEAR, "1893"), (1968.8125, YEAR, "1968.81"), (0.044, PERCENT, "4.4%"), (0.99991, PERCENT, ">99.9%"),
    (1.0, PERCENT, "100.0%"), (0.9994, PERCENT, "99.9%"), (0.0004, PERCENT, "<0.1%"), (0.0, PERCENT, "0.0%"),
    (None, AMOUNT, "n/a"), (float("nan"), COUNT, "n/a"), (float("inf"), AMOUNT, "∞"),
], ids=lambda v: str(v))
def test_each_kind_is_written_by_one_rule(value, kind, text):
    assert format_number(value, kind) == text


def test_an_unknown_kind_is_refused():
    with pytest.raises(ValueError, match="kind='money' should be one of"):
        format_number(1.0, "money")


@pytest.mark.parametrize("name, values, kind", [
    ("Year_Birth", (1893, 1996), YEAR), ("birth_year", (1940, 2001), YEAR), ("YearOfBirth", (1950,), YEAR),
    ("Founded", (1850, 2020), YEAR),  # whole numbers all in 1800-2100, whatever the name
    ("Income", (1730, 666666), AMOUNT), ("YearlyIncome", (1900, 2000.5), AMOUNT),
    ("Year_Birth", (1893.5, 1996), AMOUNT),  # not whole numbers
    ("date", (19970101, 19980630), AMOUNT), ("Kidhome", (0, 2), AMOUNT), ("x", (), AMOUNT),
])
def test_year_like_columns_are_whole_numbers_named_like_years_or_all_in_1800_to_2100(name, values, kind):
    assert number_kind(name, values) == kind


def test_predict_writes_training_ranges_without_scientific_notation_and_years_without_separators():
    income = NumericFeature(name="Income", impute=51381.5, minimum=1730.0, maximum=666666.0)
    birth = NumericFeature(name="Year_Birth", impute=1970.0, minimum=1893.0, maximum=1996.0)
    assert predict.training_range(income) == "1,730 to 666,666"  # was "1,730 to 6.667e+05"
    assert predict.training_range(birth) == "1893 to 1996"  # was "1,893 to 1,996"
    assert predict.validate_number(None, birth)[1] == "Missing: the model uses the training median 1970."
    assert predict.validate_number(700000, income)[1].startswith("Outside the training range 1,730 to 666,666:")



@pytest.mark.parametrize("typed", ["1,234.5", "$1,234", "1.234,5", "12 345", "(12.00)", "45%", "1,234,567"])
def test_a_formatted_number_typed_on_predict_is_read_as_the_table_reader_reads_the_cell(typed):
    import pandas as pd

    from segmentation_core.parsing import formatted_numbers, typed_number

    assert typed_number(typed) == formatted_numbers(pd.Series([typed]))[0].iloc[0]


def test_predict_refuses_a_typed_comma_it_cannot_settle_naming_the_field_and_both_readings():
    monetary = NumericFeature(name="Monetary", impute=650.0, minimum=3.75, maximum=280206.0)
    # Was: the browser's number box turned '12,5' into 125 and sent it; 'abc' and '1e400' into a missing value.
    assert predict.validate_number("12,5", monetary) == (predict.ERROR, "Monetary: '12,5' is ambiguous: write 12.5 or 125.")
    assert predict.validate_number("1,234", monetary)[1] == "Monetary: '1,234' is ambiguous: write 1.234 or 1234."
    assert predict.validate_number("0,5", monetary)[1] == "Monetary: '0,5' is ambiguous: write 0.5 or 5."
    assert predict.validate_number("abc", monetary) == (predict.ERROR, "Monetary: 'abc' is not a number.")
    assert predict.validate_number("1e400", monetary) == (predict.ERROR, "Monetary: '1e400' is out of range (a number is at most ±1.8e308).")
    assert predict.validate_number("1.234,5", monetary) == (predict.OK, "")
    assert predict.validate_number(" 12.5 ", monetary) == (predict.OK, "")
    view = type("View", (), {"numeric_features": [monetary], "categorical_features": []})()
    assert predict.customer_from_form(view, {"Monetary": "1.234,5"}, {}) == {"Monetary": 1234.5}
    assert predict.validate_form(view, {"Monetary": "12,5"}, {}) == ["Monetary: '12,5' is ambiguous: write 12.5 or 125."]
    assert predict.clv_inputs({"RepeatPurchases": "3", "LastPurchaseTime": "12,5", "CustomerAge": "1e400",
                               "AvgRepeatValue": "1,234.5"}) == ({}, [
        "Lifetime value: LastPurchaseTime: '12,5' is ambiguous: write 12.5 or 125.",
        "Lifetime value: CustomerAge: '1e400' is out of range (a number is at most ±1.8e308)."])
    assert predict.clv_inputs({"RepeatPurchases": "3", "LastPurchaseTime": "12.5", "CustomerAge": "20",
                               "AvgRepeatValue": "1,234.5"})[0]["AvgRepeatValue"] == 1234.5
    # The boxes are text, so the callback gets what was typed, not what the browser made of it.
    boxes = [c for c in walk_inputs(predict.number_field(monetary))]
    assert [b.type for b in boxes] == ["text"]


def walk_inputs(component):
    if type(component).__name__ == "Input":
        yield component
    children = getattr(component, "children", None)
    for child in children if isinstance(children, (list, tuple)) else [children] if children is not None else []:
        if hasattr(child, "to_plotly_json"):
            yield from walk_inputs(child)

def test_the_clv_table_writes_what_the_cards_write():
    columns = [Column(field, header, kind) for field, header, kind in CLV_COLUMNS]
    row = {"segment": "Champions", "customers": 124, "mean_clv": 12227.5, "total_clv": 141812.4,
           "share_of_clv": 0.472, "mean_p_alive": 0.9995, "mean_expected_purchases": 13.54,
           "mean_expected_order_value": 1330.0}
    grid = data_grid("clv", [row], columns)
    texts = grid.rowData[0][TEXT_KEY]
    assert texts == {"customers": "124", "mean_clv": "12,227.50", "total_clv": "141,812", "share_of_clv": "47.2%",
                     "mean_p_alive": ">99.9%", "mean_expected_purchases": "13.54",
                     "mean_expected_order_value": "1,330"}
    assert texts["mean_clv"] == format_amount(12227.5)  # the Overview card's Mean CLV (was 1.223e+4 here)
    formatter = next(c for c in grid.columnDefs if c["field"] == "mean_clv")["valueFormatter"]["function"]
    assert formatter == f"params.value == null ? '' : params.data.{TEXT_KEY}[\"mean_clv\"]"
    assert grid.rowData[0]["mean_clv"] == 12227.5  # sorting and filters keep the number


def _statistics(path: str) -> dict[str, dict[str, str]]:
    profile = DataProfile.from_dict(profile_table(read_table(path), name=path))
    grid = data.statistics_card(profile).children.children[1]
    return {row["name"]: row[TEXT_KEY] for row in grid.rowData}


def test_the_data_pages_statistics_of_real_tables():
    cdnow = _statistics(f"{DATASETS}/CDNOW_master.txt")
    assert cdnow["customer_id"]["distinct"] == "23,570"  # a count, was 2.357e+4
    assert cdnow["dollar_value"]["max"] == "1,286.01"
    marketing = _statistics(f"{DATASETS}/marketing_campaign.csv")
    assert marketing["Income"]["mean"] == "52,247.25" and marketing["Income"]["max"] == "666,666"  # was 5.225e+4
    assert marketing["Year_Birth"]["min"] == "1893" and marketing["Year_Birth"]["max"] == "1996"
    assert marketing["Year_Birth"]["mean"] == "1968.81" and marketing["Year_Birth"]["distinct"] == "59"
    assert format_count(2240) == marketing["ID"]["distinct"]


def test_drift_bins_are_labelled_by_the_same_rule():
    assert numeric_labels([1959.0, 1970.0], "Year_Birth") == ("<= 1959", "1959 - 1970", "> 1970", "(missing)")
    assert numeric_labels([35303.0, 666666.0], "Income") == ("<= 35,303", "35,303 - 666,666", "> 666,666",
                                                             "(missing)")

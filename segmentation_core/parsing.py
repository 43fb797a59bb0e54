"""Cell parsing shared by every table path: text stripping, numbers, ids, and dates (day-first vs month-first
decided from the values themselves, column by column). Errors quote the value and its line."""

from __future__ import annotations

import logging
import re

import numpy as np
import pandas as pd

from segmentation_core.errors import OUT_OF_RANGE, DataError, RowLines, describe_row, number_error, out_of_range

__all__ = [
    "MISSING_TOKENS", "detect_date_format", "feature_numbers", "format_ids", "formatted_numbers", "looks_like_dates",
    "number_cells", "parse_dates", "strip_text", "to_numeric", "typed_number",
]

#: The cells pandas reads as missing by default (its ``na_values``; R writes ``NA``, pandas ``NaN`` or nothing,
#: databases ``NULL``). The table reader makes them missing in a column of numbers and keeps them as written in a text
#: column ("NA" for North America, "None" for an education level); a column the model treats as numeric reads them as
#: missing whatever type the reader gave it (:func:`number_cells`): one stray word elsewhere in the column makes it
#: text, and must not turn its 'NA' cells into errors.
MISSING_TOKENS = frozenset({"#N/A", "#N/A N/A", "#NA", "-1.#IND", "-1.#QNAN", "-NaN", "-nan", "1.#IND", "1.#QNAN",
                            "<NA>", "N/A", "NA", "NULL", "NaN", "None", "n/a", "nan", "null"})

logger = logging.getLogger(__name__)

_ISO = re.compile(r"^\d{4}-\d{1,2}-\d{1,2}([ T]\d{1,2}:\d{2}(:\d{2}(\.\d+)?)?)?$")
_COMPACT = re.compile(r"^(19|20)\d{2}(0[1-9]|1[0-2])(0[1-9]|[12]\d|3[01])$")  # YYYYMMDD, as in CDNOW
_DMY_OR_MDY = r"^(\d{1,2})[-/.](\d{1,2})[-/.](\d{2}|\d{4})([ T]\d{1,2}:\d{2}(:\d{2})?)?$"


def detect_date_format(values: pd.Series, column: str) -> dict[str, object]:
    """Return keyword arguments for pd.to_datetime that fit every value of a text column."""
    text = values.dropna().astype(str).str.strip()
    if text.empty:
        return {"format": "ISO8601"}
    if text.str.match(_ISO).all():
        return {"format": "ISO8601"}
    if text.str.match(_COMPACT).all():
        return {"format": "%Y%m%d"}
    parts = text.str.extract(_DMY_OR_MDY)
    if parts[0].notna().all():
        first, second = parts[0].astype(int), parts[1].astype(int)
        if (first > 12).any() and (second > 12).any():
            raise DataError(f"column {column!r}: dates mix day-first and month-first forms")
        if (second > 12).any():
            return {"dayfirst": False}
        if not (first > 12).any():
            logger.warning("column %r: every date is ambiguous (day and month <= 12); reading day-first", column)
        return {"dayfirst": True}
    return {}


def looks_like_dates(values: pd.Series) -> bool:
    """True when a text column holds dates in one of the recognised forms (used by schema inference)."""
    text = values.dropna().astype(str).str.strip()
    if text.empty or pd.api.types.is_numeric_dtype(values):
        return False
    return bool(text.str.match(_ISO).all() or text.str.match(_DMY_OR_MDY).all())


def parse_dates(
    values: pd.Series, column: str, date_format: str = "auto", first_data_line: RowLines | int | None = None
) -> pd.Series:
    """Parse a column to datetime64; an unparseable value raises DataError quoting it and its row."""
    if pd.api.types.is_datetime64_any_dtype(values):
        return values
    if pd.api.types.is_numeric_dtype(values):
        # Whole numbers like 19970101 are YYYYMMDD dates that the reader took for numbers.
        present = values.dropna()
        if not (present == present.round()).all():
            raise DataError(f"column {column!r}: numbers that are not YYYYMMDD dates, e.g. {present.iloc[0]!r}")
        values = values.astype("Int64").astype("string")
    values = values.astype("string").str.strip()
    if date_format == "auto":
        kwargs = detect_date_format(values, column)
    elif date_format in ("dayfirst", "monthfirst"):
        kwargs = {"dayfirst": date_format == "dayfirst"}
    else:
        kwargs = {"format": date_format}
    try:
        parsed = pd.to_datetime(values, errors="coerce", **kwargs)
    except (ValueError, TypeError) as exc:
        raise DataError(f"column {column!r}: cannot parse dates with {kwargs}: {exc}") from exc
    bad = parsed.isna() & values.notna()
    if bad.any():
        label = bad.idxmax()
        raise DataError(
            f"column {column!r}: {values[label]!r} at {describe_row(label, first_data_line)} is not a date"
            f" ({int(bad.sum())} unparseable value(s))"
        )
    return parsed


def strip_text(values: pd.Series) -> pd.Series:
    """Strip surrounding whitespace from text cells and treat empty text as missing."""
    if pd.api.types.is_numeric_dtype(values) or pd.api.types.is_datetime64_any_dtype(values):
        return values
    if pd.api.types.is_bool_dtype(values):
        return values
    if isinstance(values.dtype, pd.StringDtype):  # vectorised path for what read_table returns
        text = values.str.strip()
        return text.where(text != "")
    # object columns (Excel, hand-built frames) may mix types: touch only the strings
    text = values.map(lambda v: v.strip() if isinstance(v, str) else v)
    return text.where(text.map(lambda v: not (isinstance(v, str) and v == "")))


def number_cells(values: pd.Series) -> pd.Series:
    """The cells of a column read as numbers (a numeric feature, a quantity), ready for ``pd.to_numeric``: text
    stripped, and an empty cell or one of :data:`MISSING_TOKENS` missing, whatever type the table reader gave the
    column. The one rule of training (:func:`to_numeric`) and of every scoring path (:func:`feature_numbers`), so
    that a row's 'NA' is missing however the rest of its column reads. A column of numbers is returned as it is."""
    if pd.api.types.is_bool_dtype(values) or pd.api.types.is_numeric_dtype(values):
        return values
    text = strip_text(values)
    if pd.api.types.is_numeric_dtype(text):
        return text
    tokens = text.isin(MISSING_TOKENS).to_numpy(dtype=bool, na_value=False)
    return text.where(~tokens) if tokens.any() else text


def feature_numbers(values: pd.Series, name: str) -> tuple[pd.Series, dict[int, str]]:
    """A numeric feature's cells as scored, float64 (index kept), and {position: error} for each cell that is not a
    finite number as written ('high', 'inf', '1e400'; :func:`~segmentation_core.errors.number_error`), which is
    missing among the numbers and must be its row's error, never imputed. Cells are read by :func:`number_cells`. A
    column of numbers is returned as float64 with no errors (an infinity in it is the transform's to refuse)."""
    cells = number_cells(values)
    if pd.api.types.is_bool_dtype(cells) or pd.api.types.is_numeric_dtype(cells):
        return cells.astype("float64"), {}
    numbers = pd.to_numeric(cells, errors="coerce")
    array = np.asarray(numbers.to_numpy(dtype=np.float64, na_value=np.nan), dtype=np.float64)
    finite = np.isfinite(array)
    if finite.all():
        return pd.Series(array, index=values.index), {}
    bad = np.flatnonzero(~finite & cells.notna().to_numpy(dtype=bool))
    errors = {int(row): number_error(name, values.iloc[row]) for row in bad.tolist()}
    return pd.Series(np.where(finite, array, np.nan), index=values.index), errors


def to_numeric(values: pd.Series, column: str, first_data_line: RowLines | int | None) -> pd.Series:
    """Convert a column to float64 (cells read by :func:`number_cells`: blanks and :data:`MISSING_TOKENS` missing);
    text that is not a number, or an infinite value, raises DataError quoting it and its row."""
    if pd.api.types.is_bool_dtype(values) or pd.api.types.is_numeric_dtype(values):
        numbers = values.astype("float64")
    else:
        values = number_cells(values)
        numbers = pd.to_numeric(values, errors="coerce")
        bad = numbers.isna() & values.notna()
        if bad.any():
            label = bad.idxmax()
            raise DataError(
                f"column {column!r} should be numeric but has {values[label]!r} at "
                f"{describe_row(label, first_data_line)} ({int(bad.sum())} non-numeric value(s))"
            )
    infinite = np.isinf(numbers.to_numpy(dtype="float64", na_value=np.nan))
    if infinite.any():
        label = numbers.index[int(infinite.argmax())]
        if out_of_range(values[label]):
            raise DataError(f"column {column!r}: {values[label]!r} at {describe_row(label, first_data_line)} "
                            f"{OUT_OF_RANGE} ({int(infinite.sum())} infinite or out-of-range value(s))")
        raise DataError(
            f"column {column!r} has the infinite value {_shown(values[label])} at "
            f"{describe_row(label, first_data_line)} "
            f"({int(infinite.sum())} infinite value(s)); leave a cell empty for a missing value"
        )
    return numbers.astype("float64")


def _shown(value: object) -> str:
    """A cell as an error message quotes it: text in quotes, a number as written ('inf', not np.float64(inf))."""
    return repr(value) if isinstance(value, str) else str(value)


# Numbers as spreadsheets and reports write them: a currency sign before or after, a minus or accounting
# parentheses, thousands grouped by ',' '.' or a space, a decimal point or comma, a trailing '%'.
_FORMATTED = re.compile(
    r"^(?P<open>\()?(?P<sign>[-+])?(?P<cur1>[$€£¥₹]\s?)?(?P<sign2>[-+])?(?P<body>\d(?:[\d,. \u00a0\u202f]*\d)?)"
    r"(?P<cur2>\s?[$€£¥₹])?(?P<pct>\s?%)?(?P<close>\))?$")
_SPACES = "[ \u00a0\u202f]"
#: The body of a number with a decimal point (thousands by ',' or a space), and with a decimal comma.
_POINT = re.compile(rf"\d{{1,3}}(?:,\d{{3}})+(?:\.\d+)?|\d{{1,3}}(?:{_SPACES}\d{{3}})+(?:\.\d+)?|\d+(?:\.\d+)?")
_COMMA = re.compile(rf"\d{{1,3}}(?:\.\d{{3}})+(?:,\d+)?|\d{{1,3}}(?:{_SPACES}\d{{3}})+(?:,\d+)?|\d+(?:,\d+)?")
_POINT_SIGNS = ("$", "£", "¥", "₹")


def formatted_numbers(values: pd.Series) -> tuple[pd.Series, str] | None:
    """float64 of a text column of formatted numbers ('$1,234.50', '1.234,5 €', '(12.00)', '45%', '12 345'),
    and how they were read; None unless every present cell is such a number under one convention: a point or
    a comma as the decimal mark. Cells valid under both ('1,234' is a thousand or one point two three four)
    follow the column's other cells, else a '$', '£', '¥' or '₹' (a point), else the column stays text."""
    present = values.dropna().astype(object)  # plain bools below, not Arrow's three-valued ones
    parts = present.str.extract(_FORMATTED)
    if present.empty or parts["body"].isna().any():
        return None
    if (parts["open"].notna() != parts["close"].notna()).any():
        return None
    body = parts["body"]
    point = body.str.fullmatch(_POINT).to_numpy(dtype=bool)
    comma = body.str.fullmatch(_COMMA).to_numpy(dtype=bool)
    signs = (parts["cur1"].fillna("").str.strip() + parts["cur2"].fillna("").str.strip())
    as_point = pd.to_numeric(body.str.replace(rf"[,]|{_SPACES}", "", regex=True), errors="coerce")
    as_comma = pd.to_numeric(body.str.replace(rf"[.]|{_SPACES}", "", regex=True).str.replace(",", ".", regex=False),
                             errors="coerce")
    if point.all() and comma.all() and not as_point.equals(as_comma) and not signs.isin(_POINT_SIGNS).any():
        return None  # every cell reads both ways, to different numbers, and nothing says which
    if point.all():
        european, numbers = False, as_point.to_numpy(dtype="float64")
    elif comma.all():
        european, numbers = True, as_comma.to_numpy(dtype="float64")
    else:
        return None
    negative = (parts["open"].notna() | (parts["sign"] == "-") | (parts["sign2"] == "-")).to_numpy(dtype=bool)
    numbers = np.where(negative, -numbers, numbers)
    out = pd.Series(np.nan, index=values.index, dtype="float64")
    out[present.index] = numbers
    how = ("a decimal comma" if european else "a decimal point") + (
        ", currency signs dropped" if signs.ne("").any() else "") + (
        ", '%' dropped" if parts["pct"].notna().any() else "") + (
        ", accounting parentheses as minus" if parts["open"].notna().any() else "")
    return out, how


_LONE_COMMA = re.compile(r"[-+]?\d+,\d+")


def typed_number(value: object) -> float:
    """One value typed into a number field, as a float (an infinity included: the caller decides). Plain
    numbers as Python reads them ('12.5', '-3', '1e5'); formatted ones by the table reader's rule,
    :func:`formatted_numbers` ('1,234.5', '$1,234', '1.234,5', '12 345', '45%'). A lone field has no column to
    settle a comma, so '12,5' (12.5 with a decimal comma, or 125) and '1,234' (a thousand, or 1.234) raise
    ValueError naming both readings; text that is no number raises ValueError saying so."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    text = str(value).strip()
    if "_" not in text:  # float() reads '1_000', which no table reader does
        try:
            return float(text)
        except ValueError:
            pass
    if _LONE_COMMA.fullmatch(text):
        sign, whole = ("-" if text[0] == "-" else ""), int(text.lstrip("+-").replace(",", ""))
        raise ValueError(f"{text!r} is ambiguous: write {text.replace(',', '.')} or {sign}{whole}")
    parsed = formatted_numbers(pd.Series([text], dtype=object))
    if parsed is None:
        raise ValueError(f"{text!r} is not a number")
    return float(parsed[0].iloc[0])


def format_ids(values: pd.Series) -> pd.Series:
    """Customer ids as text: whole floats (ids read beside missing ones) lose their '.0'; missing stays None."""
    if pd.api.types.is_float_dtype(values):
        whole = values.dropna()
        if (whole == np.round(whole)).all():
            values = values.astype("Int64")
    text = values.astype("string").str.strip()
    return text.astype(object).where(text.notna(), None)

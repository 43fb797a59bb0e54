"""Cell parsing on the cluster, with the rules of ``segmentation_core.parsing`` (the pandas path's): text
stripped and empty text missing; numbers; customer ids as text; dates whose form (ISO, YYYYMMDD, day-first
or month-first) is decided from every value of the column. A value that cannot be parsed raises DataError
quoting the column, the value and how many such values there are. Each check is one aggregation job.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date
from typing import TYPE_CHECKING, Any, Sequence

from segmentation_core.errors import DataError, quoted
from segmentation_core.parsing import _COMPACT, _DMY_OR_MDY, _ISO

if TYPE_CHECKING:  # pragma: no cover
    from pyspark.sql import Column, DataFrame

__all__ = ["Parsed", "check", "customer_ids", "dates", "decide_dates", "decide_ids", "numbers", "text"]

_NUMBER = r"^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$"
_LEADING_ZERO = r"^[+-]?0\d"
_DMY_PARTS = r"^(\d{1,2})[-/.](\d{1,2})[-/.](\d{2}|\d{4})(?:[ T](\d{1,2}):(\d{2})(?::(\d{2}))?)?$"
_STRFTIME = {"%Y": "yyyy", "%m": "MM", "%d": "dd", "%H": "HH", "%M": "mm", "%S": "ss", "%y": "yy", "%b": "MMM",
             "%B": "MMMM", "%f": "SSSSSS", "%p": "a", "%I": "hh", "%j": "DDD", "%%": "%"}


def _is_string(frame: "DataFrame", name: str) -> bool:
    return frame.schema[name].dataType.typeName() in ("string", "varchar", "char")


def text(frame: "DataFrame", name: str) -> "Column":
    """The column as trimmed text, empty text as NULL (numbers and dates formatted by Spark)."""
    from pyspark.sql import functions as F

    value = F.trim(F.col(name).cast("string"))
    return F.when(value != "", value)


@dataclass(frozen=True)
class Parsed:
    """A parsed column, and what :func:`check` needs to name the first value that did not parse."""

    value: "Column"
    raw: "Column | None" = None
    problem: str = ""
    """"{value}" and "{count}" filled in by :func:`check`."""

    def bad(self) -> "Column | None":
        """True on rows whose text did not parse (None: nothing can fail)."""
        return None if self.raw is None else self.raw.isNotNull() & self.value.isNull()


def numbers(frame: "DataFrame", name: str) -> Parsed:
    """The column as doubles; text that is not a number is reported by :func:`check`."""
    from pyspark.sql import functions as F

    if not _is_string(frame, name):
        kind = frame.schema[name].dataType.typeName()
        if kind in ("boolean",) or kind.endswith(("integer", "long", "short", "byte", "double", "float")) \
                or kind.startswith("decimal"):
            return Parsed(F.col(name).cast("double"))
        raise DataError(f"column {name!r} should be numeric but holds {kind} values")
    raw = text(frame, name)
    lowered = F.lower(raw)
    value = (F.when(lowered.isin("inf", "+inf", "infinity", "+infinity"), F.lit(float("inf")))
             .when(lowered.isin("-inf", "-infinity"), F.lit(float("-inf")))
             .when(lowered.isin("nan", "+nan", "-nan"), F.lit(float("nan")))
             .when(raw.rlike(_NUMBER), raw.cast("double")))
    return Parsed(value, raw, f"column {name!r} should be numeric but has {{value}} ({{count}} non-numeric value(s))")


def check(frame: "DataFrame", parsed: Sequence[Parsed], also: Sequence["Column"] = ()) -> Any:
    """One pass over ``frame`` (which holds the parsed columns' inputs): DataError for the first column with a
    value that did not parse, quoting the value and counting such values; returns the row of the ``also``
    aggregates, computed in the same pass."""
    from pyspark.sql import functions as F

    tests = [(p, p.bad()) for p in parsed if p.bad() is not None]
    aggs = list(also)
    for i, (p, bad) in enumerate(tests):
        aggs += [F.count(F.when(bad, 1)).alias(f"n{i}"), F.first(F.when(bad, p.raw), ignorenulls=True).alias(f"v{i}")]
    if not aggs:
        return None
    row = frame.select(*aggs).first()
    for i, (p, _bad) in enumerate(tests):
        if row[f"n{i}"]:
            raise DataError(p.problem.format(value=quoted(row[f"v{i}"]), count=row[f"n{i}"]))
    return row


def decide_ids(frame: "DataFrame", name: str) -> list["Column"]:
    """Aggregates for :func:`customer_ids`' decision (run with other decisions in one job)."""
    from pyspark.sql import functions as F

    if not _is_string(frame, name):
        column = F.col(name).cast("double")
        return [F.count(F.when(column.isNotNull() & (column != F.floor(column)), 1)).alias("id_fractions")]
    raw = text(frame, name)
    number = raw.rlike(_NUMBER)
    return [F.count(raw).alias("id_present"),
            F.count(F.when(number & ~raw.rlike(_LEADING_ZERO), 1)).alias("id_numbers"),
            F.count(F.when(number & (raw.cast("double") != F.floor(raw.cast("double"))), 1)).alias("id_fractions")]


def customer_ids(frame: "DataFrame", name: str, decision: Any) -> "Column":
    """Customer ids as text, as ``segmentation_core.tables`` + ``parsing.format_ids`` give them: a column of
    whole numbers without leading zeros loses any '.0' (``17850.0`` -> ``17850``); others stay as written.
    ``decision``: the row of the :func:`decide_ids` aggregates."""
    from pyspark.sql import functions as F

    kind = frame.schema[name].dataType.typeName()
    if kind in ("double", "float") or kind.startswith("decimal"):
        column = F.col(name).cast("double")
        if decision["id_fractions"] == 0:
            return F.when(column.isNotNull(), column.cast("long").cast("string"))
        return column.cast("string")
    raw = text(frame, name)
    if not _is_string(frame, name):
        return raw
    present = decision["id_present"]
    if present and decision["id_numbers"] == present and decision["id_fractions"] == 0:
        return F.when(raw.isNotNull(), raw.cast("double").cast("long").cast("string"))
    return raw


def _date_text(frame: "DataFrame", name: str) -> "Column":
    from pyspark.sql import functions as F

    kind = frame.schema[name].dataType.typeName()
    if kind not in ("string", "varchar", "char"):
        return F.col(name).cast("double").cast("long").cast("string")
    return text(frame, name)


def decide_dates(frame: "DataFrame", name: str) -> list["Column"]:
    """Aggregates deciding a date column's form (run with other decisions in one job)."""
    from pyspark.sql import functions as F

    kind = frame.schema[name].dataType.typeName()
    if kind in ("timestamp", "timestamp_ntz", "date"):
        return []
    if kind not in ("string", "varchar", "char"):
        whole = F.col(name).cast("double")
        return [F.count(F.when(whole != F.floor(whole), 1)).alias("date_fractions")]
    raw = text(frame, name)
    parts = F.regexp_extract(raw, _DMY_OR_MDY, 1), F.regexp_extract(raw, _DMY_OR_MDY, 2)
    iso, dmy = raw.rlike(_ISO.pattern), raw.rlike(_DMY_OR_MDY)
    return [
        F.count(raw).alias("date_present"),
        F.count(F.when(iso, 1)).alias("date_iso"),
        F.count(F.when(raw.rlike(_COMPACT.pattern), 1)).alias("date_compact"),
        F.count(F.when(dmy, 1)).alias("date_dmy"),
        F.count(F.when(dmy & (parts[0].cast("int") > 12), 1)).alias("date_first_over_12"),
        F.count(F.when(dmy & (parts[1].cast("int") > 12), 1)).alias("date_second_over_12"),
        F.first(F.when(~iso, raw), ignorenulls=True).alias("date_not_iso"),
        F.first(F.when(~raw.rlike(_COMPACT.pattern), raw), ignorenulls=True).alias("date_not_compact"),
        F.first(F.when(~dmy, raw), ignorenulls=True).alias("date_not_dmy"),
    ]


def dates(frame: "DataFrame", name: str, date_format: str, decision: Any) -> Parsed:
    """The column as timestamps without a time zone, in the form :func:`decide_dates` found (or
    ``date_format`` says); values that are not dates are reported by :func:`check`."""
    from pyspark.sql import functions as F

    kind = frame.schema[name].dataType.typeName()
    if kind in ("timestamp", "timestamp_ntz", "date"):
        return Parsed(F.col(name).cast("timestamp_ntz"))
    if kind not in ("string", "varchar", "char") and decision["date_fractions"]:
        raise DataError(f"column {name!r}: numbers that are not YYYYMMDD dates")
    raw = _date_text(frame, name)
    if date_format == "auto":
        form = "compact" if kind not in ("string", "varchar", "char") else _form(decision, name)
    elif date_format in ("dayfirst", "monthfirst"):
        form = date_format
    else:
        form = "pattern:" + _spark_pattern(date_format, name)
    return Parsed(_parse(raw, form), raw, f"column {name!r}: {{value}} is not a date ({{count}} unparseable value(s))")


def _form(row: Any, name: str) -> str:
    present = row["date_present"]
    if present == 0 or row["date_iso"] == present:
        return "iso"
    if row["date_compact"] == present:
        return "compact"
    if row["date_dmy"] == present:
        if row["date_first_over_12"] and row["date_second_over_12"]:
            raise DataError(f"column {name!r}: dates mix day-first and month-first forms")
        return "monthfirst" if row["date_second_over_12"] else "dayfirst"
    # No one form fits every value: the values outside the commonest form are the ones to quote.
    commonest = max(("iso", "compact", "dmy"), key=lambda form: row[f"date_{form}"])
    example, count = row[f"date_not_{commonest}"], present - row[f"date_{commonest}"]
    raise DataError(f"column {name!r}: {quoted(example)} is not a date ({count} unparseable value(s); the Spark "
                    "engine reads ISO dates, YYYYMMDD, day-first or month-first dates, or a [data] date_format)")


def _parse(raw: "Column", form: str) -> "Column":
    from pyspark.sql import functions as F

    def stamp(y, m, d, hh, mm, ss) -> "Column":
        return F.make_timestamp_ntz(y.cast("int"), m.cast("int"), d.cast("int"), F.coalesce(hh.cast("int"), F.lit(0)),
                                    F.coalesce(mm.cast("int"), F.lit(0)),
                                    F.coalesce(ss.cast("decimal(16,6)"), F.lit(0).cast("decimal(16,6)")))

    def group(pattern: str, i: int) -> "Column":
        value = F.regexp_extract(raw, pattern, i)
        return F.when(value != "", value)

    if form == "iso":  # the form was checked on every value: Spark's own parser reads it (1-2 digit fields)
        return F.to_timestamp_ntz(F.regexp_replace(raw, "T", " "), F.lit("y-M-d[ H:m[:s[.SSSSSSSSS]]]"))
    if form == "compact":
        return F.when(raw.rlike(_COMPACT.pattern), stamp(F.substring(raw, 1, 4), F.substring(raw, 5, 2),
                                                        F.substring(raw, 7, 2), F.lit(None), F.lit(None), F.lit(None)))
    if form in ("dayfirst", "monthfirst"):
        a, b, y = (group(_DMY_PARTS, i) for i in (1, 2, 3))
        year = F.when(F.length(y) == 2, y.cast("int") + F.when(y.cast("int") <= _two_digit_pivot(), 2000)
                      .otherwise(1900)).otherwise(y.cast("int"))
        day, month = (a, b) if form == "dayfirst" else (b, a)
        return F.when(raw.rlike(_DMY_PARTS), stamp(year, month, day, *(group(_DMY_PARTS, i) for i in (4, 5, 6))))
    return F.to_timestamp_ntz(raw, F.lit(form[len("pattern:"):]))


def _two_digit_pivot() -> int:
    """dateutil's rule for two-digit years: the century that puts the year within 50 years of today."""
    return (date.today().year + 49) % 100


def _spark_pattern(strftime: str, name: str) -> str:
    out, i = [], 0
    while i < len(strftime):
        if strftime[i] == "%":
            token = strftime[i:i + 2]
            if token not in _STRFTIME:
                raise DataError(f"column {name!r}: date_format {strftime!r}: {token} is not supported by the Spark "
                                f"engine (it reads {', '.join(sorted(_STRFTIME))})")
            out.append(_STRFTIME[token])
            i += 2
        else:
            char = strftime[i]
            out.append(f"'{char}'" if re.match(r"[A-Za-z]", char) else char)
            i += 1
    return "".join(out)

"""How the dashboard, the training report and the drift report write a number for people to read: the one
rule. Standard library only, so the scoring server (drift bin labels) uses it too.

Kinds: a "count" is a whole number with thousands separators (23,570); an "amount" has thousands separators
and decimals by size (52,247.25; 666,666; 0.0123), never scientific notation below 1e15; a "year" has no
separator (1996); a "percent" has one decimal (4.4%; >99.9% short of 100%). `number_kind` tells a year-like column from an
amount. Charts' hover labels are plotly's own (d3) formats, not this.
"""
from __future__ import annotations

import math
import re
from typing import Any, Iterable

COUNT, AMOUNT, YEAR, PERCENT = "count", "amount", "year", "percent"
KINDS = (COUNT, AMOUNT, YEAR, PERCENT)
#: Years a column of whole numbers holds to be read as years whatever its name.
YEAR_RANGE = (1800, 2100)
#: From here an amount is written in scientific notation (a float's digits past this are noise).
SCIENTIFIC_FROM = 1e15
#: From here an amount has no decimals (141,800, not 141,800.35).
WHOLE_FROM = 1e5
#: Significant digits of an amount below 1 (0.0123).
SMALL_DIGITS = 3
_YEAR_WORDS = {"year", "birth", "born", "yob"}
_WORDS = re.compile(r"[A-Z]?[a-z]+|[A-Z]+(?![a-z])|\d+")


def _finite(value: Any) -> float | None:
    """`value` as a finite float, or None (None, NaN, infinities, and what is not a number)."""
    if value is None or isinstance(value, bool):
        return None
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None


def _not_finite(value: Any) -> str:
    """How a value that is no finite number is written: n/a for none or NaN, signed infinity, else as it is."""
    try:
        number = float(value)
    except (TypeError, ValueError):
        return "n/a" if value is None else str(value)
    return "n/a" if math.isnan(number) else ("∞" if number > 0 else "-∞")


def _whole(number: float) -> bool:
    return number == math.floor(number)


def format_count(value: Any) -> str:
    """A count, rounded to a whole number, with thousands separators: 23,570."""
    number = _finite(value)
    return _not_finite(value) if number is None else f"{round(number):,}"


def format_amount(value: Any) -> str:
    """An amount with thousands separators: whole numbers without decimals (1,730), two decimals from 1
    (12,227.50), none from 1e5 (141,800), three significant digits below 1 (0.0123), scientific only from
    1e15."""
    number = _finite(value)
    if number is None:
        return _not_finite(value)
    size = abs(number)
    if size >= SCIENTIFIC_FROM:
        return f"{number:.3e}"
    if _whole(number) or size >= WHOLE_FROM:
        return f"{number:,.0f}"
    if size >= 1:
        return f"{number:,.2f}"
    decimals = SMALL_DIGITS - 1 - math.floor(math.log10(size))
    if decimals > 12:  # below 1e-10: too many zeros to count
        return f"{number:.{SMALL_DIGITS}g}"
    return f"{number:.{decimals}f}".rstrip("0").rstrip(".")


def format_year(value: Any) -> str:
    """A year without a thousands separator (1996); a mean of years keeps two decimals (1968.81)."""
    number = _finite(value)
    if number is None:
        return _not_finite(value)
    return f"{number:.0f}" if _whole(number) else f"{number:.2f}"


def format_percent(value: Any) -> str:
    """A share as a percentage with one decimal: 0.044 is 4.4%; a share that is not all nor nothing but would round
    to it is ">99.9%" (a confidence of 0.99991) or "<0.1%", never "100.0%" or "0.0%"."""
    number = _finite(value)
    if number is None:
        return _not_finite(value)
    if 0.999 < number < 1 and f"{number:.1%}" == "100.0%":
        return ">99.9%"
    if 0 < number < 0.001 and f"{number:.1%}" == "0.0%":
        return "<0.1%"
    return f"{number:.1%}"


_FORMATTERS = {COUNT: format_count, AMOUNT: format_amount, YEAR: format_year, PERCENT: format_percent}


def format_number(value: Any, kind: str = AMOUNT) -> str:
    """`value` written as a number of `kind` (count, amount, year or percent); "n/a" when it is none."""
    if kind not in _FORMATTERS:
        raise ValueError(f"kind={kind!r} should be one of {KINDS}")
    return _FORMATTERS[kind](value)


def _named_like_year(name: str) -> bool:
    """Whether a column's name has a year word in it: Year_Birth, birth_year, YearOfBirth (not YearlyIncome)."""
    return any(word.lower() in _YEAR_WORDS for word in _WORDS.findall(str(name)))


def number_kind(name: str, values: Iterable[Any]) -> str:
    """YEAR for a column of whole numbers below 10,000 that is named like a year (Year_Birth) or whose
    values all lie in 1800-2100; AMOUNT otherwise. `values`: its values, or only its minimum and maximum."""
    numbers = [n for n in (_finite(v) for v in values) if n is not None]
    if not numbers or not all(_whole(n) and abs(n) < 10_000 for n in numbers):
        return AMOUNT
    low, high = YEAR_RANGE
    if _named_like_year(name) or all(low <= n <= high for n in numbers):
        return YEAR
    return AMOUNT

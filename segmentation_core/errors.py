"""The domain's errors; each program maps them to its own surface (exit code, gRPC status)."""
from __future__ import annotations

import bisect
import functools
import math
from numbers import Integral
from typing import TYPE_CHECKING, Any, Iterable, Mapping

if TYPE_CHECKING:
    import numpy as np


class SegmentationError(Exception):
    """Base of every error the domain raises on purpose."""


class InputError(SegmentationError, ValueError):
    """Customer data that the feature schema cannot score; names the field and, for batches, the row."""

    def __init__(self, message: str, field: str | None = None, row: int | None = None) -> None:
        super().__init__(message)
        self.field = field
        self.row = row


class ConfigError(SegmentationError, ValueError):
    """A configuration that is invalid (a training TOML, a recipe's rule); the message names the key at fault."""


class DataError(SegmentationError, ValueError):
    """A data file or table that cannot be used; the message names the file, column, row or value at fault."""


class ArtefactError(SegmentationError):
    """A model artefact that is missing, corrupt, tampered with or of an unknown format."""


class SignatureError(ArtefactError):
    """A version that is not signed, or not signed by the verify key, where signatures are required."""


class StoreError(SegmentationError):
    """A model store operation that cannot be done (unknown model or version, nothing to roll back to)."""


class NotFoundError(StoreError, LookupError):
    """An unknown model or version."""


class SchemaChangeError(StoreError):
    """A version not made CURRENT because its input schema would break callers of the served version (see
    segmentation_core.schema_change); the version stays kept. ``changes`` lists what would break."""

    def __init__(self, message: str, model: str, served: str, candidate: str, changes: list[str]) -> None:
        super().__init__(message)
        self.model = model
        self.served = served
        self.candidate = candidate
        self.changes = changes


QUOTE_LIMIT = 80  # characters of caller input an error message quotes


def quoted(value: object, limit: int = QUOTE_LIMIT) -> str:
    """``repr(value)`` cut to about ``limit`` characters (with the full length), so no error echoes unbounded input."""
    text = repr(value)
    if len(text) <= limit:
        return text
    size = len(value) if isinstance(value, (str, bytes)) else len(text)
    return f"{text[:limit]}... ({size} characters)"


MESSAGE_LIMIT = 1000  # characters of an error message sent to a caller or logged


def bounded(message: str, limit: int = MESSAGE_LIMIT) -> str:
    """``message`` cut to ``limit`` characters (with its full length): a status message must stay within gRPC's
    metadata limit and a log line bounded whatever input an error names."""
    if len(message) <= limit:
        return message
    return f"{message[:limit]}... ({len(message)} characters)"


class RowLines:
    """Where a table's rows are in its source, as a text editor numbers the lines: the row labelled ``label`` (0 is
    the first data row) is on line ``first + label`` plus the lines skipped above it and below the first data row
    (blank lines, which hold no row, and the extra lines of fields that span lines). The table reader keeps it in
    a frame's ``attrs``: ``first_data_line`` and, when lines were skipped, ``line_gaps`` (``"label:skipped,..."``:
    from that row on, that many lines skipped in all; a string, which pandas copies at no cost with the attrs on
    every operation and Parquet stores as JSON)."""

    def __init__(self, first: int, gaps: str = "") -> None:
        self.first = int(first)
        pairs = [part.split(":") for part in gaps.split(",") if part]
        self._labels = [int(label) for label, _ in pairs]
        self._skipped = [int(skipped) for _, skipped in pairs]

    @classmethod
    def of(cls, attrs: Mapping[str, Any]) -> "RowLines | None":
        """The lines of a frame read by the table reader (its ``attrs``), else None."""
        first = attrs.get("first_data_line")
        return None if first is None else _row_lines(int(first), str(attrs.get("line_gaps") or ""))

    @staticmethod
    def gaps(labels: Iterable[int], skipped: Iterable[int]) -> str:
        """``line_gaps`` for rows from ``labels[i]`` on having ``skipped[i]`` lines skipped above them."""
        return ",".join(f"{label}:{count}" for label, count in zip(labels, skipped))

    def line(self, label: int) -> int:
        """The line of the row labelled ``label``."""
        at = bisect.bisect_right(self._labels, label)
        return self.first + int(label) + (self._skipped[at - 1] if at else 0)

    def lines(self, labels: "np.ndarray") -> "np.ndarray":
        """The lines of the rows labelled ``labels`` (an integer array)."""
        import numpy as np

        labels = np.asarray(labels, dtype=np.int64)
        skipped = np.concatenate([[0], np.asarray(self._skipped, dtype=np.int64)])
        return self.first + labels + skipped[np.searchsorted(self._labels, labels, side="right")]

    def __repr__(self) -> str:
        return f"RowLines(first={self.first}, gaps={self.gaps(self._labels, self._skipped)!r})"


@functools.lru_cache(maxsize=8)
def _row_lines(first: int, gaps: str) -> RowLines:
    return RowLines(first, gaps)  # parsed once per table, not once per row an error names


def describe_row(label: object, first_data_line: "RowLines | int | None") -> str:
    """Say where a row is: its line in the source file when known (``first_data_line``: the table's
    :class:`RowLines`, or the line of the row labelled 0), else its 1-based position."""
    if isinstance(label, Integral) and first_data_line is not None:
        lines = first_data_line if isinstance(first_data_line, RowLines) else RowLines(first_data_line)
        return f"line {lines.line(int(label))}"
    if isinstance(label, Integral):
        return f"row {int(label) + 1}"
    return f"row {label!r}"


#: What a number out of float64's range (text such as '1e400', which reads as infinity) is told.
#: The error of a row missing every feature: imputing all of them would score the training's typical customer.
#: (Here, not in features.py, so that the dashboard's batch report words it as the scoring does.)
NO_FEATURE_VALUES = "no feature values: nothing to score"
OUT_OF_RANGE = "is out of range (a number is at most ±1.8e308)"
_INFINITY = frozenset({"inf", "infinity"})


def out_of_range(value: object) -> bool:
    """Whether ``value`` is text of a number too large for float64 ('1e400', '-2e308'): it reads as infinity, but it
    is not an infinity as written ('inf', '-Infinity')."""
    if not isinstance(value, str):
        return False
    text = value.strip()
    try:
        number = float(text)
    except ValueError:
        return False
    return math.isinf(number) and text.lstrip("+-").casefold() not in _INFINITY


def number_error(name: str, value: object) -> str:
    """The one wording for a numeric field's value that cannot be scored, whichever path met it: text that is no
    number ("Age: 'abc' is not a number"), an infinite value ("Age: inf is not a finite number", text as typed:
    "Age: 'inf' is not a finite number"), text of a number too large for a float as written ("Age: '1e400' is out
    of range (a number is at most ±1.8e308)")."""
    shown = quoted(value) if isinstance(value, (str, bytes)) else str(value)
    if out_of_range(value):
        return f"{name}: {shown} {OUT_OF_RANGE}"
    try:
        number = float(value.strip() if isinstance(value, str) else value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return f"{name}: {shown} is not a number"
    return f"{name}: {shown} is not a finite number" if number in (math.inf, -math.inf) else \
        f"{name}: {shown} is not a number"

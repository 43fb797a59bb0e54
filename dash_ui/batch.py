"""Batch scoring: reading an uploaded table, its validation report, and scoring jobs in threads.

Parsing and validation are pure functions. `JobRegistry` runs `DashboardService.predict_frame` in a
background thread per upload and keeps its progress for the page to poll (no extra dependencies; one
dashboard process keeps its own jobs, so run a single worker process or pin sessions).
"""
from __future__ import annotations

import json
import re
import threading
import time
import uuid
from dataclasses import dataclass, field
from typing import Callable

import numpy as np
import pandas as pd

from dash_ui.models import ModelView
from segmentation_core import scored
from segmentation_core.bounded_cache import BoundedCache
from segmentation_core.clv import INPUTS as CLV_INPUTS
from segmentation_core.errors import NO_FEATURE_VALUES, DataError, RowLines, number_error
from segmentation_core.parsing import feature_numbers
from segmentation_core.tables import TableSource, TableTooLarge, match_columns, read_table
from segmentation_core.valid_range import outside_valid_range

MAX_UPLOAD_BYTES = 50 * 1024 * 1024
#: Bad rows listed one by one in the report; more are counted.
MAX_LISTED_ROWS = 50


class UploadError(ValueError):
    """An upload that cannot be read as a table, with a message for the page."""


def parse_upload(source: TableSource, filename: str, max_bytes: int = MAX_UPLOAD_BYTES) -> pd.DataFrame:
    """An uploaded table (a path: the upload route's temporary file; or bytes), read by the platform's one table
    reader (`segmentation_core.tables`): CSV/TSV/whitespace-aligned text in any encoding the training job reads,
    gzip, Parquet or .xlsx; at most ``max_bytes`` sent and once decompressed (UploadError naming the file)."""
    size = len(source) if isinstance(source, (bytes, bytearray)) else None
    if size == 0:
        raise UploadError("The upload is empty.")
    if size is not None and size > max_bytes:
        raise UploadError(f"{filename} is {size / 2**20:.1f} MB; the limit is {max_bytes / 2**20:.0f} MB. "
                          "Score large files with `python -m scoring_service.client score`.")
    try:
        return read_table(source, name=filename or "the upload", max_bytes=max_bytes)
    except TableTooLarge as exc:
        raise UploadError(f"{exc}. Score large files with `python -m scoring_service.client score`.") from exc
    except DataError as exc:
        raise UploadError(str(exc)) from exc


@dataclass(frozen=True)
class RowProblem:
    line: int  # line of the file, the header being line 1
    message: str


@dataclass(frozen=True)
class ValidationReport:
    rows: int
    missing_columns: tuple[str, ...]
    extra_columns: tuple[str, ...]
    #: The rows the scoring will give an error, each with that error (the first bad number, as the client names
    #: it, or a row without any feature value): the results' errors, known before scoring.
    bad_rows: tuple[RowProblem, ...]
    bad_row_count: int
    #: Per feature, on the rows that will be scored: how many cells are empty (imputed), how many values fall
    #: outside the feature's valid range (treated as missing, so imputed, as in training), and how many others
    #: fall outside the training range (clipped to it).
    empty_cells: dict[str, int] = field(default_factory=dict)
    out_of_range: dict[str, int] = field(default_factory=dict)
    invalid: dict[str, int] = field(default_factory=dict)

    @property
    def can_score(self) -> bool:
        return self.rows > 0 and not self.missing_columns


def _is_number_column(column: pd.Series) -> bool:
    return pd.api.types.is_numeric_dtype(column) and not pd.api.types.is_bool_dtype(column)


def _numbers(column: pd.Series, name: str) -> tuple[pd.Series, dict[int, str]]:
    """A numeric feature's cells as the scoring reads them (``parsing.feature_numbers``: 'NA' missing, 'abc' an
    error) and {position: error}; an infinity in a column of numbers is an error too, as the service refuses it."""
    parsed, errors = feature_numbers(column, name)
    for pos in np.flatnonzero(np.isinf(parsed.to_numpy(dtype=np.float64))):
        errors.setdefault(int(pos), number_error(name, column.iloc[pos]))
    parsed = parsed.where(~np.isinf(parsed.to_numpy(dtype=np.float64)))
    return parsed, dict(sorted(errors.items()))


def _blank(column: pd.Series) -> pd.Series:
    """True where a cell is missing or only spaces (a numeric column: where it is NaN; no text made of it)."""
    if _is_number_column(column):
        return column.isna()
    text = column if isinstance(column.dtype, pd.StringDtype) else column.astype("string")  # no copy of str columns
    return column.isna() | text.str.strip().eq("").fillna(False).astype(bool)


def _feature_columns(view: ModelView, columns: list[str]) -> dict[str, str]:
    """{feature: column}, matched as the scoring client matches them."""
    return match_columns(view.feature_names, columns)[0]


def valid_ranges(view: ModelView) -> dict[str, tuple[float | None, float | None]]:
    """{numeric feature: (low, high)} of the features whose training configuration set a valid range (the
    manifest's feature schema, which ModelInfo carries in ``manifest_json``); None: an open side."""
    try:
        manifest = json.loads(view.manifest_json or "{}")
    except ValueError:
        return {}
    numeric = ((manifest.get("feature_schema") or {}).get("numeric") or []) if isinstance(manifest, dict) else []
    return {str(f["name"]): (f.get("valid_low"), f.get("valid_high")) for f in numeric
            if isinstance(f, dict) and "name" in f and (f.get("valid_low") is not None or f.get("valid_high") is not None)}


def validate_frame(frame: pd.DataFrame, view: ModelView) -> ValidationReport:
    """Checks an uploaded table against the model's schema: columns, then each row as the scoring will judge it
    (the client's first unreadable number, the service's row without any feature value), then the cells of the
    rows it will score: empty, outside the valid range (both imputed), outside the training range."""
    columns = list(frame.columns)
    found = _feature_columns(view, columns)
    missing = tuple(n for n in view.feature_names if n not in found)
    extra = tuple(c for c in columns if c not in set(found.values()))
    problems: dict[int, str] = {}
    blanks: dict[str, pd.Series] = {}
    numbers: dict[str, pd.Series] = {}
    for f in view.numeric_features:  # in the schema's order: the client names a row's first bad number
        if f.name not in found:
            continue
        text = frame[found[f.name]]
        parsed, errors = _numbers(text, f.name)
        blank = parsed.isna()
        blank.iloc[list(errors)] = False
        blanks[f.name], numbers[f.name] = blank, parsed
        for pos, message in errors.items():
            problems.setdefault(pos, message)
    for c in view.categorical_features:
        if c.name in found:
            blanks[c.name] = _blank(frame[found[c.name]])
    if blanks and not missing:  # every feature given and every one empty: the service refuses the row
        empty_rows = pd.concat(blanks.values(), axis=1).all(axis=1).to_numpy().nonzero()[0]
        for pos in empty_rows:
            problems.setdefault(int(pos), NO_FEATURE_VALUES)
    scored = pd.Series(True, index=frame.index)
    scored.iloc[list(problems)] = False
    ranges = valid_ranges(view)
    empty = {name: int((blank & scored).sum()) for name, blank in blanks.items()}
    invalid: dict[str, int] = {}
    out: dict[str, int] = {}
    for f in view.numeric_features:
        if f.name not in numbers:
            continue
        values = numbers[f.name].where(scored)
        outside = outside_valid_range(values, *ranges.get(f.name, (None, None)))
        invalid[f.name] = int(outside.sum())
        values = values.where(~outside)
        out[f.name] = int(((values < f.minimum) | (values > f.maximum)).sum())
    lines = _row_lines(frame)
    listed = tuple(RowProblem(lines.line(pos), problems[pos]) for pos in sorted(problems)[:MAX_LISTED_ROWS])
    return ValidationReport(rows=len(frame), missing_columns=missing, extra_columns=extra, bad_rows=listed,
                            bad_row_count=len(problems), empty_cells=empty, out_of_range=out, invalid=invalid)


def scoring_input(frame: pd.DataFrame, view: ModelView) -> pd.DataFrame:
    """The feature columns under the schema's names, numbers parsed (unparsable text stays for the
    client to flag on its row); a lifetime-value model's CLV inputs too when the table has them all (an
    aggregated customer table: the service computes the CLV figures, as training_job score does)."""
    found = _feature_columns(view, list(frame.columns))
    numeric = set(view.numeric_names)
    if view.clv is not None:
        clv_found, clv_missing = match_columns(CLV_INPUTS, list(frame.columns))
        if not clv_missing:
            found.update({name: column for name, column in clv_found.items() if name not in found})
            numeric.update(CLV_INPUTS)
    data = {}
    for name, column in found.items():
        series = frame[column]
        if name in numeric and _is_number_column(series):
            data[name] = series
        elif name in numeric:
            parsed, errors = feature_numbers(series, name)
            if errors:  # keep the text ('abc', '1e400'): the client reports it as written on its row, not imputed
                parsed = parsed.astype(object)
                parsed.iloc[list(errors)] = series.iloc[list(errors)]
            data[name] = parsed
        else:
            data[name] = series.fillna("")
    return pd.DataFrame(data, index=frame.index)


def merge_results(frame: pd.DataFrame, results: pd.DataFrame, view: ModelView) -> pd.DataFrame:
    """The uploaded table's scored rows, in the layout of every scored file (``segmentation_core.scored``: the
    upload's id column under its own name, its feature columns, the results; a row's error names its line)."""
    manifest = json.loads(view.manifest_json) if view.manifest_json else None
    return scored.scored_customers(frame, results, features=view.feature_names, numeric=view.numeric_names,
                                   id_name=scored.id_column(frame.columns, manifest), inputs=scored.DEFAULT_INPUTS)


def score_table(predict_frame: Callable[..., pd.DataFrame], frame: pd.DataFrame, view: ModelView,
                progress: Callable[..., None] | None = None) -> pd.DataFrame:
    """An uploaded customer table scored (``predict_frame``: the service's, over PredictStream) into the one
    layout of scored files (:func:`merge_results`), with the answering version and the upload's delimiter."""
    results = predict_frame(scoring_input(frame, view), progress=progress)
    merged = merge_results(frame, results, view)
    merged.attrs["version"] = f"{results.attrs.get('model', '')} {results.attrs.get('version', '')}".strip()
    merged.attrs["delimiter"] = frame.attrs.get("delimiter", ",")  # the upload's, as both command lines write
    return merged


def _row_lines(frame: pd.DataFrame) -> RowLines:
    """Where the upload's rows are in its file, as the table reader counted (a frame built by hand: a CSV with its
    header on line 1)."""
    return RowLines.of(frame.attrs) or RowLines(2)


def download_csv(result: pd.DataFrame) -> str:
    """The Batch page's download of a scored table: the CSV every scoring path writes (``segmentation_core.scored``:
    formula-like text quoted, numbers as numbers, booleans true/false)."""
    return scored.csv_bytes(result, str(result.attrs.get("delimiter", ","))).decode("utf-8")


def download_name(filename: str, version: str) -> str:
    """The download's file name: the upload's name and the answering model and version
    ("mall.csv", "customers v0003" -> "mall-scored-customers-v0003.csv"), reduced to safe characters."""
    stem = re.sub(r"\.(csv|tsv|txt|parquet|xlsx|xls)$", "", re.sub(r"\.gz$", "", filename.strip(), flags=re.I), flags=re.I)
    parts = [stem or "upload", "scored", *version.split()] if version.strip() else [stem or "upload", "scored",
                                                                                     "customers"]
    safe = [re.sub(r"[^A-Za-z0-9._-]+", "_", p).strip("._") or "_" for p in parts]
    return "-".join(safe)[:150] + ".csv"


# ---------------------------------------------------------------------------------------------------
# Jobs

@dataclass
class Job:
    id: str
    total: int | None  # None until known (a raw log: the customers, once it is aggregated)
    done: int = 0
    unit: str = "rows"  # what total and done count
    lines: int = 0  # the input's rows (a raw log's lines)
    state: str = "running"  # running | done | failed
    message: str = ""
    result: pd.DataFrame | None = None
    started: float = field(default_factory=time.monotonic)
    finished: float | None = None

    @property
    def fraction(self) -> float:
        if self.total is None:
            return 0.0
        return 1.0 if self.total == 0 else min(1.0, self.done / self.total)

    @property
    def status(self) -> str:
        """The progress in words (running), or what was scored (done)."""
        if self.state == "done":
            seconds = (self.finished or self.started) - self.started
            source = f" from {self.lines:,} log lines" if self.unit == "customers" else ""
            return f"Scored {self.total or 0:,} {self.unit}{source} in {seconds:.1f} s"
        if self.total is None:
            return f"Aggregating {self.lines:,} log lines into {self.unit}"
        return f"Scoring: {self.done:,} of {self.total:,} {self.unit}"


class JobRegistry:
    """Scoring jobs by id, run in daemon threads; keeps the last `keep` jobs (and their results)."""

    def __init__(self, keep: int = 8) -> None:
        self._jobs: BoundedCache[str, Job] = BoundedCache(keep)

    def start(self, frame: pd.DataFrame, score: Callable[..., pd.DataFrame], *, unit: str = "rows",
              rows_known: bool = True) -> Job:
        """Run ``score(frame, progress=...)`` in a thread. The total is ``frame``'s rows, or (``rows_known``
        False: a raw log, whose customers are known once it is aggregated) the total ``progress`` reports."""
        job = Job(id=uuid.uuid4().hex, total=len(frame) if rows_known else None, unit=unit, lines=len(frame))
        self._jobs.put(job.id, job)

        def progress(done: int, total: int | None = None) -> None:
            if total is not None:
                job.total = int(total)
            job.done = int(done)

        def run() -> None:
            try:
                job.result = score(frame, progress=progress)
                if job.total is None:
                    job.total = len(job.result)
                job.done, job.state = job.total, "done"
            except Exception as exc:  # noqa: BLE001 - reported on the page
                job.state, job.message = "failed", getattr(exc, "message", None) or str(exc)
            finally:
                job.finished = time.monotonic()

        threading.Thread(target=run, name=f"batch-{job.id[:8]}", daemon=True).start()
        return job

    def get(self, job_id: str | None) -> Job | None:
        """The job `job_id`, or None (unknown, or dropped for newer ones)."""
        return self._jobs.get(job_id or "")


class UploadStore:
    """Parsed uploads by id (server side: the browser keeps only the id); bounded."""

    def __init__(self, keep: int = 8) -> None:
        self._items: BoundedCache[str, tuple[str, pd.DataFrame]] = BoundedCache(keep)

    def put(self, filename: str, frame: pd.DataFrame) -> str:
        key = uuid.uuid4().hex
        self._items.put(key, (filename, frame))
        return key

    def get(self, key: str | None) -> tuple[str, pd.DataFrame] | None:
        """The upload `key` (file name and frame), or None."""
        return self._items.get(key or "")

"""``python -m scoring_service.client score IN.csv -o OUT.csv``: batch-score a file over one PredictStream.

The input is read in chunks (CSV with any delimiter and an optional BOM, also gzip; Parquet by row
groups; Excel whole), so a file larger than memory works; every chunk goes over the same stream, so
the whole file is answered by one model version. The output keeps the input's id column and adds
``segment_id`` (integer, -1 for a row that could not be scored), ``segment_name``, ``distance``,
``confidence``, ``outlier`` and ``error``. It is written to a temporary file renamed into place at the
end, so OUT is never half-written.

For a model trained on a transaction log, IN may be a raw log in the training log's layout: the model's
own recipe (sent by the service with the model's info) aggregates it here to one row per customer, as of
``--as-of`` (default: the rule used in training), and the output has one row per customer: the customer
id, the per-customer columns (RFM, basket metrics, CLV inputs), the results, the CLV figures when the model
has CLV, and ``as_of``.

Exit codes: 0 done (rows with an error are listed in the ``error`` column), 1 the service failed or
refused (unreachable, unknown model ...), 2 bad input or usage (file, missing feature columns), 130
interrupted.
"""
from __future__ import annotations

import argparse
import logging
import os
import re
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO, Mapping, Sequence

import grpc
import pandas as pd

from scoring_service.client import logs
from scoring_service.client.targets import check_target
from scoring_service.client.types import DEFAULT_TARGET, RESULT_COLUMNS, ScoringError
from scoring_service.client.unary import ScoringClient
from segmentation_core.csv_safety import csv_safe_frame, neutralize_cell, neutralize_series
from segmentation_core.errors import DataError
from segmentation_core.settings import add_options, at_least, from_namespace, option
from segmentation_core.tables import Table, atomic_output, open_table

log = logging.getLogger("scoring_service.client")

ENV_PREFIX = "SCORING_"
EXIT_OK, EXIT_SERVICE, EXIT_INPUT, EXIT_INTERRUPTED = 0, 1, 2, 130
CHUNK_ROWS = 200_000  # rows read from the file at a time: bounded memory, yet few pandas calls
_ID_TOKENS = {"id", "uuid", "guid", "key"}


class InputProblem(Exception):
    """A problem with the input file or the flags: reported as one line, exit code 2."""


# ---------------------------------------------------------------------------------------------------
# Reading

@dataclass
class Source:
    """An input table opened for chunked reading (by the platform's one table reader), and its id column."""

    table: Table
    id_column: str | None

    @property
    def columns(self) -> list[str]:
        return list(self.table.columns)

    @property
    def total_rows(self) -> int | None:
        return self.table.total_rows

    @property
    def delimiter(self) -> str:
        return self.table.format.delimiter


def _tokens(name: str) -> list[str]:
    """'CustomerID' -> ['customer', 'id'], 'user_id' -> ['user', 'id']."""
    spaced = re.sub(r"([a-z0-9])([A-Z])", r"\1 \2", str(name))
    return [t for t in re.split(r"[^A-Za-z0-9]+", spaced.lower()) if t]


def find_id_column(columns: Sequence[str]) -> str | None:
    """The first column whose name looks like an id (a word 'id', 'uuid', 'guid' or 'key')."""
    for column in columns:
        if _ID_TOKENS & set(_tokens(column)):
            return column
    return None


def open_source(path: Path, id_column: str | None) -> Source:
    """Open a CSV (any delimiter, whitespace-aligned, .gz), Parquet or Excel file for chunked reading."""
    if not path.is_file():
        raise InputProblem(f"input file {str(path)!r} does not exist")
    try:
        table = open_table(path)
    except DataError as exc:
        raise InputProblem(str(exc)) from None
    return Source(table, _choose_id(table.columns, id_column))


def _choose_id(columns: Sequence[str], requested: str | None) -> str | None:
    if requested:
        if requested not in columns:
            raise InputProblem(f"--id-column {requested!r} is not a column of the input (columns: {list(columns)})")
        return requested
    return find_id_column(columns)


# ---------------------------------------------------------------------------------------------------
# Progress

class _Progress:
    """A tqdm bar on a terminal, a log line every few seconds otherwise."""

    def __init__(self, total: int | None) -> None:
        self.total = total
        self.done = 0
        self.bar = None
        self.last_log = time.monotonic()
        if sys.stderr.isatty():
            try:
                from tqdm import tqdm
            except ImportError:  # an image without tqdm (the dashboard's) still scores, with log lines
                return
            try:
                size = os.get_terminal_size(sys.stderr.fileno())
            except OSError:
                size = os.terminal_size((0, 0))
            # A pseudo-terminal may report a 0 x 0 size, and tqdm then draws nothing: assume 100 x 24.
            sized = size.columns > 0 and size.lines > 0
            self.bar = tqdm(total=total, unit="rows", unit_scale=True, file=sys.stderr, dynamic_ncols=sized,
                            ncols=None if sized else 100, nrows=None if sized else 24)

    def __call__(self, rows: int) -> None:
        self.done += rows
        if self.bar is not None:
            self.bar.update(rows)
        elif time.monotonic() - self.last_log >= 5.0:
            self.last_log = time.monotonic()
            of = f" of {self.total:,}" if self.total else ""
            log.info("scored %s%s rows", f"{self.done:,}", of)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


# ---------------------------------------------------------------------------------------------------
# Writing

TEXT_RESULT_COLUMNS = ("segment_name", "error")


class _CsvWriter:
    """Appends result chunks to a CSV with pyarrow: about 6x faster than DataFrame.to_csv on float columns."""

    def __init__(self, sink: BinaryIO, delimiter: str, id_name: str) -> None:
        self.sink = sink
        self.delimiter = delimiter
        self.id_name = neutralize_cell(id_name)
        self.writer: Any = None
        self.schema: Any = None

    def write(self, ids: Any, result: pd.DataFrame) -> None:
        """Append one chunk: the id column, then the result columns."""
        import pyarrow as pa
        import pyarrow.csv as pacsv

        # text a spreadsheet would run as a formula (=cmd|..., +SUM(...), @HYPERLINK(...)) is quoted
        ids = neutralize_series(pd.Series(ids)).to_numpy() if getattr(getattr(ids, "dtype", None), "kind", "") == "O" else ids
        result = result.assign(**{name: neutralize_series(result[name]) for name in TEXT_RESULT_COLUMNS})
        columns = [pa.array(ids, from_pandas=True)]
        for name in RESULT_COLUMNS:
            array = pa.array(result[name], from_pandas=True)
            columns.append(array.cast(pa.string()) if pa.types.is_dictionary(array.type) else array)
        table = pa.Table.from_arrays(columns, names=[self.id_name, *RESULT_COLUMNS])
        if self.writer is None:
            self.schema = table.schema
            self.writer = pacsv.CSVWriter(self.sink, self.schema,
                                          write_options=pacsv.WriteOptions(delimiter=self.delimiter))
        elif table.schema != self.schema:
            table = table.cast(self.schema)  # e.g. an id column read as numbers in one chunk, text in another
        self.writer.write_table(table)

    def close(self) -> None:
        """Finish the file (a header alone when there were no rows)."""
        if self.writer is None:
            names = [self.id_name, *RESULT_COLUMNS]
            self.sink.write((self.delimiter.join(f'"{n}"' for n in names) + "\n").encode())
        else:
            self.writer.close()


# ---------------------------------------------------------------------------------------------------
# Scoring a file

def score_file(client: ScoringClient, source: Source, out: Path, *, model: str | None, version: str | None,
               batch_rows: int, allow_missing: bool) -> tuple[int, int, str, str]:
    """Score ``source`` into ``out`` (atomically); returns (rows, rows with an error, model, version)."""
    stream_progress = _Progress(source.total_rows)
    stream = client.stream(model=model, version=version, batch_rows=batch_rows, on_batch=stream_progress)
    missing = stream.missing_features(source.columns)
    if missing:
        message = (f"the input lacks feature column(s) {', '.join(map(repr, missing))} of model "
                   f"{stream.schema.model} {stream.schema.version}")
        if not allow_missing:
            stream_progress.close()
            raise InputProblem(f"{message}; rename the columns, or pass --allow-missing to impute them")
        log.warning("%s: imputed on every row", message)
    rows = errors = 0
    try:
        with atomic_output(out) as fh:
            writer = _CsvWriter(fh, source.delimiter, source.id_column or "row")
            for frame, result in stream.score(source.table.chunks(CHUNK_ROWS)):
                ids = frame[source.id_column].to_numpy() if source.id_column is not None else result.index + 1
                writer.write(ids, result)
                rows += len(result)
                errors += int((result["segment_id"] < 0).sum())
            writer.close()
    finally:
        stream_progress.close()
    return rows, errors, stream.schema.model, stream.schema.version


def score_log_file(client: ScoringClient, source: Source, out: Path, *, model: str | None, version: str | None,
                   as_of: str | None, batch_rows: int) -> tuple[int, int, str, str, str]:
    """Aggregate a raw log with the model's recipe and score it into ``out`` (atomically); returns (customers,
    customers with an error, model, version, as-of date)."""
    scored = logs.score_log(client, source.table.read(), model=model, version=version, as_of=as_of,
                            batch_rows=batch_rows)
    result = scored.result
    with atomic_output(out) as fh:
        csv_safe_frame(result).to_csv(fh, index=False, sep=source.delimiter)  # the input's (commas if aligned)
    info = client.model_info(model, version)
    return len(result), int((result["segment_id"] < 0).sum()), info.model, info.version, scored.as_of


# ---------------------------------------------------------------------------------------------------
# Command line

@dataclass(frozen=True)
class ScoreSettings:
    """``score``: what to read, where to write, which service and model answer."""

    input: Path = option(None, "customer table: CSV/TSV/whitespace-aligned text (.gz too), Parquet or .xlsx",
                         positional=True, metavar="IN")
    output: Path = option(None, "output CSV", short="-o", required=True, metavar="OUT")
    target: str = option(DEFAULT_TARGET, "scoring service HOST:PORT, dns:///NAME:PORT (every replica the name resolves "
                                         "to) or IP:PORT,IP:PORT,... (calls spread round-robin)", check=check_target)
    model: str | None = option(None, "model name (none: the server's default)")
    version: str | None = option(None, "pin a version such as v0003")
    batch_rows: int = option(10_000, "rows per streamed batch", check=at_least(1))
    id_column: str | None = option(None, "column copied to the output (none: the first that looks like an id)")
    token: str | None = option(None, "bearer token")
    tls_ca: Path | None = option(None, "CA certificate (PEM): use TLS")
    timeout: float = option(10.0, "seconds for each call and for each batch's answer", check=at_least(0.001))
    allow_missing: bool = option(False, "impute feature columns absent from the input instead of refusing it")
    as_of: str | None = option(None, "raw transaction logs: the ISO date the log is aggregated as of (none: the rule "
                                     "used in training, the day after the last purchase); lines on or after that day "
                                     "are left out")
    quiet: bool = option(False, "no progress, no summary", short="-q")


def build_parser(environ: Mapping[str, str] | None = None) -> argparse.ArgumentParser:
    """The argument parser; every flag's default comes from a SCORING_* environment variable."""
    parser = argparse.ArgumentParser(prog="python -m scoring_service.client",
                                     description="Batch-score a file over one PredictStream.")
    commands = parser.add_subparsers(dest="command", required=True)
    score = commands.add_parser(
        "score", help="score a CSV, Parquet or Excel file into a CSV file",
        description="Score every row of IN over one PredictStream (one model version answers the whole file) "
                    "into the CSV file OUT, written under a temporary name and renamed at the end. OUT keeps "
                    "the input's id column and adds segment_id (-1 for a row that could not be scored), "
                    "segment_name, distance, confidence, outlier and error; a raw transaction log is first "
                    "aggregated with the model's recipe. Exit codes: 0 done, 1 the "
                    "service failed or refused, 2 bad input or usage, 130 interrupted.")
    add_options(score, ScoreSettings, ENV_PREFIX, environ)
    return parser


def _service_message(exc: ScoringError, target: str) -> str:
    if exc.code == grpc.StatusCode.UNAVAILABLE:
        return f"the scoring service at {target} is unavailable: {exc.message}"
    if exc.code == grpc.StatusCode.DEADLINE_EXCEEDED:
        return f"the scoring service at {target} did not answer in time: {exc.message}"
    if exc.code == grpc.StatusCode.UNAUTHENTICATED:
        return f"the scoring service at {target} refused the credentials: {exc.message}"
    return f"{exc.code.name}: {exc.message}"


def main(argv: Sequence[str] | None = None) -> int:
    """Parse ``argv`` and run the command; returns the exit code (no traceback for expected failures)."""
    args = from_namespace(ScoreSettings, build_parser().parse_args(argv))
    logging.basicConfig(level=logging.WARNING if args.quiet else logging.INFO,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    started = time.perf_counter()
    try:
        source = open_source(args.input, args.id_column)
        as_of_note = ""
        with ScoringClient(args.target, token=args.token, tls_ca=args.tls_ca, timeout=args.timeout,
                           model=args.model) as client:
            if logs.is_log(client.model_info(args.model, args.version), source.columns):
                rows, errors, model, version, as_of = score_log_file(
                    client, source, args.output, model=args.model, version=args.version, as_of=args.as_of,
                    batch_rows=args.batch_rows)
                as_of_note = f" (a transaction log, aggregated to customers as of {as_of})"
            elif args.as_of:
                raise InputProblem("--as-of applies to a raw transaction log scored with a model trained on one; "
                                   f"{str(args.input)!r} is a customer table for this model")
            else:
                rows, errors, model, version = score_file(client, source, args.output, model=args.model,
                                                          version=args.version, batch_rows=args.batch_rows,
                                                          allow_missing=args.allow_missing)
    except (InputProblem, DataError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_INPUT
    except ScoringError as exc:
        print(f"error: {_service_message(exc, args.target)}", file=sys.stderr)
        return EXIT_SERVICE
    except (pd.errors.ParserError, UnicodeDecodeError, ValueError) as exc:
        print(f"error: cannot read {str(args.input)!r}: {exc}", file=sys.stderr)
        return EXIT_INPUT
    except OSError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_INPUT
    except KeyboardInterrupt:
        print("interrupted; no output written", file=sys.stderr)
        return EXIT_INTERRUPTED
    elapsed = time.perf_counter() - started
    if not args.quiet:
        rate = rows / elapsed if elapsed > 0 else 0.0
        print(f"scored {rows:,} rows{as_of_note} ({errors:,} with an error) with {model} {version} in "
              f"{elapsed:.1f}s ({rate:,.0f} rows/s) -> {args.output}")
    return EXIT_OK


if __name__ == "__main__":
    raise SystemExit(main())

"""``python -m scoring_service.client score IN.csv -o OUT.csv``: batch-score a file over one PredictStream.

The input is read in chunks (CSV with any delimiter and an optional BOM, also gzip; Parquet by row
groups; Excel whole), so a file larger than memory works; every chunk goes over the same stream, so
the whole file is answered by one model version. The output has the layout of every scored file
(``segmentation_core.scored``: the input's id column under its own name, the inputs kept by ``--inputs``,
``segment_id`` (-1 for a row that could not be scored), ``segment_name``, ``distance``, ``confidence``,
``outlier`` and ``error``), written by its one pyarrow CSV writer to a temporary file renamed into place at
the end, so OUT is never half-written.

For a model trained on a transaction log, IN may be a raw log in the training log's layout: the model's
own recipe (sent by the service with the model's info) aggregates it here to one row per customer, as of
``--as-of`` (default: the rule used in training), and the output has one row per customer: the log's customer
id column, the per-customer columns kept (``--inputs``), the results, the CLV figures when the model has CLV,
and ``as_of``.

Exit codes: 0 done (rows with an error are listed in the ``error`` column), 1 the service failed or
refused (unreachable, unknown model ...), 2 bad input or usage (file, missing feature columns), 130
interrupted.
"""
from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping, Sequence

import grpc
import pandas as pd

from scoring_service.client import logs
from scoring_service.client.targets import check_target
from scoring_service.client.types import DEFAULT_TARGET, ScoringError
from scoring_service.client.unary import ScoringClient
from segmentation_core import scored
from segmentation_core.errors import DataError
from segmentation_core.settings import add_options, at_least, from_namespace, option
from segmentation_core.scored import find_id_column  # noqa: F401  (its home before segmentation_core.scored)
from segmentation_core.tables import Table, atomic_output, open_table

log = logging.getLogger("scoring_service.client")

ENV_PREFIX = "SCORING_"
EXIT_OK, EXIT_SERVICE, EXIT_INPUT, EXIT_INTERRUPTED = 0, 1, 2, 130
CHUNK_ROWS = 200_000  # rows read from the file at a time: bounded memory, yet few pandas calls


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


def open_source(path: Path, id_column: str | None) -> Source:
    """Open a CSV (any delimiter, whitespace-aligned, .gz), Parquet or Excel file for chunked reading."""
    if not path.is_file():
        raise InputProblem(f"input file {str(path)!r} does not exist")
    try:
        table = open_table(path)
    except DataError as exc:
        raise InputProblem(str(exc)) from None
    return Source(table, _choose_id(table.columns, id_column))


def _choose_id(columns: Sequence[str], requested: str | None, manifest: Mapping[str, Any] | None = None) -> str | None:
    """The id column, by the rule of every scored file (``segmentation_core.scored.id_column``)."""
    try:
        return scored.id_column(columns, manifest, requested)
    except DataError as exc:
        raise InputProblem(str(exc)) from None


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

# ---------------------------------------------------------------------------------------------------
# Scoring a file

def score_file(client: ScoringClient, source: Source, out: Path, *, model: str | None, version: str | None,
               batch_rows: int, allow_missing: bool, inputs: str = scored.DEFAULT_INPUTS) -> tuple[int, int, str, str]:
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
            writer = scored.CsvWriter(fh, source.delimiter)
            features, numeric = [*stream.schema.numeric, *stream.schema.categorical], stream.schema.numeric

            def layout(frame: pd.DataFrame, result: pd.DataFrame) -> pd.DataFrame:
                return scored.scored_customers(frame, result, features=features, numeric=numeric,
                                               id_name=source.id_column, inputs=inputs)

            for frame, result in stream.score(source.table.chunks(CHUNK_ROWS)):
                writer.write(layout(frame, result))
                rows += len(result)
                errors += int((result["segment_id"] < 0).sum())
            empty = pd.DataFrame({name: [] for name in source.columns})
            writer.close(list(layout(empty, pd.DataFrame({name: [] for name in scored.RESULT_COLUMNS})).columns))
    finally:
        stream_progress.close()
    return rows, errors, stream.schema.model, stream.schema.version


def score_log_file(client: ScoringClient, source: Source, out: Path, *, model: str | None, version: str | None,
                   as_of: str | None, batch_rows: int, inputs: str = scored.DEFAULT_INPUTS) -> tuple[int, int, str, str, str]:
    """Aggregate a raw log with the model's recipe and score it into ``out`` (atomically); returns (customers,
    customers with an error, model, version, as-of date)."""
    log_score = logs.score_log(client, source.table.read(), model=model, version=version, as_of=as_of,
                            batch_rows=batch_rows, inputs=inputs)
    result = log_score.result
    with atomic_output(out) as fh:
        fh.write(scored.csv_bytes(result, source.delimiter))  # the input's delimiter (commas if aligned)
    info = client.model_info(model, version)
    return len(result), int((result["segment_id"] < 0).sum()), info.model, info.version, log_score.as_of


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
    id_column: str | None = option(None, "the input's id column, written under its own name (none: the model's id "
                                         "column, else the first named like an id, else row numbers in 'row')")
    inputs: str = option(scored.DEFAULT_INPUTS, "input columns kept beside the id and the results: the model's "
                                                "features, all, or none", choices=scored.INPUTS)
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
                    "into the CSV file OUT, written under a temporary name and renamed at the end. OUT has the "
                    "input's id column under its own name, the model's feature columns (--inputs), then "
                    "segment_id (-1 for a row that could not be scored), segment_name, distance, confidence, "
                    "outlier and error (naming the line and field); a raw transaction log is first "
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
            info = client.model_info(args.model, args.version)
            if logs.is_log(info, source.columns):
                if args.id_column:
                    raise InputProblem("--id-column applies to a customer table; a raw log's customers are named by "
                                       "its customer id column")
                rows, errors, model, version, as_of = score_log_file(
                    client, source, args.output, model=args.model, version=args.version, as_of=args.as_of,
                    batch_rows=args.batch_rows, inputs=args.inputs)
                as_of_note = f" (a transaction log, aggregated to customers as of {as_of})"
            elif args.as_of:
                raise InputProblem("--as-of applies to a raw transaction log scored with a model trained on one; "
                                   f"{str(args.input)!r} is a customer table for this model")
            else:
                source.id_column = _choose_id(source.columns, args.id_column,
                                              json.loads(info.manifest_json) if info.manifest_json else None)
                rows, errors, model, version = score_file(client, source, args.output, model=args.model,
                                                          version=args.version, batch_rows=args.batch_rows,
                                                          allow_missing=args.allow_missing, inputs=args.inputs)
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

"""``python -m training_job score``: score a file with a model from the store, no service needed.

A transactions model's recipe (segmentation_core.recipe) first aggregates a raw log to one row per
customer, as of a date (default: the recipe's rule, as in training); a customer table is matched to the
feature schema as the client CLI does. Scoring is the service's own math (FeatureSchema.transform_columns,
SegmentModel.score, ClvModel.predict), so the numbers are the service's. As from the client CLI, a row that
cannot be scored (a numeric cell that is not a number) gets segment_id -1 and its reason in ``error``, which in a
customer table starts with where the row is in the input (``line 152: ...``: its line in a text file, whose header
is line 1; its row in a Parquet file or on the sheet); a blank cell is imputed, but a row whose every feature cell
is blank is an error ("no feature values: nothing to score"), and so is one none of whose values is usable ("no
usable feature values: ..." saying why: outside the valid range, a level training never saw). The output (CSV, gzipped CSV or Parquet, told by its
name) is written atomically in the layout of every scoring path (``segmentation_core.scored``: the input's id column
under its own name, the inputs kept, the results; CSV by the one writer the client CLI and the dashboard use).
"""
from __future__ import annotations

import gzip
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np
import pandas as pd

from segmentation_core.artefact import Artefact, read_artefact
from segmentation_core.clv import FIGURES, describe_problem, input_problems
from segmentation_core import scored
from segmentation_core.errors import DataError, RowLines
from segmentation_core.features import Partial
from segmentation_core.parsing import feature_numbers, strip_text
from segmentation_core.recipe import CLV_INPUTS, Recipe, aggregate, check_features, is_log_table
from segmentation_core.store import ModelStore
from segmentation_core.tables import atomic_output, match_columns, read_table

__all__ = ["OUTPUT_FORMATS", "RESULT_COLUMNS", "ScoreSummary", "input_names", "output_format", "result_fields",
           "score_columns", "score_file", "score_frame"]

log = logging.getLogger(__name__)

RESULT_COLUMNS = ("id", "segment_id", "segment_name", "distance", "confidence", "outlier", "error", *FIGURES, "as_of")
"""The columns ``score --engine spark``'s Parquet adds (:func:`score_columns`, :func:`result_fields`); a feature of the
same name is written as ``input_<name>``. The pandas path writes ``segmentation_core.scored``'s layout."""
INPUT_PREFIX = "input_"
OUTPUT_FORMATS = (".csv", ".csv.gz", ".parquet")
"""The output file extensions ``score_file`` writes: CSV, gzipped CSV, Parquet."""


@dataclass(frozen=True)
class ScoreSummary:
    """What a score run wrote."""

    model: str
    version: str
    rows: int
    errors: int
    as_of: str | None
    """The as-of date the recipe used (transaction models), else None."""
    output: Path


def score_frame(artefact: Artefact, frame: pd.DataFrame, *, as_of: str | None = None,
                inputs: str = scored.DEFAULT_INPUTS, id_column: str | None = None) -> tuple[pd.DataFrame, str | None]:
    """Score a raw table and return the scored table (``segmentation_core.scored``'s layout) and the as-of date
    used. A transactions model's raw log (``segmentation_core.recipe.is_log_table``, the rule of the client CLI and
    the Batch page) is aggregated with its recipe first; any other table, an already aggregated RFM table too, is a
    customer table of the model's features."""
    schema = artefact.schema
    recipe = Recipe.from_dict(artefact.recipe) if artefact.recipe is not None else None
    if recipe is not None and is_log_table(recipe, [f.name for f in schema.numeric], frame.columns):
        check_features(schema.feature_names, f"{artefact.manifest.get('model')} {artefact.version}", recipe)
        table, report = aggregate(frame, recipe, as_of)
        log.info("aggregated %d log rows to %d customers as of %s (%d rows after the as-of date left out)",
                 report.rows_in, report.customers, report.snapshot_date, report.after_as_of)
        customers = table.reset_index()
        id_name, id_output = str(customers.columns[0]), recipe.customer_id
        columns = {name: name for name in schema.feature_names}
        used_as_of: str | None = str(report.snapshot_date)
        if id_column is not None:
            raise DataError(f"--id-column applies to a customer table; a raw log's customers are named by its "
                            f"{recipe.customer_id!r} column")
    else:
        if as_of is not None and recipe is not None:
            raise DataError(f"--as-of applies to a raw transaction log; {frame.attrs.get('source', 'the input')} is a "
                            f"customer table for model {artefact.manifest.get('model')} {artefact.version}")
        columns = customer_columns(artefact, list(frame.columns), as_of)
        _warn_blank(frame, columns, str(frame.attrs.get("source", "the table")))
        _warn_unseen(artefact, frame, columns, str(frame.attrs.get("source", "the table")))
        customers = frame.reset_index(drop=True)
        id_name = scored.id_column(frame.columns, artefact.manifest, id_column)
        id_output, used_as_of = None, None
    results = _score(artefact, customers, columns)[list(scored.RESULT_COLUMNS)]
    clv_columns, clv_missing = match_columns(CLV_INPUTS, list(customers.columns))
    if artefact.clv is not None and not clv_missing:  # as the service: CLV when the table has the CLV inputs
        _add_clv(artefact, results, [customers[clv_columns[name]] for name in CLV_INPUTS])
    if used_as_of is None:
        results["error"] = scored.located(results["error"], RowLines.of(frame.attrs))
    numeric = {columns[f.name] for f in schema.numeric}
    result = scored.scored_table(customers, results, id_name=id_name, features=list(columns.values()),
                                 numeric=numeric, inputs=inputs, id_output=id_output, as_of=used_as_of)
    return result, used_as_of


def _add_clv(artefact: Artefact, results: pd.DataFrame, inputs: list[pd.Series]) -> None:
    """Add the CLV figures of the rows' CLV ``inputs`` (in ``CLV_INPUTS``' order) to ``results``, as the service
    computes them: single precision, a row whose inputs are invalid gets its error (``segmentation_core.clv``'s
    check and wording) and no segment, a row with an error no figures."""
    columns = [_numbers(values, str(values.name))[0].to_numpy(np.float32, na_value=np.nan) for values in inputs]
    problems = input_problems(*columns)
    failed = results["segment_id"].to_numpy() < 0
    bad = np.flatnonzero((problems >= 0) & ~failed)
    if bad.size:
        results.loc[bad, ["distance", "confidence"]] = np.nan
        results.loc[bad, "segment_id"], results.loc[bad, "segment_name"], results.loc[bad, "outlier"] = -1, None, False
        results.loc[bad, "error"] = [describe_problem(int(problems[row]), float(columns[problems[row]][row]))
                                     for row in bad]
    for column in columns:
        column[problems >= 0] = 0.0  # harmless stand-ins, blanked below
    failed = results["segment_id"].to_numpy() < 0
    for name, values in zip(FIGURES, artefact.clv.predict(*columns)):
        values = np.array(values, copy=True)
        values[failed] = np.nan
        results[name] = values


def customer_columns(artefact: Artefact, names: list[str], as_of: str | None) -> dict[str, str]:
    """The model's feature columns found among a customer table's column ``names`` (feature -> column);
    DataError naming what is missing, or refusing ``as_of`` (it applies to transaction-log models only)."""
    model = f"{artefact.manifest.get('model')} {artefact.version}"
    if as_of is not None:
        raise DataError(f"--as-of applies to transaction-log models; model {model} scores a customer table")
    columns, missing = match_columns(artefact.schema.feature_names, names)
    if missing:
        raise DataError(f"the input lacks feature column(s) {', '.join(map(repr, missing))} of model {model}; "
                        f"the file has: {', '.join(map(str, names))}")
    return columns


def score_columns(artefact: Artefact, features: pd.DataFrame, columns: dict[str, str], ids: np.ndarray
                  ) -> pd.DataFrame:
    """Score rows whose feature ``name`` is in column ``columns[name]`` (rows indexed 0..n-1): the result table's
    rows, ids first, then the features, the segment columns and (a transactions model with CLV) the CLV figures.
    The Spark engine calls it on each Arrow batch."""
    result = _score(artefact, features, columns)
    result.insert(0, "id", ids)
    if artefact.clv is not None and artefact.recipe is not None:
        figures = artefact.clv.predict(*(features[name].to_numpy(np.float64) for name in CLV_INPUTS))
        for name, values in zip(FIGURES, figures):
            result[name] = values
    return result


def result_fields(artefact: Artefact, *, with_as_of: bool) -> list[tuple[str, str]]:
    """The result table's columns and their SQL types, in :func:`score_columns`' order (for a Spark schema)."""
    schema = artefact.schema
    names = input_names(schema.feature_names)
    _warn_renamed(names)
    fields = [("id", "string")]
    fields += [(names[f.name], "double") for f in schema.numeric]
    fields += [(names[c.name], "string") for c in schema.categorical]
    fields += [("segment_id", "int"), ("segment_name", "string"), ("distance", "double"), ("confidence", "double"),
               ("outlier", "boolean"), ("error", "string")]
    if artefact.clv is not None and artefact.recipe is not None:
        fields += [(name, "float") for name in FIGURES]  # single precision, as ClvModel.predict gives them
    if with_as_of:
        fields.append(("as_of", "string"))
    return fields


def input_names(feature_names: Sequence[str]) -> dict[str, str]:
    """Each feature's column in the result table (feature -> column): its own name, or ``input_<name>`` when the
    result table has a column of that name (:data:`RESULT_COLUMNS`), so that no result overwrites the input."""
    taken = set(RESULT_COLUMNS) | set(feature_names)
    names: dict[str, str] = {}
    for name in feature_names:
        column = name
        if name in RESULT_COLUMNS:
            column = INPUT_PREFIX + name
            while column in taken:
                column = INPUT_PREFIX + column
            taken.add(column)
        names[name] = column
    return names


def _warn_renamed(names: dict[str, str]) -> None:
    """Log a warning for each feature written under another name (see :func:`input_names`)."""
    for name, column in names.items():
        if column != name:
            log.warning("feature column %r has the name of a result column: the input's values are written as %r",
                        name, column)


def _score(artefact: Artefact, features: pd.DataFrame, columns: dict[str, str]) -> pd.DataFrame:
    """The features as scored (numbers parsed), then the segment columns, of rows 0..n-1."""
    schema = artefact.schema
    parsed = {f.name: _numbers(features[columns[f.name]], columns[f.name]) for f in schema.numeric}
    numeric = {name: values.to_numpy(np.float64, na_value=np.nan) for name, (values, _) in parsed.items()}
    categorical = {c.name: features[columns[c.name]].tolist() for c in schema.categorical}
    imputed: dict[str, np.ndarray] = {}
    x, errors = schema.transform_columns(numeric, categorical, len(features), imputed=imputed)
    not_a_number: dict[int, str] = {}
    for _, not_numbers in parsed.values():  # a cell that is not a number is the row's error, never imputed
        for row, message in not_numbers.items():
            not_a_number.setdefault(row, message)
    errors.update(not_a_number)  # it says more than "no feature values" of a row whose only cell is not a number
    out = pd.DataFrame({output: parsed[name][0].array if name in parsed else features[columns[name]].to_numpy()
                        for name, output in input_names(schema.feature_names).items()})
    return pd.concat([out, _segments(artefact, x, errors, schema.partial_rows(imputed, len(features), errors))],
                     axis=1)


def _numbers(values: pd.Series, column: str) -> tuple[pd.Series, dict[int, str]]:
    """A numeric feature's cells as numbers by the one rule (``segmentation_core.parsing.feature_numbers``: text
    stripped, blank or an NA token missing, then pandas' numbers), and {row: error} for each cell that is not a
    number. Whole numbers stay whole (as the table reader types a column), so that the output shows 15, not 15.0."""
    if pd.api.types.is_numeric_dtype(values):
        return values, {}
    numbers, errors = feature_numbers(values, column)
    present = numbers.dropna()
    if (present == present.round()).all() and (present.abs() < 2**53).all():
        numbers = numbers.astype("Int64")
    return numbers, errors


def _segments(artefact: Artefact, x: np.ndarray, errors: dict[int, str], partial: Partial | None) -> pd.DataFrame:
    """The segment columns of the transformed rows ``x`` (those of ``partial`` partly known: the confidence given
    their known features, as the service gives it); a row in ``errors`` gets segment_id -1 and its error."""
    scores = artefact.model.score(x, partial)
    segment, distance = scores.segment.copy(), scores.distance.copy()
    confidence, outlier = scores.confidence.copy(), scores.outlier.copy()
    error = np.full(len(segment), "", dtype=object)
    if errors:
        bad = np.fromiter(errors, dtype=np.int64, count=len(errors))
        segment[bad], distance[bad], confidence[bad], outlier[bad] = -1, np.nan, np.nan, False
        error[bad] = [errors[i] for i in bad]
    names = np.asarray([*artefact.segment_names, None], dtype=object)
    return pd.DataFrame({"segment_id": segment, "segment_name": names[segment], "distance": distance,
                         "confidence": confidence, "outlier": outlier, "error": error})


def _warn_blank(frame: pd.DataFrame, columns: dict[str, str], source: str) -> None:
    """Log a warning for each feature column that is blank on every row (imputed for every customer)."""
    for column in columns.values():
        if frame[column].isna().all():
            log.warning("%s: feature column %r is blank on every row; it is imputed (as training's median or most "
                        "frequent value) for every customer", source, column)


#: A categorical column with at least this share of its values unseen in training is warned about.
UNSEEN_WARNING_SHARE = 0.5


def _warn_unseen(artefact: Artefact, frame: pd.DataFrame, columns: dict[str, str], source: str) -> None:
    """Log a warning for each categorical feature most of whose values training never saw (each scores as the
    implicit "other" level): another coding, language or column than the model was trained on."""
    for feature in artefact.schema.categorical:
        values = strip_text(frame[columns[feature.name]]).dropna().astype(str)
        if values.empty:
            continue
        counts = values.value_counts()
        unseen = [v for v in counts.index if feature.level_of(v) not in feature.index]
        share = float(counts[unseen].sum() / counts.sum()) if unseen else 0.0
        if share >= UNSEEN_WARNING_SHARE:
            log.warning("%s: %.0f%% of the values of column %r were never seen in training (%s); they score as "
                        "none of its levels (%s)", source, 100 * share, columns[feature.name],
                        ", ".join(repr(v) for v in unseen[:3]), ", ".join(feature.levels[:6]))


def score_file(store: ModelStore, model: str, data: Path, output: Path, *, as_of: str | None = None,
               version: str | None = None, inputs: str = scored.DEFAULT_INPUTS,
               id_column: str | None = None) -> ScoreSummary:
    """Score ``data`` with ``model`` (its CURRENT version, or ``version``) into ``output`` (CSV, gzipped CSV or
    Parquet, told by its name), keeping ``inputs`` (``segmentation_core.scored.INPUTS``)."""
    kind = output_format(Path(output))
    version = version or store.current(model)
    if version is None:
        raise DataError(f"model {model!r} has no published version in {store.root}")
    artefact = read_artefact(store.version_dir(model, version))
    frame = read_table(Path(data))
    result, used_as_of = score_frame(artefact, frame, as_of=as_of, inputs=inputs, id_column=id_column)
    _write_atomically(result, Path(output), kind, str(frame.attrs.get("delimiter", ",")))
    errors = int((result["segment_id"] < 0).sum())
    if errors:
        _warn_errors(result, Path(data))
    return ScoreSummary(model=model, version=version, rows=len(result), errors=errors, as_of=used_as_of,
                        output=Path(output))


def _warn_errors(result: pd.DataFrame, data: Path) -> None:
    """Log how many rows could not be scored, and the first one's id and reason (with its line, in a table)."""
    failed = result[result["segment_id"] < 0]
    first = failed.iloc[0]
    log.warning("%s: %d row(s) could not be scored (segment_id -1, the reason in the error column), the first "
                "(%s %s): %s", data, len(failed), result.columns[0], first.iloc[0], first["error"])


def output_format(output: Path) -> str:
    """The format ``output``'s name asks for (one of :data:`OUTPUT_FORMATS`); DataError naming the path, before
    anything is read, for a folder, a name inside a file, or an extension this command does not write."""
    supported = ", ".join(OUTPUT_FORMATS[:-1]) + " or " + OUTPUT_FORMATS[-1]
    if output.is_dir():
        raise DataError(f"--output {output}: is a directory; give a file name ending in {supported}")
    folder = next((p for p in (output.parent, *output.parent.parents) if p.exists()), None)
    if folder is not None and not folder.is_dir():
        raise DataError(f"--output {output}: {folder} is a file, not a folder")
    kind = next((suffix for suffix in OUTPUT_FORMATS if output.name.lower().endswith(suffix)), None)
    if kind is None:
        problem = f"{output.suffix!r} is not a format this command writes" if output.suffix else "no extension"
        raise DataError(f"--output {output}: {problem}; use {supported}")
    return kind


def _write_atomically(result: pd.DataFrame, output: Path, kind: str, delimiter: str = ",") -> None:
    """Write ``result`` to ``output`` as ``kind``: Parquet as it is, CSV (also gzipped) as every scoring path writes it
    (``segmentation_core.scored.csv_bytes``: the input's delimiter, formula-like text quoted, numbers as numbers);
    DataError naming the path when it cannot be written."""
    try:
        with atomic_output(output) as fh:
            if kind == ".parquet":
                result.to_parquet(fh, index=False)
            elif kind == ".csv.gz":
                with gzip.GzipFile(filename=output.name, mode="wb", fileobj=fh) as packed:
                    packed.write(scored.csv_bytes(result, delimiter))
            else:
                fh.write(scored.csv_bytes(result, delimiter))
    except OSError as exc:
        raise DataError(f"--output {output}: cannot write it ({exc.strerror or exc})") from exc

"""The scored table: one layout for every path that scores a file.

``python -m training_job score``, ``python -m scoring_service.client score`` and the dashboard's Batch download
build their output here, so the same input with the same options gives the same header and the same values:

1. the id: the input's own id column under its own name (the model's configured id column when the input has
   it, else the first column named like an id; ``--id-column`` chooses another), written as text as read (``7``,
   not ``7.0`` beside a blank id); a raw log's customers under the log's customer id column; no id column: ``row``,
   the row's number 1..n;
2. the inputs kept (:data:`INPUTS`, default ``features``): the model's feature columns under the input's own names,
   in the input's order, numeric ones as numbers (a cell that is not a number is blank, its row's ``error`` says
   what it was); ``all`` keeps every column of the scored table (a raw log: every per-customer column), ``none``
   only the id. An input named like a column below is written as ``input_<name>``;
3. :data:`RESULT_COLUMNS`: ``segment_id`` (-1 for a row that could not be scored), ``segment_name``, ``distance``,
   ``confidence``, ``outlier``, ``error`` (empty, or why the row was not scored, led by where it is in the input:
   ``line 152: Annual Income (k$): 'high' is not a number``);
4. a lifetime-value model's :data:`CLV_COLUMNS` when the scored table has the CLV inputs, and ``as_of`` (the date a
   raw log was aggregated at) for a raw log.

CSV (:class:`CsvWriter`, pyarrow): the input's delimiter (a comma for aligned text, Parquet or Excel), text quoted,
numbers bare, booleans ``true``/``false``, a missing value empty; text a spreadsheet would run as a formula is
quoted (``segmentation_core.csv_safety``), a number is never made text.
"""
from __future__ import annotations

import logging
import re
from typing import Any, BinaryIO, Collection, Mapping, Sequence

import numpy as np
import pandas as pd

from segmentation_core.clv import FIGURES
from segmentation_core.csv_safety import neutralize_cell, neutralize_series
from segmentation_core.errors import DataError, RowLines, describe_row
from segmentation_core.parsing import feature_numbers, format_ids
from segmentation_core.tables import match_columns

__all__ = ["AS_OF", "CLV_COLUMNS", "CsvWriter", "DEFAULT_INPUTS", "INPUTS", "RESULT_COLUMNS", "ROW", "csv_bytes",
           "find_id_column", "id_column", "located", "scored_customers", "scored_table"]

log = logging.getLogger(__name__)

RESULT_COLUMNS = ("segment_id", "segment_name", "distance", "confidence", "outlier", "error")
"""The columns every scored row gets, in this order."""
CLV_COLUMNS = FIGURES
AS_OF = "as_of"
ROW = "row"
"""The id column's name when the input has none: the row's number, 1..n."""
INPUTS = ("features", "all", "none")
"""Which input columns a scored file keeps (``--inputs``): the model's features, every column, or none."""
DEFAULT_INPUTS = "features"
INPUT_PREFIX = "input_"
_ID_TOKENS = {"id", "uuid", "guid", "key"}


def _tokens(name: object) -> list[str]:
    """'CustomerID' -> ['customer', 'id'], 'user_id' -> ['user', 'id']."""
    spaced = re.sub(r"([a-z0-9])([A-Z])", r"\1 \2", str(name))
    return [t for t in re.split(r"[^A-Za-z0-9]+", spaced.lower()) if t]


def find_id_column(columns: Sequence[object]) -> str | None:
    """The first column whose name looks like an id (a word 'id', 'uuid', 'guid' or 'key')."""
    for column in columns:
        if _ID_TOKENS & set(_tokens(column)):
            return str(column)
    return None


def id_column(columns: Sequence[object], manifest: Mapping[str, Any] | None = None,
              requested: str | None = None) -> str | None:
    """The column a scored file takes its ids from: ``requested`` (DataError if the input lacks it), else the
    model's configured id column (``manifest["config"]["data"]["id_column"]``) when the input has it, else the first
    named like an id, else None (rows numbered)."""
    names = [str(c) for c in columns]
    if requested:
        if requested not in names:
            raise DataError(f"--id-column {requested!r} is not a column of the input (columns: {names})")
        return requested
    configured = ((manifest or {}).get("config", {}) or {}).get("data", {}) or {}
    if configured.get("id_column") in names:
        return str(configured["id_column"])
    return find_id_column(names)


def located(errors: pd.Series, lines: RowLines | int | None) -> pd.Series:
    """Each failed row's error (``errors`` indexed by row number 0..n-1 of a customer table) led by where the row
    is in the input, as the table reader counts (``lines``: the table's :class:`RowLines`, or the line of row 0):
    ``line 152: Age: 'old' is not a number``."""
    if isinstance(errors.dtype, pd.CategoricalDtype):  # the client's: look at the codes, not a million strings
        failed = errors.cat.codes.to_numpy() >= 0
        failed &= np.asarray(errors.cat.categories, dtype=object)[np.maximum(errors.cat.codes.to_numpy(), 0)] != ""
    else:
        failed = (errors.notna() & errors.astype("string").ne("")).to_numpy(dtype=bool, na_value=False)
    if not failed.any():
        return errors
    out = errors.astype("string").fillna("")
    out[failed] = [f"{describe_row(int(label), lines)}: {message}"
                   for label, message in zip(errors.index[failed], out.to_numpy()[failed])]
    return out


def _ids(values: pd.Series) -> pd.Series:
    """Ids as read: whole numbers as integers (``7``, not ``7.0`` beside a blank id), anything else as text
    (``format_ids``). The CSV writer writes them as text."""
    if pd.api.types.is_integer_dtype(values) and not pd.api.types.is_bool_dtype(values):
        return values
    if pd.api.types.is_float_dtype(values):
        whole = values.dropna()
        if (whole == np.round(whole)).all():
            return values.astype("Int64")
    return format_ids(values).astype("string")


def _numbers(values: pd.Series) -> pd.Series:
    """A numeric feature's cells as numbers (a column of integers as it is, else float64; a cell that is not a finite
    number: missing)."""
    if pd.api.types.is_integer_dtype(values) and not pd.api.types.is_bool_dtype(values):
        return values
    if pd.api.types.is_numeric_dtype(values) and not pd.api.types.is_bool_dtype(values):
        numbers = values
    else:
        numbers = feature_numbers(values, str(values.name))[0]
    array = np.asarray(numbers.to_numpy(np.float64, na_value=np.nan), dtype=np.float64)
    if not np.isfinite(array).all():
        array = np.where(np.isfinite(array), array, np.nan)
    return pd.Series(array, index=values.index)


def _kept(frame: pd.DataFrame, id_name: str | None, features: Collection[str], inputs: str) -> list[str]:
    if inputs not in INPUTS:
        raise DataError(f"--inputs {inputs!r}: use one of {', '.join(INPUTS)}")
    if inputs == "none":
        return []
    wanted = set(map(str, features))
    return [str(c) for c in frame.columns if str(c) != id_name and (inputs == "all" or str(c) in wanted)]


def scored_table(frame: pd.DataFrame, results: pd.DataFrame, *, id_name: str | None, features: Collection[str],
                 numeric: Collection[str], inputs: str = DEFAULT_INPUTS, id_output: str | None = None,
                 as_of: str | None = None) -> pd.DataFrame:
    """The scored file's rows: ``frame`` (the scored table, rows aligned with ``results``) and ``results`` (the
    :data:`RESULT_COLUMNS`, optionally the :data:`CLV_COLUMNS`) in the one layout (module docstring).
    ``features``: the input's columns that are the model's features, ``numeric`` those that are numbers;
    ``id_name``: the id column of ``frame`` (None: rows numbered by ``frame``'s index + 1), written as
    ``id_output`` (default: its own name)."""
    head = id_output or id_name or ROW
    ids = _ids(frame[id_name]) if id_name is not None else pd.Series(frame.index + 1, index=frame.index)
    clv = [name for name in CLV_COLUMNS if name in results.columns]
    taken = {head, *RESULT_COLUMNS, *clv, *([AS_OF] if as_of is not None else [])}
    kept = _kept(frame, id_name, features, inputs)
    numeric = set(map(str, numeric))
    columns: dict[str, Any] = {head: ids.array}
    for name in kept:
        out = name
        while out in taken:
            out = INPUT_PREFIX + out
        if out != name:
            log.warning("input column %r has the name of a result column: its values are written as %r", name, out)
        taken.add(out)
        values = frame[name]
        columns[out] = (_numbers(values) if name in numeric else values).to_numpy()
    for name in (*RESULT_COLUMNS, *clv):
        values = results[name]  # categoricals (the client's names and errors) stay categoricals
        columns[name] = values.array if isinstance(values.dtype, pd.CategoricalDtype) else values.to_numpy()
    table = pd.DataFrame(columns, index=pd.RangeIndex(len(frame)), copy=False)
    if as_of is not None:
        table[AS_OF] = str(as_of)
    return table


def scored_customers(frame: pd.DataFrame, results: pd.DataFrame, *, features: Sequence[str], numeric: Sequence[str],
                     id_name: str | None, inputs: str = DEFAULT_INPUTS) -> pd.DataFrame:
    """A customer table's scored rows: ``frame`` as read (``segmentation_core.tables``; rows labelled by their number
    in the table, which place each row's ``error`` at its line) and the ``results`` of its rows; ``features`` and
    ``numeric``: the model's feature names (matched to ``frame``'s columns as the scoring matches them)."""
    found = match_columns(features, list(frame.columns))[0]
    results = results.assign(error=located(results["error"], RowLines.of(frame.attrs)))
    return scored_table(frame, results, id_name=id_name, features=list(found.values()),
                        numeric=[found[name] for name in numeric if name in found], inputs=inputs)


# ---------------------------------------------------------------------------------------------------
# CSV

def _text(values: pd.Series) -> Any:
    """A text column as an Arrow string array, formula-like cells quoted (categories: only their levels)."""
    import pyarrow as pa

    if isinstance(values.dtype, pd.CategoricalDtype):
        levels = [str(neutralize_cell(str(level))) for level in values.cat.categories]
        codes = values.cat.codes.to_numpy()
        return pa.DictionaryArray.from_arrays(pa.array(codes, mask=codes < 0),
                                              pa.array(levels, type=pa.string())).cast(pa.string())
    text = values if isinstance(values.dtype, pd.StringDtype) else values.astype("string")  # numbers among text: str
    return pa.array(neutralize_series(text), type=pa.string(), from_pandas=True)


def _arrow(values: pd.Series) -> Any:
    import pyarrow as pa

    if pd.api.types.is_bool_dtype(values) or (pd.api.types.is_numeric_dtype(values)
                                              and not isinstance(values.dtype, pd.CategoricalDtype)):
        return pa.array(values, from_pandas=True)
    return _text(values)


class CsvWriter:
    """Appends scored tables to a CSV file with pyarrow (about 6x faster than ``DataFrame.to_csv`` on float columns):
    the one CSV writer of scored files. The first table fixes each column's type; the id column is always text."""

    def __init__(self, sink: BinaryIO, delimiter: str = ",") -> None:
        self.sink = sink
        self.delimiter = delimiter
        self.writer: Any = None
        self.schema: Any = None

    def write(self, table: pd.DataFrame) -> None:
        import pyarrow as pa
        import pyarrow.csv as pacsv

        arrays = []
        for i, name in enumerate(table.columns):
            array = _arrow(table[name])
            if i == 0 and not pa.types.is_string(array.type) and name != ROW:
                array = array.cast(pa.string())
            arrays.append(array)
        names = [str(neutralize_cell(str(c))) for c in table.columns]
        arrow = pa.Table.from_arrays(arrays, names=names)
        if self.writer is None:
            # A column without a value yet (all missing) is text until a later table says otherwise: null type.
            self.schema = pa.schema([f.with_type(pa.string()) if pa.types.is_null(f.type) else f for f in arrow.schema])
            self.writer = pacsv.CSVWriter(self.sink, self.schema,
                                          write_options=pacsv.WriteOptions(delimiter=self.delimiter))
        if arrow.schema != self.schema:
            arrow = self._conform(arrow)
        self.writer.write_table(arrow)

    def _conform(self, arrow: Any) -> Any:
        """``arrow`` cast to the file's column types (an id read as numbers in one chunk and as text in another)."""
        import pyarrow as pa

        columns = []
        for field, column in zip(self.schema, arrow.columns):
            try:
                columns.append(column.cast(field.type))
            except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
                raise DataError(f"column {field.name!r} holds numbers in the first rows and text later; score it "
                                "with --inputs features, or make the column text") from None
        return pa.Table.from_arrays(columns, schema=self.schema)

    def close(self, columns: Sequence[str] = ()) -> None:
        """Finish the file; with no table written, the header of ``columns`` alone."""
        if self.writer is None:
            names = [str(neutralize_cell(str(c))) for c in columns]
            self.sink.write((self.delimiter.join('"' + n.replace('"', '""') + '"' for n in names) + "\n").encode())
        else:
            self.writer.close()


def csv_bytes(table: pd.DataFrame, delimiter: str = ",") -> bytes:
    """``table`` (a :func:`scored_table`) as the CSV bytes every path writes."""
    import io

    sink = io.BytesIO()
    writer = CsvWriter(sink, delimiter)
    if len(table.columns):
        writer.write(table)
    writer.close(list(table.columns))
    return sink.getvalue()

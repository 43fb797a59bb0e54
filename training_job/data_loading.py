"""Read a customer table or transaction log from CSV (any common delimiter, optionally gzipped), Parquet or Excel.

CSV is read as text and then each column that holds only numbers is converted, so that nothing the file says is
lost on the way in: zero-padded identifiers (``0001``) stay text, ``TRUE``/``FALSE`` stay as written, and a
numeric column with one stray word stays text so that ``prepare_table`` can quote that word and its line.

The returned frame carries ``frame.attrs["source"]`` (the path) and ``frame.attrs["first_data_line"]`` (the
1-based file line of the row with index label 0), which error messages use to point at lines in the file.
"""

from __future__ import annotations

import csv
import gzip
import io
import logging
import re
from pathlib import Path

import pandas as pd

from training_job.errors import DataError

__all__ = ["read_table"]

logger = logging.getLogger(__name__)

_SNIFF_BYTES = 64 * 1024
_DELIMITERS = (",", ";", "\t", "|")
_WHITESPACE = r"\s+"
_GZIP_MAGIC = b"\x1f\x8b"
_PARQUET_MAGIC = b"PAR1"
_ZIP_MAGIC = b"PK\x03\x04"  # .xlsx is a zip container
_OLE_MAGIC = b"\xd0\xcf\x11\xe0"  # legacy .xls
# A number with a leading zero ("0001", "-007") is an identifier or a code; converting it would lose the zeros.
_LEADING_ZERO = re.compile(r"^[+-]?0\d")
_SAMPLE_VALUES = 1000


def read_table(path: Path) -> pd.DataFrame:
    """Read a CSV/TSV/whitespace text table (optionally .gz), a Parquet file or an .xlsx workbook."""
    path = Path(path)
    if not path.exists():
        raise DataError(f"{path}: file not found")
    if path.is_dir():
        raise DataError(f"{path}: is a directory, expected a CSV, Parquet or Excel file")
    if path.stat().st_size == 0:
        raise DataError(f"{path}: file is empty")
    with path.open("rb") as handle:
        head = handle.read(8)
    if head.startswith(_PARQUET_MAGIC):
        frame = _read_parquet(path)
    elif head.startswith(_ZIP_MAGIC):
        frame = _read_excel(path)
    elif head.startswith(_OLE_MAGIC):
        raise DataError(f"{path}: legacy .xls workbooks are not supported; save it as .xlsx or CSV")
    else:
        frame = _read_text(path, compressed=head.startswith(_GZIP_MAGIC))
    if len(frame.columns) == 0:
        raise DataError(f"{path}: no columns found")
    if len(frame) == 0:
        raise DataError(f"{path}: has a header ({_preview(frame.columns)}) but no data rows")
    frame.attrs["source"] = str(path)
    logger.info("read %s: %d rows x %d columns", path, len(frame), len(frame.columns))
    return frame


def _read_parquet(path: Path) -> pd.DataFrame:
    try:
        frame = pd.read_parquet(path)
    except Exception as exc:  # pyarrow raises several unrelated types for corrupt files
        raise DataError(f"{path}: not a readable Parquet file ({exc})") from exc
    frame = frame.reset_index(drop=isinstance(frame.index, pd.RangeIndex))
    frame.attrs["first_data_line"] = 1  # Parquet has no header line: "line" means 1-based row
    return frame


def _read_excel(path: Path) -> pd.DataFrame:
    try:
        frame = pd.read_excel(path, sheet_name=0, engine="openpyxl")
    except Exception as exc:  # openpyxl/zipfile raise many types for non-workbooks
        raise DataError(f"{path}: not a readable .xlsx workbook ({exc})") from exc
    frame.attrs["first_data_line"] = 2  # spreadsheet row numbers: header in row 1
    return frame


def _read_text(path: Path, *, compressed: bool) -> pd.DataFrame:
    raw = _read_bytes(path, compressed)
    if b"\x00" in raw[:_SNIFF_BYTES]:
        raise DataError(f"{path}: unreadable format (binary data; expected CSV, Parquet or .xlsx)")
    encoding = _encoding(raw, path)
    sample = raw[:_SNIFF_BYTES].decode(encoding, errors="ignore")  # a cut multibyte char at the end is harmless
    if not sample.strip():
        raise DataError(f"{path}: file is empty")
    separator = _sniff_separator(sample)
    logger.debug("%s: separator %r, encoding %s", path, separator, encoding)
    try:
        # Cells are stripped later, column by column: pandas' skipinitialspace costs seconds on large files.
        frame = pd.read_csv(io.BytesIO(raw), sep=separator, dtype=str, encoding=encoding, encoding_errors="replace")
    except pd.errors.ParserError as exc:
        raise DataError(f"{path}: cannot parse as a table with separator {separator!r}: {exc}") from exc
    except pd.errors.EmptyDataError as exc:
        raise DataError(f"{path}: file is empty") from exc
    frame.columns = [str(column).strip() for column in frame.columns]
    frame.attrs["first_data_line"] = 2
    return _convert_numeric_columns(frame)


def _read_bytes(path: Path, compressed: bool) -> bytes:
    if not compressed:
        return path.read_bytes()
    try:
        with gzip.open(path, "rb") as handle:
            return handle.read()
    except (OSError, EOFError) as exc:
        raise DataError(f"{path}: corrupt gzip file ({exc})") from exc


def _encoding(raw: bytes, path: Path) -> str:
    try:
        raw.decode("utf-8-sig")
        return "utf-8-sig"  # also removes a leading BOM, which would otherwise stick to the first column name
    except UnicodeDecodeError as exc:
        # Exports from Excel on Windows are cp1252; say so rather than fail, since the bytes are still text.
        logger.warning("%s is not UTF-8 (%s at byte %d); decoding it as cp1252", path, exc.reason, exc.start)
        return "cp1252"


def _sniff_separator(sample: str) -> str:
    """Return the delimiter that splits the sample's lines into the same number (> 1) of fields."""
    lines = [line for line in sample.splitlines() if line.strip()]
    if len(sample) >= _SNIFF_BYTES and len(lines) > 1:
        lines = lines[:-1]  # the last line of a truncated sample may be cut short
    lines = lines[:200]
    best, best_fields = None, 1
    for delimiter in _DELIMITERS:
        counts = {len(row) for row in csv.reader(lines, delimiter=delimiter)}
        if len(counts) == 1 and (fields := counts.pop()) > best_fields:
            best, best_fields = delimiter, fields
    if best is not None:
        return best
    counts = {len(line.split()) for line in lines}
    if len(counts) == 1 and counts.pop() > 1:
        return _WHITESPACE
    # Ragged or single-column: fall back to the delimiter that appears most in the header.
    header = lines[0] if lines else ""
    return max(_DELIMITERS, key=header.count) if any(d in header for d in _DELIMITERS) else ","


def _convert_numeric_columns(frame: pd.DataFrame) -> pd.DataFrame:
    """Turn text columns that hold only numbers into numbers (int64 when whole, else float64)."""
    converted = {}
    for column in frame.columns:
        values = frame[column].str.strip()
        present = values.dropna()
        present = present[present != ""]
        if present.empty or present.str.match(_LEADING_ZERO).any():
            converted[column] = values.where(values != "")
            continue
        # A sample decides most text columns cheaply; parsing 500k strings that are not numbers is slow.
        if not _all_numbers(present.iloc[:_SAMPLE_VALUES]) or not _all_numbers(present):
            converted[column] = values.where(values != "")
            continue
        full = pd.to_numeric(values.where(values != ""), errors="coerce")
        whole = not full.isna().any() and (full == full.round()).all() and full.abs().max() < 2**53
        converted[column] = full.astype("int64") if whole else full.astype("float64")
    return pd.DataFrame(converted, index=frame.index).pipe(_keep_attrs, frame)


def _all_numbers(values: pd.Series) -> bool:
    return bool(pd.to_numeric(values, errors="coerce").notna().all())


def _keep_attrs(new: pd.DataFrame, old: pd.DataFrame) -> pd.DataFrame:
    new.attrs.update(old.attrs)
    return new


def _preview(columns: pd.Index, limit: int = 8) -> str:
    names = [str(c) for c in columns[:limit]]
    return ", ".join(names) + (", ..." if len(columns) > limit else "")

"""Read a customer table: the platform's one reader, used by the training job, the client CLI and the dashboard.

A table is CSV/TSV text (any of ``, ; TAB |`` or whitespace-aligned columns; UTF-8 with or without a BOM, UTF-16
with its BOM (Excel's "Unicode Text"), else Windows-1252; LF or CRLF; optionally gzipped; a first line ``sep=;``
(Excel's "CSV" in some locales) declares the separator and is skipped; an empty field past the header's columns,
as a delimiter ending some or all data rows leaves, is ignored (said at info level), a value there is an error
naming its line; a first line that is no header - JSON, numbers only, or a title above the header line (which is
refused saying where the header seems to be, not skipped) - is an error, a name given twice too), Parquet or an
.xlsx workbook. The format is told by the content (magic bytes), not by the file name, and a source is a path,
the bytes of a file (an upload) or a binary file object.

Text (and a workbook's cells) is read as text and then each column that holds only numbers is converted, so that
nothing the file says is lost on the way in: zero-padded identifiers (``0001``) and integers too long for a
float64 (past 2**53: a 19-digit card number) and a column with an infinity ('inf', or '1e400', beyond a float's
range) stay text, ``TRUE``/``FALSE`` stay as written, a column of
numbers as spreadsheets format them ('$1,234.50', '1.234,5 €', '45%') is numbers when one decimal mark reads
every cell, and a numeric column with one stray word stays text, so that the caller can quote that word and
its line. An empty cell is missing; a cell written as one of pandas' NA tokens (:data:`MISSING_TOKENS`: 'NA',
'None', 'null' ...) is missing in a column of numbers: in a text column the reader keeps it as written ('NA' for
North America), and the log says per column what each token became. A column a model treats as a numeric feature
reads the tokens as missing whatever type the reader gave it (``segmentation_core.parsing.number_cells``, used by
training and by every scoring path), so that one stray word in the column does not turn its 'NA' cells into errors.

``max_bytes`` bounds what a table may hold once decompressed (a gzip bomb: 50 MB of gzip can expand to
50 GB of text): the text's bytes, counted as it is scanned before parsing, an .xlsx workbook's uncompressed
zip members and a Parquet file's uncompressed column chunks, each from metadata, before anything is read.
Over it, ``DataError`` says so in one line. Servers that parse uploads set it (the training service's
``--max-table-mb``, the dashboard's batch upload); the command-line programs read any size.

``read_table`` returns the whole table; ``open_table`` sniffs the format once and reads it in chunks of
rows (a file larger than memory). A frame carries ``attrs["source"]`` (the file's name) and
``attrs["first_data_line"]`` (the 1-based file line of the row with index label 0) and, when blank lines or
fields spanning lines lie among the rows, ``attrs["line_gaps"]``: error messages name a row's line as a text editor
shows it (``segmentation_core.errors.RowLines``); a text table also carries ``attrs["delimiter"]`` (its separator,
fit for writing: what scored files are written with). A source that cannot be read raises ``DataError`` naming it.

This module uses pandas: the scoring server never imports it.
"""
from __future__ import annotations

import array
import codecs
import contextlib
import csv
import gzip
import io
import itertools
import logging
import os
import re
import secrets
import stat
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO, Callable, Iterable, Iterator, Union

import numpy as np
import pandas as pd

from segmentation_core.errors import DataError, RowLines
from segmentation_core.parsing import MISSING_TOKENS, formatted_numbers

__all__ = ["TableSource", "TableFormat", "Table", "TableTooLarge", "open_table", "read_table", "match_columns",
           "atomic_output", "MISSING_TOKENS"]

logger = logging.getLogger(__name__)

#: A path, the bytes of a file, or a binary file object.
TableSource = Union[str, os.PathLike, bytes, bytearray, memoryview, BinaryIO]

_SNIFF_BYTES = 64 * 1024
_SCAN_BLOCK = 4 << 20
_DELIMITERS = (",", ";", "\t", "|")
_WHITESPACE = r"\s+"
_GZIP_MAGIC = b"\x1f\x8b"
_PARQUET_MAGIC = b"PAR1"
_ZIP_MAGIC = b"PK\x03\x04"  # .xlsx is a zip container
_OLE_MAGIC = b"\xd0\xcf\x11\xe0"  # legacy .xls
# A number with a leading zero ("0001", "-007") is an identifier or a code; converting it would lose the zeros.
_LEADING_ZERO = re.compile(r"^[+-]?0\d")
# An integer written as digits; past 2**53 a float64 cannot hold it exactly (a 19-digit card number).
_DIGITS = re.compile(r"^[+-]?\d+$")
_FLOAT_EXACT = 2**53
_SAMPLE_VALUES = 1000
_READ_CHUNK_ROWS = 50_000


@dataclass(frozen=True)
class TableFormat:
    """How a source is read: ``kind`` text, parquet or excel; for text, separator, encoding, compression and the
    lines above the header that are skipped (Excel's ``sep=;`` line)."""

    kind: str
    separator: str = ","
    encoding: str = "utf-8-sig"
    compressed: bool = False
    skip_lines: int = 0

    @property
    def delimiter(self) -> str:
        """A one-character delimiter fit for writing a table like this one ("," for whitespace-aligned text)."""
        return self.separator if len(self.separator) == 1 else ","


@dataclass(frozen=True)
class Table:
    """A table source whose format is known: its columns, its size when cheap to know, and its rows."""

    name: str
    format: TableFormat
    columns: tuple[str, ...]
    #: Data rows when known without parsing (Parquet, Excel, or text lines counted while sniffing; a
    #: quoted field spanning lines makes the count an upper bound): for progress bars.
    total_rows: int | None
    _reader: Callable[[int | None], Iterator[pd.DataFrame]]

    def read(self) -> pd.DataFrame:
        """The whole table; a table without columns or without data rows raises ``DataError``."""
        frame = next(self._reader(None))
        if len(frame.columns) == 0:
            raise DataError(f"{self.name}: no columns found")
        if len(frame) == 0:
            raise DataError(f"{self.name}: has a header ({_preview(frame.columns)}) but no data rows")
        logger.info("read %s: %d rows x %d columns", self.name, len(frame), len(frame.columns))
        _log_missing_tokens(self.name, frame.attrs)
        return frame

    def chunks(self, rows: int) -> Iterator[pd.DataFrame]:
        """The table in frames of at most ``rows`` rows, indexed by row number across the whole table."""
        if rows < 1:
            raise ValueError(f"rows={rows} should be >= 1")
        offset = 0
        tokens: dict[str, Any] = {}
        for frame in self._reader(rows):
            frame.index = pd.RangeIndex(offset, offset + len(frame))
            offset += len(frame)
            tokens = _added_tokens(tokens, frame.attrs)
            yield frame
        _log_missing_tokens(self.name, tokens)


def _added_tokens(total: dict[str, Any], attrs: dict[str, Any]) -> dict[str, Any]:
    """``missing_tokens`` and ``kept_tokens`` (column -> token -> cells) of two chunks' attrs added up."""
    added: dict[str, Any] = {}
    for key in ("missing_tokens", "kept_tokens"):
        ours, theirs = total.get(key, {}), attrs.get(key, {})
        added[key] = {column: _tally(ours.get(column, {}), theirs.get(column, {})) for column in {*ours, *theirs}}
    return added


def _tally(*counts: dict[str, int]) -> dict[str, int]:
    """Counts (token -> cells) added up."""
    total: dict[str, int] = {}
    for count in counts:
        for token, n in count.items():
            total[token] = total.get(token, 0) + n
    return total


def _log_missing_tokens(name: str, attrs: dict[str, Any]) -> None:
    """Say, per column, how many cells each of :data:`MISSING_TOKENS` made missing (a column of numbers) or was
    kept as a value (a text column)."""
    def cells(tokens: dict[str, int]) -> str:
        return ", ".join(f"{token!r} ({n:,} cell{'s' * (n != 1)})"
                         for token, n in sorted(tokens.items(), key=lambda item: -item[1]))

    for column, tokens in attrs.get("missing_tokens", {}).items():
        logger.info("%s: column %r: %s read as missing (a column of numbers)", name, column, cells(tokens))
    for column, tokens in attrs.get("kept_tokens", {}).items():
        logger.info("%s: column %r: %s kept as a value, not missing (a text column: only an empty cell is missing "
                    "there, unless a model reads the column as a numeric feature)", name, column, cells(tokens))


def read_table(source: TableSource, *, name: str | None = None, max_bytes: int | None = None) -> pd.DataFrame:
    """Read a CSV/TSV/whitespace text table (optionally gzipped), a Parquet file or an .xlsx workbook; ``max_bytes``:
    the most it may hold once decompressed (None: any size)."""
    return open_table(source, name=name, max_bytes=max_bytes).read()


def open_table(source: TableSource, *, name: str | None = None, max_bytes: int | None = None) -> Table:
    """Sniff a table's format and columns, for ``Table.read`` or ``Table.chunks``; ``name`` names bytes in errors;
    ``max_bytes``: the most the table may hold once decompressed (DataError beyond; None: any size)."""
    src = _Source.of(source, name)
    head = src.head(8)
    if head.startswith(_PARQUET_MAGIC):
        return _open_parquet(src, max_bytes)
    if head.startswith(_ZIP_MAGIC):
        return _open_excel(src, max_bytes)
    if head.startswith(_OLE_MAGIC):
        raise DataError(f"{src.name}: legacy .xls workbooks are not supported; save it as .xlsx or CSV")
    return _open_text(src, compressed=head.startswith(_GZIP_MAGIC), max_bytes=max_bytes)


class TableTooLarge(DataError):
    """A table that holds more than ``max_bytes`` once decompressed."""


def _too_large(name: str, what: str, size: int, max_bytes: int) -> TableTooLarge:
    return TableTooLarge(f"{name}: {what} is over {size / 2**20:,.0f} MB; the limit is {max_bytes / 2**20:,.0f} MB "
                     "(a compressed file is counted as decompressed)")


def match_columns(schema_names: Iterable[str], columns: Iterable[Any]) -> tuple[dict[str, Any], list[str]]:
    """Map each schema feature to a table column (exact name, else the same name up to case, spaces and a BOM);
    also the features no column matches."""
    columns = list(columns)
    exact = {c for c in columns if isinstance(c, str)}
    loose: dict[str, Any] = {}
    for c in columns:
        loose.setdefault(_normalize_name(c), c)
    found: dict[str, Any] = {}
    missing: list[str] = []
    for name in schema_names:
        if name in exact:
            found[name] = name
        elif _normalize_name(name) in loose:
            found[name] = loose[_normalize_name(name)]
        else:
            missing.append(name)
    return found, missing


@contextlib.contextmanager
def atomic_output(path: Path) -> Iterator[BinaryIO]:
    """A file written under a temporary name beside ``path``, flushed, then renamed to ``path``; removed on failure
    (a reader never sees half a result table). The file gets the mode ``open(path, "wb")`` would give it: an
    existing file's, else 0666 less the umask (not mkstemp's 0600: these are files the user shares)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = _create_beside(path)
    try:
        with os.fdopen(fd, "wb") as handle:
            yield handle
            handle.flush()
            os.fsync(handle.fileno())
        with contextlib.suppress(FileNotFoundError):
            os.chmod(tmp, stat.S_IMODE(path.stat().st_mode))
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def _create_beside(path: Path, attempts: int = 100) -> tuple[int, Path]:
    """A new, empty file with a hidden temporary name beside ``path``, created as open() creates one (mode 0666,
    less the umask, which the kernel applies)."""
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0)
    for _ in range(attempts):
        tmp = path.with_name(f".{path.name}.{secrets.token_hex(6)}.tmp")
        try:
            return os.open(tmp, flags, 0o666), tmp
        except FileExistsError:
            continue
    raise FileExistsError(f"{path.parent}: no free temporary name for {path.name} after {attempts} attempts")


def _normalize_name(name: Any) -> str:
    return re.sub(r"\s+", " ", str(name).strip().lstrip("\ufeff")).casefold()


# ---------------------------------------------------------------------------------------------------
# Sources

class _Source:
    """A path, bytes or a file object, opened as many times as reading needs."""

    def __init__(self, name: str, open_: Callable[[], BinaryIO]) -> None:
        self.name = name
        self.open = open_

    @classmethod
    def of(cls, source: TableSource, name: str | None) -> "_Source":
        if isinstance(source, (str, os.PathLike)):
            path = Path(source)
            label = name or str(path)
            if not path.exists():
                raise DataError(f"{label}: file not found")
            if path.is_dir():
                raise DataError(f"{label}: is a directory, expected a CSV, Parquet or Excel file")
            if path.stat().st_size == 0:
                raise DataError(f"{label}: file is empty")
            return cls(label, lambda: path.open("rb"))
        if isinstance(source, (bytes, bytearray, memoryview)):
            data = bytes(source)
        elif hasattr(source, "read"):
            data = source.read()  # a file object is read once, into memory (an upload); large files come as paths
            name = name or getattr(source, "name", None)
        else:
            raise TypeError(f"a table source is a path, bytes or a binary file object, not {type(source).__name__}")
        label = str(name or "<table>")
        if not data:
            raise DataError(f"{label}: file is empty")
        return cls(label, lambda: io.BytesIO(data))

    def head(self, size: int) -> bytes:
        with self.open() as handle:
            return handle.read(size)


# ---------------------------------------------------------------------------------------------------
# Parquet and Excel

def _open_parquet(src: _Source, max_bytes: int | None = None) -> Table:
    import pyarrow.parquet as pq

    try:
        with src.open() as handle:
            parquet = pq.ParquetFile(handle)
            ranges = _named_range_indexes(parquet.schema_arrow)
            columns = tuple(_index_as_columns(parquet.schema_arrow.empty_table().to_pandas(), ranges, 0).columns)
            total = parquet.metadata.num_rows
            meta = parquet.metadata
            size = sum(meta.row_group(i).total_byte_size for i in range(meta.num_row_groups))
    except Exception as exc:  # pyarrow raises several unrelated types for corrupt files
        raise DataError(f"{src.name}: not a readable Parquet file ({exc})") from exc
    if max_bytes is not None and size > max_bytes:
        raise _too_large(src.name, "the Parquet data, uncompressed,", size, max_bytes)

    def reader(rows: int | None) -> Iterator[pd.DataFrame]:
        with src.open() as handle:
            try:
                if rows is None:
                    yield _parquet_frame(_index_as_columns(pd.read_parquet(handle), ranges, 0), src)
                    return
                offset = 0
                for batch in pq.ParquetFile(handle).iter_batches(rows):
                    yield _parquet_frame(_index_as_columns(batch.to_pandas(), ranges, offset), src)
                    offset += batch.num_rows
            except DataError:
                raise
            except Exception as exc:  # noqa: BLE001 - as above
                raise DataError(f"{src.name}: not a readable Parquet file ({exc})") from exc

    return Table(src.name, TableFormat("parquet"), columns, total, reader)


def _named_range_indexes(schema: Any) -> list[dict[str, Any]]:
    """The named RangeIndex pandas stored in a Parquet schema's metadata (no column in the file: start, stop, step)."""
    indexes = (schema.pandas_metadata or {}).get("index_columns", [])
    return [index for index in indexes
            if isinstance(index, dict) and index.get("kind") == "range" and index.get("name") is not None]


def _index_as_columns(frame: pd.DataFrame, ranges: list[dict[str, Any]], offset: int) -> pd.DataFrame:
    """A frame read from Parquet with its index as leading columns, except an unnamed RangeIndex (row numbers);
    a named one (``ranges``) is rebuilt from the metadata for the rows from ``offset`` on, as a batch lacks it."""
    if not isinstance(frame.index, pd.RangeIndex):
        return frame.reset_index()
    frame = frame.reset_index(drop=True)
    for position, index in enumerate(ranges):
        rows = np.arange(offset, offset + len(frame), dtype=np.int64)
        frame.insert(position, index["name"], index["start"] + index["step"] * rows)
    return frame


def _parquet_frame(frame: pd.DataFrame, src: _Source) -> pd.DataFrame:
    frame.attrs.update(source=src.name, first_data_line=1)  # Parquet has no header line: "line" is the row
    return frame


def _open_excel(src: _Source, max_bytes: int | None = None) -> Table:
    if max_bytes is not None:
        import zipfile

        try:
            with src.open() as handle, zipfile.ZipFile(handle) as workbook:
                size = sum(member.file_size for member in workbook.infolist())
        except (zipfile.BadZipFile, OSError, EOFError) as exc:
            raise DataError(f"{src.name}: not a readable .xlsx workbook ({exc})") from exc
        if size > max_bytes:
            raise _too_large(src.name, "the workbook, unzipped,", size, max_bytes)
    try:
        with src.open() as handle:
            # As text, then converted as text files are: a text cell "0001" keeps its zeros.
            frame = pd.read_excel(handle, sheet_name=0, engine="openpyxl", dtype=str, keep_default_na=False,
                                  na_values=[""])
    except Exception as exc:  # openpyxl/zipfile raise many types for non-workbooks
        raise DataError(f"{src.name}: not a readable .xlsx workbook ({exc})") from exc
    frame.columns = _stripped_names(frame.columns, src.name)
    frame.attrs.update(source=src.name, first_data_line=2)  # spreadsheet row numbers: header in row 1
    frame = _convert_numeric_columns(frame)

    def reader(rows: int | None) -> Iterator[pd.DataFrame]:
        if rows is None:
            yield frame
            return
        for start in range(0, len(frame), rows):
            yield _keep_attrs(frame.iloc[start:start + rows].copy(), frame)

    return Table(src.name, TableFormat("excel"), tuple(frame.columns), len(frame), reader)


# ---------------------------------------------------------------------------------------------------
# Text

def _open_text(src: _Source, *, compressed: bool, max_bytes: int | None = None) -> Table:
    sample, lines, bad_utf8 = _scan(src, compressed, max_bytes)
    if sample.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):  # Excel's "Unicode Text" export
        encoding = "utf-16"
    elif b"\x00" in sample:
        raise DataError(f"{src.name}: unreadable format (binary data; expected CSV, Parquet or .xlsx)")
    elif bad_utf8 is None:
        encoding = "utf-8-sig"  # also removes a leading BOM, which would otherwise stick to the first column name
    else:
        # Exports from Excel on Windows are cp1252; say so rather than fail, since the bytes are still text.
        logger.warning("%s is not UTF-8 (%s); decoding it as cp1252", src.name, bad_utf8)
        encoding = "cp1252"
    # A cut multibyte char at the end is harmless (and UTF-16 is decoded in whole code units).
    text = (sample[:len(sample) // 2 * 2] if encoding == "utf-16" else sample).decode(encoding, errors="ignore")
    declared = _declared_separator(text)
    if declared is not None:
        logger.info("%s: line 1 (%s) declares the separator %r: read with it, that line skipped", src.name,
                    text.splitlines()[0].lstrip("\ufeff"), declared)
        text = text.partition("\n")[2]
    if not text.strip():
        raise DataError(f"{src.name}: file is empty")
    separator = declared or _sniff_separator(text, truncated=len(sample) >= _SNIFF_BYTES, name=src.name)
    logger.debug("%s: separator %r, encoding %s", src.name, separator, encoding)
    fmt = TableFormat("text", separator, encoding, compressed, skip_lines=int(declared is not None))
    first_data_line = 2 + fmt.skip_lines

    def open_text() -> BinaryIO:
        handle = src.open()
        return gzip.GzipFile(fileobj=handle, mode="rb") if compressed else handle  # type: ignore[return-value]

    # Errors name a row by its line as an editor shows it: blank lines (no row) and fields spanning lines counted.
    line_gaps, total_rows = (lines.quoted_newline and _record_gaps(open_text, fmt, src.name)) or lines.gaps(fmt.skip_lines)

    header = _read_header(open_text, fmt, src.name)
    columns = _stripped_names(header, src.name)
    width = len(header)
    # One name per field: the header's, then one per field past them that a longer data row has (a trailing
    # delimiter). A row longer than ``names`` stops pandas, which says how long it is, and the read starts again
    # with that many names (``reader``).
    names = list(header)

    def read_csv(handle: BinaryIO, **options: Any) -> pd.io.parsers.TextFileReader:
        # The header line is read as the first row (header=None), so that pandas expects len(names) fields of each
        # row (with header=0 it would expect the header's, or drop past them unseen when the first data row is
        # longer). Cells are stripped later, column by column: pandas' skipinitialspace costs seconds on large files.
        # Only an empty field is missing as read; MISSING_TOKENS are decided column by column (_convert_numeric_columns).
        return pd.read_csv(handle, sep=separator, dtype=str, keep_default_na=False, na_values=[""],
                           encoding=encoding, encoding_errors="replace",
                           header=None, names=names, index_col=False, skiprows=fmt.skip_lines, iterator=True,
                           **options)

    def named(frame: pd.DataFrame) -> pd.DataFrame:
        frame.attrs.update(source=src.name, first_data_line=first_data_line, delimiter=fmt.delimiter)
        if line_gaps:
            frame.attrs["line_gaps"] = line_gaps
        frame = _without_fields_past_header(frame, width, src.name)
        frame.columns = list(columns)
        return frame

    def text_columns(positions: list[int]) -> dict[int, pd.Series]:
        """The columns at ``positions`` as text (stripped; blank: missing), read again."""
        with open_text() as handle, read_csv(handle, usecols=positions) as rows:
            frame = pd.concat(list(_data_frames(rows, _READ_CHUNK_ROWS)), ignore_index=True)
        columns = {}
        for i, position in enumerate(sorted(positions)):
            values = frame.iloc[:, i].str.strip()
            columns[position] = values.where(values != "")
        return columns

    def parsed(rows: int | None, skip: int) -> Iterator[pd.DataFrame]:
        """The table's frames (the whole table as one when ``rows`` is None), the first ``skip`` left out."""
        with open_text() as handle:
            try:
                with read_csv(handle) as text_rows:
                    # The whole table too is parsed in chunks, each converted at once, then joined: a table is never
                    # held as text whole (a 51 MB CSV of 2 million rows: 640 MB at peak in one read, 250 MB so).
                    chunks = _data_frames(text_rows, rows or _READ_CHUNK_ROWS)
                    if rows is None:
                        yield _joined([_convert_numeric_columns(named(frame)) for frame in chunks], text_columns)
                        return
                    for frame in itertools.islice(chunks, skip, None):
                        yield _convert_numeric_columns(named(frame))
            except pd.errors.EmptyDataError as exc:
                raise DataError(f"{src.name}: file is empty") from exc
            except (OSError, EOFError) as exc:
                raise DataError(f"{src.name}: corrupt or unreadable file ({exc})") from exc

    def reader(rows: int | None) -> Iterator[pd.DataFrame]:
        given = 0  # frames already yielded, which a read started again leaves out
        said = False
        for attempt in itertools.count():
            try:
                for frame in parsed(rows, given):
                    if len(names) > width and not said:  # the fields past the header held nothing up to here
                        logger.info("%s: an empty field past the header's %d columns (a delimiter ending a data "
                                    "line) is ignored", src.name, width)
                        said = True
                    yield frame
                    given += 1
                return
            except pd.errors.ParserError as exc:
                fields = _wider_row(exc, len(names))
                if fields is None or attempt == _WIDER_ROWS:
                    raise DataError(f"{src.name}: cannot parse as a table with separator {separator!r}: {exc}") from exc
                names.extend(_past_names(len(names), fields))

    return Table(src.name, fmt, tuple(columns), total_rows, reader)


def _scan(src: _Source, compressed: bool, max_bytes: int | None = None) -> tuple[bytes, _Lines, str | None]:
    """One pass over the (decompressed) bytes: the first 64 KiB, the lines (:class:`_Lines`), and why it is not UTF-8
    (or None); DataError as soon as more than ``max_bytes`` came out (a gzip bomb is never expanded further)."""
    decoder = codecs.getincrementaldecoder("utf-8")()
    utf16: Any = None  # UTF-16 (its BOM first) is decoded to count its lines: its newline is two bytes
    sample = b""
    lines = _Lines()
    offset = 0
    bad: str | None = None
    try:
        with src.open() as raw:
            handle = gzip.GzipFile(fileobj=raw, mode="rb") if compressed else raw
            while block := handle.read(_SCAN_BLOCK):
                if len(sample) < _SNIFF_BYTES:
                    sample += block[:_SNIFF_BYTES - len(sample)]
                if offset == 0 and block.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
                    utf16 = codecs.getincrementaldecoder("utf-16")(errors="replace")
                lines.feed(utf16.decode(block).encode() if utf16 is not None else block)
                if bad is None:
                    try:
                        decoder.decode(block)
                    except UnicodeDecodeError as exc:
                        bad = f"{exc.reason} at byte {offset + exc.start}"
                offset += len(block)
                if max_bytes is not None and offset > max_bytes:
                    raise _too_large(src.name, "the text, decompressed," if compressed else "the file", offset,
                                     max_bytes)
            if utf16 is not None:
                lines.feed(utf16.decode(b"", final=True).encode())
            lines.close()
            if bad is None:
                try:
                    decoder.decode(b"", final=True)
                except UnicodeDecodeError as exc:
                    bad = f"{exc.reason} at the end"
    except (OSError, EOFError) as exc:
        raise DataError(f"{src.name}: corrupt {'gzip ' if compressed else ''}file ({exc})") from exc
    return sample, lines, bad


#: A line holding nothing but spaces or tabs, which the parser skips (no row): the first, and the newline before one.
_BLANK_FIRST_LINE = re.compile(rb"[ \t]*\r?\n")
_BEFORE_BLANK_LINE = re.compile(rb"\n(?=[ \t]*\r?\n)")
#: A quoted field within one line.
_QUOTED_IN_LINE = re.compile(rb'"[^"\n]*"')


def _ends_inside_quotes(lines: bytes) -> bool:
    """Whether a line of ``lines`` (whole lines, the first starting outside quotes) ends inside quotes: a field that
    spans lines (or a stray quote, which makes it look so)."""
    quotes = lines.count(b'"')
    if quotes == 0:
        return False
    if quotes % 2:
        return True
    if quotes < len(lines) // 64:  # few quotes: pair them up within lines (28 ms for 47 MB of Online Retail)
        return sum(1 for _ in _QUOTED_IN_LINE.finditer(lines)) * 2 != quotes
    codes = np.frombuffer(lines, np.uint8)  # many: the number of quotes before each newline, odd or even (0.3 s)
    return bool((np.cumsum(codes == ord('"'), dtype=np.uint8)[codes == ord("\n")] & 1).any())


class _Lines:
    """A text table's lines as a text editor numbers them, counted in one pass over its bytes (fed in blocks): how
    many, which are blank, and whether a line ends inside quotes (a field spanning lines)."""

    def __init__(self) -> None:
        self.count = 0
        self.blank = array.array("q")  # the 1-based numbers of the blank lines
        #: Whether a line ends after an odd number of quote characters: a quoted field that spans lines (or a stray
        #: quote), so that lines are not rows; rows are then counted by reading the records (:func:`_record_gaps`).
        self.quoted_newline = False
        self._tail = b""

    def feed(self, data: bytes) -> None:
        data = self._tail + data
        cut = data.rfind(b"\n") + 1
        complete, self._tail = data[:cut], data[cut:]
        line, position = self.count, 0
        if complete.startswith((b"\n", b"\r\n")) or _BLANK_FIRST_LINE.match(complete):
            self.blank.append(line + 1)
        for match in _BEFORE_BLANK_LINE.finditer(complete):
            line += complete.count(b"\n", position, match.start()) + 1
            position = match.start() + 1
            self.blank.append(line + 1)
        self.count += complete.count(b"\n")
        if not self.quoted_newline:  # every line so far ended outside quotes: this block starts outside them
            self.quoted_newline = _ends_inside_quotes(complete)

    def close(self) -> None:
        """The last line, when no newline ends it."""
        if self._tail:
            self.count += 1
            if not self._tail.strip(b" \t\r"):
                self.blank.append(self.count)
            self._tail = b""

    def gaps(self, skip: int) -> tuple[str, int]:
        """The ``line_gaps`` of the rows below the header (the first line that is not blank after ``skip`` lines) and
        the number of rows, when each line that is not blank is one row."""
        labels: list[int] = []
        skipped: list[int] = []
        blank = [number for number in self.blank if number > skip]
        for count, number in enumerate(blank, start=1):
            label = max(0, number - skip - count - 1)  # the row below the blank line
            if labels and labels[-1] == label:
                skipped[-1] = count
            else:
                labels.append(label)
                skipped.append(count)
        return RowLines.gaps(labels, skipped), max(0, self.count - skip - 1 - len(blank))


def _record_gaps(open_text: Callable[[], BinaryIO], fmt: TableFormat, name: str) -> tuple[str, int] | None:
    """The ``line_gaps`` and number of rows of a text table some of whose fields span lines, from its records as
    Python's csv module reads them (quoted as pandas reads them); None when it cannot read them."""
    first = 2 + fmt.skip_lines
    labels: list[int] = []
    skipped: list[int] = []
    records = 0  # the header and the rows
    with open_text() as raw:
        text = io.TextIOWrapper(raw, encoding=fmt.encoding, errors="replace", newline="")
        rows = (csv.reader(text, delimiter=" ", skipinitialspace=True) if fmt.separator == _WHITESPACE
                else csv.reader(text, delimiter=fmt.separator))
        end = 0
        try:
            for record in rows:
                start, end = end + 1, rows.line_num
                if start <= fmt.skip_lines or (len(record) < 2 and not any(field.strip() for field in record)):
                    continue  # the sep= line, a blank line
                records += 1
                label = records - 2
                if label >= 0 and start - first - label != (skipped[-1] if skipped else 0):
                    labels.append(label)
                    skipped.append(start - first - label)
        except csv.Error as exc:  # a field over csv's size limit, a NUL
            logger.warning("%s: lines not counted (%s): an error may name a row's line wrongly", name, exc)
            return None
    return RowLines.gaps(labels, skipped), max(0, records - 1)


#: Excel's first line declaring the separator (``sep=;``; a tab as itself, or written as a backslash and t).
_SEP_LINE = re.compile(r'\ufeff?sep=(\\t|[^\w"\s]|\t)\r?')


def _declared_separator(text: str) -> str | None:
    """The separator a first line ``sep=X`` declares (as Excel writes in some locales), else None."""
    match = _SEP_LINE.fullmatch(text.partition("\n")[0])
    if match is None:
        return None
    return "\t" if match.group(1) == "\\t" else match.group(1)


def _sniff_separator(sample: str, *, truncated: bool, name: str) -> str:
    """Return the delimiter that splits the sample's lines into the same number (> 1) of fields; ``DataError`` when
    only the lines below a title do (:func:`_check_lines_above_header`)."""
    lines = _sample_lines(sample, truncated=truncated)
    texts = [line for _, line in lines]
    consistent = _consistent_separator(texts)
    if consistent is not None:
        return consistent
    _check_lines_above_header(lines, name)
    # Ragged or single-column: fall back to the delimiter that appears most in the header.
    header = texts[0] if texts else ""
    return max(_DELIMITERS, key=header.count) if any(d in header for d in _DELIMITERS) else ","


def _sample_lines(sample: str, *, truncated: bool) -> list[tuple[int, str]]:
    """The sample's first 200 non-blank lines and their 1-based numbers; a truncated sample's last line, which may
    be cut short, left out."""
    lines = [(number, line) for number, line in enumerate(sample.splitlines(), start=1) if line.strip()]
    if truncated and len(lines) > 1:
        lines = lines[:-1]
    return lines[:200]


def _consistent_separator(lines: list[str]) -> str | None:
    """The delimiter that splits every line into the same number (> 1) of fields (the most fields wins), else
    whitespace if it does, else None."""
    best, best_fields = None, 1
    for delimiter in _DELIMITERS:
        counts = {len(row) for row in csv.reader(lines, delimiter=delimiter)}
        if len(counts) == 1 and (fields := counts.pop()) > best_fields:
            best, best_fields = delimiter, fields
    if best is not None:
        return best
    counts = {len(line.split()) for line in lines}
    return _WHITESPACE if len(counts) == 1 and counts.pop() > 1 else None


def _fields(line: str, separator: str) -> list[str]:
    """One line's fields split by ``separator``."""
    return line.split() if separator == _WHITESPACE else next(csv.reader([line], delimiter=separator))


#: The most lines above a header that :func:`_check_lines_above_header` looks for.
_TITLE_LINES = 3


def _check_lines_above_header(lines: list[tuple[int, str]], name: str) -> None:
    """``DataError`` when the first lines (up to three) are a title above the header: the lines below them split
    into one number of fields, more than each line above has, and the first of them holds names (no number, and
    a name past the title's fields: not an empty field a trailing delimiter leaves). Those lines are not skipped:
    which lines are a title is the user's to say."""
    for skip in range(1, min(_TITLE_LINES, len(lines) - 1) + 1):
        below = [line for _, line in lines[skip:]]
        separator = _consistent_separator(below)
        if separator == _WHITESPACE and any(d in line for line in below for d in _DELIMITERS):
            separator = None  # "1,Ann Lee,3" splits in two at its space: delimited lines whose rows differ in length
        if separator is None:
            continue
        above = [len(_fields(line, separator)) for _, line in lines[:skip]]
        number, header = lines[skip][0], _fields(lines[skip][1], separator)
        past = header[max(above):]
        if past and any(field.strip() for field in past) and not _any_numbers(header):
            raise DataError(f"{name}: line {lines[0][0]} has {above[0]} field(s) while line {number} has "
                            f"{len(header)}; the header seems to be on line {number}: remove the line(s) above it")
        return


def _any_numbers(fields: list[str]) -> bool:
    """Whether any of ``fields`` is a number (as pandas reads one)."""
    return bool(pd.to_numeric(pd.Series(fields, dtype=object).str.strip(), errors="coerce").notna().any())


def _stripped_names(names: Iterable[Any], source: str) -> list[str]:
    """Column names without surrounding spaces; two equal so are a ``DataError`` naming the column and both places."""
    stripped = [str(name).strip() for name in names]
    first: dict[str, int] = {}
    for position, name in enumerate(stripped, start=1):
        if name in first:
            raise DataError(f"{source}: column {name!r} appears twice in the header (columns {first[name]} and "
                            f"{position}, once spaces around the names are stripped)")
        first[name] = position
    return stripped


def _read_header(open_text: Callable[[], BinaryIO], fmt: TableFormat, name: str) -> list[str]:
    """The column names of a text table's header line as written (a blank one is ``Unnamed: N``, as pandas
    names it); ``DataError`` when the line holds data rather than names (see :func:`_check_header`)."""
    with open_text() as handle:
        try:
            first = pd.read_csv(handle, sep=fmt.separator, header=None, nrows=1, dtype=str, index_col=False,
                                keep_default_na=False, encoding=fmt.encoding, encoding_errors="replace",
                                skiprows=fmt.skip_lines)
        except (pd.errors.ParserError, pd.errors.EmptyDataError) as exc:
            raise DataError(f"{name}: cannot read a header with separator {fmt.separator!r}: {exc}") from exc
    names = [str(v) if str(v).strip() else f"Unnamed: {i}" for i, v in enumerate(first.iloc[0])] if len(first) else []
    _check_header(names, name)
    return names


#: Whole numbers in this range, as column names, are years (a table with a column per year).
_YEARS = range(1900, 2101)


def _check_header(names: list[str], source: str) -> None:
    """``DataError`` for a first line that is data, not column names: a JSON document, or numbers only (the
    header line missing: its first customer would be read as the names), years excepted; a warning for two
    or more numbers among names."""
    if names and names[0].lstrip().startswith(("{", "[")):
        raise DataError(f"{source}: this looks like JSON, not a table; give CSV/TSV text, Parquet or an .xlsx "
                        f"workbook")
    numbers = pd.to_numeric(pd.Series(names, dtype=object).str.strip(), errors="coerce")
    odd = [n for n, v in zip(names, numbers) if pd.notna(v) and v not in _YEARS]
    if len(names) > 1 and numbers.notna().all() and odd:
        shown = ", ".join(names[:4]) + (", ..." if len(names) > 4 else "")
        raise DataError(f"{source}: the first line ({shown}) holds numbers, not column names; add a header line "
                        f"naming the columns")
    if len(odd) >= 2:  # numbered questions are possible names; a customer's values as names is the likelier
        logger.warning("%s: the header line has numbers among its column names (%s): if that line is a "
                       "customer, the file lacks its header line", source, ", ".join(odd[:4]))


#: How many times a read starts again with more columns for a longer row (_wider_row) before it gives up.
_WIDER_ROWS = 8
_PANDAS_WIDER_ROW = re.compile(r"Expected \d+ fields in line \d+, saw (\d+)")


def _wider_row(exc: pd.errors.ParserError, width: int) -> int | None:
    """The number of fields of the row longer than ``width`` that stopped pandas ("Expected 3 fields in line 9,
    saw 4"), else None."""
    match = _PANDAS_WIDER_ROW.search(str(exc))
    return int(match.group(1)) if match is not None and int(match.group(1)) > width else None


def _past_names(start: int, stop: int) -> list[str]:
    """Names for the columns ``start`` to ``stop`` - 1 past the header (fields no header name is for)."""
    return [f"\x00past {i}" for i in range(start, stop)]


def _data_frames(rows: pd.io.parsers.TextFileReader, size: int) -> Iterator[pd.DataFrame]:
    """The data rows of a text table read with its header line as the first row, in frames of ``size`` rows indexed
    from 0 (the first data row) on."""
    yield _relabelled(rows.get_chunk(size + 1).iloc[1:])  # no name holds the first chunk while the rest is read
    while True:
        try:
            frame = rows.get_chunk(size)
        except StopIteration:
            return
        yield _relabelled(frame)


def _relabelled(frame: pd.DataFrame) -> pd.DataFrame:
    """``frame`` with each row's label one less: labels counted from the first data row, not the header line."""
    frame.index = frame.index - 1
    return frame


def _without_fields_past_header(frame: pd.DataFrame, width: int, name: str) -> pd.DataFrame:
    """``frame``'s first ``width`` columns; a blank field past them (a trailing delimiter) is dropped, a value is a
    ``DataError`` naming its line."""
    if len(frame.columns) == width:
        return frame
    past = frame.iloc[:, width:]
    filled = past.notna() & past.apply(lambda column: column.str.strip().ne(""))
    rows = np.flatnonzero(filled.any(axis=1).to_numpy())
    if len(rows):
        row = rows[0]
        value = past.iloc[row][filled.iloc[row]].iloc[0]
        line = RowLines(frame.attrs["first_data_line"], frame.attrs.get("line_gaps", "")).line(frame.index[row])
        raise DataError(f"{name}: line {line} has a value ({value!r}) past the header's {width} columns")
    return _keep_attrs(frame.iloc[:, :width], frame)


def _convert_numeric_columns(frame: pd.DataFrame) -> pd.DataFrame:
    """Turn text columns that hold only numbers into numbers (int64 when whole, else float64; text still when an
    integer is written with more digits than a float64 keeps), a cell written as one of :data:`MISSING_TOKENS`
    missing among them; a text column keeps those cells as written. What the tokens became is counted in
    ``attrs["missing_tokens"]`` and ``attrs["kept_tokens"]`` (column -> token -> cells). Consumes ``frame`` (each
    text column is dropped as soon as it is converted) and works with masks rather than copies of the column, so
    that a large table is not held several times over while it is converted."""
    converted = {}
    index, attrs = frame.index, dict(frame.attrs)
    missing_tokens: dict[str, dict[str, int]] = {}
    kept_tokens: dict[str, dict[str, int]] = {}
    for column in list(frame.columns):
        values = frame.pop(column).str.strip()
        empty = values.eq("").to_numpy(dtype=bool, na_value=False)
        if empty.any():
            values = values.where(~empty)
        tokens = values.isin(MISSING_TOKENS).to_numpy(dtype=bool, na_value=False)
        numbers = _numbers_of(values.where(~tokens) if tokens.any() else values, column, attrs)
        converted[column] = values if numbers is None else numbers
        if tokens.any():
            counts = {str(token): int(n) for token, n in values[tokens].value_counts(sort=False).items()}
            (kept_tokens if numbers is None else missing_tokens)[column] = counts
    result = pd.DataFrame(converted, index=index, copy=False)  # not a copy of the chunk (pandas 3 copies by default)
    result.attrs.update(attrs, missing_tokens=missing_tokens, kept_tokens=kept_tokens)
    return result


def _numbers_of(values: pd.Series, column: str, attrs: dict[str, Any]) -> pd.Series | None:
    """A stripped text column (blank: missing) as numbers when it holds only numbers, else None (it stays text)."""
    present = values.notna().to_numpy()
    if not present.any() or values.str.match(_LEADING_ZERO, na=False).any():
        return None
    # A sample decides most text columns cheaply; parsing 500k strings that are not numbers is slow.
    sample = values.iloc[np.flatnonzero(present)[:_SAMPLE_VALUES]]
    if not _all_numbers(sample):
        numbers = _formatted_or_text(values, sample, column, attrs.get("source", "the table"))
        return None if numbers is values else numbers
    full = _to_numbers(values)
    if int(full.notna().sum()) != int(present.sum()) or _has_inexact_integers(values, full) \
            or np.isinf(full.to_numpy()).any():
        # A word among the numbers, digits a float drops, or an infinity ('inf', or '1e400': out of a float's
        # range): the column stays text, so that an error quotes the cell as written.
        return None
    whole = not full.isna().any() and (full == full.round()).all() and full.abs().max() < _FLOAT_EXACT
    return full.astype("int64") if whole else full.astype("float64")


def _formatted_or_text(values: pd.Series, sample: pd.Series, column: str, source: str) -> pd.Series:
    """``values`` as float64 when every cell is a number as spreadsheets format them ('$1,234.50', '1.234,5',
    '45%': :func:`segmentation_core.parsing.formatted_numbers`), said in the log; else ``values`` (text)."""
    parsed = formatted_numbers(sample)
    if parsed is not None and len(sample) < int(values.notna().sum()):  # the sample said yes: now every cell
        parsed = formatted_numbers(values)
    if parsed is None:
        return values
    numbers, how = parsed[0].reindex(values.index), parsed[1]  # the sample's rows: blank ones added back
    first = int(np.flatnonzero(values.notna().to_numpy())[0])
    logger.info("%s: column %r holds formatted numbers, read with %s (%r -> %s)", source, column, how,
                values.iloc[first], numbers.iloc[first])
    return numbers


def _has_inexact_integers(values: pd.Series, numbers: pd.Series) -> bool:
    """Whether a cell of ``values`` is an integer written as digits that is too large for float64 (``numbers``)."""
    large = (numbers.abs() >= _FLOAT_EXACT).to_numpy(dtype=bool, na_value=False)
    return bool(large.any()) and bool(values[large].str.match(_DIGITS).any())


def _joined(chunks: list[pd.DataFrame], text_columns: Callable[[list[int]], dict[int, pd.Series]]) -> pd.DataFrame:
    """One frame of chunks converted one by one (:func:`_convert_numeric_columns`), typed as if converted whole:
    a column of numbers in every chunk (or blank in some) is numbers (int64 only when every chunk's is); a column
    of text in every chunk is text; one of numbers in some chunks and text in others is read again as text
    (``text_columns``: position -> column), since its numbers no longer say how they were written. A chunk whose
    cells are all blank or :data:`MISSING_TOKENS` is missing in a column of numbers. Consumes ``chunks`` column by
    column."""
    first = chunks[0]
    names, attrs = list(first.columns), dict(first.attrs)
    tokens: dict[str, Any] = {}
    for chunk in chunks:
        tokens = _added_tokens(tokens, chunk.attrs)
    columns: dict[int, pd.Series] = {}
    mixed: list[int] = []
    for position, name in enumerate(names):
        parts = [chunk.pop(name) for chunk in chunks]
        numbers = [_is_numbers(part) for part in parts]
        blank = [not n and bool((part.isna() | part.isin(MISSING_TOKENS)).all()) for n, part in zip(numbers, parts)]
        if all(numbers) or not any(numbers):
            columns[position] = pd.concat(parts, ignore_index=True)
        elif all(n or b for n, b in zip(numbers, blank)):
            columns[position] = pd.concat([part if n else pd.Series(np.nan, index=part.index, dtype="float64")
                                           for n, part in zip(numbers, parts)], ignore_index=True)
        else:
            mixed.append(position)
    columns.update(text_columns(mixed) if mixed else {})
    counted = {column: _tally(tokens["missing_tokens"].get(column, {}), tokens["kept_tokens"].get(column, {}))
               for column in [*tokens["missing_tokens"], *tokens["kept_tokens"]]}
    numeric = {names[position] for position, column in columns.items() if _is_numbers(column)}
    attrs["missing_tokens"] = {column: n for column, n in counted.items() if column in numeric}
    attrs["kept_tokens"] = {column: n for column, n in counted.items() if column not in numeric}
    # copy=False: pandas 3 copies a dict of Series by default, the whole table once more at the peak (a 51 MB
    # CSV read on the Batch page: the dashboard's peak RSS 463 MiB with the copy, 402-413 MiB without).
    frame = pd.DataFrame({names[position]: columns[position] for position in range(len(names))}, copy=False)
    frame.attrs.update(attrs)
    return frame


def _is_numbers(column: pd.Series) -> bool:
    return pd.api.types.is_numeric_dtype(column) and not pd.api.types.is_bool_dtype(column)


def _to_numbers(values: pd.Series) -> pd.Series:
    """float64 of a text column (NaN where a cell is missing or not a number). A column of Arrow strings whose
    every cell Arrow parses is cast by Arrow (pandas' to_numeric goes through Python strings: 100 MB more for
    2 million cells); anything else is pandas' to_numeric, which decides what is a number."""
    import pyarrow as pa

    if str(getattr(values.dtype, "storage", "")) == "pyarrow":
        try:
            cast = pa.array(values.array).cast(pa.float64())
            return pd.Series(cast.to_numpy(zero_copy_only=False), index=values.index)
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError, TypeError):
            pass
    return pd.to_numeric(values, errors="coerce")


def _all_numbers(values: pd.Series) -> bool:
    return bool(pd.to_numeric(values, errors="coerce").notna().all())


def _keep_attrs(new: pd.DataFrame, old: pd.DataFrame) -> pd.DataFrame:
    new.attrs.update(old.attrs)
    return new


def _preview(columns: pd.Index, limit: int = 8) -> str:
    names = [str(c) for c in columns[:limit]]
    return ", ".join(names) + (", ..." if len(columns) > limit else "")

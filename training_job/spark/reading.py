"""Reading a table on the cluster: CSV/TSV/whitespace-aligned text (optionally gzipped) or Parquet, from a
file, a folder or a glob, under any URI Spark reads (``file:``, ``hdfs:``, ``s3a:`` when configured).

Text is read as text (every column a string), as ``segmentation_core.tables`` reads it, so nothing the file
says is lost; the recipe then parses each column it uses and names the column and value it cannot parse.
The separator is sniffed from the first line (``, ; TAB |``; none of them: whitespace-aligned columns, as
in CDNOW_master.txt). Parquet keeps its types.
"""
from __future__ import annotations

import csv
import logging
import os
from typing import TYPE_CHECKING

from segmentation_core.errors import DataError

if TYPE_CHECKING:  # pragma: no cover
    from pyspark.sql import DataFrame, SparkSession

__all__ = ["columnar", "read_source"]

log = logging.getLogger(__name__)

_DELIMITERS = (",", ";", "\t", "|")
_PARQUET_MAGIC = b"PAR1"
_COLUMNAR_SUFFIXES = (".parquet", ".parq", ".pq", ".orc")


def read_source(spark: "SparkSession", path: str) -> "DataFrame":
    """The table at ``path`` (file, folder or glob) as a Spark DataFrame; a path that matches nothing, or holds
    no rows, raises DataError naming it."""
    from pyspark.errors import AnalysisException

    path = str(path)
    try:
        if _is_parquet(path):
            frame = spark.read.parquet(path)
        else:
            frame = _read_text(spark, path)
    except AnalysisException as exc:
        first = str(exc).splitlines()[0]
        if "PATH_NOT_FOUND" in first or "does not exist" in first or "UNABLE_TO_INFER_SCHEMA" in first:
            raise DataError(f"{path}: no file matches this path") from exc
        raise DataError(f"{path}: cannot be read: {first}") from exc
    frame = frame.toDF(*[_clean_name(c) for c in frame.columns])
    if not frame.columns:
        raise DataError(f"{path}: no columns found")
    return frame


def columnar(frame: "DataFrame") -> bool:
    """True when ``frame`` scans Parquet or ORC files only (cheap to scan again, so not worth caching)."""
    files = frame.inputFiles()
    return bool(files) and all(f.lower().rstrip("/").endswith(_COLUMNAR_SUFFIXES) for f in files)


def _is_parquet(path: str) -> bool:
    lowered = path.lower().rstrip("/")
    if lowered.endswith((".parquet", ".parq", ".pq")):
        return True
    local = path[len("file://"):] if path.startswith("file://") else path
    if os.path.isdir(local):
        names = [n for n in os.listdir(local) if not n.startswith((".", "_"))]
        return bool(names) and all(n.lower().endswith((".parquet", ".parq", ".pq")) for n in names)
    if os.path.isfile(local):
        with open(local, "rb") as fh:
            return fh.read(4) == _PARQUET_MAGIC
    return False


def _read_text(spark: "SparkSession", path: str) -> "DataFrame":
    from pyspark.sql import functions as F

    lines = spark.read.text(path)
    first = lines.first()
    if first is None:
        raise DataError(f"{path}: the file is empty")
    header = first[0].lstrip("\ufeff")
    separator = _sniff(header)
    if separator is not None:
        return (spark.read.option("header", True).option("sep", separator).option("quote", '"')
                .option("escape", '"').option("inferSchema", False).option("mode", "PERMISSIVE")
                .option("ignoreLeadingWhiteSpace", False).csv(path))
    # Whitespace-aligned columns: split every line on runs of blanks; the header line(s) of each file dropped.
    names = header.split()
    if not names:
        raise DataError(f"{path}: the first line has no column names")
    text = F.trim(F.regexp_replace(F.col("value"), "^\ufeff", ""))
    cells = F.split(text, r"\s+")
    body = lines.where((F.regexp_replace(text, r"\s+", " ") != " ".join(names)) & (text != ""))
    return body.select(*[F.element_at(cells, i + 1).alias(name) for i, name in enumerate(names)])


def _sniff(line: str) -> str | None:
    """The delimiter of a header line, or None for whitespace-aligned columns."""
    counts = {d: line.count(d) for d in _DELIMITERS}
    best = max(counts, key=lambda d: counts[d])
    if counts[best] == 0:
        return None
    try:
        return csv.Sniffer().sniff(line, delimiters="".join(_DELIMITERS)).delimiter
    except csv.Error:
        return best


def _clean_name(name: str) -> str:
    return str(name).lstrip("\ufeff").strip()

"""The Spark session of ``train --engine spark`` and ``score --engine spark``: one builder for every caller.

pyspark is imported here, lazily (``--engine pandas`` never needs it). Spark's Python workers must run this
interpreter (they import pandas, numpy and ``segmentation_core``), so ``spark.pyspark.python`` and
``PYSPARK_PYTHON`` default to ``sys.executable``; a cluster whose workers keep the project elsewhere sets
``--spark-conf spark.pyspark.python=/path/to/python``.
"""
from __future__ import annotations

import logging
import os
import sys
from typing import TYPE_CHECKING, Iterable, Mapping

from segmentation_core.errors import DataError

if TYPE_CHECKING:  # pragma: no cover
    from pyspark.sql import SparkSession

__all__ = ["DEFAULT_CONF", "DEFAULT_MASTER", "ROWS_PER_SHUFFLE_PARTITION", "build_session", "parse_conf",
           "scale_shuffle_partitions", "shuffle_partitions_for"]

log = logging.getLogger(__name__)

DEFAULT_MASTER = "local[2]"

#: Small by default (the machine is shared); every key can be overridden with ``--spark-conf KEY=VALUE``.
DEFAULT_CONF: dict[str, str] = {
    "spark.app.name": "customer-segmentation",
    "spark.driver.memory": "1g",
    "spark.sql.shuffle.partitions": "4",
    "spark.ui.enabled": "false",
    "spark.ui.showConsoleProgress": "false",
    # Casts of bad text give NULL (the engine then names the column and the value) instead of failing a task.
    "spark.sql.ansi.enabled": "false",
    # Dates are calendar days: no daylight-saving shifts between the reader and the aggregation.
    "spark.sql.session.timeZone": "UTC",
    "spark.sql.execution.arrow.pyspark.enabled": "true",
    "spark.sql.execution.arrow.maxRecordsPerBatch": "20000",
}


#: Input rows per shuffle partition when the engine sizes ``spark.sql.shuffle.partitions`` from the log: a task's
#: share of a shuffle (about 120 bytes a raw line) then fits a 1-2 GB driver's execution memory without
#: spilling (a spilled aggregation opens every spill file at once to merge them, ~3 MB of buffers each).
ROWS_PER_SHUFFLE_PARTITION = 1_000_000
_SHUFFLE_PARTITIONS = "spark.sql.shuffle.partitions"
_SIZED = "spark.customerSegmentation.sizedShufflePartitions"


def shuffle_partitions_for(rows: int, configured: int) -> int:
    """The shuffle partitions for a log of ``rows`` lines: one per ROWS_PER_SHUFFLE_PARTITION, never fewer
    than ``configured``."""
    return max(int(configured), -(-int(rows) // ROWS_PER_SHUFFLE_PARTITION))


def scale_shuffle_partitions(spark: "SparkSession", rows: int) -> int:
    """Raise the session's ``spark.sql.shuffle.partitions`` for a log of ``rows`` lines when it is still the
    engine's default (a value given with ``--spark-conf`` is kept); returns the value in use."""
    current = spark.conf.get(_SHUFFLE_PARTITIONS)
    sized_before = spark.conf.get(_SIZED, None)  # set by an earlier log's run in this session
    if current != DEFAULT_CONF[_SHUFFLE_PARTITIONS] and current != sized_before:
        return int(current)
    wanted = shuffle_partitions_for(rows, int(DEFAULT_CONF[_SHUFFLE_PARTITIONS]))
    spark.conf.set(_SHUFFLE_PARTITIONS, str(wanted))
    spark.conf.set(_SIZED, str(wanted))
    return wanted


def parse_conf(items: Iterable[str] | Mapping[str, str] | None) -> dict[str, str]:
    """``["KEY=VALUE", ...]`` (the ``--spark-conf`` flags) as a dict; a malformed item raises DataError naming it."""
    if items is None:
        return {}
    if isinstance(items, Mapping):
        return {str(k): str(v) for k, v in items.items()}
    conf: dict[str, str] = {}
    for item in items:
        key, sep, value = str(item).partition("=")
        if not sep or not key.strip():
            raise DataError(f"--spark-conf {item!r}: expected KEY=VALUE, e.g. spark.executor.memory=2g")
        conf[key.strip()] = value.strip()
    return conf


def build_session(master: str | None = None, conf: Iterable[str] | Mapping[str, str] | None = None) -> "SparkSession":
    """A SparkSession on ``master`` (default: spark-submit's ``--master``, else ``local[2]``) with the project's
    defaults plus ``conf``.

    If a session is already running in this process it is returned (Spark allows one per JVM); its
    static settings (master, memory) are then those it was started with.
    """
    try:
        from pyspark.sql import SparkSession
    except ImportError as exc:
        raise DataError("--engine spark needs pyspark (pip install -e '.[spark]'), and a Java 17+ runtime: "
                        f"{exc}") from exc
    submitted = _submitted_conf()
    defaults = {**DEFAULT_CONF, "spark.pyspark.python": sys.executable, "spark.pyspark.driver.python": sys.executable}
    # Under spark-submit, its --master and --conf stand; the project's defaults fill in only what it left out.
    settings = {**{k: v for k, v in defaults.items() if k not in submitted}, **parse_conf(conf)}
    os.environ.setdefault("PYSPARK_PYTHON", settings.get("spark.pyspark.python", sys.executable))
    os.environ.setdefault("PYSPARK_DRIVER_PYTHON", settings.get("spark.pyspark.driver.python", sys.executable))
    master = master or submitted.get("spark.master") or DEFAULT_MASTER
    builder = SparkSession.builder.master(master)
    for key, value in settings.items():
        builder = builder.config(key, value)
    try:
        session = builder.getOrCreate()
    except Exception as exc:  # the JVM did not start: no Java, a bad master URL, an unreachable cluster
        raise DataError(f"cannot start Spark on {master}: {str(exc).splitlines()[0]}") from exc
    session.sparkContext.setLogLevel("WARN")
    log.info("Spark %s, master %s%s", session.version, session.sparkContext.master,
             " (spark-submit's)" if submitted.get("spark.master") == session.sparkContext.master else "")
    return session


def _submitted_conf() -> dict[str, str]:
    """The settings spark-submit started this driver with ({} when it was not started by spark-submit)."""
    if "PYSPARK_GATEWAY_PORT" not in os.environ:  # spark-submit's JVM hands its gateway to the Python driver
        return {}
    from pyspark import SparkConf, SparkContext

    SparkContext._ensure_initialized()  # connect to that JVM: SparkConf() then reads spark-submit's settings
    return dict(SparkConf().getAll())

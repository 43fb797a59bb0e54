"""What keeps a large log's training within a bounded Spark driver (issue 18: 100M rows on local[2], 2 GB).

The cleaning de-duplicates on the raw columns alone, by hashing (a sort-based aggregation of every line spilled
into many files and ran out of heap when merging them); its caches are on local disk, never in the heap the
aggregations need; the shuffle partitions grow with the log unless the user set them.
"""
from __future__ import annotations

from pathlib import Path

import pandas as pd

from segmentation_core.recipe import clean_log as pandas_clean_log
from training_job.config import load_preset
from training_job.spark.session import DEFAULT_CONF, scale_shuffle_partitions, shuffle_partitions_for

KEY = "spark.sql.shuffle.partitions"


def test_shuffle_partitions_are_one_per_million_lines_and_never_fewer_than_the_default() -> None:
    assert shuffle_partitions_for(100_000_000, 4) == 100
    assert shuffle_partitions_for(4_000_001, 4) == 5
    assert shuffle_partitions_for(541_909, 4) == 4
    assert shuffle_partitions_for(0, 4) == 4


def test_the_session_s_shuffle_partitions_follow_the_log_unless_the_user_set_them(spark_session) -> None:
    assert spark_session.conf.get(KEY) == DEFAULT_CONF[KEY]
    try:
        assert scale_shuffle_partitions(spark_session, 12_345_678) == 13
        assert spark_session.conf.get(KEY) == "13"
        # the next (smaller) log of the same session is sized for itself, not left at the last one's value
        assert scale_shuffle_partitions(spark_session, 1_000) == 4
        assert spark_session.conf.get(KEY) == "4"
        spark_session.conf.set(KEY, "7")  # as --spark-conf spark.sql.shuffle.partitions=7 gives it
        spark_session.conf.unset("spark.customerSegmentation.sizedShufflePartitions")
        assert scale_shuffle_partitions(spark_session, 50_000_000) == 7
        assert spark_session.conf.get(KEY) == "7"
    finally:
        spark_session.conf.set(KEY, DEFAULT_CONF[KEY])
        spark_session.conf.unset("spark.customerSegmentation.sizedShufflePartitions")


def _log_with_duplicates() -> pd.DataFrame:
    rows = []
    for i in range(400):
        rows.append({"InvoiceNo": f"{536000 + i // 4}", "StockCode": f"2{i % 7}", "Quantity": 1 + i % 5,
                     "InvoiceDate": pd.Timestamp("2021-01-01") + pd.Timedelta(hours=i),
                     "UnitPrice": 0.5 + (i % 11), "CustomerID": float(12000 + i % 37), "Country": "France"})
    frame = pd.DataFrame(rows)
    frame.loc[10, "InvoiceNo"] = "C536002"  # a cancellation
    frame.loc[11, "CustomerID"] = float("nan")  # no customer
    # 25 repeated lines: 23 kept lines once more, and the cancelled one twice (the cancellation rule removes
    # those first: they are not counted as duplicates)
    return pd.concat([frame, frame.iloc[[*range(0, 240, 10)], :], frame.iloc[[10]]], ignore_index=True)


def test_cleaning_drops_exact_duplicates_by_hashing_the_raw_lines_and_caches_on_disk(spark_session,
                                                                                      tmp_path: Path) -> None:
    from pyspark import StorageLevel

    from training_job.spark.reading import read_source
    from training_job.spark.recipe import clean_log

    frame = _log_with_duplicates()
    path = tmp_path / "log.parquet"
    frame.to_parquet(path, index=False)
    recipe = load_preset("transactions").recipe()
    log = clean_log(read_source(spark_session, str(path)), recipe)
    expected = pandas_clean_log(pd.read_parquet(path), recipe).report
    assert log.report.duplicate_rows == expected.duplicate_rows == 23
    assert log.report.rows_used == expected.rows_used
    assert (log.report.cancellations, log.report.missing_customer_id) == (3, 1)
    assert log.lines.storageLevel == StorageLevel.DISK_ONLY
    plan = log.lines._jdf.queryExecution().executedPlan().toString()
    assert "HashAggregate" in plan and "SortAggregate" not in plan, plan
    log.lines.unpersist()

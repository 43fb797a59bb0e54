"""bench/bench_spark.py's log generator and disk check (the runs themselves are the benchmark, not a test)."""
from __future__ import annotations

import shutil
from pathlib import Path

import pandas as pd
import pyarrow.parquet as pq
import pytest

from bench import bench_spark


def test_a_generated_log_is_online_retail_shaped_chunked_and_reproducible(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setattr(bench_spark, "CHUNK_ROWS", 40_000)  # several chunks, as in the big logs
    a, b = tmp_path / "a.parquet", tmp_path / "b.parquet"
    bench_spark.generate(100_000, a, seed=3)
    bench_spark.generate(100_000, b, seed=3)
    meta = pq.ParquetFile(a).metadata
    assert meta.num_rows == 100_000 and meta.num_row_groups == 3
    log = pd.read_parquet(a)
    assert log.equals(pd.read_parquet(b)), "the same seed must give the same log"
    assert list(log.columns) == ["InvoiceNo", "StockCode", "Quantity", "InvoiceDate", "UnitPrice", "CustomerID",
                                 "Country"]
    cancelled = log["InvoiceNo"].str.startswith("C")
    assert 0.01 < cancelled.mean() < 0.03 and (log.loc[cancelled, "Quantity"] < 0).all()
    assert (log.loc[~cancelled, "Quantity"] > 0).all()
    assert 0.005 < log["CustomerID"].isna().mean() < 0.02
    assert 1_500 < log["CustomerID"].nunique() <= 100_000 // bench_spark.ROWS_PER_CUSTOMER
    assert log["InvoiceDate"].min() >= pd.Timestamp("2019-01-01") and log["InvoiceDate"].max() < pd.Timestamp("2022-01-01")
    per_invoice = log.groupby("InvoiceNo").size()
    assert 7 < per_invoice.mean() < 11
    assert not list(tmp_path.glob("*.partial"))


def test_generate_refuses_when_the_disk_is_short_and_names_the_figures(tmp_path: Path, monkeypatch) -> None:
    free = shutil.disk_usage(tmp_path).free
    with pytest.raises(SystemExit, match=r"not enough disk in .*the logs need about .* GB are free"):
        bench_spark.main(["generate", "--out", str(tmp_path), "--sizes", "10M",
                          "--reserve-gb", str(free / 1e9)])
    assert not list(tmp_path.glob("*.parquet*"))


@pytest.mark.parametrize("text, rows", [("10M", 10_000_000), ("500k", 500_000), ("1234", 1234)])
def test_sizes_read_like_the_issue_writes_them(text: str, rows: int) -> None:
    assert bench_spark.parse_size(text) == rows


@pytest.mark.slow
def test_a_spark_run_is_recorded_with_its_log_and_leaves_no_spark_files_behind(tmp_path: Path) -> None:
    """A real (small) Spark run through ``run``: the figures appended to results.jsonl, the job's own output
    kept beside them, and Spark's local dir (shuffle files, disk caches) gone with the run's store."""
    import json

    from tests.conftest import spark_unavailable_reason

    reason = spark_unavailable_reason()
    if reason:
        pytest.skip(reason)
    bench_spark.generate(20_000, bench_spark.log_path(tmp_path, 20_000), seed=5)
    assert bench_spark.main(["run", "--out", str(tmp_path), "--sizes", "20000", "--engines", "spark",
                             "--driver-memory", "1g", "--timeout", "600"]) == 0
    result = json.loads((tmp_path / "results.jsonl").read_text().splitlines()[-1])
    assert result["ok"] and result["engine"] == "spark" and result["rows"] == 20_000
    assert result["peak_jvm_mb"] > 100 and result["limit"] == "spark.driver.memory=1g"
    log = (tmp_path / "train-spark-20000.log").read_text()
    assert "cleaning 20000 lines" in log and "is now CURRENT" in log
    assert sorted(p.name for p in tmp_path.iterdir()) == ["results.jsonl", "train-spark-20000.log",
                                                          "transactions-20000.parquet"]

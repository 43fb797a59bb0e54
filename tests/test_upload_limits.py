"""Upload limits count what a table holds, not what was sent (issue 16, found after item 6): a gzip bomb -
50 KB that expand to 100 MB of CSV - is refused as it expands, by the one table reader
(segmentation_core.tables, max_bytes) and so by the training service (--max-table-mb) and the dashboard's
batch upload; an .xlsx or Parquet file is measured from its metadata before anything is read."""
from __future__ import annotations

import gzip
import io
import resource
import zipfile
from pathlib import Path

import grpc
import pandas as pd
import pytest

from segmentation_core.tables import TableTooLarge, read_table

MB = 1 << 20


def gzip_bomb(text_mb: int) -> bytes:
    """A gzipped CSV of ``text_mb`` MB of identical rows (about 1/1000 of that, compressed)."""
    buffer = io.BytesIO()
    with gzip.GzipFile(fileobj=buffer, mode="wb", compresslevel=9) as out:
        out.write(b"Age,Annual Income (k$),Spending Score (1-100)\n")
        block = b"30,70,60\n" * (MB // 9)
        for _ in range(text_mb):
            out.write(block)
    return buffer.getvalue()


def test_a_gzip_bomb_is_refused_as_it_expands_and_a_small_gzip_reads() -> None:
    bomb = gzip_bomb(100)
    assert len(bomb) < MB // 2
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    with pytest.raises(TableTooLarge, match=r"bomb.csv.gz: the text, decompressed, is over \d+ MB; the limit is 8 MB"):
        read_table(bomb, name="bomb.csv.gz", max_bytes=8 * MB)
    assert resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before < 100 * 1024  # KiB: never expanded whole
    assert len(read_table(gzip_bomb(1), name="small.csv.gz", max_bytes=8 * MB)) == MB // 9


def test_an_xlsx_and_a_parquet_file_are_measured_unpacked_before_reading(tmp_path: Path) -> None:
    frame = pd.DataFrame({"Age": range(20_000), "Name": ["x" * 40] * 20_000})
    frame.to_excel(tmp_path / "t.xlsx", index=False)
    with zipfile.ZipFile(tmp_path / "t.xlsx") as workbook:
        unzipped = sum(m.file_size for m in workbook.infolist())
    with pytest.raises(TableTooLarge, match="t.xlsx: the workbook, unzipped,"):
        read_table(tmp_path / "t.xlsx", name="t.xlsx", max_bytes=unzipped - 1)
    assert len(read_table(tmp_path / "t.xlsx", max_bytes=unzipped)) == 20_000
    frame.to_parquet(tmp_path / "t.parquet", index=False)
    with pytest.raises(TableTooLarge, match="t.parquet: the Parquet data, uncompressed,"):
        read_table(tmp_path / "t.parquet", name="t.parquet", max_bytes=1000)
    assert len(read_table(tmp_path / "t.parquet", max_bytes=8 * MB)) == 20_000


def test_the_training_service_refuses_a_gzip_bomb_within_its_upload_limit(tmp_path: Path) -> None:
    from tests.test_training_service import Trainer
    from training_job.client import TrainingError

    bomb = tmp_path / "bomb.csv.gz"
    bomb.write_bytes(gzip_bomb(200))
    trainer = Trainer(tmp_path / "store", tmp_path / "data", "--max-upload-mb", "1", "--max-table-mb", "16")
    try:
        with pytest.raises(TrainingError) as err:
            trainer.client.upload(bomb)
        assert err.value.code == grpc.StatusCode.RESOURCE_EXHAUSTED
        assert "bomb.csv.gz: the text, decompressed, is over" in err.value.message and "limit is 16 MB" in err.value.message
        assert not list((tmp_path / "data" / "datasets").iterdir()) and not list((tmp_path / "data" / "uploads").iterdir())
        small = tmp_path / "small.csv.gz"
        small.write_bytes(gzip_bomb(2))
        assert trainer.client.upload(small).rows == 2 * (MB // 9)  # the service goes on
    finally:
        trainer.stop()

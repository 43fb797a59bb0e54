"""The training service's data folder: uploaded tables, named by the server from their content.

```
<data-dir>/datasets/ds-<16 hex>.upload.<ext>  the uploaded bytes (ext from the client's name, if known;
                                           "ds-<16 hex>.<ext>" in folders written before: the .json names it)
<data-dir>/datasets/ds-<16 hex>.parquet    the table as read (a cache: profiles and jobs skip the CSV parse)
<data-dir>/datasets/ds-<16 hex>.json       what the server knows: client's file name, size, sha256, rows ...
<data-dir>/uploads/                        uploads in progress (removed when they end, whatever the outcome)
```
An upload is written to ``uploads/``, hashed as it arrives, read as a table once complete and only then
renamed into ``datasets/`` (the metadata file last: a dataset exists once its .json does). The same
bytes uploaded twice give the same dataset. The client's file name is shown, never used as a path.
"""
from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import secrets
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Iterable

import pandas as pd

from segmentation_core.errors import NotFoundError
from segmentation_core.tables import TableTooLarge, read_table
from training_job.errors import DataError

__all__ = ["DataFolder", "DatasetInfo", "UploadTooLarge"]

log = logging.getLogger(__name__)

_ID_RE = re.compile(r"^ds-[0-9a-f]{16}$")
_EXTENSIONS = (".csv.gz", ".tsv.gz", ".txt.gz", ".csv", ".tsv", ".txt", ".gz", ".parquet", ".xlsx")
MAX_NAME = 200


class UploadTooLarge(DataError):
    """An upload beyond the size limit."""


@dataclass(frozen=True)
class DatasetInfo:
    """One stored table."""

    dataset_id: str
    filename: str
    size_bytes: int
    sha256: str
    rows: int
    column_count: int
    uploaded_at: str
    file: str
    """The stored file's name inside datasets/ (the server's name)."""
    deduplicated: bool = False


def display_name(filename: str) -> str:
    """The client's file name reduced to a base name for display (no folders, no control characters)."""
    name = re.split(r"[\\/]", filename or "")[-1]
    name = "".join(ch for ch in name if ch.isprintable()).strip()
    return name[:MAX_NAME] or "upload"


def _extension(filename: str) -> str:
    lower = filename.lower()
    return next((ext for ext in _EXTENSIONS if lower.endswith(ext)), ".data")


class DataFolder:
    """Uploaded datasets under one folder; ``max_bytes`` bounds an upload as sent, ``max_table_bytes`` the table
    it holds once decompressed (a gzip bomb passes the first)."""

    def __init__(self, root: Path | str, max_bytes: int = 200 * 1024 * 1024, *, sweep_uploads: bool = False,
                 max_table_bytes: int = 1024 * 1024 * 1024) -> None:
        """``sweep_uploads``: remove uploads a restart cut short - the server only, at its start (a job's child
        process sweeping would delete the uploads in progress)."""
        self.root = Path(root)
        self.max_bytes = max_bytes
        self.max_table_bytes = max_table_bytes
        self.datasets = self.root / "datasets"
        self.uploads = self.root / "uploads"
        self.datasets.mkdir(parents=True, exist_ok=True)
        self.uploads.mkdir(parents=True, exist_ok=True)
        for leftover in self.uploads.iterdir() if sweep_uploads else ():  # an upload cut short by a restart
            leftover.unlink(missing_ok=True)

    def store(self, chunks: Iterable[bytes], filename: str) -> DatasetInfo:
        """Write an upload, check it reads as a table and keep it; raises DataError (file named) or UploadTooLarge."""
        name = display_name(filename)
        tmp = self.uploads / f"upload-{secrets.token_hex(8)}{_extension(name)}"
        digest, size = hashlib.sha256(), 0
        try:
            with open(tmp, "wb") as out:
                for chunk in chunks:
                    size += len(chunk)
                    if size > self.max_bytes:
                        raise UploadTooLarge(f"{name}: larger than the upload limit of "
                                             f"{self.max_bytes / 2**20:.0f} MB")
                    digest.update(chunk)
                    out.write(chunk)
            if size == 0:
                raise DataError(f"{name}: file is empty")
            dataset_id = "ds-" + digest.hexdigest()[:16]
            known = self._info_path(dataset_id)
            if known.exists():
                info = self.info(dataset_id)
                log.info("upload %s: same bytes as %s (%s)", name, dataset_id, info.filename)
                return DatasetInfo(**{**asdict(info), "deduplicated": True})
            frame = self._read(tmp, name)
            # Never the cache's name: a ".parquet" upload would replace the table as read by its raw bytes
            # (whatever they are: the format is told by content, an .xlsx named .parquet reads).
            stored = self.datasets / f"{dataset_id}.upload{_extension(name)}"
            cache = self.datasets / f"{dataset_id}.parquet"
            frame.to_parquet(cache.with_suffix(".parquet.tmp"), index=False)
            os.replace(cache.with_suffix(".parquet.tmp"), cache)
            os.replace(tmp, stored)
            info = DatasetInfo(dataset_id=dataset_id, filename=name, size_bytes=size,
                               sha256="sha256:" + digest.hexdigest(), rows=int(len(frame)),
                               column_count=int(len(frame.columns)), uploaded_at=_now(), file=stored.name)
            meta = {**asdict(info), "attrs": {key: frame.attrs.get(key) for key in ("first_data_line", "line_gaps")}}
            part = known.with_suffix(".json.tmp")
            part.write_text(json.dumps(meta, indent=1))
            os.replace(part, known)
            log.info("upload %s stored as %s: %d bytes, %d rows x %d columns", name, dataset_id, size,
                     info.rows, info.column_count)
            return info
        finally:
            tmp.unlink(missing_ok=True)

    def _read(self, path: Path, name: str) -> pd.DataFrame:
        try:
            return read_table(path, name=name, max_bytes=self.max_table_bytes)
        except TableTooLarge as exc:
            raise UploadTooLarge(str(exc).replace(str(path), name)) from None
        except DataError as exc:  # the message names our temporary path: name the client's file instead
            raise DataError(str(exc).replace(str(path), name)) from None

    def _info_path(self, dataset_id: str) -> Path:
        if not _ID_RE.match(dataset_id or ""):
            raise NotFoundError(f"dataset_id {dataset_id!r} is not a dataset id (like ds-0123456789abcdef)")
        return self.datasets / f"{dataset_id}.json"

    def info(self, dataset_id: str) -> DatasetInfo:
        """What is known of a dataset; raises NotFoundError."""
        path = self._info_path(dataset_id)
        if not path.exists():
            raise NotFoundError(f"no dataset {dataset_id!r} (upload it first)")
        meta = json.loads(path.read_text())
        meta.pop("attrs", None)
        return DatasetInfo(**meta)

    def path(self, dataset_id: str) -> Path:
        """The stored file of a dataset (as uploaded)."""
        return self.datasets / self.info(dataset_id).file

    def frame(self, dataset_id: str) -> pd.DataFrame:
        """The table as read at upload (from the Parquet cache), with read_table's attrs."""
        info = self.info(dataset_id)
        meta = json.loads(self._info_path(dataset_id).read_text())
        frame = pd.read_parquet(self.datasets / f"{dataset_id}.parquet")
        frame.attrs.update({k: v for k, v in (meta.get("attrs") or {}).items() if v is not None})
        frame.attrs["source"] = info.filename
        return frame

    def list(self) -> list[DatasetInfo]:
        """Every dataset, newest first."""
        found = [self.info(p.stem) for p in self.datasets.glob("ds-*.json")]
        return sorted(found, key=lambda d: d.uploaded_at, reverse=True)


def _now() -> str:
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")

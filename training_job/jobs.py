"""The training service's job queue: one job at a time, each in a child process, records on disk.

A record is a dict laid out as the contract's TrainingJob message (proto field names, state as its enum
name), written to ``<data-dir>/jobs/<job-id>.json`` by rename on every change, so it survives a restart:
a job found RUNNING at start-up is marked FAILED (its process died with the old service), QUEUED ones run.
The child (training_job/job_process.py) reports stage, progress, log lines and k-search rows as JSON
lines; a cancel stops it (SIGTERM, then SIGKILL). The store is only ever written by the child through
ModelStore.publish, which is atomic: a job killed at any moment leaves the visible store as it was.
"""
from __future__ import annotations

import copy
import json
import logging
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections import deque
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Iterator, Mapping

from segmentation_core.errors import NotFoundError
from training_job.datasets import DataFolder
from training_job.job_request import check_request

__all__ = ["JobConflict", "JobQueue", "STAGE_PROGRESS", "TERMINAL"]

log = logging.getLogger(__name__)

TERMINAL = ("SUCCEEDED", "FAILED", "CANCELLED")
MAX_LOG_LINES = 500
KILL_AFTER = 5.0
# Where each stage starts on the progress bar; the k search fills the span up to the next stage.
STAGE_PROGRESS = {"queued": 0.0, "read": 0.02, "clean": 0.06, "features": 0.1, "k-search": 0.12, "fit": 0.7,
                  "confidence": 0.72, "stability": 0.76, "describe": 0.84, "profile": 0.88, "compare": 0.93,
                  "publish": 0.96, "done": 1.0}


class JobConflict(Exception):
    """An operation the job's state does not allow (cancelling a finished job)."""


def _now() -> str:
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


class JobQueue:
    """Queued training jobs of one service; :meth:`start` runs them, :meth:`stop` ends the worker."""

    def __init__(self, data: DataFolder, store: Path, *, keep: int = 10, python: str = sys.executable,
                 signing_key: str = "") -> None:
        self.data = data
        self.store = Path(store)
        self.keep = keep
        self.signing_key = signing_key  # the path of the key each job's child signs with ("" = unsigned)
        self.python = python
        self.folder = data.root / "jobs"
        self.folder.mkdir(parents=True, exist_ok=True)
        self._jobs: dict[str, dict[str, Any]] = {}
        self._queue: deque[str] = deque()
        self._changed = threading.Condition()
        self._revision: dict[str, int] = {}
        self._child: subprocess.Popen | None = None
        self._running: str | None = None
        self._cancelled: set[str] = set()
        self._stopping = False
        self._worker = threading.Thread(target=self._work, name="training-worker", daemon=True)
        self._load()

    # ---- records -----------------------------------------------------------------------------------
    def _load(self) -> None:
        """Read the records; a job that was running when the service stopped failed, queued ones run."""
        for path in sorted(self.folder.glob("job-*.json")):
            try:
                job = json.loads(path.read_text())
            except (OSError, ValueError) as exc:
                log.warning("ignoring unreadable job record %s: %s", path.name, exc)
                continue
            self._jobs[job["job_id"]] = job
            if job["state"] == "RUNNING":
                job.update(state="FAILED", finished_at=_now(),
                           error="the training service stopped while this job ran (it was restarted); "
                                 "nothing was published")
                self._save(job)
                log.warning("job %s was running when the service stopped: marked FAILED", job["job_id"])
        for job in sorted(self._jobs.values(), key=lambda j: j["job_id"]):
            if job["state"] == "QUEUED":
                self._queue.append(job["job_id"])

    def _save(self, job: Mapping[str, Any]) -> None:
        path = self.folder / f"{job['job_id']}.json"
        fd, tmp = tempfile.mkstemp(dir=self.folder, prefix=".job-")
        with os.fdopen(fd, "w") as out:
            json.dump(job, out)
        os.replace(tmp, path)

    def _update(self, job_id: str, save: bool = True, **changes: Any) -> None:
        with self._changed:
            job = self._jobs[job_id]
            job.update(changes)
            self._revision[job_id] = self._revision.get(job_id, 0) + 1
            if save:
                self._save(job)
            self._changed.notify_all()

    def _next_id(self) -> str:
        numbers = [int(j[4:]) for j in self._jobs if j[4:].isdigit()]
        return f"job-{(max(numbers) + 1) if numbers else 1:06d}"

    # ---- the service's operations ------------------------------------------------------------------
    def submit(self, request: Mapping[str, Any]) -> dict[str, Any]:
        """Check and queue a request (a TrainingRequest dict); returns the new job record."""
        dataset_id = request.get("dataset_id", "")
        columns, rows = self._shape(dataset_id)
        check_request(request, columns, rows)
        with self._changed:
            job = {"job_id": self._next_id(), "request": dict(request), "state": "QUEUED", "stage": "queued",
                   "progress": 0.0, "log": [], "k_search": [], "error": "", "submitted_at": _now(),
                   "started_at": "", "finished_at": ""}
            self._jobs[job["job_id"]] = job
            self._save(job)
            self._queue.append(job["job_id"])
            self._changed.notify_all()
        log.info("job %s queued: %s", job["job_id"], {k: v for k, v in request.items() if k != "config_toml"})
        return copy.deepcopy(job)

    def _shape(self, dataset_id: str) -> tuple[list[str], int]:
        """The stored table's column names and row count (from the Parquet footer)."""
        import pyarrow.parquet as pq

        self.data.info(dataset_id)  # NotFoundError for an unknown dataset
        meta = pq.read_metadata(self.data.datasets / f"{dataset_id}.parquet")
        return list(meta.schema.to_arrow_schema().names), int(meta.num_rows)

    def get(self, job_id: str) -> dict[str, Any]:
        """A copy of one job's record; raises NotFoundError."""
        with self._changed:
            if job_id not in self._jobs:
                raise NotFoundError(f"no training job {job_id!r}")
            return copy.deepcopy(self._jobs[job_id])

    def list(self, limit: int = 50) -> list[dict[str, Any]]:
        """Jobs newest first, without log lines and k-search rows."""
        with self._changed:
            jobs = sorted(self._jobs.values(), key=lambda j: j["job_id"], reverse=True)[:limit]
            return [{**copy.deepcopy({k: v for k, v in j.items() if k not in ("log", "k_search")})} for j in jobs]

    def watch(self, job_id: str, active: Any = lambda: True, poll: float = 0.5) -> Iterator[dict[str, Any]]:
        """Yield the job now and after every change until it ends (or ``active()`` turns false)."""
        seen = -1
        while True:
            with self._changed:
                if job_id not in self._jobs:
                    raise NotFoundError(f"no training job {job_id!r}")
                while self._revision.get(job_id, 0) == seen and active() and not self._stopping:
                    self._changed.wait(poll)
                if not active():
                    return
                seen = self._revision.get(job_id, 0)
                job = copy.deepcopy(self._jobs[job_id])
            yield job
            if job["state"] in TERMINAL or self._stopping:
                return

    def cancel(self, job_id: str) -> dict[str, Any]:
        """Cancel a queued job, or stop a running one; raises JobConflict for a finished job."""
        with self._changed:
            job = self._jobs.get(job_id)
            if job is None:
                raise NotFoundError(f"no training job {job_id!r}")
            if job["state"] in TERMINAL:
                raise JobConflict(f"job {job_id} has already ended ({job['state']})")
            if job["state"] == "QUEUED" and job_id in self._queue:  # else the worker is starting it: as running
                self._queue.remove(job_id)
                self._update(job_id, state="CANCELLED", stage="cancelled", finished_at=_now(),
                             error="cancelled before it started")
                return copy.deepcopy(job)
            self._cancelled.add(job_id)
            child = self._child if self._running == job_id else None
        if child is not None:
            _stop(child)
        return self.get(job_id)

    def start(self) -> "JobQueue":
        """Start the worker thread (it runs queued jobs one at a time)."""
        self._worker.start()
        return self

    def stop(self) -> None:
        """Stop the worker; a running job is stopped and reads FAILED."""
        with self._changed:
            self._stopping = True
            child = self._child
            self._changed.notify_all()
        if child is not None:
            _stop(child)
        if self._worker.is_alive():
            self._worker.join(timeout=KILL_AFTER + 5)

    # ---- the worker --------------------------------------------------------------------------------
    def _work(self) -> None:
        while True:
            with self._changed:
                while not self._queue and not self._stopping:
                    self._changed.wait()
                if self._stopping:
                    return
                job_id = self._queue.popleft()
            try:
                self._run(job_id)
            except Exception as exc:  # the worker must outlive any job
                log.exception("job %s: the worker failed running it", job_id)
                self._update(job_id, state="FAILED", finished_at=_now(), error=f"internal error: {exc}")

    def _run(self, job_id: str) -> None:
        job = self.get(job_id)
        spec = {"request": job["request"], "data_dir": str(self.data.root), "store": str(self.store),
                "keep": self.keep, "parent_pid": os.getpid(), "signing_key": self.signing_key}
        spec_path = self.folder / f".{job_id}.spec.json"
        spec_path.write_text(json.dumps(spec))
        self._update(job_id, state="RUNNING", stage="read", progress=STAGE_PROGRESS["read"], started_at=_now())
        log.info("job %s started", job_id)
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        with self._changed:
            if self._stopping:
                return
            cancelled_at_start = job_id in self._cancelled  # cancelled between the queue and here
            if not cancelled_at_start:
                child = subprocess.Popen([self.python, "-m", "training_job.job_process", str(spec_path)],
                                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
                                         start_new_session=True)
                self._child, self._running = child, job_id
        if cancelled_at_start:
            spec_path.unlink(missing_ok=True)
            self._update(job_id, state="CANCELLED", stage="cancelled", finished_at=_now(),
                         error="cancelled before it started")
            log.info("job %s cancelled as it started", job_id)
            return
        stderr_tail: deque[str] = deque(maxlen=20)
        drain = threading.Thread(target=lambda: stderr_tail.extend(child.stderr), daemon=True)
        drain.start()
        outcome: dict[str, Any] = {}
        stage, last_save = "read", 0.0
        for line in child.stdout:
            try:
                event = json.loads(line)
            except ValueError:
                continue
            with self._changed:
                current = self._jobs[job_id]
                if "stage" in event:
                    stage = event["stage"]
                    changes = {"stage": stage, "progress": max(current["progress"], STAGE_PROGRESS.get(stage, 0))}
                elif "tick" in event:
                    done, total = event["tick"]
                    span = STAGE_PROGRESS["fit"] - STAGE_PROGRESS["k-search"]
                    changes = {"progress": STAGE_PROGRESS["k-search"] + span * done / max(total, 1)}
                elif "log" in event:
                    changes = {"log": (current["log"] + [event["log"]])[-MAX_LOG_LINES:]}
                elif "k_row" in event:
                    changes = {"k_search": current["k_search"] + [event["k_row"]]}
                else:
                    outcome = event
                    continue
            now = time.monotonic()
            save = "stage" in event or now - last_save > 1.0
            last_save = now if save else last_save
            self._update(job_id, save=save, **changes)
        code = child.wait()
        drain.join(timeout=5)
        spec_path.unlink(missing_ok=True)
        with self._changed:
            self._child, self._running = None, None
            cancelled = job_id in self._cancelled
            stopping = self._stopping
        if "result" in outcome and not cancelled:
            self._update(job_id, state="SUCCEEDED", stage="done", progress=1.0, finished_at=_now(),
                         result=outcome["result"], k_search=outcome.get("k_search", []))
            log.info("job %s succeeded: %s %s", job_id, outcome["result"]["model"], outcome["result"]["version"])
        elif cancelled:
            self._update(job_id, state="CANCELLED", finished_at=_now(),
                         error=f"cancelled during stage {stage}; nothing was published")
            log.info("job %s cancelled", job_id)
        else:
            if "error" in outcome:
                error = outcome["error"]
            elif stopping:
                error = "the training service stopped while this job ran; nothing was published"
            else:
                tail = " | ".join(line.strip() for line in list(stderr_tail)[-3:])
                error = f"the job process ended with exit code {code} during stage {stage}" + \
                        (f": {tail}" if tail else "")
            self._update(job_id, state="FAILED", finished_at=_now(), error=error)
            log.info("job %s failed: %s", job_id, error)


def _stop(child: subprocess.Popen) -> None:
    """SIGTERM the job's process group, SIGKILL it if it has not ended after KILL_AFTER seconds."""
    try:
        os.killpg(child.pid, signal.SIGTERM)
        child.wait(timeout=KILL_AFTER)
    except subprocess.TimeoutExpired:
        os.killpg(child.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass

"""One training job in a process of its own: ``python -m training_job.job_process SPEC.json``.

The training service starts it for each job and reads its standard output, one JSON event per line:
``{"stage": name}``, ``{"tick": [done, total]}``, ``{"log": line}``, ``{"k_row": {...}}``, then exactly one of
``{"result": {...}}`` or ``{"error": message}``. Everything else the job prints goes to standard error.
The process dies with the service (PR_SET_PDEATHSIG on Linux, and a check of its parent), so a killed
service never leaves a job publishing behind its back.
"""
from __future__ import annotations

import ctypes
import json
import logging
import math
import os
import signal
import sys
import threading
import time
from pathlib import Path
from typing import Any, TextIO

PR_SET_PDEATHSIG = 1


def _die_with_parent(parent_pid: int) -> None:
    try:
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
    except (OSError, AttributeError):
        pass

    def watch() -> None:  # also covers systems without prctl, and a parent that died before the prctl
        while True:
            if os.getppid() != parent_pid:
                os._exit(137)
            time.sleep(0.5)

    if os.getppid() != parent_pid:
        os._exit(137)
    threading.Thread(target=watch, daemon=True, name="parent-watch").start()


class _Events:
    """Writes events as JSON lines to the service (thread-safe)."""

    def __init__(self, out: TextIO) -> None:
        self._out = out
        self._lock = threading.Lock()

    def send(self, **event: Any) -> None:
        line = json.dumps(event, default=str, allow_nan=True)
        with self._lock:
            self._out.write(line + "\n")
            self._out.flush()


class _LogToEvents(logging.Handler):
    def __init__(self, events: _Events) -> None:
        super().__init__(logging.INFO)
        self.events = events
        self.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s", "%H:%M:%S"))

    def emit(self, record: logging.LogRecord) -> None:
        try:
            self.events.send(log=self.format(record))
        except Exception:  # a log line must never break the job
            pass


def _k_row(row: dict[str, Any]) -> dict[str, Any]:
    """A k-search row as the contract's KSearchRow: k and its finite numeric metrics."""
    metrics = {name: float(v) for name, v in row.items() if name != "k" and isinstance(v, (int, float))
               and not isinstance(v, bool) and math.isfinite(float(v))}
    return {"k": int(row["k"]), "metrics": metrics}


def run(spec: dict[str, Any], events: _Events) -> None:
    """Train as the spec says and send the events."""
    from segmentation_core.signing import load_signing_key
    from segmentation_core.store import ModelStore
    from training_job.datasets import DataFolder
    from training_job.job_request import DEFAULT_MODEL, config_for_request
    from training_job.train import TrainingListener, train

    request = spec["request"]
    folder = DataFolder(spec["data_dir"])
    dataset_id = request["dataset_id"]
    info = folder.info(dataset_id)
    events.send(stage="read")
    frame = folder.frame(dataset_id)
    config = config_for_request(request, frame)
    listener = TrainingListener(on_stage=lambda name: events.send(stage=name),
                                on_tick=lambda name, done, total: events.send(tick=[done, total]),
                                on_k_row=lambda row: events.send(k_row=_k_row(row)))
    model = request.get("model") or DEFAULT_MODEL
    result = train(folder.path(dataset_id), config, ModelStore(spec["store"]), model_name=model,
                   keep=int(spec.get("keep", 10)), frame=frame, publish=bool(request.get("publish")),
                   listener=listener, data_name=info.filename,
                   signer=load_signing_key(spec["signing_key"]) if spec.get("signing_key") else None)
    m = result.manifest
    comparison = m.get("comparison") or {}
    ari = comparison.get("ari")
    events.send(result={
        "model": result.model, "version": result.version, "published": result.published, "k": result.k,
        "segment_names": result.segment_names, "segment_sizes": [int(s.get("size", 0)) for s in m["segments"]],
        "quality": {k: float(v) for k, v in m.get("quality", {}).items()
                    if isinstance(v, (int, float)) and math.isfinite(float(v))},
        "compared_version": comparison.get("compared_version", ""),
        "ari": float(ari) if ari is not None else "NaN", "comparison_note": comparison.get("note", ""),
        "matching": comparison.get("matching", []), "matching_share": comparison.get("matching_share", []),
    }, k_search=[_k_row(r) for r in m["k_search"]["rows"]])


def main(argv: list[str] | None = None) -> int:
    """Run one job; exit 0 after a result, 2 after a reported error."""
    argv = sys.argv[1:] if argv is None else argv
    spec = json.loads(Path(argv[0]).read_text())
    _die_with_parent(int(spec["parent_pid"]))
    events = _Events(os.fdopen(os.dup(1), "w", buffering=1))
    os.dup2(2, 1)  # stray prints must not corrupt the event stream
    sys.stdout = sys.stderr
    handler = _LogToEvents(events)
    logging.basicConfig(level=logging.INFO, handlers=[handler, logging.StreamHandler(sys.stderr)], force=True)
    from segmentation_core.errors import SegmentationError
    from training_job.errors import ConfigError, DataError

    try:
        run(spec, events)
    except (DataError, ConfigError, SegmentationError, ValueError) as exc:
        events.send(error=str(exc))
        return 2
    except Exception as exc:  # a bug: report it to the service rather than die silently
        logging.getLogger(__name__).exception("training job failed")
        events.send(error=f"internal error: {type(exc).__name__}: {exc}")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())

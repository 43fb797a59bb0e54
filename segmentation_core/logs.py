"""Logging for every program: one JSON object per line (or plain text), `extra=` fields kept.

The one home of the log line format: the scoring service, the training job and the dashboard all call
`configure_logging`; and of the way each leaves once stopped (`leave_process`: the logs flushed, then no
interpreter finalization to hang in). Standard library only (the scoring server's image imports it).
"""
from __future__ import annotations

import json
import logging
import os
import sys
import time
from typing import NoReturn

FORMATS = ("json", "text")
TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
_STANDARD = set(vars(logging.makeLogRecord({}))) | {"message", "asctime"}


class JsonFormatter(logging.Formatter):
    """Format a record as one JSON line: time, level, logger, message, pid and any ``extra=`` fields."""

    def format(self, record: logging.LogRecord) -> str:
        """The JSON line of ``record``."""
        entry = {"time": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
                 + f".{int(record.msecs):03d}Z", "level": record.levelname, "logger": record.name,
                 "message": record.getMessage(), "pid": os.getpid()}
        entry.update({k: v for k, v in vars(record).items() if k not in _STANDARD})
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, default=str)


def configure_logging(fmt: str = "json", level: str = "INFO") -> None:
    """Send logs to stderr in ``fmt`` ('json' or 'text') at ``level``."""
    if fmt not in FORMATS:
        raise ValueError(f"log format {fmt!r} should be one of {', '.join(FORMATS)}")
    handler = logging.StreamHandler()
    handler.setFormatter(JsonFormatter() if fmt == "json" else logging.Formatter(TEXT_FORMAT))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())


def leave_process(log: logging.Logger, code: int = 0) -> NoReturn:
    """End a server process after its orderly stop: flush the logs and exit at once, without interpreter
    finalization, which can hang for ever when a daemon thread is inside a native library (seen: a trainer
    stopped while profiling an upload, its exit stuck in pyarrow's thread-pool destructor waiting for the
    profile thread's ``to_pandas``). Everything worth keeping is written by rename before this point."""
    log.info("exiting (code %d)", code)
    for handler in logging.getLogger().handlers:
        handler.flush()
    for stream in (sys.stdout, sys.stderr):
        stream.flush()
    os._exit(code)

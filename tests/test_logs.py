"""segmentation_core.logs: the one log line format of the three programs."""
from __future__ import annotations

import json
import logging

import pytest

from segmentation_core.logs import configure_logging


@pytest.fixture()
def restore_logging():
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)


def test_json_lines_carry_time_level_logger_message_extras_and_the_exception(capsys, restore_logging):
    configure_logging("json", "info")
    log = logging.getLogger("training_job.train")
    log.debug("not shown")
    log.info("trained %d segments", 5, extra={"model": "customers", "version": "v0003"})
    try:
        raise ValueError("bad column 'Age'")
    except ValueError:
        log.exception("failed")
    lines = [json.loads(line) for line in capsys.readouterr().err.splitlines()]
    assert [entry["message"] for entry in lines] == ["trained 5 segments", "failed"]
    first = lines[0]
    assert first["level"] == "INFO" and first["logger"] == "training_job.train"
    assert first["model"] == "customers" and first["version"] == "v0003"
    assert first["time"].endswith("Z") and "T" in first["time"]
    assert "ValueError: bad column 'Age'" in lines[1]["exception"]


def test_text_lines_and_a_bad_format_named(capsys, restore_logging):
    configure_logging("text", "warning")
    logging.getLogger("dash_ui").warning("scoring service down")
    assert capsys.readouterr().err.strip().endswith("WARNING dash_ui: scoring service down")
    with pytest.raises(ValueError, match="log format 'xml'"):
        configure_logging("xml")

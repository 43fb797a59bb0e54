"""Typed settings of the dashboard: each field a flag and a DASH_* variable (``segmentation_core.settings``)."""
from __future__ import annotations

import argparse
from dataclasses import dataclass
from typing import Mapping, Sequence

from scoring_service.client.targets import check_target
from segmentation_core.logs import FORMATS
from segmentation_core.settings import at_least, option, parse

ENV_PREFIX = "DASH_"
#: Request threads: a few browser tabs each polling the status, drawing pages and running callbacks
#: that wait on the scoring service (batch scoring runs in threads of its own).
DEFAULT_THREADS = 8


@dataclass(frozen=True)
class DashSettings:
    """How the dashboard runs."""

    scoring: str = option("127.0.0.1:50051", "scoring service HOST:PORT, dns:///NAME:PORT (every replica the name "
                                             "resolves to) or IP:PORT,IP:PORT,... (calls spread round-robin)",
                          check=check_target)
    port: int = option(8050, "HTTP port", check=at_least(0))
    host: str = option("127.0.0.1", "HTTP address to listen on (0.0.0.0 in containers)")
    token: str | None = option(None, "bearer token for the scoring service", env="DASH_SCORING_TOKEN")
    tls_ca: str | None = option(None, "CA certificate (PEM) for TLS to the scoring service",
                                env="DASH_SCORING_TLS_CA")
    trainer: str = option("", "training service HOST:PORT behind the Data, Train and Compare pages (none: those "
                              "pages say training is unavailable)")
    trainer_token: str | None = option(None, "bearer token for the training service")
    trainer_tls_ca: str | None = option(None, "CA certificate (PEM) for TLS to the training service")
    retry_seconds: float = option(2.0, "seconds between reconnection attempts", check=at_least(0.01))
    threads: int = option(DEFAULT_THREADS, "request threads of the HTTP server", check=at_least(1))
    log_format: str = option("json", "log line format: one JSON object per line, or text", choices=FORMATS)
    debug: bool = option(False, "Dash debug mode, on Flask's development server instead of waitress; never in "
                                "production")


def parse_settings(argv: Sequence[str] | None = None, environ: Mapping[str, str] | None = None) -> DashSettings:
    """The dashboard's settings from its flags and DASH_* variables; a bad value exits 2 with one line."""
    parser = argparse.ArgumentParser(prog="python -m dash_ui", description="The customer-segmentation dashboard.")
    return parse(DashSettings, parser, argv, ENV_PREFIX, environ)

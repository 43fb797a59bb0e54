"""Typed settings of the scoring service: one dataclass, each field a flag and a SCORING_* variable.

Declared with the platform's one settings mechanism (``segmentation_core.settings``): precedence
command-line flag, then environment variable ``SCORING_<FIELD>`` (e.g. ``SCORING_PORT``), then the
default; each field's help is its documentation and its ``--help`` text.
"""
from __future__ import annotations

import argparse
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping, Sequence

from segmentation_core.settings import at_least, fail, option, parse, read_token

ENV_PREFIX = "SCORING_"
RESERVED_THREADS = 4  # handler threads --max-streams 0 keeps free of long-lived calls


@dataclass(frozen=True)
class Settings:
    """How one scoring server runs."""

    store: Path = option(
        Path("./model-store"),
        "Model store folder (read only): <store>/<model>/versions/<version>/ and <store>/<model>/CURRENT.")
    host: str = option(
        "127.0.0.1",
        "Address to listen on; 0.0.0.0 or [::] to accept remote callers (then turn on TLS and a token).")
    port: int = option(50051, "gRPC port; 0 picks a free port, which is logged and written to --port-file.")
    port_file: str = option(
        "",
        "If set, the bound gRPC port is written to this file once the server listens (for scripts and tests).")
    model: str = option("customers", "The default model: its CURRENT version answers requests that name no model.")
    metrics_port: int = option(9100, "Prometheus metrics HTTP port; 0 picks a free one (logged), -1 turns metrics off.")
    workers: int = option(
        1,
        "Server processes sharing the port (SO_REUSEPORT); set to the core count for the most rows/s. The "
        "kernel spreads connections, not calls: all the calls and streams of one connection go to one "
        "process, so the spread needs several connections (callers, or client processes).")
    threads: int = option(32, "gRPC handler threads per process; each open PredictStream or WatchModel holds one.")
    max_streams: int = option(
        0,
        "Most PredictStream and WatchModel calls open at once per process; one more is answered "
        "RESOURCE_EXHAUSTED. 0 = --threads minus 4 (at least 1), so that Predict and health checks always find "
        "a thread; at most --threads minus 1.")
    rate_limit: float = option(
        0.0,
        "Calls per second per caller (its bearer token, or its address without one); a call beyond is answered "
        "RESOURCE_EXHAUSTED with trailing metadata retry-after-ms, which the Python client waits out and "
        "retries. A stream counts as one call; health checks are exempt. 0 = off.")
    rate_burst: int = option(
        0,
        "Calls a caller may make at once above --rate-limit (the bucket size); 0 = one second's calls (at least 1).")
    stream_idle_seconds: float = option(
        300.0,
        "A PredictStream that sends no request for this many seconds is ended with DEADLINE_EXCEEDED, freeing "
        "its thread; 0 = never. (WatchModel calls are idle by design: --max-streams bounds them.)")
    max_message_mb: int = option(
        64,
        "Largest request or response message, in MiB (a 10,000-row x 7-feature batch is about 0.6 MiB).")
    tls_cert: str = option("", "PEM certificate chain; with --tls-key the server speaks TLS only. Off by default.")
    tls_key: str = option("", "PEM private key of --tls-cert.")
    token_file: str = option(
        "",
        "File holding a bearer token that every call must carry (metadata 'authorization: Bearer <token>'); "
        "health checks are exempt. SCORING_TOKEN gives the token directly. Off by default.")
    verify_key: str = option(
        "",
        "Ed25519 public key (PEM; python -m training_job keygen makes the pair): serve only versions whose "
        "manifest carries a signature by it; an unsigned, wrongly signed or tampered version is refused "
        "(logged, counted in scoring_refused_signatures) and the version served before keeps serving. Off by "
        "default: versions are served unsigned, as before.")
    log_format: str = option(
        "json",
        "Log line format: json (one object per line) or text.", choices=("json", "text"))
    log_level: str = option(
        "INFO",
        "Logging level: DEBUG, INFO, WARNING, ERROR.")
    poll_interval: float = option(0.5, "Seconds between two looks at the store for a new CURRENT or new versions.")
    pinned_cache: int = option(
        4,
        "Versions pinned by callers kept loaded per process (least recently used are dropped).")
    grace: float = option(
        10.0,
        "Seconds that shutdown (SIGTERM/SIGINT) waits for calls in flight before cancelling them.")
    max_connection_age: float = option(
        0.0,
        "Seconds after which a client connection is asked to reconnect (calls in flight finish first), so "
        "clients balancing over replicas look them up again and find new ones; 0: never.", check=at_least(0))
    drift_window_rows: int = option(
        50_000,
        "Drift monitoring: each model version's live rows are counted over a rolling window of at most this "
        "many rows in the drift histograms (to within 1/30 of it); 0 turns the accounting off.")
    drift_window_minutes: float = option(
        60.0,
        "Drift monitoring: ... and of at most this many minutes (to within 1/30 of it).")
    drift_sample_rate: float = option(
        20_000.0,
        "Drift monitoring: most rows per second whose features are binned for the drift histograms, per model "
        "version (0 = every row; a burst of --drift-window-rows rows is binned whole). Segments, confidence and "
        "outliers always count every row. Binning every row costs about a third of the server's CPU per "
        'PredictStream batch; see README "Monitoring".')
    drift_min_rows: int = option(
        1000,
        "Drift monitoring: fewer sampled rows than this in the window give the verdict 'insufficient data'.")
    worker_index: int = option(
        0,
        "Set by the first process for the extra --workers processes it starts (1, 2, ...): they bind the same "
        "port with SO_REUSEPORT and serve metrics on --metrics-port + index.", internal=True)

    def token(self, environ: Mapping[str, str] = os.environ) -> str:
        """The bearer token from --token-file or SCORING_TOKEN; empty when auth is off (ValueError: blank file)."""
        return read_token(self.token_file, environ.get(f"{ENV_PREFIX}TOKEN", ""))

    def validate(self) -> "Settings":
        """Return self, or raise ValueError naming the bad setting."""
        if bool(self.tls_cert) != bool(self.tls_key):
            raise ValueError("--tls-cert and --tls-key go together")
        if self.log_format not in ("json", "text"):
            raise ValueError(f"log_format={self.log_format!r} should be 'json' or 'text'")
        for name in ("workers", "threads", "max_message_mb", "pinned_cache"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name}={getattr(self, name)} should be >= 1")
        if self.max_streams < 0 or (self.max_streams and self.max_streams >= self.threads):
            raise ValueError(f"max_streams={self.max_streams} should be 0 (auto) or 1..{self.threads - 1} "
                             "(below --threads, so that Predict and health checks keep a thread)")
        if not self.rate_limit >= 0 or self.rate_burst < 0:
            raise ValueError(f"rate_limit={self.rate_limit} and rate_burst={self.rate_burst} should be >= 0 (0 = off "
                             "/ one second's calls)")
        if not self.stream_idle_seconds >= 0:
            raise ValueError(f"stream_idle_seconds={self.stream_idle_seconds} should be >= 0 (0 = never)")
        if not 0 <= self.port < 65536:
            raise ValueError(f"port={self.port} should be in 0..65535")
        if self.drift_window_rows < 0:
            raise ValueError(f"drift_window_rows={self.drift_window_rows} should be >= 0 (0 = off)")
        if not self.drift_window_minutes > 0:
            raise ValueError(f"drift_window_minutes={self.drift_window_minutes} should be > 0")
        if not self.drift_sample_rate >= 0:
            raise ValueError(f"drift_sample_rate={self.drift_sample_rate} should be >= 0 (0 = every row)")
        if self.drift_min_rows < 1:
            raise ValueError(f"drift_min_rows={self.drift_min_rows} should be >= 1")
        if self.poll_interval <= 0:
            raise ValueError(f"poll_interval={self.poll_interval} should be > 0")
        return self

    @property
    def stream_limit(self) -> int:
        """--max-streams, or (0) --threads minus RESERVED_THREADS, at least 1 and below --threads when it can be."""
        if self.max_streams:
            return self.max_streams
        return max(1, self.threads - RESERVED_THREADS) if self.threads > 1 else 1

    @property
    def burst(self) -> int:
        """--rate-burst, or (0) one second's calls at --rate-limit, at least 1."""
        return self.rate_burst or max(1, int(self.rate_limit))

    @property
    def max_message_bytes(self) -> int:
        """--max-message-mb in bytes."""
        return self.max_message_mb * 1024 * 1024


def parse_settings(argv: Sequence[str] | None = None, environ: Mapping[str, str] | None = None) -> Settings:
    """Settings from command-line arguments and SCORING_* environment variables; a bad value exits 2 with one line."""
    parser = argparse.ArgumentParser(prog="python -m scoring_service",
                                     description="Serve the customer-segmentation models of a store over gRPC.")
    settings = parse(Settings, parser, argv, ENV_PREFIX, environ)
    try:
        return settings.validate()
    except ValueError as exc:
        fail(parser, str(exc))

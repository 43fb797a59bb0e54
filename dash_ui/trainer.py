"""The dashboard's door to the training service (optional): a TrainingClient, whether it answers, and the
HTTP route the browser streams uploads to.

The browser sends the chosen file as the raw body of ``POST /upload/data?filename=NAME`` (an
XMLHttpRequest with the File object: the browser streams it from disk, with progress events). waitress
spools a large body to a temporary file rather than memory, and the route forwards it to UploadData in
1 MiB chunks, so a 200 MB CSV never sits in the dashboard's memory (Dash's dcc.Upload would hold it
whole, as base64, in the browser, the request and the callback).
"""
from __future__ import annotations

import logging
import threading
import time
from typing import Any, Iterator

import flask

log = logging.getLogger(__name__)

UPLOAD_ROUTE = "/upload/data"
CHUNK_BYTES = 1 << 20
HEALTH_TTL = 3.0
UNAVAILABLE = "Training is unavailable: no training service is configured (start the dashboard with --trainer)."


class TrainerAccess:
    """The training service at ``target`` ("" = none configured); clients are made on first use."""

    def __init__(self, target: str = "", *, token: str | None = None, tls_ca: str | None = None) -> None:
        self.target = target
        self._token, self._tls_ca = token, tls_ca
        self._client: Any = None
        self._lock = threading.Lock()
        self._health: tuple[float, bool] = (0.0, False)

    @property
    def client(self) -> Any:
        """The TrainingClient (raises RuntimeError when no service is configured)."""
        if not self.target:
            raise RuntimeError(UNAVAILABLE)
        with self._lock:
            if self._client is None:
                from training_job.client import TrainingClient

                self._client = TrainingClient(self.target, token=self._token, tls_ca=self._tls_ca, timeout=30)
            return self._client

    def available(self) -> bool:
        """True when the service answers SERVING (checked at most every HEALTH_TTL seconds)."""
        if not self.target:
            return False
        checked, ok = self._health
        if time.monotonic() - checked < HEALTH_TTL:
            return ok
        ok = self.client.healthy(timeout=1.5)
        self._health = (time.monotonic(), ok)
        return ok

    def unavailable_reason(self) -> str:
        """Why training cannot be used now, in a sentence."""
        if not self.target:
            return UNAVAILABLE
        return f"Training is unavailable: the training service at {self.target} does not answer."

    def close(self) -> None:
        """Close the client's channel."""
        with self._lock:
            if self._client is not None:
                self._client.close()
                self._client = None


def _body_chunks(stream: Any) -> Iterator[bytes]:
    while chunk := stream.read(CHUNK_BYTES):
        yield chunk


def install_upload_route(server: flask.Flask, trainer: TrainerAccess) -> None:
    """Add ``POST /upload/data?filename=NAME``: the raw body goes to UploadData; answers the Dataset as JSON."""

    @server.post(UPLOAD_ROUTE)
    def upload_data() -> Any:
        from training_job.client import TrainingError

        filename = flask.request.args.get("filename", "") or "upload"
        if not trainer.available():
            return flask.jsonify(error=trainer.unavailable_reason()), 503
        try:
            dataset = trainer.client.upload_chunks(_body_chunks(flask.request.stream), filename)
        except TrainingError as exc:
            status = 413 if exc.code.name == "RESOURCE_EXHAUSTED" else 400
            return flask.jsonify(error=exc.message), status
        log.info("uploaded %s as %s (%d bytes)", filename, dataset.dataset_id, dataset.size_bytes)
        return flask.jsonify(dataset_id=dataset.dataset_id, filename=dataset.filename, rows=dataset.rows,
                             column_count=dataset.column_count, size_bytes=dataset.size_bytes,
                             deduplicated=dataset.deduplicated)

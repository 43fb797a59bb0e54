"""The dashboard's upload routes: the browser streams the chosen file as the raw body of a POST.

```
POST /upload/data?filename=NAME    the Data page: forwarded to the training service's UploadData in 1 MiB
                                   chunks; answers the Dataset
POST /upload/batch?filename=NAME   the Batch page: copied to a temporary file, read by the platform's one
                                   table reader, kept in the page's UploadStore; answers its key
```
Both: an XMLHttpRequest with the File object (the browser reads it from disk as it sends, with progress
events; :func:`upload_script` is the one clientside function of both pages). waitress spools a large
body to a temporary file rather than memory, and the routes read it in chunks, so a file never sits whole
in the dashboard's memory as bytes (Dash's dcc.Upload held it as base64 in the browser, the request and the
callback: a 51 MB CSV peaked at 1.48 GB RSS). Only the parsed table is kept (the Batch page scores it).

Limits and who may post: a body over the route's limit is refused 413 from its Content-Length before it
is read (and counted while streaming, for a chunked one); the Batch route also bounds the table once
decompressed (``segmentation_core.tables``' ``max_bytes``). A browser request from another origin (its
``Origin`` header, or ``Sec-Fetch-Site: cross-site``/``same-site``) is refused 403, so another site cannot
make a visitor's browser post files (CSRF); requests without those headers (scripts, ``curl``) are not
browsers' and pass. The dashboard has no login of its own: the routes are as open as its pages, so a
dashboard reachable by others belongs behind the same authenticating proxy as the rest of it.
"""
from __future__ import annotations

import logging
import tempfile
from pathlib import Path
from typing import Any, BinaryIO, Callable, Iterator
from urllib.parse import urlsplit

import flask

from dash_ui.batch import MAX_UPLOAD_BYTES, UploadError, UploadStore, parse_upload
from dash_ui.trainer import TrainerAccess

log = logging.getLogger(__name__)

DATA_ROUTE = "/upload/data"
BATCH_ROUTE = "/upload/batch"
CHUNK_BYTES = 1 << 20
MAX_FILENAME = 200


class BodyTooLarge(Exception):
    """A request body over the route's limit."""


def body_chunks(stream: BinaryIO, limit: int) -> Iterator[bytes]:
    """The request body in 1 MiB chunks; BodyTooLarge as soon as more than ``limit`` bytes came."""
    size = 0
    while chunk := stream.read(CHUNK_BYTES):
        size += len(chunk)
        if size > limit:
            raise BodyTooLarge()
        yield chunk


def cross_site_refusal(request: flask.Request) -> str | None:
    """Why a request comes from a browser on another origin (refuse it), or None."""
    fetch_site = request.headers.get("Sec-Fetch-Site", "")
    if fetch_site in ("cross-site", "same-site"):
        return f"uploads are taken from this dashboard's own pages only (Sec-Fetch-Site: {fetch_site})"
    origin = request.headers.get("Origin")
    if origin is not None and urlsplit(origin).netloc != request.host:
        return "uploads are taken from this dashboard's own pages only (another Origin)"
    return None


def _too_large_message(filename: str, limit: int) -> str:
    return f"{filename}: larger than the upload limit of {limit / 2**20:.0f} MB"


def _guarded(limit: Callable[[], int], handle: Callable[[str, int], Any]) -> Callable[[], Any]:
    """A route: refuse cross-site requests and bodies over ``limit()`` (413 from Content-Length when given), then
    ``handle(filename, limit)``."""
    def route() -> Any:
        refusal = cross_site_refusal(flask.request)
        if refusal is not None:
            log.warning("upload refused: %s", refusal)
            return flask.jsonify(error=refusal), 403
        filename = (flask.request.args.get("filename", "") or "upload")[:MAX_FILENAME]
        most = limit()
        if (flask.request.content_length or 0) > most:
            return flask.jsonify(error=_too_large_message(filename, most)), 413
        try:
            return handle(filename, most)
        except BodyTooLarge:
            return flask.jsonify(error=_too_large_message(filename, most)), 413
    return route


def install_upload_routes(server: flask.Flask, trainer: TrainerAccess, batch_uploads: UploadStore, *,
                          max_data_bytes: int = 200 * 2**20, max_batch_bytes: int = MAX_UPLOAD_BYTES) -> None:
    """Add the two upload routes (see the module docstring)."""

    def upload_data(filename: str, limit: int) -> Any:
        from training_job.client import TrainingError

        if not trainer.available():
            return flask.jsonify(error=trainer.unavailable_reason()), 503
        try:
            dataset = trainer.client.upload_chunks(body_chunks(flask.request.stream, limit), filename)
        except TrainingError as exc:
            status = 413 if exc.code.name == "RESOURCE_EXHAUSTED" else 400
            return flask.jsonify(error=exc.message), status
        log.info("uploaded %s as %s (%d bytes)", filename, dataset.dataset_id, dataset.size_bytes)
        message = (f"Uploaded {dataset.filename}: {dataset.rows} rows, {dataset.column_count} columns"
                   + (" (already uploaded)" if dataset.deduplicated else ""))
        return flask.jsonify(result=dataset.dataset_id, message=message, dataset_id=dataset.dataset_id,
                             filename=dataset.filename, rows=dataset.rows, column_count=dataset.column_count,
                             size_bytes=dataset.size_bytes, deduplicated=dataset.deduplicated)

    def upload_batch(filename: str, limit: int) -> Any:
        with tempfile.NamedTemporaryFile(prefix="dash-batch-", suffix=Path(filename).suffix[:16]) as spool:
            for chunk in body_chunks(flask.request.stream, limit):
                spool.write(chunk)
            spool.flush()
            try:
                frame = parse_upload(Path(spool.name), filename, max_bytes=limit)
            except UploadError as exc:
                return flask.jsonify(error=str(exc).replace(spool.name, filename), result={"error": str(exc)}), 400
        key = batch_uploads.put(filename, frame)
        log.info("batch upload %s: %d rows x %d columns", filename, len(frame), len(frame.columns))
        return flask.jsonify(result={"key": key, "filename": filename},
                             message=f"Read {filename}: {len(frame):,} rows, {len(frame.columns)} columns")

    server.add_url_rule(DATA_ROUTE, "upload_data", _guarded(lambda: max_data_bytes, upload_data), methods=["POST"])
    server.add_url_rule(BATCH_ROUTE, "upload_batch", _guarded(lambda: max_batch_bytes, upload_batch),
                        methods=["POST"])


def upload_script(route: str, prefix: str, *, errors_to_output: bool = False) -> str:
    """The clientside callback of a page's upload button: sends the file of ``<prefix>-file`` to ``route``
    with progress in ``<prefix>-upload-progress`` and words in ``<prefix>-upload-message``; resolves to the
    route's ``result`` (and, with ``errors_to_output``, to ``{"error": ...}`` when refused)."""
    on_error = 'resolve({error: text});' if errors_to_output else "resolve(dc.no_update);"
    return """
function (n) {
    const dc = window.dash_clientside;
    if (!n) { return dc.no_update; }
    const input = document.getElementById("%(prefix)s-file");
    const file = input && input.files && input.files[0];
    const progress = "%(prefix)s-upload-progress", message = "%(prefix)s-upload-message";
    if (!file) { dc.set_props(message, {children: "Choose a file first."}); return dc.no_update; }
    return new Promise(function (resolve) {
        const xhr = new XMLHttpRequest();
        xhr.open("POST", "%(route)s?filename=" + encodeURIComponent(file.name));
        xhr.upload.onprogress = function (e) {
            if (!e.lengthComputable) { return; }
            const p = Math.round(100 * e.loaded / e.total);
            dc.set_props(progress, {value: p, label: p + "%%"});
            if (p >= 100) { dc.set_props(message, {children: "Reading " + file.name + " ..."}); }
        };
        xhr.onload = function () {
            let body = {};
            try { body = JSON.parse(xhr.responseText); } catch (err) { body = {}; }
            if (xhr.status === 200) {
                dc.set_props(message, {children: body.message});
                resolve(body.result);
            } else {
                const text = body.error || ("Upload failed: HTTP " + xhr.status);
                dc.set_props(progress, {value: 0, label: ""});
                dc.set_props(message, {children: text});
                %(on_error)s
            }
        };
        xhr.onerror = function () {
            const text = "Upload failed: the dashboard did not answer.";
            dc.set_props(message, {children: text});
            %(on_error)s
        };
        dc.set_props(message, {children: "Uploading " + file.name + " ..."});
        dc.set_props(progress, {value: 0, label: "0%%"});
        xhr.send(file);
    });
}
""" % {"route": route, "prefix": prefix, "on_error": on_error}

"""The dashboard's upload routes (dash_ui/uploads.py): who may post (same origin only, for browsers), how much
(413 past the limit, from Content-Length or counted while streaming; a gzip bomb refused as it expands), and
the Batch route's answer. The routes run in a real Flask app; the Data route's training service is absent."""
from __future__ import annotations

import gzip
import io

import flask
import pytest

from dash_ui.batch import UploadStore
from dash_ui.trainer import TrainerAccess
from dash_ui.uploads import BATCH_ROUTE, DATA_ROUTE, BodyTooLarge, body_chunks, install_upload_routes

LIMIT = 4000
CSV = b"CustomerID,Age,Annual Income (k$)\n1,19,15\n2,21,16\n"


@pytest.fixture()
def app() -> tuple[flask.Flask, UploadStore]:
    server, store = flask.Flask("t"), UploadStore()
    install_upload_routes(server, TrainerAccess(""), store, max_data_bytes=LIMIT, max_batch_bytes=LIMIT)
    return server, store


def _post(server: flask.Flask, route: str, body: bytes, **headers: str):
    return server.test_client().post(f"{route}?filename=c.csv", data=body, headers=headers)


def test_a_batch_upload_from_the_page_is_read_and_kept_under_its_key(app) -> None:
    server, store = app
    answer = _post(server, BATCH_ROUTE, CSV, Origin="http://localhost")
    assert answer.status_code == 200, answer.json
    assert answer.json["message"] == "Read c.csv: 2 rows, 3 columns"
    filename, frame = store.get(answer.json["result"]["key"])
    assert filename == "c.csv" and frame["Age"].tolist() == [19, 21]


@pytest.mark.parametrize("route", [BATCH_ROUTE, DATA_ROUTE])
@pytest.mark.parametrize("headers", [{"Origin": "http://evil.example"}, {"Sec-Fetch-Site": "cross-site"},
                                     {"Sec-Fetch-Site": "same-site", "Origin": "http://localhost"}],
                         ids=["other-origin", "cross-site", "same-site-subdomain"])
def test_a_browser_post_from_another_site_is_refused(app, route: str, headers: dict[str, str]) -> None:
    server, store = app
    answer = _post(server, route, CSV, **headers)
    assert answer.status_code == 403 and "own pages only" in answer.json["error"]
    assert store.get(None) is None and len(store._items) == 0


@pytest.mark.parametrize("route", [BATCH_ROUTE, DATA_ROUTE])
def test_a_body_past_the_limit_is_refused_before_it_is_read(app, route: str) -> None:
    server, _ = app
    answer = _post(server, route, b"x" * (LIMIT + 1))
    assert answer.status_code == 413 and "c.csv: larger than the upload limit" in answer.json["error"]


def test_a_body_without_a_length_is_counted_as_it_streams() -> None:
    assert b"".join(body_chunks(io.BytesIO(b"x" * 3000), 3000)) == b"x" * 3000
    with pytest.raises(BodyTooLarge):
        list(body_chunks(io.BytesIO(b"x" * (3 << 20)), 3 << 20 - 1))


def test_a_gzip_bomb_under_the_limit_is_refused_as_it_expands(app) -> None:
    server, _ = app
    bomb = gzip.compress(b"a,b\n" + b"1,2\n" * 500_000)
    assert len(bomb) < LIMIT
    answer = _post(server, BATCH_ROUTE, bomb)
    assert answer.status_code == 400 and "decompressed" in answer.json["error"]
    assert "dash-batch-" not in answer.json["error"]  # names the user's file, not the temporary one


def test_the_data_route_says_when_no_training_service_is_configured(app) -> None:
    server, _ = app
    answer = _post(server, DATA_ROUTE, CSV)
    assert answer.status_code == 503 and "no training service" in answer.json["error"]

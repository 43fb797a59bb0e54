"""The Python client and its CLI against a real server (``python -m scoring_service``) on an ephemeral port."""
from __future__ import annotations

import dataclasses
import math
import os
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import grpc
import joblib
import numpy as np
import pandas as pd
import pytest
from google.protobuf.message import Message

from scoring_service.client import ModelEntry, ModelInfo, Prediction, ScoringClient, ScoringError
from scoring_service.client.cli import find_id_column, open_source
from segmentation_core.store import ModelStore
from tests import model_factory

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[1]
FEATURES = ["Age", "Annual Income (k$)", "Spending Score (1-100)", "Gender"]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> ModelStore:
    """A store with one real Mall model (k=5), published as the training job does."""
    store = ModelStore(tmp_path_factory.mktemp("store"))
    model_factory.publish(store, "customers", data="mall", k=5)
    return store


@pytest.fixture(scope="module")
def target(store: ModelStore, tmp_path_factory: pytest.TempPathFactory):
    """HOST:PORT of a scoring server subprocess serving ``store``, SERVING before the tests run."""
    yield from _serve(store, tmp_path_factory)


def _serve(store: ModelStore, tmp_path_factory: pytest.TempPathFactory, *flags: str):
    """Run ``python -m scoring_service`` on ``store`` with ``flags`` on an ephemeral port; yield its HOST:PORT once
    SERVING; stop it after."""
    port_file = tmp_path_factory.mktemp("server") / "port"
    log_path = port_file.with_name("server.log")
    with open(log_path, "wb") as log_file:
        proc = subprocess.Popen(
            [sys.executable, "-m", "scoring_service", "--store", str(store.root), "--port", "0",
             "--port-file", str(port_file), "--metrics-port", "-1", "--log-format", "text", *flags],
            cwd=ROOT, stdout=log_file, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 30
        while not (port_file.exists() and port_file.read_text().strip()):
            if proc.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"server did not start:\n{log_path.read_text()[-3000:]}")
            time.sleep(0.05)
        address = f"127.0.0.1:{port_file.read_text().strip()}"
        with ScoringClient(address, timeout=2) as client:
            while client.health() != "SERVING":
                if time.monotonic() > deadline:
                    pytest.fail("server never became SERVING")
                time.sleep(0.05)
        yield address
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@pytest.fixture(scope="module")
def small_target(store: ModelStore, tmp_path_factory: pytest.TempPathFactory):
    """HOST:PORT of a second scoring server subprocess, started with ``--max-message-mb 1``."""
    yield from _serve(store, tmp_path_factory, "--max-message-mb", "1")


@pytest.fixture()
def client(target: str):
    with ScoringClient(target) as client:
        yield client


@pytest.fixture(scope="module")
def pipeline(store: ModelStore):
    """The version's joblib pipeline: the offline reference every prediction must equal."""
    version = store.current("customers")
    return joblib.load(store.version_dir("customers", version) / "pipeline.joblib")


@pytest.fixture(scope="module")
def mall() -> pd.DataFrame:
    return model_factory.mall().frame


def test_predict_equals_the_pipeline(client: ScoringClient, pipeline, mall: pd.DataFrame) -> None:
    names = [s.name for s in client.model_info().segments]
    expected = pipeline.predict(mall[FEATURES])
    for i in (0, 1, 57, 123, 199):
        row = mall.iloc[i]
        customer = {f: (row[f].item() if hasattr(row[f], "item") else row[f]) for f in FEATURES}
        p = client.predict(customer, id=str(row["CustomerID"]))
        assert isinstance(p, Prediction)
        assert p.segment_id == expected[i], f"row {i}"
        assert p.segment_name == names[p.segment_id]
        assert 0.0 <= p.confidence <= 1.0 and p.distance >= 0.0
        assert (p.model, p.version) == ("customers", "v0001")


def test_predict_routes_values_by_schema_and_imputes_missing(client: ScoringClient, pipeline,
                                                             mall: pd.DataFrame) -> None:
    # Numbers given as text still go to the numeric map (the schema says so); None is imputed.
    row = mall.iloc[10]
    as_text = client.predict({f: str(row[f]) for f in FEATURES})
    assert as_text.segment_id == pipeline.predict(mall[FEATURES].iloc[[10]])[0]
    partial = client.predict({"Annual Income (k$)": 120.0, "Spending Score (1-100)": 90.0, "Age": None})
    frame = pd.DataFrame({"Age": [np.nan], "Annual Income (k$)": [120.0], "Spending Score (1-100)": [90.0],
                          "Gender": [None]})
    assert partial.segment_id == pipeline.predict(frame)[0]


def test_predict_frame_equals_the_pipeline_row_by_row(client: ScoringClient, pipeline, mall: pd.DataFrame) -> None:
    shuffled = mall.sample(frac=1.0, random_state=3)  # rows must come back in the input's order
    calls: list[tuple[int, int]] = []
    result = client.predict_frame(shuffled, batch_rows=64, progress=lambda done, total: calls.append((done, total)))
    assert list(result.index) == list(shuffled.index)
    assert list(result.columns) == ["segment_id", "segment_name", "distance", "confidence", "outlier", "error"]
    assert result["segment_id"].dtype == np.int32
    np.testing.assert_array_equal(result["segment_id"].to_numpy(), pipeline.predict(shuffled[FEATURES]))
    assert calls == [(64, 200), (128, 200), (192, 200), (200, 200)]
    assert (result["error"] == "").all() and result["confidence"].between(0, 1).all()
    assert result.attrs["missing_features"] == [] and result.attrs["version"] == "v0001"
    # The same rows one by one through Predict give the same numbers.
    one = client.predict({f: shuffled.iloc[0][f] for f in FEATURES})
    assert one.segment_id == result["segment_id"].iloc[0]
    assert math.isclose(one.distance, result["distance"].iloc[0], rel_tol=1e-9)
    assert math.isclose(one.confidence, result["confidence"].iloc[0], rel_tol=1e-9)


def test_predict_frame_reports_missing_features_and_bad_values(client: ScoringClient, pipeline,
                                                               mall: pd.DataFrame) -> None:
    frame = mall[["CustomerID", "Age", "Annual Income (k$)", "Spending Score (1-100)"]].head(20).copy()
    frame["Age"] = frame["Age"].astype(object)
    frame["Annual Income (k$)"] = frame["Annual Income (k$)"].astype(float)
    frame.loc[3, "Age"] = "old"  # not a number: an error on that row, not a silent imputation
    frame.loc[5, "Annual Income (k$)"] = np.inf
    result = client.predict_frame(frame)
    assert result.attrs["missing_features"] == ["Gender"]
    assert result.loc[3, "segment_id"] == -1 and "Age" in result.loc[3, "error"]
    assert result.loc[5, "segment_id"] == -1 and "Annual Income (k$)" in result.loc[5, "error"]
    ok = result.index.difference([3, 5])
    expected = pipeline.predict(frame.loc[ok].assign(Gender=None, Age=frame.loc[ok, "Age"].astype(float)))
    np.testing.assert_array_equal(result.loc[ok, "segment_id"].to_numpy(), expected)
    assert (result.loc[ok, "error"] == "").all()


def test_model_info_list_models_and_stats(client: ScoringClient) -> None:
    info = client.model_info()
    assert info.model == "customers" and info.k == 5
    assert [f.name for f in info.numeric_features] == FEATURES[:3]
    assert [m.name for m in client.list_models()] == ["customers"]
    stats = client.segment_stats(max_sample=50)
    assert len(stats.segments) == 5 and 0 < len(stats.sample_segment_id) <= 50
    assert set(stats.sample_map) == {"x", "y", "z"} and len(stats.sample_map["x"]) == len(stats.sample_segment_id)


def _protobuf_inside(value: object) -> list[str]:
    """Where in a (nested) answer a protobuf object or container hides."""
    if isinstance(value, Message) or type(value).__module__.startswith("google.protobuf"):
        return [type(value).__name__]
    if dataclasses.is_dataclass(value):
        return [f"{f.name}.{w}" for f in dataclasses.fields(value) for w in _protobuf_inside(getattr(value, f.name))]
    if isinstance(value, dict):
        return [w for v in value.values() for w in _protobuf_inside(v)]
    if isinstance(value, (list, tuple)):
        return [w for v in value for w in _protobuf_inside(v)]
    return []


def test_every_answer_is_a_plain_dataclass(client: ScoringClient) -> None:
    info = client.model_info(include_profile=True)
    answers = {"model_info": info, "segment_stats": client.segment_stats(max_sample=20),
               "list_models": client.list_models(), "predict": client.predict({"Age": 30}),
               "drift_report": client.drift_report()}
    for name, answer in answers.items():
        assert dataclasses.is_dataclass(answer) or all(dataclasses.is_dataclass(a) for a in answer), name
        assert _protobuf_inside(answer) == [], name
    assert isinstance(info, ModelInfo) and [s.id for s in info.segments] == list(range(5))  # sorted by id
    [entry] = answers["list_models"]
    assert isinstance(entry, ModelEntry) and entry.served_version == "v0001" and entry.is_default
    assert [v.version for v in entry.versions if v.current] == ["v0001"]


def test_unknown_model_is_not_found(client: ScoringClient) -> None:
    with pytest.raises(ScoringError) as err:
        client.predict({"Age": 30.0}, model="no-such-model")
    assert err.value.code == grpc.StatusCode.NOT_FOUND
    assert "no-such-model" in err.value.message
    with pytest.raises(ScoringError) as err:
        client.predict_frame(pd.DataFrame({"Age": [30.0]}), model="no-such-model")
    assert err.value.code == grpc.StatusCode.NOT_FOUND


def test_unknown_feature_is_invalid_argument(client: ScoringClient) -> None:
    with pytest.raises(ScoringError) as err:
        client.predict({"Age": 30.0, "Shoe size": 44.0})
    assert err.value.code == grpc.StatusCode.INVALID_ARGUMENT
    assert "Shoe size" in err.value.message


def test_watch_reports_a_new_version(client: ScoringClient, store: ModelStore) -> None:
    seen: list[str] = []
    done = threading.Event()

    def follow() -> None:
        with ScoringClient(client.target) as watcher:
            for info in watcher.watch():
                seen.append(info.version)
                if len(seen) == 2:
                    break
        done.set()

    thread = threading.Thread(target=follow, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not seen and time.monotonic() < deadline:
        time.sleep(0.02)
    version = model_factory.publish(store, "customers", data="mall", k=5)
    assert done.wait(10), f"watch saw only {seen}"
    assert seen == ["v0001", version]
    store.set_current("customers", "v0001")  # leave the served version as the other tests expect
    deadline = time.monotonic() + 10
    while client.model_info().version != "v0001" and time.monotonic() < deadline:
        time.sleep(0.05)


def test_id_column_detection() -> None:
    assert find_id_column(["Genre", "CustomerID", "Age"]) == "CustomerID"
    assert find_id_column(["customer_id", "id"]) == "customer_id"
    assert find_id_column(["Paid", "Valid"]) is None


@pytest.mark.parametrize("encoding, bom, sep", [("utf-8", b"", ","), ("utf-8", b"\xef\xbb\xbf", ";"),
                                                ("cp1252", b"", "\t")], ids=["utf8", "utf8-bom", "cp1252-tab"])
def test_input_files_are_sniffed(tmp_path: Path, encoding: str, bom: bytes, sep: str) -> None:
    path = tmp_path / "in.csv"
    path.write_bytes(bom + sep.join(["Customer Id", "City", "Age"]).encode() + b"\n"
                     + f"0007{sep}K\u00f6ln{sep}31\n".encode(encoding))
    source = open_source(path, None)
    assert (source.delimiter, source.id_column, source.total_rows) == (sep, "Customer Id", 1)
    [frame] = list(source.table.chunks(10))
    assert frame.iloc[0].tolist() == ["0007", "K\u00f6ln", 31]


# ---- the command line --------------------------------------------------------------------------------

def _cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "scoring_service.client", *args], cwd=ROOT, capture_output=True,
                          text=True, timeout=60, env={**os.environ, **(env or {})})


def test_cli_scores_a_csv_end_to_end(target: str, pipeline, mall: pd.DataFrame, tmp_path: Path) -> None:
    frame = mall[["CustomerID", *FEATURES]].copy()
    frame["Annual Income (k$)"] = frame["Annual Income (k$)"].astype(float)
    frame.loc[7, "Annual Income (k$)"] = np.inf
    frame["Age"] = frame["Age"].astype(object)
    frame.loc[9, "Age"] = "1e400"  # beyond a float: the error quotes it as written (was "Age: inf is not ...")
    source = tmp_path / "customers.csv"
    # A semicolon-separated file with a byte-order mark, as Excel writes it in many locales.
    source.write_bytes(b"\xef\xbb\xbf" + frame.to_csv(index=False, sep=";").encode())
    out = tmp_path / "scored.csv"
    done = _cli("score", str(source), "-o", str(out), "--batch-rows", "50", env={"SCORING_TARGET": target})
    assert done.returncode == 0, done.stderr
    assert "scored 200 rows (2 with an error)" in done.stdout
    scored = pd.read_csv(out, sep=";", dtype={"CustomerID": str}, keep_default_na=False)
    assert list(scored.columns) == ["CustomerID", *FEATURES, "segment_id", "segment_name", "distance", "confidence",
                                    "outlier", "error"]  # the one scored layout (segmentation_core.scored)
    assert scored["CustomerID"].tolist() == mall["CustomerID"].tolist()  # "0001" stays "0001"
    assert scored["segment_id"].dtype == np.int64
    assert scored.loc[7, "segment_id"] == -1 and "Annual Income (k$)" in scored.loc[7, "error"]
    assert scored.loc[9, "segment_id"] == -1 and scored.loc[9, "error"] == \
        "line 11: Age: '1e400' is out of range (a number is at most ±1.8e308)"
    ok = ~scored.index.isin([7, 9])
    np.testing.assert_array_equal(scored.loc[ok, "segment_id"], pipeline.predict(mall[FEATURES])[ok])
    assert (scored.loc[ok, "error"] == "").all()
    assert not list(tmp_path.glob(".scored.csv.*"))  # the temporary file was renamed away


def test_cli_refuses_missing_columns(target: str, mall: pd.DataFrame, tmp_path: Path) -> None:
    source = tmp_path / "partial.csv"
    mall[["CustomerID", "Age"]].to_csv(source, index=False)
    out = tmp_path / "out.csv"
    done = _cli("score", str(source), "-o", str(out), "--target", target)
    assert done.returncode == 2
    assert "Annual Income (k$)" in done.stderr and "Traceback" not in done.stderr
    assert not out.exists()
    assert _cli("score", str(source), "-o", str(out), "--target", target, "--allow-missing").returncode == 0
    assert len(pd.read_csv(out)) == 200


def test_cli_unknown_model_and_unreachable_service(target: str, mall: pd.DataFrame, tmp_path: Path) -> None:
    source = tmp_path / "in.csv"
    mall.to_csv(source, index=False)
    out = tmp_path / "out.csv"
    unknown = _cli("score", str(source), "-o", str(out), "--target", target, "--model", "nope")
    assert unknown.returncode == 1 and "NOT_FOUND" in unknown.stderr and "Traceback" not in unknown.stderr
    started = time.monotonic()
    gone = _cli("score", str(source), "-o", str(out), "--target", f"127.0.0.1:{_free_port()}", "--timeout", "3")
    assert gone.returncode == 1
    assert "unavailable" in gone.stderr and "Traceback" not in gone.stderr
    assert time.monotonic() - started < 15
    assert not out.exists()


# ---- token and TLS -------------------------------------------------------------------------------------



@pytest.mark.parametrize("tls", [False, True], ids=["plain", "tls"])
def test_token_and_tls(scoring_server_factory, store: ModelStore, certificate: tuple[Path, Path], mall: pd.DataFrame,
                       tmp_path: Path, tls: bool) -> None:
    # The conftest's in-process server: here only the client's credentials are under test.
    cert, key = certificate
    token_file = tmp_path / "token"
    token_file.write_text("s3cret\n")
    options = {"tls_cert": str(cert), "tls_key": str(key)} if tls else {}
    server = scoring_server_factory(store.root, token_file=str(token_file), **options)
    address = f"localhost:{server.port}"
    ca = cert if tls else None
    with ScoringClient(address, tls_ca=ca) as anonymous:
        assert anonymous.health() == "SERVING"  # health is exempt from the token
        with pytest.raises(ScoringError) as err:
            anonymous.predict({"Age": 30.0})
        assert err.value.code == grpc.StatusCode.UNAUTHENTICATED
    with ScoringClient(address, token="s3cret", tls_ca=ca) as client:
        assert client.predict({"Age": 30.0}).version == "v0001"
        assert len(client.predict_frame(mall.head(30))) == 30
    source = tmp_path / "in.csv"
    mall.head(10).to_csv(source, index=False)
    flags = ["--tls-ca", str(cert)] if tls else []
    done = _cli("score", str(source), "-o", str(tmp_path / "out.csv"), "--target", address, "--allow-missing",
                *flags, env={"SCORING_TOKEN": "s3cret"})
    assert done.returncode == 0, done.stderr
    refused = _cli("score", str(source), "-o", str(tmp_path / "out.csv"), "--target", address, *flags,
                   env={"SCORING_TOKEN": ""})
    assert refused.returncode == 1 and "credentials" in refused.stderr


def test_predict_frame_resumes_after_a_server_restart(store: ModelStore, pipeline, mall: pd.DataFrame,
                                                      tmp_path: Path) -> None:
    # A stream broken after its first answers cannot be retried by gRPC; the client resends the
    # unanswered batches on a new stream pinned to the same version, and every row is still scored once.
    port = _free_port()
    command = [sys.executable, "-m", "scoring_service", "--store", str(store.root), "--port", str(port),
               "--metrics-port", "-1", "--log-format", "text"]
    servers = [subprocess.Popen(command, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)]
    frame = pd.concat([mall] * 100, ignore_index=True)  # 20,000 rows
    try:
        with ScoringClient(f"127.0.0.1:{port}", timeout=10) as client:
            deadline = time.monotonic() + 30
            while True:
                try:
                    if client.health() == "SERVING":
                        break
                except ScoringError:
                    pass
                assert time.monotonic() < deadline, "server did not start"
                time.sleep(0.05)

            def progress(done: int, total: int) -> None:
                if len(servers) == 1 and done >= total // 4:
                    servers[0].kill()  # no goodbye: the connection just drops
                    servers[0].wait()
                    servers.append(subprocess.Popen(command, cwd=ROOT, stdout=subprocess.DEVNULL,
                                                    stderr=subprocess.DEVNULL))

            result = client.predict_frame(frame, batch_rows=500, progress=progress)
        assert len(servers) == 2
        np.testing.assert_array_equal(result["segment_id"].to_numpy(), pipeline.predict(frame[FEATURES]))
        assert list(result.index) == list(frame.index)
    finally:
        for server in servers:
            server.kill()
            server.wait()


def test_a_batch_over_the_servers_message_limit_says_what_to_do(small_target: str, mall: pd.DataFrame,
                                                                 tmp_path: Path) -> None:
    """A server started with --max-message-mb 1 refuses a 60,000-row batch (about 1.8 MiB): the error names the
    server's flag and the client's batch size option, with a size that fits, instead of gRPC's bare "Received
    message larger than max (N vs. M)"; smaller batches score the same table."""
    big = pd.concat([mall[FEATURES]] * 300, ignore_index=True)
    with ScoringClient(small_target) as client:
        with pytest.raises(ScoringError) as refused:
            client.predict_frame(big, batch_rows=60_000)
        assert refused.value.code == grpc.StatusCode.RESOURCE_EXHAUSTED
        message = refused.value.message
        assert message.startswith("a batch of 60,000 rows (") and "MiB) is larger than the scoring service accepts " \
            "(1.0 MiB: its --max-message-mb, SCORING_MAX_MESSAGE_MB): send fewer rows per batch (about " in message
        assert "the client CLI's --batch-rows or SCORING_BATCH_ROWS, the Python client's batch_rows=) or start the " \
            "service with a larger --max-message-mb (gRPC: Received message larger than max (" in message
        fit = int(message.split("(about ")[1].split(" fit")[0].replace(",", ""))
        assert 10_000 < fit < 60_000
        assert len(client.predict_frame(big, batch_rows=fit)) == len(big)
    source = tmp_path / "big.csv"
    big.assign(CustomerID=range(len(big))).to_csv(source, index=False)
    done = _cli("score", str(source), "-o", str(tmp_path / "out.csv"), "--target", small_target,
                "--batch-rows", "60000")
    assert done.returncode == 1 and "--max-message-mb" in done.stderr and "--batch-rows" in done.stderr, done.stderr
    assert "Traceback" not in done.stderr
    # Over this client's own limit (64 MiB, gRPC's "Sent message larger than max"): fewer rows, nothing of the server.
    from scoring_service.client.types import size_limit_message

    sent = size_limit_message("Sent message larger than max (83886080 vs. 67108864)", 1_000_000)
    assert sent == ("a batch of 1,000,000 rows (80.0 MiB) is larger than this client sends (64.0 MiB): send fewer "
                    "rows per batch (about 720,000 fit: the client CLI's --batch-rows or SCORING_BATCH_ROWS, the "
                    "Python client's batch_rows=) (gRPC: Sent message larger than max (83886080 vs. 67108864))")

"""The training service (`python -m training_job serve`) as a real process on a loopback port, called through
its client: upload, profile, train, publish, cancel, a killed service, bad input."""
from __future__ import annotations

import html
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import grpc
import pytest

from segmentation_core.store import ModelStore
from tests.server_support import wait_for
from tests.store_snapshot import visible_state
from training_job.client import MAX_K, SchemaRefusal, TrainingClient, TrainingError
from training_job.servicer import REPORT_CHUNK_BYTES

ROOT = Path(__file__).resolve().parents[1]


class Trainer:
    """A `python -m training_job serve` process on a free port."""

    def __init__(self, store: Path, data_dir: Path, *extra: str, env: dict[str, str] | None = None,
                 token: str | None = None) -> None:
        self.store, self.data_dir = store, data_dir
        port_file = data_dir.parent / f"trainer-{time.monotonic_ns()}.port"
        self.log = open(data_dir.parent / "trainer.log", "a")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "training_job", "serve", "--store", str(store), "--data-dir", str(data_dir),
             "--port", "0", "--port-file", str(port_file), *extra],
            cwd=ROOT, stdout=self.log, stderr=subprocess.STDOUT, env={**os.environ, **(env or {})})
        wait_for(lambda: port_file.exists() or self.process.poll() is not None, timeout=60)
        assert self.process.poll() is None, (data_dir.parent / "trainer.log").read_text()[-2000:]
        self.target = f"127.0.0.1:{port_file.read_text().strip()}"
        self.client = TrainingClient(self.target, timeout=60, token=token)

    def stop(self, sig: int = signal.SIGTERM) -> None:
        self.client.close()
        if self.process.poll() is None:
            self.process.send_signal(sig)
            self.process.wait(timeout=30)
        self.log.close()


@pytest.fixture(scope="module")
def trainer(tmp_path_factory: pytest.TempPathFactory):
    """One service for the module (uploads up to 1 MB), on an empty store."""
    root = tmp_path_factory.mktemp("trainer")
    service = Trainer(root / "store", root / "data", "--max-upload-mb", "1")
    yield service
    service.stop()


@pytest.fixture(scope="module")
def mall(trainer: Trainer, datasets_dir: Path):
    """Mall_Customers.csv, uploaded."""
    return trainer.client.upload(datasets_dir / "Mall_Customers.csv")


def test_upload_is_named_by_the_server_and_deduplicated(trainer: Trainer, mall, datasets_dir: Path) -> None:
    assert mall.dataset_id.startswith("ds-") and mall.rows == 200 and mall.column_count == 5
    assert mall.filename == "Mall_Customers.csv" and mall.size_bytes == (datasets_dir / "Mall_Customers.csv").stat().st_size
    again = trainer.client.upload((datasets_dir / "Mall_Customers.csv").open("rb"), filename="../../../etc/evil.csv")
    assert again.dataset_id == mall.dataset_id and again.deduplicated
    stored = sorted(p.name for p in (trainer.data_dir / "datasets").iterdir())
    assert all(name.startswith(mall.dataset_id) for name in stored), stored
    assert not list((trainer.data_dir / "uploads").iterdir())


def test_profile_of_mall(trainer: Trainer, mall) -> None:
    profile = trainer.client.profile(mall.dataset_id)
    assert (profile.rows, profile.column_count) == (200, 5)
    assert profile.suggested_preset == "mall"
    assert [c.name for c in profile.columns] == ["CustomerID", "Genre", "Age", "Annual Income (k$)",
                                                  "Spending Score (1-100)"]
    by_name = {c.name: c for c in profile.columns}
    assert by_name["CustomerID"].role == "id"
    assert by_name["Annual Income (k$)"].summary["min"] == 15 and by_name["Annual Income (k$)"].summary["max"] == 137
    assert sum(by_name["Age"].histogram_counts) == 200
    assert dict(by_name["Genre"].top_levels) == {"Female": 112, "Male": 88}
    assert all(c.missing == 0 for c in profile.columns)
    assert profile.correlation_columns == ["Age", "Annual Income (k$)", "Spending Score (1-100)"]
    assert profile.correlation[0][0] == pytest.approx(1.0)
    assert profile.correlation[0][2] == pytest.approx(-0.327, abs=0.001)  # Age x Spending Score, by pandas
    assert profile.customers == 200 and profile.cleaning_error == ""
    assert len(profile.preview_rows) == 20 and profile.preview_rows[0][0] == "0001"


def test_train_with_the_suggested_preset_then_publish(trainer: Trainer, mall, tmp_path: Path) -> None:
    from tests.server_support import start_server

    client = trainer.client
    first = client.wait(client.submit(mall.dataset_id, preset="mall", publish=True).job_id, timeout=300)
    assert first.state == "SUCCEEDED", first.error
    assert first.result.k == 5 and first.result.published and sum(first.result.segment_sizes) == 200
    store = ModelStore(trainer.store)
    assert store.current("customers") == first.result.version
    # The report names the file as uploaded (the stored ds-....upload.csv only in the label's title), and the
    # preset's k = 5 as the preset's, not the user's.
    report = (store.version_dir("customers", first.result.version) / "report.html").read_text()
    assert '<th title="data.path: ' in report and "</th><td>Mall_Customers.csv</td>" in report
    assert "<td>training-data" not in report and "upload.csv</td>" not in report
    assert "<b>Rule:</b> set by the preset (mall)" in report
    scoring = start_server(trainer.store)
    try:
        staged = client.wait(client.submit(mall.dataset_id, preset="mall", k="auto", publish=False).job_id, 300)
        assert staged.state == "SUCCEEDED", staged.error
        stages = [row["k"] for row in staged.k_search]
        assert stages == list(range(2, 11))
        assert not staged.result.published and store.current("customers") == first.result.version
        assert staged.result.compared_version == first.result.version
        assert staged.result.ari == pytest.approx(1.0) if staged.result.k == 5 else staged.result.ari < 1
        client.publish(staged.result.version)
        assert store.current("customers") == staged.result.version
        wait_for(lambda: scoring.registry.list_served().get("customers") == staged.result.version, timeout=20)
        from segmentation.v1 import scoring_pb2, scoring_pb2_grpc
        with grpc.insecure_channel(f"127.0.0.1:{scoring.port}") as channel:
            stub = scoring_pb2_grpc.ScoringServiceStub(channel)
            plain = stub.GetModelInfo(scoring_pb2.GetModelInfoRequest())
            full = stub.GetModelInfo(scoring_pb2.GetModelInfoRequest(include_profile=True))
        assert not plain.HasField("profile") and '"profile"' not in plain.manifest_json
        assert full.profile.rows == 200 and full.profile.suggested_preset == "mall"
        with pytest.raises(TrainingError) as err:
            client.publish("v0099")
        assert err.value.code == grpc.StatusCode.NOT_FOUND and "v0099" in err.value.message
    finally:
        scoring.stop(grace=0)


def test_rollback_undoes_a_publish_and_the_scoring_service_lists_its_target(trainer: Trainer) -> None:
    """After the test above (v0001 published, then v0002): publishing v0001 again and rolling back serves v0002,
    the version served before (the store's history), not "nothing older"; ListModels names the target, which the
    dashboard's Roll back button shows; a rollback confirmed for another version changes nothing."""
    from segmentation.v1 import scoring_pb2, scoring_pb2_grpc
    from tests.server_support import start_server

    client, store = trainer.client, ModelStore(trainer.store)
    assert store.versions("customers")[:2] == ["v0001", "v0002"] and store.current("customers") == "v0002"
    client.publish("v0001")
    scoring = start_server(trainer.store)
    try:
        with grpc.insecure_channel(f"127.0.0.1:{scoring.port}") as channel:
            stub = scoring_pb2_grpc.ScoringServiceStub(channel)

            def rollback_to() -> str:
                return next(m.rollback_to for m in stub.ListModels(scoring_pb2.ListModelsRequest()).models
                            if m.name == "customers")

            assert rollback_to() == "v0002"
            with pytest.raises(TrainingError) as stale:
                client.rollback(expected="v0003")
            assert stale.value.code == grpc.StatusCode.FAILED_PRECONDITION
            assert "rollback from v0001 now serves v0002, not v0003" in stale.value.message
            assert store.current("customers") == "v0001"
            assert client.rollback(expected="v0002").version == "v0002" == store.current("customers")
            assert rollback_to() == "v0001"
            assert client.rollback().version == "v0001"
            assert rollback_to() == ""
            with pytest.raises(TrainingError) as nothing:
                client.rollback()
            assert nothing.value.code == grpc.StatusCode.FAILED_PRECONDITION
            assert "nothing to roll back to from v0001: no other version was served before it" in \
                nothing.value.message
        client.publish("v0002")  # as the test above left it
    finally:
        scoring.stop(grace=0)


def test_publishing_a_version_that_breaks_the_served_callers_is_refused_unless_allowed(tmp_path: Path,
                                                                                      datasets_dir: Path) -> None:
    """A mall model over a served RFM model: the job keeps it (published false, the log says why), and
    PublishVersion refuses it with FAILED_PRECONDITION naming the changes until the request allows it."""
    service = Trainer(tmp_path / "store", tmp_path / "data")
    client, store = service.client, ModelStore(tmp_path / "store")
    try:
        log_data = client.upload(ROOT / "data" / "online_retail_sample.csv.gz")
        rfm = client.wait(client.submit(log_data.dataset_id, preset="transactions", publish=True).job_id, 300)
        assert rfm.state == "SUCCEEDED" and rfm.result.published, rfm.error
        mall = client.upload(datasets_dir / "Mall_Customers.csv")
        job = client.wait(client.submit(mall.dataset_id, preset="mall", k="5", publish=True).job_id, 300)
        assert job.state == "SUCCEEDED", job.error
        assert not job.result.published and job.result.version == "v0002"
        assert any("v0002 was not made CURRENT" in line and "'Monetary'" in line for line in job.log), job.log[-5:]
        assert store.current("customers") == "v0001" and store.versions("customers") == ["v0001", "v0002"]

        with pytest.raises(TrainingError) as refused:
            client.publish("v0002")
        err = refused.value
        assert err.code == grpc.StatusCode.FAILED_PRECONDITION and err.breaking_schema
        assert err.message.startswith("model 'customers': v0002 was not made CURRENT: its input schema would break "
                                      "the callers of the served v0001: numeric feature(s) 'Recency', 'Frequency', "
                                      "'Monetary' removed"), err.message
        assert "allow_breaking_schema" in err.message and store.current("customers") == "v0001"
        # The same refusal in parts (trailing metadata), for a client that words it its own way (the dashboard).
        assert err.schema_refusal is not None
        assert (err.schema_refusal.model, err.schema_refusal.served, err.schema_refusal.candidate) == \
            ("customers", "v0001", "v0002")
        assert err.schema_refusal.changes[0].startswith("numeric feature(s) 'Recency', 'Frequency', 'Monetary' "
                                                        "removed"), err.schema_refusal.changes
        with pytest.raises(TrainingError) as missing:  # another refusal: no override to offer
            client.publish("v0099")
        assert not missing.value.breaking_schema and missing.value.schema_refusal is None

        info = client.publish("v0002", allow_breaking_schema=True)
        assert info.version == "v0002" and store.current("customers") == "v0002"
        with pytest.raises(TrainingError) as back:  # a roll back across the change: the same rule
            client.publish("v0001")
        assert back.value.breaking_schema and "served v0002" in back.value.message
        assert (back.value.schema_refusal.served, back.value.schema_refusal.candidate) == ("v0002", "v0001")
        assert client.publish("v0001", allow_breaking_schema=True).version == "v0001"
    finally:
        service.stop()


def test_a_schema_refusal_travels_in_parts_within_the_metadata_limit() -> None:
    """Its parts as JSON, read back equal; a list of changes too long for the metadata is cut and counted."""
    refusal = SchemaRefusal("customers", "v0001", "v0002", ("numeric feature(s) 'Größe' removed", "x"))
    assert SchemaRefusal.from_metadata(refusal.to_metadata()) == refusal
    many = SchemaRefusal("customers", "v0001", "v0002", tuple(f"feature {i:03d} " + "y" * 90 for i in range(100)))
    sent = many.to_metadata(limit=2000)
    assert len(sent) <= 2000
    back = SchemaRefusal.from_metadata(sent)
    assert back is not None and back.changes[0] == many.changes[0]
    assert back.changes[-1] == f"and {100 - (len(back.changes) - 1)} more change(s)"
    assert SchemaRefusal.from_metadata(b"not json") is None and SchemaRefusal.from_metadata(None) is None


@pytest.mark.parametrize("fields, code, words", [
    ({"numeric_columns": ["Incomez"]}, grpc.StatusCode.INVALID_ARGUMENT, "Incomez"),
    ({"preset": "nope"}, grpc.StatusCode.INVALID_ARGUMENT, "nope"),
    ({"k": "one"}, grpc.StatusCode.INVALID_ARGUMENT, "k:"),
    ({"k": "500"}, grpc.StatusCode.INVALID_ARGUMENT, f"k: 500 segments is more than the {MAX_K} a model can have"),
    ({"k": str(MAX_K + 1)}, grpc.StatusCode.INVALID_ARGUMENT, f"k: {MAX_K + 1} segments is more than the {MAX_K}"),
    ({"k": "auto", "k_max": MAX_K + 1}, grpc.StatusCode.INVALID_ARGUMENT,
     f"k_max: {MAX_K + 1} segments is more than the {MAX_K}"),
    ({"k_min": 200}, grpc.StatusCode.INVALID_ARGUMENT, f"k_min: 200 segments is more than the {MAX_K}"),
    ({"config_toml": f'[data]\nnumeric = ["Age"]\n[model]\nk_max = {MAX_K + 5}\n'}, grpc.StatusCode.INVALID_ARGUMENT,
     f"config_toml: model.k_max: {MAX_K + 5} segments is more than the {MAX_K}"),
    ({"algorithm": "dbscan"}, grpc.StatusCode.INVALID_ARGUMENT, "dbscan"),
    ({"model": "../x"}, grpc.StatusCode.INVALID_ARGUMENT, "model"),
    ({"dataset_id": "ds-0000000000000000"}, grpc.StatusCode.NOT_FOUND, "ds-0000000000000000"),
], ids=["unknown-column", "unknown-preset", "bad-k", "k-far-above-max", "k-above-max", "k-search-above-max",
        "k-min-above-max", "config-k-max-above-max", "unknown-algorithm", "bad-model-name", "unknown-dataset"])
def test_bad_requests_are_refused_naming_the_field(trainer: Trainer, mall, fields: dict, code, words: str) -> None:
    with pytest.raises(TrainingError) as err:
        trainer.client.submit(**{"dataset_id": mall.dataset_id, **fields})
    assert err.value.code == code and words in err.value.message


def _mall_head(datasets_dir: Path, folder: Path, rows: int) -> Path:
    """The header and first ``rows`` customers of Mall_Customers.csv, as a file of its own."""
    lines = (datasets_dir / "Mall_Customers.csv").read_text().splitlines()
    path = folder / f"mall_{rows}.csv"
    path.write_text("\n".join(lines[:rows + 1]) + "\n")
    return path


def test_k_above_the_rows_of_a_small_table_is_refused_at_submit(trainer: Trainer, datasets_dir: Path,
                                                                 tmp_path: Path) -> None:
    small = trainer.client.upload(_mall_head(datasets_dir, tmp_path, 12))
    with pytest.raises(TrainingError) as err:
        trainer.client.submit(small.dataset_id, preset="mall", k=15)
    assert err.value.code == grpc.StatusCode.INVALID_ARGUMENT
    assert err.value.message == "k: 15 segments need more than 15 customers; the table has 12 rows"


def test_a_fixed_k_with_few_customers_per_segment_says_so_in_the_log_and_the_report(
        trainer: Trainer, datasets_dir: Path, tmp_path: Path) -> None:
    small = trainer.client.upload(_mall_head(datasets_dir, tmp_path, 100))
    job = trainer.client.wait(trainer.client.submit(small.dataset_id, preset="mall", k=12, model="few").job_id, 300)
    assert job.state == "SUCCEEDED", job.error
    log = "\n".join(job.log)
    assert "k=12 fixed by the user, not chosen" in log and "chosen k=" not in log
    warning = ("12 segments of 100 customers leave 8.3 customers per segment on average (fewer than 10): such "
               "small segments describe a handful of customers each, not groups to market to; consider a smaller k")
    assert f"WARNING {warning}" in log
    version = ModelStore(trainer.store).version_dir("few", job.result.version)
    manifest = json.loads((version / "manifest.json").read_text())
    not_calibrated = ("Confidence not calibrated (50 rows per half, fewer than 30 per segment): the model's raw "
                      "posterior, often near 100%; read it as a ranking, not a probability.")
    assert manifest["warnings"] == [warning, not_calibrated] and f"WARNING {not_calibrated}" in log
    assert manifest["k_search"]["rule"] == "fixed by the user"
    assert manifest["k_search"]["explanation"].startswith("k = 12 was fixed by the user (the k of the command line")
    report = (version / "report.html").read_text()
    assert (f'<div class="warnings" id="warnings"><b>Warnings</b><ul><li>{warning}</li>'
            f"<li>{html.escape(not_calibrated)}</li></ul></div>") in report
    assert "<b>fixed k = 12</b>" in report


def test_k_larger_than_the_customers_fails_the_job_and_publishes_nothing(trainer: Trainer, tmp_path: Path) -> None:
    # 40 lines of 5 customers: fewer rows than k is refused at submit (above); fewer *customers* than k
    # is known only once the log is aggregated, and fails the job.
    lines = ["InvoiceNo,StockCode,Description,Quantity,InvoiceDate,UnitPrice,CustomerID,Country"]
    lines += [f"{540000 + i},22086,CHAIN KIT,{1 + i % 3},2011-0{1 + i % 9}-1{i % 10} 10:00:00,2.5,{12000 + i % 5},UK"
              for i in range(40)]
    (tmp_path / "log.csv").write_text("\n".join(lines) + "\n")
    dataset = trainer.client.upload(tmp_path / "log.csv")
    before = visible_state(trainer.store)
    job = trainer.client.wait(trainer.client.submit(dataset.dataset_id, preset="transactions", k=6,
                                                    publish=True).job_id)
    assert job.state == "FAILED" and "k 6" in job.error and "has 5 after cleaning" in job.error
    assert visible_state(trainer.store) == before


def test_bad_uploads_are_refused_naming_the_file(trainer: Trainer, datasets_dir: Path) -> None:
    with pytest.raises(TrainingError) as err:
        trainer.client.upload_chunks([b"\x00\x01\x02binary" * 100], "garbage.csv")
    assert err.value.code == grpc.StatusCode.INVALID_ARGUMENT and "garbage.csv" in err.value.message
    with pytest.raises(TrainingError) as err:
        trainer.client.upload(datasets_dir / "online_retail.csv.gz")  # 7.5 MB > this service's 1 MB
    assert err.value.code == grpc.StatusCode.RESOURCE_EXHAUSTED and "online_retail.csv.gz" in err.value.message
    with pytest.raises(TrainingError) as err:
        trainer.client.upload_chunks([], "empty.csv")
    assert "empty.csv" in err.value.message
    assert not list((trainer.data_dir / "uploads").iterdir())
    assert trainer.client.healthy()


def test_two_jobs_submitted_at_once_run_one_after_the_other(trainer: Trainer, mall) -> None:
    client = trainer.client
    a = client.submit(mall.dataset_id, preset="mall", k=3)
    b = client.submit(mall.dataset_id, preset="mall", k=4)
    a, b = client.wait(a.job_id), client.wait(b.job_id)
    assert (a.state, b.state) == ("SUCCEEDED", "SUCCEEDED")
    assert (a.result.k, b.result.k) == (3, 4)
    assert b.started_at >= a.finished_at


@pytest.mark.slow
def test_a_cancelled_job_publishes_nothing(trainer: Trainer, datasets_dir: Path, tmp_path: Path) -> None:
    client = trainer.client
    data = client.upload(datasets_dir / "marketing_campaign.csv")
    before = visible_state(trainer.store)
    job = client.submit(data.dataset_id, k="auto", publish=True)
    for state in client.watch(job.job_id, timeout=300):
        if state.stage == "k-search":
            break
    client.cancel(job.job_id)
    final = client.wait(job.job_id)
    assert final.state == "CANCELLED" and "nothing was published" in final.error
    assert visible_state(trainer.store) == before
    with pytest.raises(TrainingError) as err:
        client.cancel(job.job_id)
    assert err.value.code == grpc.StatusCode.FAILED_PRECONDITION


@pytest.mark.slow
def test_a_killed_trainer_leaves_the_store_unchanged_and_the_job_failed(tmp_path: Path, datasets_dir: Path) -> None:
    store, data_dir = tmp_path / "store", tmp_path / "data"
    first = Trainer(store, data_dir)
    data = first.client.upload(datasets_dir / "marketing_campaign.csv")
    running = first.client.submit(data.dataset_id, k="auto", publish=True)
    queued = first.client.submit(data.dataset_id, k=3, publish=True)
    for state in first.client.watch(running.job_id, timeout=300):
        if state.stage == "k-search":
            break
    before = visible_state(store)
    children = subprocess.run(["pgrep", "-P", str(first.process.pid)], capture_output=True, text=True).stdout.split()
    assert children, "the job runs in a child process"
    first.stop(signal.SIGKILL)
    # The job process dies with the service (PR_SET_PDEATHSIG): it cannot publish behind its back.
    wait_for(lambda: not any(Path(f"/proc/{pid}").exists() and "zombie" not in _status(pid) for pid in children),
             timeout=15)
    assert visible_state(store) == before
    second = Trainer(store, data_dir)
    try:
        failed = second.client.job(running.job_id)
        assert failed.state == "FAILED" and "restarted" in failed.error
        rerun = second.client.wait(queued.job_id, timeout=300)
        assert rerun.state == "SUCCEEDED" and rerun.result.k == 3
    finally:
        second.stop()


def _status(pid: str) -> str:
    try:
        return Path(f"/proc/{pid}/status").read_text().lower()
    except OSError:
        return "zombie"


def test_a_token_is_required_when_set_and_health_checks_are_exempt(tmp_path: Path, mall_csv: Path) -> None:
    service = Trainer(tmp_path / "store", tmp_path / "data", env={"TRAINING_TOKEN": "s3cret"}, token="s3cret")
    try:
        assert service.client.upload(mall_csv).rows == 200
        with TrainingClient(service.target, timeout=30) as anonymous:
            assert anonymous.healthy()
            with pytest.raises(TrainingError) as err:
                anonymous.jobs()
            assert err.value.code == grpc.StatusCode.UNAUTHENTICATED
        with TrainingClient(service.target, timeout=30, token="wrong") as wrong:
            with pytest.raises(TrainingError) as err:
                wrong.upload(mall_csv)
            assert err.value.code == grpc.StatusCode.UNAUTHENTICATED
    finally:
        service.stop()


@pytest.fixture()
def mall_csv(datasets_dir: Path) -> Path:
    return datasets_dir / "Mall_Customers.csv"


def test_get_report_sends_a_versions_verified_training_report(trainer: Trainer, mall) -> None:
    client = trainer.client
    with pytest.raises(TrainingError) as err:
        client.report(model="reported")  # nothing published yet: no CURRENT to send
    assert err.value.code == grpc.StatusCode.NOT_FOUND and "has no CURRENT version" in err.value.message
    job = client.wait(client.submit(mall.dataset_id, preset="mall", k=5, model="reported", publish=True).job_id, 300)
    assert job.state == "SUCCEEDED", job.error
    version = job.result.version
    folder = ModelStore(trainer.store).version_dir("reported", version)
    on_disk = (folder / "report.html").read_bytes()
    assert len(on_disk) > 3 * REPORT_CHUNK_BYTES  # several chunks: the client puts them together
    report = client.report(version, model="reported")
    assert (report.model, report.version, report.html) == ("reported", version, on_disk)
    assert b"<title>Training report: reported " + version.encode() + b"</title>" in report.html
    assert client.report(model="reported").version == version  # no version named: the CURRENT one
    with pytest.raises(TrainingError) as err:
        client.report("v0999", model="reported")
    assert err.value.code == grpc.StatusCode.NOT_FOUND and "has no version 'v0999'" in err.value.message
    (folder / "report.html").write_bytes(on_disk.replace(b"Training report", b"Tampered report", 1))
    with pytest.raises(TrainingError) as err:
        client.report(version, model="reported")
    assert err.value.code == grpc.StatusCode.FAILED_PRECONDITION
    assert "checksum mismatch for report.html" in err.value.message

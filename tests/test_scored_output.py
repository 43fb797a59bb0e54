"""One layout for a scored file (segmentation_core/scored.py), whatever path wrote it: ``python -m training_job score``,
``python -m scoring_service.client score`` and the dashboard's Batch download, against one model trained by the real
training job and served by a real scoring server on loopback."""
from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from dash_ui.batch import download_csv, score_table
from scoring_service.client.cli import main as client_main
from segmentation_core.artefact import read_artefact
from segmentation_core.recipe import CLV_INPUTS, Recipe, aggregate
from segmentation_core.store import ModelStore
from segmentation_core.tables import read_table
from tests.test_clv import cdnow_store  # noqa: F401  (the shared CDNOW sample model, a transaction-log model with CLV)
from tests.test_dash_service import Dashboards
from training_job.cli import main as training_main

MALL_RESULTS = ["segment_id", "segment_name", "distance", "confidence", "outlier", "error"]


@pytest.fixture(scope="module")
def mall(tmp_path_factory, datasets_dir: Path) -> Path:
    """A folder whose store/ holds the Mall preset's model ('customers') and mall.csv: Mall_Customers.csv with a
    word for an income (row 3), a formula for an id (row 6) and a blank spending score (row 9)."""
    folder = tmp_path_factory.mktemp("scored")
    assert training_main(["train", "--store", str(folder / "store"), "--data", str(datasets_dir / "Mall_Customers.csv"),
                          "--preset", "mall"]) == 0
    lines = (datasets_dir / "Mall_Customers.csv").read_text().splitlines()
    rows = [line.split(",") for line in lines[1:]]
    rows[2][3] = "high"
    rows[5][0] = "=1+2"
    rows[8][4] = ""
    (folder / "mall.csv").write_text("\n".join([lines[0], *(",".join(row) for row in rows)]) + "\n")
    return folder


def _target(server) -> str:
    return f"127.0.0.1:{server.port}"


def _three_paths(folder: Path, data: Path, server, tmp_path: Path, model: str = "customers",
                 *options: str) -> dict[str, bytes]:
    """The scored file of ``data`` from each path: training_job score, the client CLI, the Batch page's download."""
    offline, client = tmp_path / "training_job.csv", tmp_path / "client.csv"
    assert training_main(["score", "--store", str(folder / "store"), "--model", model, "--data", str(data),
                          "--output", str(offline), *options]) == 0
    assert client_main(["score", str(data), "-o", str(client), "--target", _target(server), "--model", model, "-q",
                        *options]) == 0
    dashboards = Dashboards()
    try:
        service = dashboards.service(_target(server))
        frame = read_table(data)
        dashboard = download_csv(score_table(service.predict_frame, frame, service.model_view())).encode()
    finally:
        dashboards.close()
    return {"training_job": offline.read_bytes(), "client": client.read_bytes(), "dashboard": dashboard}


def _read(content: bytes) -> pd.DataFrame:
    return pd.read_csv(io.BytesIO(content), dtype={"CustomerID": str, "customer_id": str}, keep_default_na=False,
                       na_values=[""])


def test_the_three_paths_write_the_same_file(mall: Path, scoring_server_factory, tmp_path: Path) -> None:
    """Mall_Customers.csv with a bad row, a formula id and a blank cell, scored by all three paths: the same header
    (the input's id column under its own name, its features, the results), the same values, the same bytes."""
    server = scoring_server_factory(mall / "store")
    files = _three_paths(mall, mall / "mall.csv", server, tmp_path)
    tables = {path: _read(content) for path, content in files.items()}
    header = ["CustomerID", "Annual Income (k$)", "Spending Score (1-100)", *MALL_RESULTS]
    for path, table in tables.items():
        assert list(table.columns) == header, path
        pd.testing.assert_frame_equal(table, tables["training_job"], obj=path)
    assert files["client"] == files["training_job"] == files["dashboard"]
    table = tables["training_job"]
    assert len(table) == 200 and table["CustomerID"].iloc[[0, 5]].tolist() == ["0001", "'=1+2"]
    assert table.loc[2, "segment_id"] == -1 and pd.isna(table.loc[2, "segment_name"])
    assert table.loc[2, "error"] == "line 4: Annual Income (k$): 'high' is not a number"
    assert table["outlier"].dtype == bool and (table.drop(index=2)["segment_id"] >= 0).all()
    first = files["client"].decode().splitlines()[1]
    assert first.startswith('"0001",15,39,') and (first.endswith(",true,\"\"") or first.endswith(",false,\"\""))
    # the labels are the training labels (the model's own sample)
    store = ModelStore(mall / "store")
    sample = read_artefact(store.version_dir("customers", store.current("customers"))).load_sample()
    labels = pd.Series(sample["segment_id"], index=sample["id"].astype(str))
    scored = table.drop(index=[2, 5, 8]).set_index("CustomerID")["segment_id"]
    assert (scored == labels.loc[scored.index]).all()


@pytest.mark.parametrize("inputs, columns", [
    ("none", ["CustomerID"]),
    ("all", ["CustomerID", "Genre", "Age", "Annual Income (k$)", "Spending Score (1-100)"]),
])
def test_both_command_lines_keep_the_same_inputs(inputs: str, columns: list[str], mall: Path, scoring_server_factory,
                                                tmp_path: Path) -> None:
    server = scoring_server_factory(mall / "store")
    offline, client = tmp_path / "offline.csv", tmp_path / "client.csv"
    assert training_main(["score", "--store", str(mall / "store"), "--data", str(mall / "mall.csv"), "--output",
                          str(offline), "--inputs", inputs]) == 0
    assert client_main(["score", str(mall / "mall.csv"), "-o", str(client), "--target", _target(server), "-q",
                        "--inputs", inputs]) == 0
    assert offline.read_bytes() == client.read_bytes()
    assert list(_read(offline.read_bytes()).columns) == [*columns, *MALL_RESULTS]


def test_one_bad_row_leaves_the_numbers_numbers(mall: Path, datasets_dir: Path, tmp_path: Path) -> None:
    """A word and a number too large for a double in the income column: those cells are blank (their rows' errors
    say what they were), every other cell is written as the input wrote it (15, not 15.0), and the column reads
    back as numbers."""
    lines = (datasets_dir / "Mall_Customers.csv").read_text().splitlines()
    rows = [line.split(",") for line in lines[1:]]
    rows[2][3], rows[10][3] = "high", "1e400"
    data = tmp_path / "bad.csv"
    data.write_text("\n".join([lines[0], *(",".join(row) for row in rows)]) + "\n")
    out = tmp_path / "scored.csv"
    assert training_main(["score", "--store", str(mall / "store"), "--data", str(data), "--output", str(out)]) == 0
    written = [line.split(",") for line in out.read_text().splitlines()[1:]]
    incomes = [row[1] for row in written]
    assert incomes[2] == incomes[10] == ""
    assert [cell for i, cell in enumerate(incomes) if i not in (2, 10)] == \
        [row[3] for i, row in enumerate(rows) if i not in (2, 10)]
    table = _read(out.read_bytes())
    assert pd.api.types.is_numeric_dtype(table["Annual Income (k$)"])
    assert pd.api.types.is_integer_dtype(table["Spending Score (1-100)"])
    assert table.loc[10, "error"] == "line 12: Annual Income (k$): '1e400' is out of range (a number is at most ±1.8e308)"


def test_a_negative_number_in_a_column_with_text_stays_a_number(mall: Path, datasets_dir: Path,
                                                                tmp_path: Path) -> None:
    """-500 in a column that also holds text (so it is read as text) is written as -500, not '-500; a formula
    beside it is still quoted (segmentation_core/csv_safety.py)."""
    frame = pd.read_csv(datasets_dir / "Mall_Customers.csv", dtype=str)
    frame["Balance"] = "unknown"
    frame.loc[0, "Balance"], frame.loc[1, "Balance"], frame.loc[2, "Balance"] = "-500", "-2+3", "-12.5"
    data = tmp_path / "balance.csv"
    frame.to_csv(data, index=False)
    out = tmp_path / "scored.csv"
    assert training_main(["score", "--store", str(mall / "store"), "--data", str(data), "--output", str(out),
                          "--inputs", "all"]) == 0
    balance = pd.read_csv(out, dtype=str, keep_default_na=False)["Balance"]
    assert balance.iloc[:4].tolist() == ["-500", "'-2+3", "-12.5", "unknown"]


def test_an_aggregated_rfm_table_scores_as_a_customer_table_on_every_path(cdnow_store: Path,  # noqa: F811
                                                                         scoring_server_factory,
                                                                         tmp_path: Path) -> None:
    """A transaction-log model given the log already aggregated (one row per customer: its id and the model's
    features) scores it as a customer table on all three paths (it was refused by training_job score, which
    looked for the log's date column), with the training labels; with the CLV inputs too it gets the CLV figures,
    the same on every path."""
    store = ModelStore(cdnow_store / "store")
    artefact = read_artefact(store.version_dir("cdnow", store.current("cdnow")))
    recipe = Recipe.from_dict(artefact.recipe)
    customers, _ = aggregate(read_table(cdnow_store / "cdnow_sample.txt"), recipe)
    table = customers.reset_index().rename(columns={"customer": "customer_id"})
    features = artefact.schema.feature_names
    rfm = tmp_path / "rfm.csv"
    table[["customer_id", *features]].to_csv(rfm, index=False)
    server = scoring_server_factory(cdnow_store / "store", model="cdnow")
    files = _three_paths(cdnow_store, rfm, server, tmp_path, "cdnow")
    assert files["client"] == files["training_job"] == files["dashboard"]
    scored = _read(files["training_job"])
    assert list(scored.columns) == ["customer_id", *features, *MALL_RESULTS]
    labels = pd.Series(artefact.load_sample()["segment_id"], index=artefact.load_sample()["id"].astype(str))
    assert np.array_equal(scored.set_index("customer_id")["segment_id"].loc[labels.index].to_numpy(), labels.to_numpy())
    # with the CLV inputs, the CLV figures: the same on every path
    with_clv = tmp_path / "rfm_clv.csv"
    table[["customer_id", *features, *(c for c in CLV_INPUTS if c not in features)]].to_csv(with_clv, index=False)
    files = _three_paths(cdnow_store, with_clv, server, tmp_path, "cdnow")
    assert files["client"] == files["training_job"] == files["dashboard"]
    scored = _read(files["training_job"])
    assert scored.columns[-4:].tolist() == ["expected_purchases", "p_alive", "expected_order_value", "clv"]
    assert scored["clv"].notna().all() and (scored["segment_id"] >= 0).all()


def _mall_with(datasets_dir: Path, path: Path, cells: dict[tuple[int, int], str]) -> Path:
    """Mall_Customers.csv with ``cells`` ({(data row, column): text}) changed, written to ``path``."""
    lines = (datasets_dir / "Mall_Customers.csv").read_text().splitlines()
    rows = [line.split(",") for line in lines[1:]]
    for (row, column), text in cells.items():
        rows[row][column] = text
    path.write_text("\n".join([lines[0], *(",".join(row) for row in rows)]) + "\n")
    return path


def test_an_na_income_is_missing_whatever_the_rest_of_its_column_holds(mall: Path, datasets_dir: Path,
                                                                       scoring_server_factory, tmp_path: Path) -> None:
    """Customer 0004's income is 'NA'. Alone, the column reads as numbers and 'NA' is missing (imputed); with a
    '16k' on another row the column reads as text, and 'NA' must still be missing for a feature the model treats as
    numeric: row 0004's result does not depend on other rows, on any of the three paths."""
    server = scoring_server_factory(mall / "store")
    alone = _mall_with(datasets_dir, tmp_path / "alone.csv", {(3, 3): "NA"})
    beside = _mall_with(datasets_dir, tmp_path / "beside.csv", {(3, 3): "NA", (10, 3): "16k"})
    results = {}
    for data in (alone, beside):
        files = _three_paths(mall, data, server, tmp_path)
        assert files["client"] == files["training_job"] == files["dashboard"], data.name
        results[data.name] = _read(files["training_job"])
    for name, table in results.items():
        assert pd.isna(table.loc[3, "error"]) and table.loc[3, "segment_id"] >= 0, name
    assert results["beside.csv"].loc[10, "error"] == "line 12: Annual Income (k$): '16k' is not a number"
    pd.testing.assert_series_equal(results["alone.csv"].loc[3], results["beside.csv"].loc[3])


def test_training_reads_na_as_missing_in_a_numeric_feature_read_as_text(datasets_dir: Path, tmp_path: Path,
                                                                         capsys) -> None:
    """Training's rule is scoring's: beside a word, 'NA' in a numeric feature is missing, so the error names the word
    (row 11), not the 'NA' above it."""
    data = _mall_with(datasets_dir, tmp_path / "train.csv", {(3, 3): "NA", (10, 3): "16k"})
    assert training_main(["train", "--store", str(tmp_path / "store"), "--data", str(data), "--preset", "mall"]) != 0
    errors = [line for line in capsys.readouterr().err.splitlines() if " ERROR " in line]
    assert len(errors) == 1 and "'16k' at line 12 (1 non-numeric value(s))" in errors[0], errors


def test_a_row_whose_every_value_is_unusable_is_refused_on_every_path(mall: Path, datasets_dir: Path,
                                                                     scoring_server_factory, tmp_path: Path) -> None:
    """Values present but none usable (outside the valid ranges training's cleaning used) leave nothing to score:
    Predict answers INVALID_ARGUMENT saying why, and the three file paths (PredictStream under the client CLI and the
    Batch page) give the row the same error; a row with one usable value is still scored."""
    import grpc

    from segmentation.v1 import scoring_pb2 as pb
    from segmentation.v1 import scoring_pb2_grpc

    server = scoring_server_factory(mall / "store")
    with grpc.insecure_channel(_target(server)) as channel:
        stub = scoring_pb2_grpc.ScoringServiceStub(channel)
        with pytest.raises(grpc.RpcError) as err:
            stub.Predict(pb.PredictRequest(customer=pb.Customer(numbers={"Spending Score (1-100)": 400})))
        assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert err.value.details().endswith(
            "no usable feature values: Spending Score (1-100) 400 is outside its valid range 1-100"), err.value.details()
        assert stub.Predict(pb.PredictRequest(customer=pb.Customer(
            numbers={"Spending Score (1-100)": 400, "Annual Income (k$)": 60}))).prediction.segment_name
    data = _mall_with(datasets_dir, tmp_path / "unusable.csv", {(2, 3): "-5", (2, 4): "500", (5, 4): "400"})
    files = _three_paths(mall, data, server, tmp_path)
    assert files["client"] == files["training_job"] == files["dashboard"]
    table = _read(files["training_job"])
    assert table.loc[2, "segment_id"] == -1
    assert table.loc[2, "error"] == ("line 4: no usable feature values: Annual Income (k$) -5 is below its valid "
                                     "minimum 0; Spending Score (1-100) 500 is outside its valid range 1-100")
    assert table.loc[5, "segment_id"] >= 0 and pd.isna(table.loc[5, "error"])  # its income is usable


def test_following_the_batch_size_advice_succeeds(mall: Path, datasets_dir: Path, scoring_server_factory,
                                                  tmp_path: Path, capsys) -> None:
    """A service with --max-message-mb 1 and a two-feature model: a request row is 16 bytes, its reply's 18
    (``scoring_service.wire.batch_response_bytes_per_row``). The client CLI's advice for a 100,000-row batch sizes on
    the reply, and following it scores the file; a batch whose reply is too large is said to be the service's reply,
    not blamed on what this client sends."""
    server = scoring_server_factory(mall / "store", max_message_mb=1)
    frame = pd.read_csv(datasets_dir / "Mall_Customers.csv", dtype={"CustomerID": str})
    big = pd.concat([frame] * 600, ignore_index=True).assign(CustomerID=lambda f: [f"c{i}" for i in range(len(f))])
    data, out = tmp_path / "big.csv", tmp_path / "out.csv"
    big.to_csv(data, index=False)

    def score(rows: int) -> tuple[int, str]:
        code = client_main(["score", str(data), "-o", str(out), "--target", _target(server), "-q", "--batch-rows",
                            str(rows)])
        return code, capsys.readouterr().err

    code, err = score(100_000)
    assert code != 0 and "the scoring service accepts (1.0 MiB" in err, err
    fit = int(err.split("(about ")[1].split(" fit")[0].replace(",", ""))
    assert fit < 1048576 / 18
    code, err = score(fit)
    assert code == 0, err
    assert len(pd.read_csv(out)) == len(big)
    code, err = score(int(1048576 / 17))  # requests fit (16 B/row), replies (18 B/row) do not
    assert code != 0 and "the scoring service's reply to a batch of 61,680 rows" in err, err
    assert "than it may send (1.0 MiB: its --max-message-mb" in err and "this client" not in err, err

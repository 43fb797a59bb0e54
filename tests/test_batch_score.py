"""`python -m training_job score`: a raw log scored with the model's own recipe gives the training labels."""
from __future__ import annotations

import gzip
import os
import stat
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from segmentation_core.artefact import read_artefact
from segmentation_core.store import ModelStore
from tests.test_clv import cdnow_store  # noqa: F401  (the shared CDNOW sample model)
from training_job.batch_score import result_fields
from training_job.cli import main


def _score(folder: Path, data: Path, out: Path, *extra: str) -> int:
    return main(["score", "--store", str(folder / "store"), "--model", "cdnow", "--data", str(data),
                 "--output", str(out), *extra])


def _training_labels(folder: Path, model: str = "cdnow") -> pd.Series:
    store = ModelStore(folder / "store")
    sample = read_artefact(store.version_dir(model, store.current(model))).load_sample()
    return pd.Series(sample["segment_id"], index=sample["id"].astype(str))


def test_training_log_rescored_gives_the_training_labels(cdnow_store: Path, tmp_path: Path) -> None:  # noqa: F811
    out = tmp_path / "scores.csv"
    assert _score(cdnow_store, cdnow_store / "cdnow_sample.txt", out) == 0
    result = pd.read_csv(out, dtype={"customer_id": str})
    labels = _training_labels(cdnow_store)
    assert len(result) == 2357 == len(labels)
    assert (result.set_index("customer_id")["segment_id"].loc[labels.index].to_numpy() == labels.to_numpy()).all()
    assert set(result["as_of"]) == {"1998-07-01"}  # the training rule: the day after the last purchase
    assert (result["error"].isna()).all()
    assert ((result["p_alive"] > 0) & (result["p_alive"] <= 1)).all() and (result["clv"] >= 0).all()


def test_as_of_leaves_later_lines_out_and_says_so(cdnow_store: Path, tmp_path: Path) -> None:  # noqa: F811
    out = tmp_path / "scores.csv"
    assert _score(cdnow_store, cdnow_store / "cdnow_sample.txt", out, "--as-of", "1997-10-01") == 0
    result = pd.read_csv(out, dtype={"customer_id": str}).set_index("customer_id")
    assert set(result["as_of"]) == {"1997-10-01"}
    # Customer 00004 bought on 1997-01-01, 01-18 and 08-02 (and later): as of October, Recency is 60 days.
    assert result.loc["00004", "Recency"] == 60


@pytest.mark.parametrize("case, expected", [
    ("missing column", "missing required column(s) 'dollar_value' (transactions.amount)"),
    ("bad date", "column 'date': '1997-13-45' at line 3 is not a date"),
    ("text amount", "column 'dollar_value' should be numeric but has 'twelve' at line 2"),
    ("as-of before the data", "as-of date 1990-01-01 is not after the first transaction (1997-01-01)"),
    ("bad as-of", "--as-of: expected an ISO date"),
])
def test_bad_logs_get_one_line_errors_and_no_output(case: str, expected: str, cdnow_store: Path,  # noqa: F811
                                                    tmp_path: Path, capsys) -> None:
    rows = ["customer_id date number_of_cds dollar_value", "00001 19970101 1 11.77", "00002 19970112 1 12.00"]
    extra: list[str] = []
    if case == "missing column":
        rows = [" ".join(r.split()[:3]) for r in rows]
    elif case == "bad date":
        rows[2] = "00002 1997-13-45 1 12.00"
    elif case == "text amount":
        rows[1] = "00001 19970101 1 twelve"
    elif case == "as-of before the data":
        extra = ["--as-of", "1990-01-01"]
    else:
        extra = ["--as-of", "yesterday"]
    data = tmp_path / "log.txt"
    data.write_text("\n".join(rows) + "\n")
    out = tmp_path / "scores.csv"
    assert _score(cdnow_store, data, out, *extra) == 2
    errors = [line for line in capsys.readouterr().err.splitlines() if " ERROR " in line]
    assert len(errors) == 1 and expected in errors[0], errors
    assert not out.exists() and list(tmp_path.iterdir()) == [data]


def test_a_customer_table_model_without_a_recipe_still_scores(datasets_dir: Path, tmp_path: Path) -> None:
    store = tmp_path / "store"
    assert main(["train", "--store", str(store), "--data", str(datasets_dir / "Mall_Customers.csv"),
                 "--preset", "mall"]) == 0
    out = tmp_path / "mall.csv"
    assert main(["score", "--store", str(store), "--data", str(datasets_dir / "Mall_Customers.csv"),
                 "--output", str(out)]) == 0
    result = pd.read_csv(out, dtype={"CustomerID": str})
    labels = _training_labels(tmp_path, "customers")
    assert (result.set_index("CustomerID")["segment_id"].loc[labels.index].to_numpy()
            == labels.to_numpy()).all()
    assert "as_of" not in result.columns and "clv" not in result.columns
    assert main(["score", "--store", str(store), "--data", str(datasets_dir / "Mall_Customers.csv"),
                 "--output", str(out), "--as-of", "2020-01-01"]) == 2


@pytest.mark.slow
def test_online_retail_log_rescored_gives_the_training_labels(datasets_dir: Path, tmp_path: Path) -> None:
    log = datasets_dir / "online_retail.csv.gz"
    assert main(["train", "--store", str(tmp_path / "store"), "--model", "retail", "--data", str(log),
                 "--preset", "transactions"]) == 0
    out = tmp_path / "retail.parquet"
    assert main(["score", "--store", str(tmp_path / "store"), "--model", "retail", "--data", str(log),
                 "--output", str(out)]) == 0
    result = pd.read_parquet(out).set_index("CustomerID")
    labels = _training_labels(tmp_path, "retail")
    assert len(result) == 4338 == len(labels)
    assert np.array_equal(result["segment_id"].loc[labels.index].to_numpy(), labels.to_numpy())
    assert result["clv"].notna().all()


# ---- a customer table (the Mall preset): bad cells, clashing names, ids, spreadsheet safety, the output file ----

MALL_HEADER = "CustomerID,Genre,Age,Annual Income (k$),Spending Score (1-100)"


@pytest.fixture(scope="module")
def mall_store(tmp_path_factory, datasets_dir: Path) -> Path:
    """A folder whose store/ holds the Mall preset's model ('customers'), trained by the training job."""
    folder = tmp_path_factory.mktemp("mall")
    assert main(["train", "--store", str(folder / "store"), "--data", str(datasets_dir / "Mall_Customers.csv"),
                 "--preset", "mall"]) == 0
    return folder


def _mall_rows(datasets_dir: Path) -> list[list[str]]:
    """Mall_Customers.csv's data rows as lists of cells (no header)."""
    lines = (datasets_dir / "Mall_Customers.csv").read_text().splitlines()
    assert lines[0] == MALL_HEADER
    return [line.split(",") for line in lines[1:]]


def _write_csv(path: Path, rows: list[list[str]], header: str = MALL_HEADER) -> Path:
    path.write_text("\n".join([header, *(",".join(row) for row in rows)]) + "\n")
    return path


def _score_mall(folder: Path, data: Path, out: Path) -> int:
    return main(["score", "--store", str(folder / "store"), "--data", str(data), "--output", str(out)])


def _log_lines(capsys, level: str) -> list[str]:
    return [line for line in capsys.readouterr().err.splitlines() if f" {level} " in line]


# ("$16,000" in a column of numbers is a number: the reader takes a column of spreadsheet-formatted numbers,
# tests/test_tables.py.)
@pytest.mark.parametrize(("value", "said"), [("young", "is not a number"), ('"19,5"', "is not a number"),
                                             ("16k", "is not a number"),
                                             ("1e400", "is out of range (a number is at most ±1.8e308)")],
                         ids=["word", "comma", "unit", "beyond-a-float"])
def test_a_number_that_does_not_parse_is_an_error_on_its_row(value: str, said: str, mall_store: Path,
                                                            datasets_dir: Path, tmp_path: Path, capsys) -> None:
    """Row 3 has text in a numeric feature: segment_id -1 and an error naming the column and the value, as the
    client CLI gives it; row 5's blank income is imputed (as documented), and every other row keeps its label."""
    rows = _mall_rows(datasets_dir)
    rows[2][3] = value
    rows[4][3] = ""
    rows[6][3] = f" {rows[6][3]}.0 "  # a number written otherwise, in a column of text (it has a word): parsed
    data = _write_csv(tmp_path / "mall.csv", rows)
    out = tmp_path / "scores.csv"
    assert _score_mall(mall_store, data, out) == 0
    result = pd.read_csv(out, dtype={"CustomerID": str}, keep_default_na=False)
    shown = value.strip('"')
    assert result.loc[2, "segment_id"] == -1
    assert result.loc[2, "error"] == f"line 4: Annual Income (k$): {shown!r} {said}"
    assert result.loc[2, "segment_name"] == "" and result.loc[2, "distance"] == ""
    others = result.drop(index=[2, 4])
    labels = _training_labels(mall_store, "customers")
    assert (others["error"] == "").all()
    assert (others.set_index("CustomerID")["segment_id"] == labels.loc[others["CustomerID"]].to_numpy()).all()
    assert result.loc[4, "segment_id"] >= 0 and result.loc[4, "error"] == ""  # blank: imputed
    summary = [line for line in capsys.readouterr().err.splitlines() if "scored 200 customers" in line]
    assert len(summary) == 1 and "(1 rows with an error)" in summary[0], summary


@pytest.mark.parametrize(("suffix", "where"), [(".csv", "line 152"), (".csv.gz", "line 152"), (".parquet", "line 151"),
                                           (".xlsx", "line 152")], ids=["csv", "csv-gz", "parquet", "xlsx"])
def test_a_row_error_names_the_rows_line_in_the_input(suffix: str, where: str, mall_store: Path,
                                                      datasets_dir: Path, tmp_path: Path, capsys) -> None:
    """Customer 0151 (data row 151: line 152 of the CSV, its header line 1; row 151 of the Parquet file; sheet row
    152 of the workbook, its header row 1) has a word for a number: the error and the log's summary say where."""
    rows = _mall_rows(datasets_dir)
    rows[150][4] = "high"
    rows[180][3] = "twelve"
    frame = pd.read_csv(_write_csv(tmp_path / "mall.csv", rows), dtype=str)
    data = tmp_path / f"input{suffix}"
    if suffix == ".parquet":
        frame.to_parquet(data)
    elif suffix == ".xlsx":
        frame.to_excel(data, index=False)
    else:
        frame.to_csv(data, index=False, compression="gzip" if suffix == ".csv.gz" else None)
    out = tmp_path / "scores.csv"
    assert _score_mall(mall_store, data, out) == 0
    result = pd.read_csv(out, dtype={"CustomerID": str}, keep_default_na=False).set_index("CustomerID")
    assert result.loc["0151", "error"] == f"{where}: Spending Score (1-100): 'high' is not a number"
    later = int(where.split()[1]) + 30
    assert result.loc["0181", "error"] == f"line {later}: Annual Income (k$): 'twelve' is not a number"
    warnings = _log_lines(capsys, "WARNING")
    first = f"the first (CustomerID 0151): {where}: Spending Score (1-100): 'high' is not a number"
    assert any("2 row(s) could not be scored" in line and first in line for line in warnings), warnings


def test_a_row_error_after_blank_lines_names_the_line_an_editor_shows(mall_store: Path, datasets_dir: Path,
                                                                     tmp_path: Path, capsys) -> None:
    """Blank lines hold no row (the reader skips them) but count as lines: customer 0151 below three blank lines is
    on line 155, not 152 (the error and the warning's quote); its row in the output is still row 151."""
    rows = _mall_rows(datasets_dir)
    rows[150][4] = "high"
    lines = [MALL_HEADER, *(",".join(row) for row in rows)]
    lines[10:10] = [""]  # a blank line above customer 0010
    lines[101:101] = ["", "  "]  # and two above customer 0100
    data = tmp_path / "mall.csv"
    data.write_text("\n".join(lines) + "\n")
    assert lines[154].startswith("0151,")  # line 155 as an editor numbers them
    out = tmp_path / "scores.csv"
    assert _score_mall(mall_store, data, out) == 0
    result = pd.read_csv(out, dtype={"CustomerID": str}, keep_default_na=False)
    assert len(result) == 200 and result.loc[150, "CustomerID"] == "0151"
    assert result.loc[150, "error"] == "line 155: Spending Score (1-100): 'high' is not a number"
    assert any("the first (CustomerID 0151): line 155:" in line for line in _log_lines(capsys, "WARNING"))


def test_a_row_with_every_feature_cell_blank_is_an_error_not_a_segment(mall_store: Path, datasets_dir: Path,
                                                                      tmp_path: Path) -> None:
    """Row 5 has no feature value at all (nothing to score: imputing them all would give the typical customer a
    segment); row 6, its spending score blank, is still imputed. (The preset's features: income and spending.)"""
    rows = _mall_rows(datasets_dir)
    rows[4][1:] = ["", "", "", ""]
    rows[5][4] = ""
    out = tmp_path / "scores.csv"
    assert _score_mall(mall_store, _write_csv(tmp_path / "mall.csv", rows), out) == 0
    result = pd.read_csv(out, dtype={"CustomerID": str}, keep_default_na=False)
    assert result.loc[4, "segment_id"] == -1 and result.loc[4, "confidence"] == ""
    assert result.loc[4, "error"] == "line 6: no feature values: nothing to score"
    assert result.loc[5, "segment_id"] >= 0 and result.loc[5, "error"] == ""
    assert (result.drop(index=[4])["error"] == "").all()


def test_a_blank_feature_column_is_imputed_with_a_warning_naming_it(mall_store: Path, datasets_dir: Path,
                                                                   tmp_path: Path, capsys) -> None:
    rows = _mall_rows(datasets_dir)
    for row in rows:
        row[4] = ""
    out = tmp_path / "scores.csv"
    assert _score_mall(mall_store, _write_csv(tmp_path / "mall.csv", rows), out) == 0
    result = pd.read_csv(out)
    assert (result["segment_id"] >= 0).all() and result["error"].isna().all()
    warnings = _log_lines(capsys, "WARNING")
    assert any("'Spending Score (1-100)'" in line and "blank on every row" in line for line in warnings), warnings


def test_a_feature_named_like_a_result_column_is_kept_as_input_column(datasets_dir: Path, tmp_path: Path,
                                                                     capsys) -> None:
    """A feature literally named 'distance' is written as 'input_distance', beside the model's distance."""
    rows = _mall_rows(datasets_dir)
    data = _write_csv(tmp_path / "mall.csv", rows, MALL_HEADER.replace("Annual Income (k$)", "distance"))
    preset = (Path(__file__).resolve().parents[1] / "training_job" / "presets" / "mall.toml").read_text()
    config = tmp_path / "distance.toml"
    config.write_text(preset.replace('"Annual Income (k$)"', '"distance"').replace('style = "mall"', 'style = "profile"'))
    store = tmp_path / "store"
    assert main(["train", "--store", str(store), "--data", str(data), "--config", str(config)]) == 0
    capsys.readouterr()
    out = tmp_path / "scores.csv"
    assert main(["score", "--store", str(store), "--data", str(data), "--output", str(out)]) == 0
    result = pd.read_csv(out)
    assert result["input_distance"].tolist() == [int(row[3]) for row in rows]
    assert (result["distance"] >= 0).all() and not np.allclose(result["distance"], result["input_distance"])
    assert list(result.columns) == ["CustomerID", "input_distance", "Spending Score (1-100)", "segment_id",
                                    "segment_name", "distance", "confidence", "outlier", "error"]
    warnings = _log_lines(capsys, "WARNING")
    assert any("'distance'" in line and "'input_distance'" in line for line in warnings), warnings
    # The Spark engine's schema lists the same columns after its id, in the same order.
    artefact = read_artefact(ModelStore(store).version_dir("customers", ModelStore(store).current("customers")))
    assert [name for name, _ in result_fields(artefact, with_as_of=False)][1:] == list(result.columns)[1:]


def test_ids_beside_a_blank_one_keep_their_form(mall_store: Path, datasets_dir: Path, tmp_path: Path) -> None:
    """Ids 1..200 with one blank: read as floats, written as the client CLI writes them (1, not 1.0)."""
    rows = _mall_rows(datasets_dir)
    for number, row in enumerate(rows, start=1):
        row[0] = str(number)
    rows[9][0] = ""
    out = tmp_path / "scores.csv"
    assert _score_mall(mall_store, _write_csv(tmp_path / "mall.csv", rows), out) == 0
    ids = pd.read_csv(out, dtype=str, keep_default_na=False)["CustomerID"].tolist()
    assert ids[:3] == ["1", "2", "3"] and ids[9] == "" and ids[-1] == "200"
    assert out.read_text().splitlines()[1].startswith('"1",')  # an id is text, whatever its digits


FORMULAS = ['"=HYPERLINK(""http://evil.example"",""click"")"', "@SUM(1+1)", "+cmd|' /C calc'!A0", "-2+3"]


def test_csv_output_neutralises_spreadsheet_formulas(mall_store: Path, datasets_dir: Path, tmp_path: Path) -> None:
    """Text that a spreadsheet would run gets a leading quote in CSV (as the client CLI and the dashboard write
    it); Parquet keeps the values as they are."""
    rows = _mall_rows(datasets_dir)
    for row, formula in zip(rows, FORMULAS):
        row[0] = formula
    data = _write_csv(tmp_path / "mall.csv", rows)
    out = tmp_path / "scores.csv"
    assert _score_mall(mall_store, data, out) == 0
    ids = pd.read_csv(out, dtype={"CustomerID": str})["CustomerID"]
    assert ids.tolist()[:4] == ["'=HYPERLINK(\"http://evil.example\",\"click\")", "'@SUM(1+1)",
                                "'+cmd|' /C calc'!A0", "'-2+3"]
    assert ids[4] == "0005"
    parquet = tmp_path / "scores.parquet"
    assert _score_mall(mall_store, data, parquet) == 0
    assert pd.read_parquet(parquet)["CustomerID"].tolist()[:2] == ['=HYPERLINK("http://evil.example","click")', "@SUM(1+1)"]


@pytest.mark.parametrize("name, expected", [
    ("folder", "is a directory"),
    ("scores.xlsx", "'.xlsx' is not a format this command writes; use .csv, .csv.gz or .parquet"),
    ("scores", "no extension; use .csv, .csv.gz or .parquet"),
    ("a-file/scores.csv", "a-file is a file, not a folder"),
], ids=["directory", "xlsx", "no extension", "inside a file"])
def test_an_output_it_cannot_write_is_refused_up_front(name: str, expected: str, mall_store: Path,
                                                       tmp_path: Path, capsys) -> None:
    out = tmp_path / name
    if name == "folder":
        out.mkdir()
    elif name.startswith("a-file/"):
        out.parent.write_text("not a folder\n")
    before = sorted(tmp_path.rglob("*"))
    missing = tmp_path / "no-such-input.csv"  # refused before the input is even looked at
    assert _score_mall(mall_store, missing, out) == 2
    errors = _log_lines(capsys, "ERROR")
    assert len(errors) == 1 and expected in errors[0] and str(out) in errors[0], errors
    assert sorted(tmp_path.rglob("*")) == before


def test_csv_gz_output_is_gzipped_csv(mall_store: Path, datasets_dir: Path, tmp_path: Path) -> None:
    plain, packed = tmp_path / "scores.csv", tmp_path / "scores.csv.gz"
    assert _score_mall(mall_store, datasets_dir / "Mall_Customers.csv", plain) == 0
    assert _score_mall(mall_store, datasets_dir / "Mall_Customers.csv", packed) == 0
    assert packed.read_bytes()[:2] == b"\x1f\x8b"
    assert gzip.decompress(packed.read_bytes()) == plain.read_bytes()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["scores.csv", "scores.csv.gz"]


@pytest.mark.parametrize("umask, mode", [(0o022, 0o644), (0o002, 0o664), (0o077, 0o600)])
def test_the_output_file_gets_the_mode_open_would_give_it(umask: int, mode: int, mall_store: Path,
                                                          datasets_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "scores.csv"
    previous = os.umask(umask)
    try:
        assert _score_mall(mall_store, datasets_dir / "Mall_Customers.csv", out) == 0
    finally:
        os.umask(previous)
    assert stat.S_IMODE(out.stat().st_mode) == mode


def test_rewriting_an_output_keeps_its_mode(mall_store: Path, datasets_dir: Path, tmp_path: Path) -> None:
    """As open(path, 'w') would: a file the user restricted stays restricted when scored into again."""
    out = tmp_path / "scores.csv"
    out.write_text("old\n")
    out.chmod(0o640)
    assert _score_mall(mall_store, datasets_dir / "Mall_Customers.csv", out) == 0
    assert stat.S_IMODE(out.stat().st_mode) == 0o640 and out.read_text() != "old\n"


def test_categories_in_another_case_score_alike_and_mostly_unseen_ones_are_warned_about(datasets_dir: Path,
                                                                                         tmp_path: Path,
                                                                                         capsys) -> None:
    source = datasets_dir / "ecommerce_customer_behavior.csv"
    assert main(["train", "--store", str(tmp_path / "store"), "--data", str(source), "--preset", "ecommerce"]) == 0
    table = pd.read_csv(source)
    runs = {}
    for name, membership in (("as-trained", table["Membership Type"]),
                             ("lower-case", table["Membership Type"].str.lower()),
                             ("translated", table["Membership Type"].map({"Gold": "Or", "Silver": "Argent"})
                              .fillna(table["Membership Type"]))):
        table.assign(**{"Membership Type": membership}).to_csv(tmp_path / f"{name}.csv", index=False)
        capsys.readouterr()
        assert main(["score", "--store", str(tmp_path / "store"), "--data", str(tmp_path / f"{name}.csv"),
                     "--output", str(tmp_path / f"{name}.out.csv")]) == 0
        runs[name] = (pd.read_csv(tmp_path / f"{name}.out.csv"), _log_lines(capsys, "WARNING"))
    trained, lower = runs["as-trained"][0], runs["lower-case"][0]
    assert (lower["segment_id"] == trained["segment_id"]).all() and lower["outlier"].sum() == trained["outlier"].sum()
    assert not runs["lower-case"][1] and not runs["as-trained"][1]
    warned = [line for line in runs["translated"][1] if "'Membership Type'" in line]
    assert warned and "were never seen in training" in warned[0] and "'Or'" in warned[0], runs["translated"][1]

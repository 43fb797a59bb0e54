"""The one table reader (segmentation_core/tables.py) over every format it reads, from paths, bytes and file objects,
and the same file read the same by the training job, the client CLI and the dashboard."""
from __future__ import annotations

import gzip
import io
import logging
import os
import subprocess
import sys
from pathlib import Path

import joblib
import numpy as np
import pandas as pd
import pytest

from segmentation_core.errors import DataError, RowLines
from segmentation_core.tables import match_columns, open_table, read_table

ROOT = Path(__file__).resolve().parents[1]
MALL_HEAD = ["CustomerID", "Genre", "Age", "Annual Income (k$)", "Spending Score (1-100)"]
MALL_ROWS = [["0001", "Male", "19", "15", "39"], ["0002", "Male", "21", "15", "81"], ["0003", "Female", "20", "16", "6"]]


def _as(kind: str, path: Path):
    """The same file as a path, as its bytes, or as an open binary file object."""
    if kind == "path":
        return path
    if kind == "bytes":
        return path.read_bytes()
    return io.BytesIO(path.read_bytes())


@pytest.mark.parametrize("kind", ["path", "bytes", "file"])
@pytest.mark.parametrize(
    ("sep", "bom", "newline", "final_newline"),
    [(",", False, "\n", True), (";", True, "\r\n", False), ("\t", False, "\r\n", True), ("|", True, "\n", False)],
    ids=["comma", "semicolon-bom-crlf-nofinal", "tab-crlf", "pipe-bom-nofinal"],
)
def test_csv_dialects(tmp_path, sep, bom, newline, final_newline, kind):
    text = newline.join(sep.join(row) for row in [MALL_HEAD, *MALL_ROWS]) + (newline if final_newline else "")
    path = tmp_path / "mall.csv"
    path.write_bytes((b"\xef\xbb\xbf" if bom else b"") + text.encode())
    frame = read_table(_as(kind, path))
    assert list(frame.columns) == MALL_HEAD
    assert frame["CustomerID"].tolist() == ["0001", "0002", "0003"]
    assert frame["Spending Score (1-100)"].tolist() == [39, 81, 6]
    assert frame["Age"].dtype == np.int64 and frame.attrs["first_data_line"] == 2


def test_whitespace_aligned_and_gzip(tmp_path, datasets_dir):
    lines = (datasets_dir / "CDNOW_master.txt").read_bytes().splitlines(keepends=True)[:101]
    path = tmp_path / "cdnow.txt.gz"
    path.write_bytes(gzip.compress(b"".join(lines)))
    frame = read_table(path)
    assert list(frame.columns) == ["customer_id", "date", "number_of_cds", "dollar_value"]
    assert len(frame) == 100 and frame["customer_id"].iloc[0] == "00001"
    assert open_table(path).format.separator == r"\s+"
    # The gzip is told by its magic bytes, not its name: the same bytes under any name read the same.
    pd.testing.assert_frame_equal(read_table(path.read_bytes(), name="upload"), frame, check_like=False)


def test_cp1252_is_the_fallback_even_past_the_sniffed_sample(tmp_path, caplog):
    # UTF-8 for the first 64 KiB, then one Windows-1252 byte: the whole file is checked, not only its head.
    rows = [f"{i:05d};Köln;{20 + i % 50}" for i in range(6000)]
    body = ("CustomerID;City;Age\n" + "\n".join(rows) + "\n").encode("cp1252")
    body += "99999;Zoë;31\n".encode("cp1252")
    assert len(body) > 64 * 1024
    path = tmp_path / "excel-export.csv"
    path.write_bytes(body)
    with caplog.at_level(logging.WARNING, logger="segmentation_core.tables"):
        frame = read_table(path)
    assert "not UTF-8" in caplog.text and "cp1252" in caplog.text
    assert frame["City"].iloc[0] == "Köln" and frame["City"].iloc[-1] == "Zoë"
    assert open_table(path).format.encoding == "cp1252"


def test_utf8_text_and_a_bom_do_not_stick_to_names(tmp_path):
    path = tmp_path / "u.csv"
    path.write_bytes(b"\xef\xbb\xbf" + "Ville,Âge\r\nMünchen,31\r\n".encode())
    frame = read_table(path)
    assert list(frame.columns) == ["Ville", "Âge"] and frame.iloc[0].tolist() == ["München", 31]


@pytest.mark.parametrize("suffix", [".parquet", ".xlsx"])
def test_parquet_and_excel_from_a_path_and_from_bytes(tmp_path, suffix):
    original = pd.DataFrame({"CustomerID": ["0001", "0002", "0003"], "Age": [19, 21, 20],
                             "Income": [15.5, 15.0, 16.25], "Gender": ["Male", "Male", "Female"]})
    path = tmp_path / f"t{suffix}"
    original.to_parquet(path) if suffix == ".parquet" else original.to_excel(path, index=False)
    from_path = read_table(path)
    pd.testing.assert_frame_equal(from_path, original)
    pd.testing.assert_frame_equal(read_table(path.read_bytes(), name="up"), original)
    table = open_table(path)
    assert table.format.kind == ("parquet" if suffix == ".parquet" else "excel") and table.total_rows == 3
    pd.testing.assert_frame_equal(pd.concat(table.chunks(2)), original)


def test_chunks_equal_the_whole_table_and_count_rows(tmp_path):
    frame = pd.DataFrame({"id": [f"{i:04d}" for i in range(1, 1001)], "x": np.arange(1000) / 7.0,
                          "g": ["a", "b"] * 500})
    path = tmp_path / "big.csv.gz"
    path.write_bytes(gzip.compress(frame.to_csv(index=False, sep="|").encode()))
    table = open_table(path)
    assert table.columns == ("id", "x", "g") and table.total_rows == 1000 and table.format.delimiter == "|"
    chunks = list(table.chunks(300))
    assert [len(c) for c in chunks] == [300, 300, 300, 100]
    assert chunks[1].index[0] == 300  # row numbers run across chunks: errors can name the file line
    pd.testing.assert_frame_equal(pd.concat(chunks), table.read())
    assert table.read()["id"].iloc[0] == "0001"


def test_a_header_without_rows_opens_but_does_not_read(tmp_path):
    path = tmp_path / "h.csv"
    path.write_text("CustomerID,Age\r\n")
    table = open_table(path)
    assert table.columns == ("CustomerID", "Age") and sum(len(chunk) for chunk in table.chunks(10)) == 0
    with pytest.raises(DataError, match="no data rows"):
        table.read()


def _write(tmp_path: Path, text: str, name: str = "t.csv") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def test_unreadable_sources_name_the_file(tmp_path):
    with pytest.raises(DataError, match="nope.csv: file not found"):
        read_table(tmp_path / "nope.csv")
    with pytest.raises(DataError, match="empty"):
        read_table(_write(tmp_path, ""))
    with pytest.raises(DataError, match="up.csv: file is empty"):
        read_table(b"", name="up.csv")
    with pytest.raises(DataError, match="no data rows"):
        read_table(_write(tmp_path, "CustomerID,Age\r\n"))
    with pytest.raises(DataError, match="binary"):
        read_table(b"\x00\x01\x02garbage\x00" * 10, name="b.csv")
    with pytest.raises(DataError, match="not a readable .xlsx"):
        read_table(b"PK\x03\x04 not a workbook", name="x.xlsx")
    with pytest.raises(DataError, match="legacy .xls"):
        read_table(b"\xd0\xcf\x11\xe0" + b"\x00" * 100, name="old.xls")
    with pytest.raises(DataError, match="corrupt gzip"):
        read_table(gzip.compress(b"a,b\n1,2\n" * 100)[:-30], name="cut.csv.gz")
    with pytest.raises(DataError, match="not a readable Parquet"):
        read_table(b"PAR1 not parquet", name="p.parquet")
    with pytest.raises(DataError, match="is a directory"):
        read_table(tmp_path)


def test_column_matching_is_exact_then_loose():
    found, missing = match_columns(["Age", "Annual Income (k$)", "Gender"],
                                   ["\ufeffage", "annual  income (K$)", "Age", "Other"])
    assert found == {"Age": "Age", "Annual Income (k$)": "annual  income (K$)"} and missing == ["Gender"]


def test_the_scoring_server_never_imports_the_table_reader():
    code = ("import sys, scoring_service.__main__, scoring_service.server, scoring_service.servicer; "
            "bad = {'pandas', 'segmentation_core.tables'} & set(sys.modules); print(sorted(bad)); "
            "sys.exit(1 if bad else 0)")
    run = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert run.returncode == 0, run.stdout + run.stderr


# ---- the same file, read the same by the training job, the client CLI and the dashboard ------------------

@pytest.fixture(scope="module")
def aligned_mall(tmp_path_factory, datasets_dir) -> Path:
    """Mall customers as a whitespace-aligned text file (names without spaces), as fixed-width exports write it."""
    frame = pd.read_csv(datasets_dir / "Mall_Customers.csv")
    frame.columns = ["CustomerID", "Gender", "Age", "Income", "Score"]
    frame["CustomerID"] = [f"{i:04d}" for i in frame["CustomerID"]]
    path = tmp_path_factory.mktemp("aligned") / "mall.txt"
    path.write_text(frame.to_string(index=False) + "\n")
    return path


def test_the_dashboard_reads_an_upload_as_the_training_job_reads_the_file(aligned_mall):
    from dash_ui.batch import parse_upload

    upload = aligned_mall.read_bytes()  # the upload route's bytes (dash_ui.uploads)
    pd.testing.assert_frame_equal(parse_upload(upload, "mall.txt"), read_table(aligned_mall, name="mall.txt"))


@pytest.mark.slow
def test_a_whitespace_aligned_file_trains_and_scores_through_the_client_cli(aligned_mall, tmp_path,
                                                                            scoring_server_factory):
    from segmentation_core.store import ModelStore
    from tests.server_support import target

    store = tmp_path / "store"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    train = subprocess.run([sys.executable, "-m", "training_job", "train", "--data", str(aligned_mall), "--preset",
                            "auto", "--k", "4", "--store", str(store)], cwd=ROOT, capture_output=True, text=True,
                           timeout=300, env=env)
    assert train.returncode == 0, train.stderr[-3000:]
    server = scoring_server_factory(store)
    out = tmp_path / "scored.csv"
    score = subprocess.run([sys.executable, "-m", "scoring_service.client", "score", str(aligned_mall), "-o", str(out),
                            "--target", target(server), "-q"], cwd=ROOT, capture_output=True, text=True, timeout=120,
                           env=env)
    assert score.returncode == 0, score.stderr
    scored = pd.read_csv(out, dtype={"CustomerID": str}, keep_default_na=False)
    assert len(scored) == 200 and (scored["error"] == "").all()
    assert scored["CustomerID"].tolist()[:2] == ["0001", "0002"]
    # The served answers equal the offline pipeline of the version on the file as the training job read it.
    model = ModelStore(store)
    version_dir = model.version_dir("customers", model.current("customers"))
    pipeline = joblib.load(version_dir / "pipeline.joblib")
    frame = read_table(aligned_mall)
    np.testing.assert_array_equal(scored["segment_id"].to_numpy(), pipeline.predict(frame))


def test_atomic_output_leaves_nothing_half_written(tmp_path):
    from segmentation_core.tables import atomic_output

    out = tmp_path / "deep" / "scored.csv"
    with atomic_output(out) as handle:
        handle.write(b"a,b\n")
        assert not out.exists()  # only the temporary file so far
    assert out.read_bytes() == b"a,b\n"
    with pytest.raises(RuntimeError):
        with atomic_output(out) as handle:
            handle.write(b"half")
            raise RuntimeError("killed")
    assert out.read_bytes() == b"a,b\n" and [p.name for p in out.parent.iterdir()] == ["scored.csv"]


def test_a_table_read_in_chunks_is_typed_as_if_read_whole(monkeypatch: pytest.MonkeyPatch) -> None:
    """read_table parses in chunks and converts each (bounded memory); a column that is numbers in one chunk and
    text (a word, a leading zero) in another is text as written, as a whole read would have it."""
    from segmentation_core import tables

    text = ("id,score,code,note,empty_first,ratio\n"
            "1,10,7,,,1\n2,20,8,,,2\n"
            "3,30,0009,,5,2.5\n4,x,10,n,6,3\n"
            "5,50,11,,7,\n")
    whole = read_table(text.encode(), name="t.csv")
    monkeypatch.setattr(tables, "_READ_CHUNK_ROWS", 2)
    chunked = read_table(text.encode(), name="t.csv")
    pd.testing.assert_frame_equal(chunked, whole)
    assert chunked["id"].dtype == "int64" and chunked["ratio"].dtype == "float64"
    assert chunked["score"].tolist() == ["10", "20", "30", "x", "50"]  # a word in chunk 2: text, as written
    assert chunked["code"].tolist() == ["7", "8", "0009", "10", "11"]  # a leading zero in chunk 2
    assert chunked["empty_first"].tolist()[2:] == [5.0, 6.0, 7.0] and chunked["empty_first"].isna().sum() == 2
    assert chunked["note"].isna().sum() == 4


# ---- a trailing delimiter on data rows, columns equal up to spaces, long integers, a Parquet index ----------

def test_a_trailing_delimiter_on_every_data_row_is_ignored(tmp_path, datasets_dir):
    """Every data row one field longer than the header, the field empty: pandas would take the first field as the
    index and shift every column left."""
    source = datasets_dir / "Mall_Customers.csv"
    header, *rows = source.read_text().splitlines()
    path = _write(tmp_path, "\n".join([header, *(row + "," for row in rows)]) + "\n", "trailing.csv")
    original = read_table(source)
    pd.testing.assert_frame_equal(read_table(path), original, check_like=False)
    table = open_table(path)
    assert table.columns == tuple(original.columns)
    pd.testing.assert_frame_equal(pd.concat(table.chunks(64)), original)


@pytest.mark.parametrize("lines", [[0], [2, 7], [150, 3999]], ids=["first-row", "some-rows", "past-the-sample"])
def test_a_trailing_delimiter_on_some_data_rows_is_ignored(tmp_path, caplog, lines):
    """Rows with one more, empty, field than the header, anywhere (line 3999 is past the 64 KiB the separator is
    sniffed from and past the first chunks): the field is dropped, as when every row has it, and said once."""
    rows = [f"{i:05d},customer {i},{i % 90},{i * 2.5}" for i in range(4000)]
    original = _write(tmp_path, "\n".join(["id,name,age,spend", *rows]) + "\n", "original.csv")
    for i in lines:
        rows[i] += ","
    path = _write(tmp_path, "\n".join(["id,name,age,spend", *rows]) + "\n", "some.csv")
    assert len(path.read_bytes()) > 64 * 1024
    with caplog.at_level(logging.INFO, logger="segmentation_core.tables"):
        frame = read_table(path)
    pd.testing.assert_frame_equal(frame, read_table(original))
    ignored = [r.getMessage() for r in caplog.records if "past the header's 4 columns" in r.getMessage()]
    assert ignored == [f"{path}: an empty field past the header's 4 columns (a delimiter ending a data line) is "
                       "ignored"], caplog.text
    pd.testing.assert_frame_equal(pd.concat(open_table(path).chunks(1000)), frame)


@pytest.mark.parametrize("chunk", [None, 1000], ids=["whole", "chunks"])
def test_a_value_past_the_header_far_down_names_its_line(tmp_path, chunk):
    rows = [f"{i},{i % 90}" for i in range(5000)]
    rows[10] += ","  # empty: ignored
    rows[3998] += ",,x"  # line 4000
    path = _write(tmp_path, "\n".join(["id,age", *rows]) + "\n")
    with pytest.raises(DataError, match=r"t\.csv: line 4000 has a value \('x'\) past the header's 2 columns"):
        read_table(path) if chunk is None else list(open_table(path).chunks(chunk))


@pytest.mark.parametrize(
    ("text", "line"),
    [("a,b\n1,2,\n3,4,x\n5,6,\n", 3), ("a,b\n1,2,x\n3,4,y\n", 2), ("a,b\n1,2,,\n3,4,,7\n", 3),
     ("a,b\n1,2\n3,4,5\n", 3)],
    ids=["one-row-extra", "every-row-extra", "two-extra-fields", "ragged-later-row"],
)
def test_a_value_past_the_header_names_its_line(tmp_path, text, line):
    path = _write(tmp_path, text)
    with pytest.raises(DataError, match=rf"t\.csv: .*line {line}\b"):
        read_table(path)


@pytest.mark.parametrize("suffix", [".csv", ".xlsx"])
def test_column_names_equal_up_to_spaces_are_an_error_naming_the_column(tmp_path, suffix):
    path = tmp_path / f"dup{suffix}"
    frame = pd.DataFrame([[1, 2, 3]], columns=["id", "spend", "spend "])
    frame.to_csv(path, index=False) if suffix == ".csv" else frame.to_excel(path, index=False)
    with pytest.raises(DataError, match=rf"dup\{suffix}: column 'spend' .*columns 2 and 3"):
        read_table(path)
    with pytest.raises(DataError, match="'spend'"):
        open_table(path)


_CARDS = ["4415660832319099559", "-9007199254740993", *(str(7 * 10**18 + i) for i in range(4))]


@pytest.mark.parametrize("suffix", [".csv", ".xlsx"])
def test_integers_beyond_float_precision_keep_their_digits_as_text(tmp_path, suffix):
    """Past 2**53 a float64 drops digits (7*10**18 + i are all one float): such a column stays as written. (In a
    workbook as text cells: a number cell is a float64 already, Excel's own limit.)"""
    path = tmp_path / f"cards{suffix}"
    original = pd.DataFrame({"id": range(1, 7), "card": _CARDS, "spend": np.arange(6) / 4})
    original.to_csv(path, index=False) if suffix == ".csv" else original.to_excel(path, index=False)
    frame = read_table(path)
    assert frame["card"].tolist() == _CARDS and not pd.api.types.is_numeric_dtype(frame["card"])
    assert frame["id"].dtype == np.int64 and frame["spend"].dtype == np.float64
    assert list(open_table(path).chunks(4))[1]["card"].tolist() == _CARDS[4:]


def test_a_chunk_of_long_integers_makes_the_whole_column_text(monkeypatch: pytest.MonkeyPatch) -> None:
    from segmentation_core import tables

    text = "id,card\n1,12\n2,34\n3,4415660832319099559\n4,5.5e20\n"
    monkeypatch.setattr(tables, "_READ_CHUNK_ROWS", 2)
    frame = read_table(text.encode(), name="t.csv")
    assert frame["card"].tolist() == ["12", "34", "4415660832319099559", "5.5e20"]
    assert read_table(b"id,x\n1,5.5e20\n2,2\n", name="t.csv")["x"].dtype == np.float64  # a float as written


def test_parquet_int64_beyond_float_precision_stays_exact(tmp_path):
    path = tmp_path / "cards.parquet"
    pd.DataFrame({"card": np.array([int(card) for card in _CARDS], dtype=np.int64)}).to_parquet(path)
    assert read_table(path)["card"].dtype == np.int64
    assert read_table(path)["card"].astype(str).tolist() == _CARDS
    assert pd.concat(open_table(path).chunks(4))["card"].astype(str).tolist() == _CARDS


@pytest.mark.parametrize(
    "ids", [range(101, 451), [7, 3, 9, 1] * 80 + list(range(10, 40))], ids=["evenly-spaced", "any-order"]
)
def test_a_named_parquet_index_is_a_column(tmp_path, ids):
    """``set_index("Customer ID").to_parquet``: evenly spaced ids are stored as a RangeIndex (metadata only)."""
    original = pd.DataFrame({"Customer ID": np.array(ids, dtype=np.int64), "spend": np.arange(350) / 2})
    path = tmp_path / "indexed.parquet"
    original.set_index("Customer ID").to_parquet(path)
    pd.testing.assert_frame_equal(read_table(path), original)
    table = open_table(path)
    assert table.columns == ("Customer ID", "spend")
    pd.testing.assert_frame_equal(pd.concat(table.chunks(100)), original)


def test_an_unnamed_parquet_range_index_is_not_a_column(tmp_path):
    path = tmp_path / "plain.parquet"
    pd.DataFrame({"spend": [1.5, 2.5, 3.5]}, index=pd.RangeIndex(10, 13)).to_parquet(path)
    assert list(read_table(path).columns) == ["spend"] and open_table(path).columns == ("spend",)
    assert list(pd.concat(open_table(path).chunks(2)).columns) == ["spend"]


@pytest.mark.parametrize(("text", "message"), [
    ('{"id": 1, "spend": 2}\n{"id": 2, "spend": 3}\n', "looks like JSON, not a table"),
    ("1,15,39\n2,16,81\n", r"the first line \(1, 15, 39\) holds numbers, not column names"),
    ("id,spend,spend\n1,2,3\n", "column 'spend' appears twice in the header"),
], ids=["json-lines", "no-header", "same-name-twice"])
def test_a_first_line_that_is_not_column_names_is_refused(tmp_path, text, message):
    path = tmp_path / "t.csv"
    path.write_text(text)
    with pytest.raises(DataError, match=message):
        read_table(path)


def test_a_header_of_years_is_names_and_a_customer_as_header_is_warned_about(tmp_path, datasets_dir, caplog):
    years = tmp_path / "years.csv"
    years.write_text("2019,2020,2021\n5,6,7\n")
    assert list(read_table(years).columns) == ["2019", "2020", "2021"]
    headless = tmp_path / "headless.csv"  # the mall table without its header line: its first customer is read as names
    headless.write_text("".join((datasets_dir / "Mall_Customers.csv").read_text().splitlines(keepends=True)[1:]))
    with caplog.at_level(logging.WARNING, logger="segmentation_core.tables"):
        assert len(read_table(headless)) == 199
    assert "the file lacks its header line" in caplog.text and "19, 15, 39" in caplog.text


@pytest.mark.parametrize(("cells", "sep", "expected"), [
    (["$1,234.50", "$950", "($12.00)", "-$3,400"], ",", [1234.5, 950.0, -12.0, -3400.0]),
    (["$1,200", "", "$5"], ",", [1200.0, None, 5.0]),
    (["1.234,50 €", "12,5", "3 400,00"], ";", [1234.5, 12.5, 3400.0]),
    (["45%", "12.5%", "100%"], ",", [45.0, 12.5, 100.0]),
    (["12 345", "1 000 000", "7"], ",", [12345.0, 1000000.0, 7.0]),
], ids=["dollars", "a-blank", "euros", "percent", "space-thousands"])
def test_numbers_as_spreadsheets_format_them_are_numbers(tmp_path, caplog, cells, sep, expected):
    path = tmp_path / "t.csv"
    path.write_text(f"id{sep}spend\n" + "".join(f'{i}{sep}"{c}"\n' for i, c in enumerate(cells)))
    with caplog.at_level(logging.INFO, logger="segmentation_core.tables"):
        frame = read_table(path)
    assert frame["spend"].dtype == np.float64 and len(frame) == len(cells)
    assert [None if np.isnan(v) else v for v in frame["spend"]] == expected
    assert "holds formatted numbers" in caplog.text


@pytest.mark.parametrize("cells", [["1,234", "5,678"], ["1,5", "2.5"], ["$5", "young"], ["555 123 4567", "1"]],
                         ids=["comma-either-way", "two-conventions", "a-word", "phone-like"])
def test_cells_no_one_convention_reads_stay_text(tmp_path, cells):
    path = tmp_path / "t.csv"
    path.write_text("id,spend\n" + "".join(f'{i},"{c}"\n' for i, c in enumerate(cells)))
    assert read_table(path)["spend"].tolist() == cells


def test_utf16_text_as_excel_saves_unicode_text_reads_like_the_csv(tmp_path, datasets_dir):
    mall = read_table(datasets_dir / "Mall_Customers.csv")
    path = tmp_path / "mall.txt"
    mall.to_csv(path, sep="\t", index=False, encoding="utf-16")  # a BOM, then two bytes per character
    pd.testing.assert_frame_equal(read_table(path), mall, check_dtype=False)
    assert sum(len(chunk) for chunk in open_table(path).chunks(64)) == 200


# ---- a line above the header: Excel's sep= line, a title -------------------------------------------------

@pytest.mark.parametrize("sep", [";", ",", "\t", "|"], ids=["semicolon", "comma", "tab", "pipe"])
@pytest.mark.parametrize("encoding", ["utf-8-sig", "utf-16"], ids=["utf8-bom", "utf16"])
def test_a_sep_line_as_excel_writes_it_declares_the_separator_and_is_skipped(tmp_path, caplog, sep, encoding):
    """Excel's "CSV" export in some locales starts with ``sep=;``: the separator it declares is used, the line is
    not the header, and lines are still counted in the file (the header is line 2)."""
    rows = [MALL_HEAD, *MALL_ROWS]
    rows[2][1] = "Female, retired" if sep != "," else "Female; retired"  # a cell holding another delimiter
    text = "\r\n".join(sep.join(row) for row in rows) + "\r\n"
    path, plain = tmp_path / "excel.csv", tmp_path / "plain.csv"
    path.write_bytes(f"sep={sep}\r\n{text}".encode(encoding))
    plain.write_bytes(text.encode(encoding))
    with caplog.at_level(logging.INFO, logger="segmentation_core.tables"):
        frame = read_table(path)
    assert list(frame.columns) == MALL_HEAD and len(frame) == 3
    assert frame["CustomerID"].tolist() == ["0001", "0002", "0003"] and frame["Age"].tolist() == [19, 21, 20]
    assert frame["Genre"].iloc[1] == rows[2][1] and frame.attrs["first_data_line"] == 3
    assert any(f"line 1 (sep={sep}) declares the separator {sep!r}" in r.getMessage() for r in caplog.records
               if r.levelno == logging.INFO), caplog.text
    table = open_table(path)
    assert table.columns == tuple(MALL_HEAD) and table.format.separator == sep
    assert table.total_rows == open_table(plain).total_rows  # the sep= line is not a row
    pd.testing.assert_frame_equal(pd.concat(table.chunks(2)), frame)


def test_a_sep_line_may_write_a_tab_as_backslash_t(tmp_path):
    frame = read_table(_write(tmp_path, "sep=\\t\nid\tname\n1\tAnn, Bo\n"))
    assert list(frame.columns) == ["id", "name"] and frame["name"].tolist() == ["Ann, Bo"]


def test_a_sep_line_counts_in_the_line_numbers_of_errors(tmp_path):
    path = _write(tmp_path, "sep=;\nid;spend\n1;2;x\n3;4\n")
    with pytest.raises(DataError, match=r"t\.csv: line 3 has a value \('x'\) past the header's 2 columns"):
        read_table(path)


@pytest.mark.parametrize(("text", "first", "header", "header_line"), [
    ("Customer export 2026-11-30\nid,age,spend\n1,20,30\n2,30,40\n", 1, 3, 2),
    ("Customer export, November\nid;age;spend\n1;20;30\n2;30;40\n", 1, 3, 2),
    ("Customer export 2026-11-30\n\nid,age,spend\n1,20,30\n2,30,40\n", 1, 3, 3),
    ("Customer export\nrun 2026-11-30\nid,age,spend\n1,20,30\n2,30,40\n", 1, 3, 3),
], ids=["title", "title-with-comma-semicolon-data", "title-blank-line", "two-title-lines"])
def test_a_title_above_the_header_is_an_error_saying_where_the_header_is(tmp_path, text, first, header,
                                                                        header_line):
    """Only a ``sep=`` line is skipped: any other line above the header is refused, saying where the header seems
    to be, rather than read as the header (whose error then named a column)."""
    path = _write(tmp_path, text)
    message = (rf"t\.csv: line 1 has {first} field\(s\) while line {header_line} has {header}; the header seems to "
               rf"be on line {header_line}: remove the line\(s\) above it")
    with pytest.raises(DataError, match=message):
        read_table(path)
    with pytest.raises(DataError, match=message):
        open_table(path)


# ---- line numbers as a text editor shows them ------------------------------------------------------------

def _editor_lines(text: str, ids: list[str]) -> list[int]:
    """The 1-based line on which each row (its first field, an id unique in the text) starts, as an editor counts."""
    lines = text.split("\n")
    return [next(n for n, line in enumerate(lines, start=1) if line.lstrip('"').startswith(f"{i},")) for i in ids]


@pytest.mark.parametrize("encoding", ["utf-8", "utf-16"])
@pytest.mark.parametrize("text", [
    "id,note\nr1,a\n\nr2,b\n   \nr3,c\n\n\n\nr4,d\nr5,e\n",
    "\n\nid,note\n\nr1,a\nr2,b\n\t\nr3,c\nr4,d\nr5,e",
    'id,note\nr1,"two\nlines"\n\nr2,b\nr3,"three\n\nlines"\nr4,d\n\nr5,e\n',
    "sep=,\nid,note\n\nr1,a\nr2,b\nr3,c\n\nr4,d\nr5,e\n",
], ids=["blank-lines", "blank-above-header-whitespace-no-final-newline", "fields-spanning-lines", "sep-line"])
def test_every_row_is_named_by_its_line_as_an_editor_shows_it(tmp_path, text, encoding):
    """Blank lines hold no row and a quoted field may span lines: a row's line is still the one an editor shows, in
    the whole table and in chunks, and the row count known before reading is exact."""
    path = tmp_path / "t.csv"
    path.write_bytes(text.replace("\n", "\r\n").encode(encoding) if encoding == "utf-16" else text.encode())
    expected = _editor_lines(text, ["r1", "r2", "r3", "r4", "r5"])
    frame = read_table(path)
    lines = RowLines.of(frame.attrs)
    assert [lines.line(label) for label in frame.index] == expected
    assert lines.lines(frame.index.to_numpy()).tolist() == expected
    chunks = list(open_table(path).chunks(2))
    assert [RowLines.of(chunk.attrs).line(label) for chunk in chunks for label in chunk.index] == expected
    assert open_table(path).total_rows == 5 == len(frame)
    bad = path.with_name("bad.csv")  # a value past the header on r4's line: the error names that line
    bad.write_bytes(text.replace("r4,d", "r4,d,x").encode())
    with pytest.raises(DataError, match=rf"line {expected[3]} has a value \('x'\) past the header's 2 columns"):
        read_table(bad)


def test_a_number_error_after_blank_lines_names_the_line_an_editor_shows(tmp_path):
    """The training job's reading of a column (segmentation_core.parsing) counts blank lines too."""
    from segmentation_core.parsing import to_numeric

    frame = read_table(_write(tmp_path, "id,spend\n1,10\n\n\n2,20\n\n3,lots\n"))
    with pytest.raises(DataError, match=r"'lots' at line 7 "):
        to_numeric(frame["spend"], "spend", RowLines.of(frame.attrs))


def test_utf16_row_count_is_the_number_of_rows(tmp_path, datasets_dir):
    """Excel's "Unicode Text" ends each line with two bytes (0x0A 0x00): the count known before reading was one
    too high."""
    mall = read_table(datasets_dir / "Mall_Customers.csv")
    for encoding in ("utf-16", "utf-16-le", "utf-16-be"):
        path = tmp_path / f"mall-{encoding}.txt"
        body = mall.to_csv(sep="\t", index=False, lineterminator="\r\n")
        path.write_bytes((b"" if encoding == "utf-16" else "\ufeff".encode(encoding)) + body.encode(encoding))
        assert open_table(path).total_rows == 200, encoding


def test_a_column_with_a_number_beyond_a_float_stays_text_so_errors_quote_it(tmp_path):
    """'1e400' reads as infinity: the column stays text (as with a stray word), so that an error says '1e400'."""
    frame = read_table(_write(tmp_path, "id,spend,visits\n1,10,3\n2,1e400,4\n3,-inf,5\n"))
    assert frame["spend"].tolist() == ["10", "1e400", "-inf"] and frame["visits"].dtype == np.int64


# ---- pandas' NA tokens: missing in a column of numbers, values in a text column --------------------------

NA_TABLE = "id,income,region,edu\n1,10,NA,None\n2,NA,EU,High\n3,null,NA,\n4,5,US,None\n"


@pytest.mark.parametrize("suffix", [".csv", ".xlsx"])
def test_na_tokens_are_missing_among_numbers_and_values_in_text(tmp_path, caplog, suffix):
    """'NA' for North America and 'None' for an education level are kept; 'NA'/'null' among numbers (as R and
    databases write a missing number) are missing; only an empty cell is missing in text. The log says so per
    column, in the whole table and in chunks."""
    path = _write(tmp_path, NA_TABLE)
    if suffix == ".xlsx":
        text = pd.read_csv(path, dtype=str, keep_default_na=False)
        path = tmp_path / "t.xlsx"
        text.to_excel(path, index=False)
    with caplog.at_level(logging.INFO, logger="segmentation_core.tables"):
        frame = read_table(path)
    assert frame["income"].dtype == np.float64 and frame["income"].isna().tolist() == [False, True, True, False]
    assert frame["region"].tolist() == ["NA", "EU", "NA", "US"]
    assert frame["edu"].iloc[[0, 1, 3]].tolist() == ["None", "High", "None"] and pd.isna(frame["edu"].iloc[2])
    assert "column 'income': 'NA' (1 cell), 'null' (1 cell) read as missing (a column of numbers)" in caplog.text
    assert "column 'region': 'NA' (2 cells) kept as a value, not missing" in caplog.text
    assert "column 'edu': 'None' (2 cells) kept as a value, not missing" in caplog.text
    pd.testing.assert_frame_equal(pd.concat(open_table(path).chunks(2)), frame)


def test_a_chunk_of_na_tokens_in_a_column_of_numbers_is_missing(tmp_path, monkeypatch):
    """Read in chunks then joined: a chunk whose cells are all 'NA' does not turn a column of numbers into text."""
    import segmentation_core.tables as tables

    monkeypatch.setattr(tables, "_READ_CHUNK_ROWS", 2)
    frame = read_table(_write(tmp_path, "id,income\n1,10\n2,20\n3,NA\n4,NA\n5,50\n"))
    assert frame["income"].dtype == np.float64 and frame["income"].isna().sum() == 2
    assert frame.attrs["missing_tokens"] == {"income": {"NA": 2}}

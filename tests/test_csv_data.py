"""The CSV data source: reading, feature selection, standardisation statistics, new rows, and every bad file."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import torch

from lit_linreg.datasets.csv import CSVRegressionData
from lit_linreg.errors import UserError

from .bad_inputs import error_line
from .helpers import run, run_subprocess

GOOD = "x1,x2,y\n" + "".join(f"{i},{i % 3},{2 * i + 1}\n" for i in range(10))


def write(name: str, text: str | bytes) -> str:
    path = Path(name)
    path.write_bytes(text if isinstance(text, bytes) else text.encode())
    return name


def test_reads_the_target_and_every_other_numeric_column(capsys: pytest.CaptureFixture[str]) -> None:
    text = '\ufeffid,x1,"x 2",y\n"a, b",1,2,3\n\nc,4,"5",6\n' + "".join(f"r{i},{i},0.5,{i}e-1\n" for i in range(8))
    data = CSVRegressionData(write("table.csv", text), target="y")
    assert capsys.readouterr().out == (
        "warning: table.csv: not used as features: id (text); to one-hot encode a text column, name it in "
        "data.categorical\n"
    )
    assert data.feature_names == ["x1", "x 2"] and data.num_features == 2
    x, y = data.build_rows()
    assert x.dtype == y.dtype == torch.float32 and x.shape == (10, 2) and y.shape == (10, 1)
    assert x[:2].tolist() == [[1.0, 2.0], [4.0, 5.0]] and y[:2, 0].tolist() == [3.0, 6.0]
    assert y[-1].item() == pytest.approx(0.7)


ROWS = [[0.5, 1.0, 2.0], [1.5, 2.0, 3.5], [2.5, 0.0, 4.0], [3.5, 1.0, 7.0]]


@pytest.mark.parametrize(
    ("text", "kwargs"),
    [
        ("x1,x2,y\r\n" + "".join(f"{a},{b},{c}\r\n" for a, b, c in ROWS), {}),  # Windows line endings
        ("x1,x2,y\r" + "".join(f"{a},{b},{c}\r" for a, b, c in ROWS), {}),  # old Mac line endings
        ('"x1","x2","y"\n' + "".join(f'"{a}","{b}","{c}"\n' for a, b, c in ROWS), {}),  # every value quoted
        ("x1, x2, y\n" + "".join(f'{a}, "{b}", {c}\n' for a, b, c in ROWS), {}),  # spaces, then quotes
        (" x1 ,x2 , y\n" + "".join(f" {a} ,{b} , {c} \n" for a, b, c in ROWS), {"target": " y ", "features": ["x1 "]}),
        ("x1;x2;y\n" + "".join(f"{a};{b};{c}\n" for a, b, c in ROWS), {"delimiter": ";"}),
        ("x1\tx2\ty\n" + "".join(f"{a}\t{b}\t{c}\n" for a, b, c in ROWS), {"delimiter": "\\t"}),  # as typed
        ("x1|x2|y\r\n" + "".join(f"{a}|{b}|{c}\r\n" for a, b, c in ROWS), {"delimiter": "|"}),
    ],
)
def test_csv_dialects_that_work(text: str, kwargs: dict) -> None:
    data = CSVRegressionData(write("t.csv", text), **{"target": "y", **kwargs})
    x, y = data.build_rows()
    columns = [0] if kwargs.get("features") else [0, 1]
    assert data.feature_names == ["x1", "x2"][: len(columns)]
    assert x.tolist() == [[row[i] for i in columns] for row in ROWS] and y[:, 0].tolist() == [r[2] for r in ROWS]


def test_inner_spaces_in_column_names_are_kept() -> None:
    data = CSVRegressionData(write("t.csv", "x 1,  the y \n1,2\n2,4\n3,6\n"), target="the y", train_split=0.5)
    assert data.feature_names == ["x 1"] and data.x[:, 0].tolist() == [1.0, 2.0, 3.0]
    with pytest.raises(UserError, match=re.escape("t.csv has no column 'x1' (columns: x 1, the y)")):
        CSVRegressionData("t.csv", target="x1")


def test_the_delimiter_applies_to_the_new_rows_too() -> None:
    write("train.csv", "x1;x2;y\n" + "".join(f"{a};{b};{c}\n" for a, b, c in ROWS))
    data = CSVRegressionData("train.csv", target="y", delimiter=";", predict_csv=write("new.csv", "x2;x1\n1;2\n"))
    data.setup("predict")
    assert data.predict_rows[0].tolist() == [[2.0, 1.0]]


def test_explicit_features_keep_their_order() -> None:
    data = CSVRegressionData(write("table.csv", GOOD), target="x1", features=["y", "x2"])
    x, y = data.build_rows()
    assert data.feature_names == ["y", "x2"]
    assert x[3].tolist() == [7.0, 0.0] and y[3, 0].item() == 3.0


def test_standardization_statistics_come_from_the_training_split() -> None:
    data = CSVRegressionData(write("table.csv", GOOD), target="y", standardize=True, split="random", seed=3)
    data.setup("fit")
    mean, std = data.feature_stats()
    train = data.splits["train"][0].double()
    torch.testing.assert_close(mean, train.mean(0).float())
    torch.testing.assert_close(std, train.std(0, correction=0).float())
    assert not torch.allclose(mean, data.x.mean(0))  # not the whole file's
    assert CSVRegressionData(write("table.csv", GOOD), target="y").feature_stats() is None


def test_a_constant_feature_cannot_be_standardized() -> None:
    data = CSVRegressionData(
        write("table.csv", "x1,c,y\n" + "1,5,1\n2,5,2\n3,5,3\n4,5,4\n5,5,5\n"), target="y", standardize=True
    )
    data.setup("fit")
    with pytest.raises(UserError, match="feature\\(s\\) c are constant on the training split"):
        data.feature_stats()


def test_predict_csv_with_and_without_targets() -> None:
    write("train.csv", GOOD)
    new = CSVRegressionData("train.csv", target="y", predict_csv=write("new.csv", "note,x2,x1\nn,1,2\nm,0,7\n"))
    new.setup("predict")
    (x,) = new.predict_rows
    assert x.tolist() == [[2.0, 1.0], [7.0, 0.0]]  # the training file's feature order, not the new file's
    known = CSVRegressionData("train.csv", target="y", predict_csv=write("known.csv", "x1,x2,y\n2,1,5\n"))
    known.setup("predict")
    assert [t.tolist() for t in known.predict_rows] == [[[2.0, 1.0]], [[5.0]]]
    default = CSVRegressionData("train.csv", target="y")
    default.setup("predict")
    assert torch.equal(default.predict_rows[0], default.splits["test"][0])


BAD_FILES = [
    ("", {}, "t.csv is empty; it needs a header line"),
    ("x1,y\n", {}, "t.csv has a header but no data rows; add the rows below the header, one value per column"),
    ("x1,y\r\n\r\n", {}, "t.csv has a header but no data rows"),
    ("1,2\n3,4\n", {}, "t.csv line 1 must be a header naming the columns"),
    ("x1,x1,y\n1,2,3\n", {}, "t.csv line 1: the column name 'x1' appears more than once"),
    (",x1,y\n0,1,2\n", {}, "t.csv line 1: column 1 has no name"),
    ("x1,x2,z\n1,2,3\n", {}, "t.csv has no column 'y' (columns: x1, x2, z); set data.target"),
    (GOOD, {"features": ["x1", "x9"]}, "data.features names ['x9'] that t.csv lacks (columns: x1, x2, y)"),
    (GOOD, {"features": ["x1", "y"]}, "data.features must not include the target column 'y'"),
    ("name,y\na,1\nb,2\n", {}, "t.csv has no feature column of numbers besides the target 'y'; name a text column"),
    ("x1,x2,y\n1,2,3\n4,abc,6\n", {}, "t.csv line 3, column 'x2': 'abc' is not a number"),
    ("x1,y\n1,n/a\n2,3\n", {}, "t.csv line 2, column 'y' is missing (empty, NA or NaN); fill or remove the row, or"),
    ("x1,x2,y\n1,2,3\n\n4,,6\n", {}, "t.csv line 4, column 'x2' is missing (empty, NA or NaN)"),
    ("x1,y\n1,2\n3,nan\n", {}, "t.csv line 3, column 'y' is missing (empty, NA or NaN)"),
    ("x1,y\n1,2\n-inf,4\n", {}, "t.csv line 3, column 'x1': '-inf' is not a finite number"),
    ("x1,x2,y\n1,2,3\n4,5\n", {}, "t.csv line 3 has 2 values but the header names 3 columns"),
    ("id,x1,y\na,1,2\nb,3,4,5\n", {}, "t.csv line 3 has 4 values but the header names 3 columns"),
    ("x1,y\n1,2\n2,3\n", {}, "t.csv: the data have 2 rows, which leaves train/val/test splits of 1/0/1 rows"),
    (b"x1,y\n1,2\n\xff\xfe,3\n", {}, "t.csv is not UTF-8 text (byte 0xff at line 3, column 1"),
    (
        "x1,x2,y\n1,2,3\nné,5,6\n".encode("latin-1"),
        {},
        "t.csv is not UTF-8 text (byte 0xe9 at line 3, column 2: Latin-1 or Windows-1252?); save it as UTF-8 (a "
        "spreadsheet's 'CSV UTF-8', or: iconv -f latin1 -t utf-8 t.csv > utf8.csv)",
    ),
    ("x1,y\n1,2\n".encode("utf-16"), {}, "t.csv is UTF-16 text, not UTF-8; save it as UTF-8 (a spreadsheet's 'CSV "),
    (
        "x1;x2;y\n1;2;3\n",
        {},
        "t.csv line 1 separates its columns with ';', not ','; set data.delimiter ';', or save it separated by ','",
    ),
    ("x1\tx2\ty\n1\t2\t3\n", {}, "t.csv line 1 separates its columns with tabs, not ','; set data.delimiter '\\t'"),
    ("x1 x2 y\n1 2 3\n", {}, "t.csv line 1 separates its columns with spaces, not ','; save it separated by ','"),
    ("x1,x2,y\n1,2,3\n", {"delimiter": ";"}, "t.csv line 1 separates its columns with ',', not ';'"),
    ("x1,x2,y\n1,2,3\n4;5;6\n", {}, "t.csv line 3 has 1 values but the header names 3 columns (it holds ';': another"),
    (
        "x1;y\n0,5;1\n",
        {"delimiter": ";"},
        "t.csv line 2, column 'x1': '0,5' has a decimal comma; write numbers with a ",
    ),
    ("x1;y\n0.5;1\n1.5;2,5\n", {"delimiter": ";"}, "t.csv line 3, column 'y': '2,5' has a decimal comma"),
    (GOOD, {"delimiter": "::"}, "data.delimiter must be one of ',', ';', '|' or a tab (written \\t), got '::'"),
]


@pytest.mark.parametrize(("text", "kwargs", "message"), BAD_FILES)
def test_bad_csv_files_are_one_line_errors(text: str | bytes, kwargs: dict, message: str) -> None:
    kwargs = {"target": "y", "train_split": 0.5, **kwargs}
    if "splits of" in message:
        kwargs["val_split"] = 0.2
    with pytest.raises(UserError, match=re.escape(message)) as error:
        CSVRegressionData(write("t.csv", text), **kwargs)
    assert "\n" not in str(error.value)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("x1,note\n1,a\n", "data.predict_csv new.csv lacks the feature column(s) x2"),
        ("x1,x2\n1,2\n3,x\n", "new.csv line 3, column 'x2': 'x' is not a number"),
    ],
)
def test_bad_predict_csv(text: str, message: str) -> None:
    with pytest.raises(UserError, match=re.escape(message)):
        CSVRegressionData(write("train.csv", GOOD), target="y", predict_csv=write("new.csv", text))


def test_missing_file() -> None:
    with pytest.raises(UserError, match=re.escape("data.csv_path nowhere.csv does not exist or is not a file")):
        CSVRegressionData("nowhere.csv", target="y")


CSV_FIT = (
    "fit",
    "--data.class_path",
    "lit_linreg.datasets.csv.CSVRegressionData",
    "--data.target",
    "y",
    "--trainer.max_epochs",
    "2",
    "--table.every_n_epochs",
    "0",
    "--figures.enabled",
    "false",
)
MANY_ROWS = [(i / 2, i % 3, 2 * i + 1) for i in range(10)]


def _table(delimiter: str = ",", newline: str = "\n", header: str = "x1,x2,y") -> str:
    lines = [header.replace(",", delimiter), *(delimiter.join(map(str, row)) for row in MANY_ROWS)]
    return newline.join(lines) + newline


@pytest.mark.parametrize(
    ("text", "options"),
    [
        (_table(newline="\r\n"), []),
        (_table(header=" x1 , x 2,y "), ["--data.features", "[x1, ' x 2']"]),
        (_table(";"), ["--data.delimiter", ";"]),
        (_table("\t"), ["--data.delimiter", "\\t"]),
    ],
)
def test_fit_reads_these_files(text: str, options: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    run(*CSV_FIT, "--data.csv_path", write("t.csv", text), *options)
    assert "checkpoints: last" in capsys.readouterr().out


def test_a_checkpoint_keeps_the_delimiter_for_predict(capsys: pytest.CaptureFixture[str]) -> None:
    run(*CSV_FIT, "--data.csv_path", write("t.csv", _table(";")), "--data.delimiter", ";")
    capsys.readouterr()
    write("new.csv", "x2;x1\n1;0.5\n")
    run(
        "predict",
        "--ckpt_path",
        next(Path("checkpoints").glob("*/version_0/last.ckpt")),
        "--data.predict_csv",
        "new.csv",
    )
    path = Path(capsys.readouterr().out.split("predictions: ")[1].split(" (")[0])
    assert path.read_text().splitlines()[0].startswith("x1,x2,y_pred")


@pytest.mark.parametrize(
    ("text", "options", "message"),
    [
        (_table(";"), [], "t.csv line 1 separates its columns with ';', not ','; set data.delimiter ';', or save it"),
        ("x1,x2,y\n", [], "t.csv has a header but no data rows; add the rows below the header"),
        (
            _table().replace("1.5", "1\xe9").encode("latin-1"),
            [],
            "t.csv is not UTF-8 text (byte 0xe9 at line 5, column 2",
        ),
        (
            _table(),
            ["--data.delimiter", "ab"],
            "data.delimiter must be one of ',', ';', '|' or a tab (written \\t), got",
        ),
    ],
)
def test_fit_refuses_these_files(text: str | bytes, options: list[str], message: str, capsys) -> None:
    assert message in error_line(capsys, *CSV_FIT, "--data.csv_path", write("t.csv", text), *options)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            "x1,y\n1,2\n2,3\n3,oops\n4,5\n5,6\n",
            "lit-linreg: error: bad.csv line 4, column 'y': 'oops' is not a number; fix or remove the row",
        ),
        (
            _table(";"),
            "lit-linreg: error: bad.csv line 1 separates its columns with ';', not ','; set data.delimiter ';', or "
            "save it separated by ','",
        ),
        (
            _table(header="x1,x2,prix").replace("prix", "pr\xeex").encode("latin-1"),
            "lit-linreg: error: bad.csv is not UTF-8 text (byte 0xee at line 1, column 9: Latin-1 or Windows-1252?); "
            "save it as UTF-8 (a spreadsheet's 'CSV UTF-8', or: iconv -f latin1 -t utf-8 bad.csv > utf8.csv)",
        ),
    ],
)
def test_the_command_line_prints_one_line_and_exits_with_status_2(text: str | bytes, message: str) -> None:
    write("bad.csv", text)
    result = run_subprocess(*CSV_FIT, "--data.csv_path", "bad.csv", check=False)
    assert result.returncode == 2
    errors = [line for line in result.stderr.splitlines() if line.startswith("lit-linreg:")]
    assert errors == [message]
    assert "Traceback" not in result.stdout + result.stderr


def test_make_data_is_deterministic(capsys: pytest.CaptureFixture[str]) -> None:
    run("make-data", "--rows", "200", "--out", "a/train.csv", "--new_rows_out", "a/new.csv")
    first = Path("a/train.csv").read_bytes(), Path("a/new.csv").read_bytes()
    run("make-data", "--rows", "200", "--out", "a/train.csv", "--new_rows_out", "a/new.csv")
    assert (Path("a/train.csv").read_bytes(), Path("a/new.csv").read_bytes()) == first
    assert "wrote a/train.csv (200 rows: x1, x2, x3 -> y" in capsys.readouterr().out
    data = CSVRegressionData("a/train.csv", target="y", predict_csv="a/new.csv")
    assert data.feature_names == ["x1", "x2", "x3"] and len(data.x) == 200
    assert 0 <= data.x[:, 0].min() and data.x[:, 1].max() <= 10 and data.x[:, 2].min() >= -50
    with pytest.raises(SystemExit) as exit_info:
        run("make-data", "--help")
    assert exit_info.value.code == 0 and "--noise_std" in capsys.readouterr().out

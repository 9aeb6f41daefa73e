"""The CSV data source: reading, feature selection, standardisation statistics, new rows, and every bad file."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import torch

from lit_linreg.datasets.csv import CSVRegressionData
from lit_linreg.errors import UserError

from .helpers import run, run_subprocess

GOOD = "x1,x2,y\n" + "".join(f"{i},{i % 3},{2 * i + 1}\n" for i in range(10))


def write(name: str, text: str | bytes) -> str:
    path = Path(name)
    path.write_bytes(text if isinstance(text, bytes) else text.encode())
    return name


def test_reads_the_target_and_every_other_numeric_column() -> None:
    text = '\ufeffid,x1,"x 2",y\n"a, b",1,2,3\n\nc,4,"5",6\n' + "".join(f"r{i},{i},0.5,{i}e-1\n" for i in range(8))
    with pytest.warns(UserWarning, match="not numeric in line 2, so not used as features: id"):
        data = CSVRegressionData(write("table.csv", text), target="y")
    assert data.feature_names == ["x1", "x 2"] and data.num_features == 2
    x, y = data.build_rows()
    assert x.dtype == y.dtype == torch.float32 and x.shape == (10, 2) and y.shape == (10, 1)
    assert x[:2].tolist() == [[1.0, 2.0], [4.0, 5.0]] and y[:2, 0].tolist() == [3.0, 6.0]
    assert y[-1].item() == pytest.approx(0.7)


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
    ("x1,y\n", {}, "t.csv has a header but no data rows"),
    ("1,2\n3,4\n", {}, "t.csv line 1 must be a header naming the columns"),
    ("x1,x1,y\n1,2,3\n", {}, "t.csv line 1: the column name 'x1' appears more than once"),
    (",x1,y\n0,1,2\n", {}, "t.csv line 1: column 1 has no name"),
    ("x1,x2,z\n1,2,3\n", {}, "t.csv has no column 'y' (columns: x1, x2, z); set data.target"),
    (GOOD, {"features": ["x1", "x9"]}, "data.features names ['x9'] that t.csv lacks (columns: x1, x2, y)"),
    (GOOD, {"features": ["x1", "y"]}, "data.features must not include the target column 'y'"),
    ("name,y\na,1\nb,2\n", {}, "t.csv has no numeric feature column besides the target 'y'"),
    ("x1,x2,y\n1,2,3\n4,abc,6\n", {}, "t.csv line 3, column 'x2': 'abc' is not a number"),
    ("x1,y\n1,n/a\n2,3\n", {}, "t.csv line 2, column 'y': 'n/a' is not a number"),
    ("x1,x2,y\n1,2,3\n\n4,,6\n", {}, "t.csv line 4, column 'x2' is empty (a missing value)"),
    ("x1,y\n1,2\n3,nan\n", {}, "t.csv line 3, column 'y': 'nan' is not a finite number"),
    ("x1,y\n1,2\n-inf,4\n", {}, "t.csv line 3, column 'x1': '-inf' is not a finite number"),
    ("x1,x2,y\n1,2,3\n4,5\n", {}, "t.csv line 3 has 2 values but the header names 3 columns"),
    ("id,x1,y\na,1,2\nb,3,4,5\n", {}, "t.csv line 3 has 4 values but the header names 3 columns"),
    ("x1,y\n1,2\n2,3\n", {}, "t.csv: the data have 2 rows, which leaves train/val/test splits of 1/0/1 rows"),
    (b"x1,y\n1,2\n\xff\xfe,3\n", {}, "t.csv is not a UTF-8 text file"),
]


@pytest.mark.filterwarnings("ignore:t.csv. not numeric")
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


def test_the_command_line_prints_one_line_and_exits_with_status_2() -> None:
    write("bad.csv", "x1,y\n1,2\n2,3\n3,oops\n4,5\n5,6\n")
    result = run_subprocess(
        "fit",
        "--data.class_path",
        "lit_linreg.datasets.csv.CSVRegressionData",
        "--data.csv_path",
        "bad.csv",
        "--data.target",
        "y",
        check=False,
    )
    assert result.returncode == 2
    errors = [line for line in result.stderr.splitlines() if line.startswith("lit-linreg:")]
    assert errors == ["lit-linreg: error: bad.csv line 4, column 'y': 'oops' is not a number; fix or remove the row"]
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

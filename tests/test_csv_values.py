"""The CSV data source's values: missing cells, text and categorical columns, float32's range, the file's float64
values for the exact baselines, and names that predictions.csv could not write."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
import torch

from lit_linreg.commands.make_data import make_data
from lit_linreg.datasets.csv import CSVRegressionData
from lit_linreg.errors import UserError
from lit_linreg.report import ordinary_least_squares

from .bad_inputs import error_line
from .helpers import run
from .test_baselines import LONGLEY


def write(name: str, text: str) -> str:
    Path(name).write_text(text, encoding="utf-8")
    return name


def table(header: str, rows: list[str]) -> str:
    return "\n".join([header, *rows]) + "\n"


# Ten clean rows of x1, x2 -> y; each case below changes a cell.
ROWS = [f"{i},{i % 3},{2 * i + 1}" for i in range(10)]


def with_cell(row: int, column: int, cell: str, rows: list[str] = ROWS) -> list[str]:
    changed = [line.split(",") for line in rows]
    changed[row][column] = cell
    return [",".join(line) for line in changed]


@pytest.mark.parametrize("cell", ["", "NA", "nan", "NaN", "N/A", "null", " na ", '""'])
@pytest.mark.parametrize("row", [0, 6])  # the first data row too: it used to drop the whole column
def test_a_missing_cell_is_an_error_naming_its_line_and_column(cell: str, row: int) -> None:
    path = write("t.csv", table("x1,bmi,y", with_cell(row, 1, cell)))
    message = (
        f"t.csv line {row + 2}, column 'bmi' is missing (empty, NA or NaN); fill or remove the row, or set "
        f"data.missing drop to drop the rows with a missing value"
    )
    with pytest.raises(UserError, match=re.escape(message)):
        CSVRegressionData(path, target="y")


def test_drop_drops_the_rows_and_counts_them(capsys: pytest.CaptureFixture[str]) -> None:
    rows = with_cell(0, 1, "NA", with_cell(4, 2, "", with_cell(7, 0, "nan")))
    data = CSVRegressionData(write("t.csv", table("x1,x2,y", rows)), target="y", missing="drop")
    assert capsys.readouterr().out == "t.csv: dropped 3 of 10 rows for a missing value (lines 2, 6, 9); 7 rows left\n"
    assert data.feature_names == ["x1", "x2"]  # no column dropped
    assert data.x[:, 0].tolist() == [1, 2, 3, 5, 6, 8, 9] and data.y[:, 0].tolist() == [3, 5, 7, 11, 13, 17, 19]


def test_drop_looks_only_at_the_columns_used(capsys: pytest.CaptureFixture[str]) -> None:
    rows = [f"{row},{'' if i % 2 else 'ok'}" for i, row in enumerate(ROWS)]
    data = CSVRegressionData(write("t.csv", table("x1,x2,y,note", rows)), target="y", features=["x1"], missing="drop")
    assert len(data.x) == 10 and capsys.readouterr().out == ""


def test_drop_of_every_row_is_an_error() -> None:
    path = write("t.csv", table("x1,y", ["1,", "2,NA", "3,nan"]))
    with pytest.raises(UserError, match=re.escape("t.csv: the data have 0 rows, which leaves train/val/test splits")):
        CSVRegressionData(path, target="y", missing="drop")


def test_an_empty_column_is_left_out_by_name_or_refused_when_named(capsys: pytest.CaptureFixture[str]) -> None:
    path = write("t.csv", table("x1,empty,y", [f"{i},,{i}" for i in range(10)]))
    assert CSVRegressionData(path, target="y").feature_names == ["x1"]
    assert capsys.readouterr().out == (
        "warning: t.csv: not used as features: empty (empty); to one-hot encode a text column, name it in "
        "data.categorical\n"
    )
    with pytest.raises(UserError, match=re.escape("t.csv line 2, column 'empty' is missing")):
        CSVRegressionData(path, target="y", features=["x1", "empty"])


@pytest.mark.parametrize(
    ("cell", "message"),
    [
        ("inf", "t.csv line 5, column 'x2': 'inf' is not a finite number; fix or remove the row"),
        ("-Infinity", "t.csv line 5, column 'x2': '-inf' is not a finite number"),
        ("1e39", "t.csv line 5, column 'x2': 1e+39 is beyond float32's range (±3.4e+38), in which the model computes"),
        ("-3.5e38", "t.csv line 5, column 'x2': -3.5e+38 is beyond float32's range"),
        ("abc", "t.csv line 5, column 'x2': 'abc' is not a number; fix or remove the row"),
        ("0,5", "t.csv line 5, column 'x2': '0,5' has a decimal comma; write numbers with a decimal point (0.5)"),
    ],
)
def test_bad_numbers_name_their_cell(cell: str, message: str) -> None:
    rows = [line.replace(",", ";") for line in with_cell(3, 1, "@")]
    path = write("t.csv", table("x1;x2;y", [line.replace("@", cell) for line in rows]))
    with pytest.raises(UserError, match=re.escape(message)) as error:
        CSVRegressionData(path, target="y", delimiter=";")
    assert "\n" not in str(error.value)
    if cell in ("inf", "1e39", "abc"):  # missing: drop drops missing values only, never a bad one
        with pytest.raises(UserError, match=re.escape(message)):
            CSVRegressionData(path, target="y", delimiter=";", missing="drop")


def test_float32_extremes_within_range_are_read() -> None:
    data = CSVRegressionData(write("t.csv", table("x1,y", ["3.4e38,1", "-3.4e38,2", "1e-50,3", "0,4", "1,5"])), "y")
    assert data.x[:, 0].tolist()[2:] == [0.0, 0.0, 1.0] and torch.isfinite(data.x).all()


def test_the_target_must_hold_numbers() -> None:
    path = write("t.csv", table("x1,x2,y", with_cell(2, 2, "high")))
    with pytest.raises(UserError, match=re.escape("t.csv line 4, column 'y': 'high' is not a number; fix or remove")):
        CSVRegressionData(path, target="y")
    with pytest.raises(UserError, match="must not include the target column 'y'"):
        CSVRegressionData(path, target="y", categorical=["y"])


SEX = [f"{i},{'MF'[i % 2]},{2 * i + 1 + 10 * (i % 2)}" for i in range(10)]


def test_a_text_column_is_left_out_with_one_line_or_refused_with_the_right_advice(
    capsys: pytest.CaptureFixture[str],
) -> None:
    path = write("t.csv", table("x1,sex,y", SEX))
    assert CSVRegressionData(path, target="y").feature_names == ["x1"]
    assert capsys.readouterr().out == (
        "warning: t.csv: not used as features: sex (text); to one-hot encode a text column, name it in "
        "data.categorical\n"
    )
    message = (
        "t.csv line 2, column 'sex': 'M' is text, not a number; to use a column of categories, name it in "
        "data.categorical (one-hot encoded), else leave it out of data.features"
    )
    with pytest.raises(UserError, match=re.escape(message)):
        CSVRegressionData(path, target="y", features=["x1", "sex"])


def test_a_column_of_numbers_with_a_stray_word_is_an_error_not_a_text_column() -> None:
    path = write("t.csv", table("x1,x2,y", with_cell(8, 1, "oops")))  # the first rows are fine
    with pytest.raises(UserError, match=re.escape("t.csv line 10, column 'x2': 'oops' is not a number")):
        CSVRegressionData(path, target="y")


def test_categorical_columns_are_one_hot_encoded_without_their_first_level() -> None:
    rows = [f"{row},{['b', 'a', 'c'][i % 3]}" for i, row in enumerate(SEX)]
    data = CSVRegressionData(write("t.csv", table("x1,sex,y,grp", rows)), target="y", categorical=["sex", "grp"])
    assert data.feature_names == ["x1", "sex[M]", "grp[b]", "grp[c]"]  # levels sorted; F and a are the reference
    assert data.levels == {"sex": ["F", "M"], "grp": ["a", "b", "c"]} and data.hparams["levels"] == data.levels
    assert data.x[:4].tolist() == [[0, 1, 1, 0], [1, 0, 0, 0], [2, 1, 0, 1], [3, 0, 1, 0]]
    reordered = CSVRegressionData("t.csv", target="y", categorical=["sex", "grp"], levels={"sex": ["M", "F"]})
    assert reordered.feature_names == ["x1", "sex[F]", "grp[b]", "grp[c]"]
    assert reordered.x[:2, 1].tolist() == [0, 1]


def test_numeric_codes_as_categories_sort_by_value(capsys: pytest.CaptureFixture[str]) -> None:
    rows = [f"{i},{[2, 10, 1][i % 3]},{i}" for i in range(9)]
    data = CSVRegressionData(write("t.csv", table("x1,code,y", rows)), target="y", categorical=["code"])
    assert data.levels == {"code": ["1", "2", "10"]} and data.feature_names == ["x1", "code[2]", "code[10]"]


def test_the_checkpoints_levels_encode_new_rows_alike() -> None:
    write("train.csv", table("x1,sex,y", SEX))
    data = CSVRegressionData("train.csv", target="y", categorical=["sex"])
    write("new.csv", table("sex,x1", ["M,1.5", "F,2.5", " M ,3"]))
    restored = CSVRegressionData(**{**data.hparams, "predict_csv": "new.csv"})  # as predict rebuilds it
    restored.setup("predict")
    assert restored.feature_names == ["x1", "sex[M]"] and restored.predict_rows[0].tolist() == [
        [1.5, 1],
        [2.5, 0],
        [3, 1],
    ]
    write("odd.csv", table("x1,sex", ["1,M", "2,X"]))
    message = "odd.csv line 3, column 'sex': 'X' is not one of the levels ['F', 'M'] that the model was trained with"
    with pytest.raises(UserError, match=re.escape(message)):
        CSVRegressionData(**{**data.hparams, "predict_csv": "odd.csv"})


def test_categorical_mistakes() -> None:
    path = write("t.csv", table("x1,sex,y", SEX))
    with pytest.raises(UserError, match=re.escape("data.categorical names ['gender'] that t.csv lacks")):
        CSVRegressionData(path, target="y", categorical=["gender"])
    with pytest.raises(UserError, match=re.escape("data.categorical names ['sex'], which data.features leaves out")):
        CSVRegressionData(path, target="y", features=["x1"], categorical=["sex"])
    with pytest.raises(UserError, match=re.escape("data.levels names ['x1'], which data.categorical does not")):
        CSVRegressionData(path, target="y", categorical=["sex"], levels={"x1": ["a", "b"]})
    one = write("one.csv", table("x1,sex,y", [row.replace(",F,", ",M,") for row in SEX]))
    message = "one.csv: the categorical column 'sex' has 1 level(s) ['M']: without its first level it adds no feature"
    with pytest.raises(UserError, match=re.escape(message)):
        CSVRegressionData(one, target="y", categorical=["sex"])
    gap = write("gap.csv", table("x1,sex,y", with_cell(3, 1, "NA", SEX)))
    with pytest.raises(UserError, match=re.escape("gap.csv line 5, column 'sex' is missing")):
        CSVRegressionData(gap, target="y", categorical=["sex"])
    assert len(CSVRegressionData(gap, target="y", categorical=["sex"], missing="drop").x) == 9


@pytest.mark.parametrize(
    ("header", "rows", "kwargs", "name"),
    [
        ('x1,"price, EUR",y', ["1,2,3"] * 4, {}, "price, EUR"),
        ('x1;y;"a ""b"""', ["1;2;3"] * 4, {"delimiter": ";", "target": 'a "b"'}, 'a "b"'),
        (
            "x1,city,y",
            [f"{i},{'Paris|Rome, IT'.split('|')[i % 2]},{i}" for i in range(4)],
            {"categorical": ["city"]},
            "city[Rome, IT]",
        ),
    ],
)
def test_a_name_that_predictions_csv_cannot_hold_is_refused(header: str, rows: list, kwargs: dict, name: str) -> None:
    path = write("t.csv", table(header, rows).replace("Rome, IT", '"Rome, IT"'))
    kwargs = {"target": "y", "train_split": 0.5, **kwargs}
    message = f"t.csv: the feature or target name {name!r} holds a comma, quote or line break"
    with pytest.raises(UserError, match=re.escape(message)):
        CSVRegressionData(path, **kwargs)


def test_the_file_values_are_kept_in_float64_for_the_exact_baselines() -> None:
    rows = [f"{i * 0.1 + 24.3},{i % 7 * 1.1},{3.3 * i + 0.7}" for i in range(50)]
    data = CSVRegressionData(write("t.csv", table("x1,x2,y", rows)), target="y", split="random", val_split=0.1)
    assert data.exact_rows()[0][0].tolist() == [24.3, 0.0] and data.x[0, 0].item() != 24.3  # float32 rounds it
    data.setup("fit")
    exact = {name: data.sample(name) for name in data.splits}  # every row of a split this small
    for name, (x, y) in data.splits.items():  # the same rows, in the same order, as the float32 splits
        assert exact[name][0].dtype == torch.float64 and torch.equal(exact[name][0].float(), x)
        assert torch.equal(exact[name][1].float(), y)
    expected = {float(line.split(",")[0]) for line in rows}
    assert set(exact["train"][0][:, 0].tolist()) <= expected  # the file's numbers, exactly


def test_the_exact_baselines_fit_the_files_values_not_their_float32_rounding() -> None:
    data = CSVRegressionData(write("longley.csv", LONGLEY), target="TOTEMP", train_split=0.75)  # 12 training rows
    data.setup("fit")
    exact, rounded = (
        ordinary_least_squares(*data.sample("train")),
        ordinary_least_squares(*data.splits["train"]),
    )
    a = np.loadtxt(LONGLEY.splitlines()[1:13], delimiter=",")  # the same rows, parsed by numpy
    expected = np.linalg.lstsq(np.column_stack([a[:, 1:], np.ones(12)]), a[:, 0], rcond=None)[0]
    np.testing.assert_allclose([*exact.weight.tolist(), exact.bias.item()], expected, rtol=1e-9)
    assert not np.allclose([*rounded.weight.tolist(), rounded.bias.item()], expected, rtol=1e-6)


def test_whitespace_bom_and_quotes_around_missing_and_categories(capsys: pytest.CaptureFixture[str]) -> None:
    text = '\ufeff x1 , sex ,y\n 1 , "M" ,3\n2,F , 4\n 3 ," NA ",5\n4, M,6\n5,F,7\n'
    data = CSVRegressionData(write("t.csv", text), target="y", categorical=["sex"], missing="drop", train_split=0.5)
    assert data.feature_names == ["x1", "sex[M]"] and data.x.tolist() == [[1, 1], [2, 0], [4, 1], [5, 0]]
    assert capsys.readouterr().out == "t.csv: dropped 1 of 5 rows for a missing value (line 4); 4 rows left\n"


def test_make_data_refuses_a_folder_or_one_file_for_both(capsys: pytest.CaptureFixture[str]) -> None:
    Path("data").mkdir()
    with pytest.raises(UserError, match=re.escape("--out data is a folder; give a file path, e.g. data/example.csv")):
        make_data(out="data")
    with pytest.raises(UserError, match=re.escape("--out and --new_rows_out are both data/a.csv; give two files")):
        make_data(out="data/a.csv", new_rows_out="./data/a.csv")
    assert error_line(capsys, "make-data", "--new_rows_out", "data") == (
        "lit-linreg: error: --new_rows_out data is a folder; give a file path, e.g. data/example.csv"
    )


def test_fit_and_predict_with_a_categorical_column(capsys: pytest.CaptureFixture[str]) -> None:
    rows = [f"{i / 10},{'ab'[i % 2]},{2 * i / 10 + 3 * (i % 2)}" for i in range(40)]
    write("t.csv", table("x1,grp,y", rows))
    args = ("--data.class_path", "lit_linreg.datasets.csv.CSVRegressionData", "--data.csv_path", "t.csv")
    args += ("--data.target", "y", "--data.categorical", "[grp]", "--trainer.max_epochs", "2")
    run("fit", *args, "--table.every_n_epochs", "0", "--figures.enabled", "false")
    write("new.csv", table("grp,x1", ["b,1", "a,2"]))
    capsys.readouterr()
    last = next(Path("checkpoints").glob("*/version_0/last.ckpt"))
    run("predict", "--ckpt_path", last, "--data.predict_csv", "new.csv")
    path = Path(capsys.readouterr().out.split("predictions: ")[1].split(" (")[0])
    lines = path.read_text().splitlines()
    assert lines[0] == "x1,grp[b],y_pred" and [line.split(",")[:2] for line in lines[1:]] == [["1", "1"], ["2", "0"]]
    write("odd.csv", table("grp,x1", ["c,1"]))
    line = error_line(capsys, "predict", "--ckpt_path", last, "--data.predict_csv", "odd.csv")
    assert line == (
        "lit-linreg: error: odd.csv line 2, column 'grp': 'c' is not one of the levels ['a', 'b'] that the model was "
        "trained with; fix the value, or retrain with data that hold it"
    )

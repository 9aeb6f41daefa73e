"""The baseline report after fit and test, and the CSV workflow end to end: make-data -> fit -> test -> predict."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from lit_linreg.datasets.csv import CSVRegressionData
from lit_linreg.errors import fixed_width, format_value, format_weight
from lit_linreg.report import format_console, format_markdown, report_table
from lit_linreg.task import LinearRegressionTask

from .helpers import CONFIGS, run, run_subprocess

METRICS = {"mae", "mse", "r2"}


def parameters(model: dict) -> np.ndarray:
    return np.array([*model["weight"], model["bias"]])


def test_tutorial_report_all_three_agree(capsys: pytest.CaptureFixture[str]) -> None:
    run("fit", "--config", CONFIGS / "base.yaml", "--table.every_n_epochs", "0")
    out = capsys.readouterr().out
    assert "baselines: OLS and LAD fitted in float64 on 40 training rows" in out
    assert "learned | 0.6954 | 0.2998 | 0.001977 |" in out and "LAD     | 0.7000 | 0.3000 | 0.000000 |" in out
    report = json.loads(Path("checkpoints/base/version_0/report.json").read_text())
    assert report["stage"] == "fit" and report["checkpoint"].endswith("checkpoints/base/version_0/last.ckpt")
    assert report["rows"] == {"train": 40, "test": 10, "baseline_fit": 40}
    models = report["models"]
    assert set(models) == {"learned", "true", "ols", "lad"}
    assert all(set(m) == {"weight", "bias", "train", "test"} and set(m["test"]) == METRICS for m in models.values())
    for name in ("true", "ols", "lad"):  # the noise-free line: exact up to the data's float32 rounding
        np.testing.assert_allclose(parameters(models[name]), [0.7, 0.3], atol=1e-6)
    assert [round(v, 4) for v in parameters(models["learned"])] == [0.6954, 0.2998]  # the tutorial's model
    assert models["lad"]["train"]["mae"] < 1e-7 < models["learned"]["train"]["mae"]

    events = EventAccumulator("lightning_logs/base/version_0").Reload()
    assert "report/text_summary" in events.Tags()["tensors"]
    # The table once, as text; as scalars (HPARAMS metrics) only the exact fits' L1, one point each at the end.
    baselines = sorted(tag for tag in events.Tags()["scalars"] if tag.startswith("hp/baseline/"))
    assert baselines == [f"hp/baseline/{m}_{split}_mae" for m in ("lad", "ols") for split in ("test", "train")]
    for tag in baselines:  # HPARAMS' result columns: one point each, where log_hyperparams puts them (step 0)
        model, split, _ = tag.removeprefix("hp/baseline/").split("_")
        (point,) = events.Scalars(tag)
        assert point.step == 0 and point.value == pytest.approx(models[model][split]["mae"], abs=1e-7)


def test_csv_fit_test_predict_and_the_report(capsys: pytest.CaptureFixture[str]) -> None:
    run("make-data")
    run("fit", "--config", CONFIGS / "csv_example.yaml", "--trainer.max_epochs", "150", "--table.every_n_epochs", "0")
    report = json.loads(Path("checkpoints/csv_example/version_0/report.json").read_text())
    assert report["features"] == ["x1", "x2", "x3"] and report["models"]["true"] is None
    assert report["rows"] == {"train": 800, "test": 100, "baseline_fit": 800}
    learned, ols, lad = (parameters(report["models"][name]) for name in ("learned", "ols", "lad"))
    assert abs(ols[-1] - lad[-1]) > 0.1  # the one-sided outliers pull least squares up, not least absolute deviations
    assert np.abs(learned - lad).max() < 0.01 < np.abs(learned - ols).max()  # L1 training approaches LAD
    train_l1 = {name: model["train"]["mae"] for name, model in report["models"].items() if model}
    assert train_l1["lad"] <= train_l1["learned"] < train_l1["ols"]

    fitted = Path("checkpoints/csv_example/version_0/report.json").read_bytes()
    capsys.readouterr()
    run("test", "--config", CONFIGS / "csv_example.yaml", "--ckpt_path", "best")
    written = capsys.readouterr().out.split("report: ")[1].split()[0]
    assert Path(written).parent == Path("lightning_logs/csv_example/version_0/test_0")  # beside the fit's logs
    assert Path("checkpoints/csv_example/version_0/report.json").read_bytes() == fitted  # the fit's is untouched
    tested = json.loads(Path(written).read_text())
    assert tested["stage"] == "test" and Path(tested["checkpoint"]).name.startswith("best-")
    assert tested["models"]["lad"] == report["models"]["lad"]
    capsys.readouterr()

    # The standardisation statistics in the checkpoint are the training split's.
    task = LinearRegressionTask.load_from_checkpoint("checkpoints/csv_example/version_0/last.ckpt")
    data = CSVRegressionData("data/example.csv", target="y", train_split=0.8, val_split=0.1, split="random")
    data.setup("fit")
    train = data.splits["train"][0].double()
    torch.testing.assert_close(task.feature_mean, train.mean(0).float())
    torch.testing.assert_close(task.feature_std, train.std(0, correction=0).float())

    # A fresh process, no --config: the checkpoint brings the CSV data class; the new rows replace the test split.
    result = run_subprocess(
        "predict",
        "--ckpt_path",
        "checkpoints/csv_example/version_0/last.ckpt",
        "--data.predict_csv",
        "data/new_rows.csv",
        "--trainer.enable_progress_bar",
        "false",
    )
    path = Path(result.stdout.split("predictions: ")[1].split(" (")[0])
    with open(path) as file:
        rows = list(csv.DictReader(file))
    assert list(rows[0]) == ["x1", "x2", "x3", "y_pred"] and len(rows) == 10
    new_rows = torch.from_numpy(np.loadtxt("data/new_rows.csv", delimiter=",", skiprows=1)).float()
    expected = task(new_rows)[:, 0].detach()
    torch.testing.assert_close(torch.tensor([float(r["y_pred"]) for r in rows]), expected)


@pytest.mark.parametrize(
    ("value", "six", "ten"),
    [
        (0.6954, "0.6954", "0.6954"),  # the tutorial's weights and biases: 4 decimals
        (-0.2, "-0.2000", "-0.2000"),
        (70.6123, "70.612", "70.6123"),  # significant digits first, then decimals
        (2645.3, "2645.3", "2645.30"),
        (-334.56712, "-334.57", "-334.567"),
        (0.00031, "0.0003", "0.0003"),
        (0.00003, "3e-05", "3.0000e-05"),  # below 1e-4: not 0.0000
        (-0.00003, "-3e-05", "-3.0000e-05"),
        (0.0, "0.0000", "0.0000"),
        (-0.0, "0.0000", "0.0000"),
        (1234567.0, "1e+06", "1.2346e+06"),  # from 1e6: scientific
        (-3482258.6, "-3e+06", "-3.4823e+06"),
    ],
)
def test_weights_read_as_numbers(value: float, six: str, ten: str) -> None:
    assert format_value(value).strip() == six and format_value(value, 10).strip() == ten
    assert len(format_value(value)) <= 6 + (value < 0) or "e" in six  # the table's column keeps its width


def test_losses_keep_six_decimals_and_their_column() -> None:
    assert [fixed_width(v, 10, 6) for v in (0.312881, 0.001977, 3e-9, 0.0)] == [
        "  0.312881",
        "  0.001977",
        "  0.000000",  # a loss of 3e-9 is 0 to the table's 6 decimals
        "  0.000000",
    ]
    assert [fixed_width(v, 10, 6).strip() for v in (2238.938578, 15313.3422, 3.1e7)] == [
        "2238.94",
        "15313.3",
        "3.1000e+07",
    ]
    assert format_weight(torch.tensor([70.6123, -0.00003, 2645.3])) == "[70.612, -3e-05, 2645.3]"


def _report(features: list[str]) -> dict:
    errors = {"mae": 38.123456789, "mse": 2900.5, "r2": 0.5012}
    model = {"weight": [0.5 + i for i in range(len(features))], "bias": 152.13, "train": errors, "test": errors}
    return {"features": features, "models": {"learned": model, "true": None, "ols": model, "lad": model}}


def test_the_table_names_the_weights() -> None:
    header, rows = report_table(_report(["x"]))  # the synthetic data: the tutorial's header
    assert header == ["model", "weight", "bias", "train L1", "test L1", "test MSE", "test R²"]
    assert rows[0] == ["learned", "0.5000", "152.130", "38.1235", "38.1235", "2900.50", "0.5012"]
    assert [row[0] for row in rows] == ["learned", "OLS", "LAD"]
    assert report_table(_report(["income"]))[0][1] == "weight[income]"
    names = ["age", "sex[M]", "bmi", "bp", "s1", "s2", "s3", "s4", "s5", "s6"]
    for features in (names[:3], names):  # a row per weight, the bias and each error; a column per model
        header, rows = report_table(_report(features))
        assert header == ["", "learned", "OLS", "LAD"]
        assert [row[0] for row in rows] == [*features, "bias", "train L1", "test L1", "test MSE", "test R²"]
        assert rows[1] == ["sex[M]", "1.5000", "1.5000", "1.5000"] and rows[-1][1:] == ["0.5012"] * 3
    console = format_console(header, rows).splitlines()
    assert console[1] == "age      |  0.5000 |  0.5000 |  0.5000" and len({len(line) for line in console}) == 1
    assert format_markdown(header, rows).splitlines()[1] == "| --- | --- | --- | --- |"


def test_a_target_in_the_hundreds_trains_to_the_exact_optimum_with_the_readme_settings(capsys) -> None:
    """The README's CSV settings (standardised features and target, lr 0.05, 1000 full-batch epochs) reach the exact
    LAD line's train L1 within 2 % on a table whose target is in the hundreds: the L1 gradient is bounded, so without
    the target's standardisation the bias could move at most lr per epoch."""
    run("make-data", "--scale", "300", "--out", "data/scaled.csv", "--new_rows_out", "data/scaled_new.csv")
    run("fit", "--config", CONFIGS / "csv_example.yaml", "--data.csv_path", "data/scaled.csv", "--run_name", "scaled")
    out = capsys.readouterr().out
    report = json.loads(Path("checkpoints/scaled/version_0/report.json").read_text())
    y = np.loadtxt("data/scaled.csv", delimiter=",", skiprows=1)[:, -1]
    assert np.abs(y).mean() > 100  # a target in the hundreds
    verdict = report["convergence"]
    assert verdict["converged"] and verdict["ratio"] <= 1.02 and "warning: training stopped" not in out
    # Without standardising the target, the same settings stop far from the optimum, and the fit says so.
    run(
        "fit",
        "--config",
        CONFIGS / "csv_example.yaml",
        "--data.csv_path",
        "data/scaled.csv",
        "--run_name",
        "raw",
        "--data.standardize",
        "false",
        "--trainer.max_epochs",
        "200",
    )
    out = capsys.readouterr().out
    raw = json.loads(Path("checkpoints/raw/version_0/report.json").read_text())["convergence"]
    assert not raw["converged"] and raw["ratio"] > 1.02
    assert "warning: training stopped at" in out and "lit-linreg lr-sweep" in out

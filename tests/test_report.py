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

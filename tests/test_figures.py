"""FigureWriter: the figures of fit, test and predict, as PNG files in the run's log directory and in TensorBoard."""

from __future__ import annotations

import csv
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pytest
from matplotlib.figure import Figure
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

import lit_linreg.callbacks
from lit_linreg.callbacks import FigureWriter
from lit_linreg.cli import LitLinregCLI

from .helpers import CONFIGS, run

QUICK = ("--config", CONFIGS / "base.yaml", "--trainer.max_epochs", "20", "--table.every_n_epochs", "0")
FIT_FIGURES = ["1_data", "2_predictions_before_training", "3_predictions_after_training", "4_loss_curves"]


@pytest.fixture
def drawn(monkeypatch: pytest.MonkeyPatch) -> dict[str, Figure]:
    """The Figure behind each PNG the runs write, by file stem (the writer still saves them)."""
    figures: dict[str, Figure] = {}
    save_png = lit_linreg.callbacks.save_png

    def record(fig: Figure, path: Path) -> np.ndarray:
        figures[Path(path).stem] = fig
        return save_png(fig, path)

    monkeypatch.setattr(lit_linreg.callbacks, "save_png", record)
    return figures


def points(fig: Figure) -> dict[str, np.ndarray]:
    return points_of(fig.axes[0])


def points_of(ax) -> dict[str, np.ndarray]:
    return {c.get_label(): np.asarray(c.get_offsets()) for c in ax.collections}


def image_tags(log_dir: Path) -> list[str]:
    return EventAccumulator(str(log_dir), size_guidance={"images": 0}).Reload().Tags()["images"]


def test_fit_writes_figures_1_to_4_to_the_log_dir_and_tensorboard(drawn: dict[str, Figure]) -> None:
    cli = LitLinregCLI(args=["fit", *map(str, QUICK)])
    assert plt.get_fignums() == []  # no figure registered with pyplot: nothing left open, no display needed
    log_dir = Path("lightning_logs/base/version_0")
    assert sorted(p.stem for p in log_dir.glob("*.png")) == FIT_FIGURES
    assert image_tags(log_dir) == [f"figures/{name}" for name in FIT_FIGURES]

    data, before, after, losses = (drawn[name] for name in FIT_FIGURES)
    assert {k: len(v) for k, v in points(data).items()} == {"train data": 40, "test data": 10}
    assert data.axes[0].get_title() == "The data: 40 train and 10 test rows\ntrue line: w=0.7000, b=0.3000"
    # Before the first step: the tutorial's seed-42 model, w=0.3367, b=0.1288, on the test split.
    x_test = np.arange(0, 1, 0.02)[40:]
    np.testing.assert_allclose(points(before)["predictions"][:, 1], 0.3367 * x_test + 0.1288, atol=1e-4)
    assert before.axes[0].get_title().splitlines() == [
        "Predictions on the test split before training",
        "manual model: w=0.3367, b=0.1288 | true w=0.7000, b=0.3000",
    ]
    assert after.axes[0].get_title().startswith("Predictions on the test split after training (epoch 19)\nmanual")

    # The loss curves are the values the run published and logged: 20 epochs of each; full batch: no step curve.
    writer = next(c for c in cli.trainer.callbacks if isinstance(c, FigureWriter))
    scalars = EventAccumulator(str(log_dir)).Reload()
    assert [line.get_label() for line in losses.axes[0].lines] == ["train loss", "val loss"]
    for name, tag, line in zip(("train_loss", "val_loss"), ("train_loss", "val_loss"), losses.axes[0].lines):
        np.testing.assert_array_equal(line.get_xdata(), np.arange(20))
        np.testing.assert_allclose(line.get_ydata(), [e.value for e in scalars.Scalars(tag)], rtol=1e-6)
        np.testing.assert_array_equal(line.get_ydata(), writer.curves()[name][1])
    assert writer.every_n_steps == 0 and len(writer.step_curve()[0]) == 0


def test_test_and_predict_write_their_figures(drawn: dict[str, Figure], capsys: pytest.CaptureFixture[str]) -> None:
    run("fit", *QUICK)
    run("test", "--config", CONFIGS / "base.yaml", "--ckpt_path", "last")
    assert (Path("lightning_logs/base/version_0/test_0/3_predictions_after_training.png")).is_file()
    assert "evaluated model" in drawn["3_predictions_after_training"].axes[0].get_title()

    capsys.readouterr()
    run("predict", "--ckpt_path", "checkpoints/base/version_0/last.ckpt", "--data.predict_x", "[0.5, 2.0]")
    out = capsys.readouterr().out
    csv_path = Path(out.split("predictions: ")[1].split(" (")[0])
    assert (csv_path.parent / "5_predictions.png").is_file()  # beside predictions.csv
    assert f"figures: {csv_path.parent} (5_predictions.png)" in out
    assert image_tags(csv_path.parent) == ["figures/5_predictions"]
    with open(csv_path) as file:
        rows = [(float(r["x"]), float(r["y_pred"])) for r in csv.DictReader(file)]
    predicted = points(drawn["5_predictions"])
    assert list(predicted) == ["train data", "test data", "predictions"]
    np.testing.assert_allclose(predicted["predictions"], rows, rtol=1e-6)


def test_figures_can_be_switched_off(drawn: dict[str, Figure]) -> None:
    run("fit", *QUICK, "--figures.enabled", "false")
    assert drawn == {} and not list(Path("lightning_logs").rglob("*.png"))
    assert image_tags(Path("lightning_logs/base/version_0")) == []


def test_a_logger_without_images_still_gets_the_png_files() -> None:
    run("fit", *QUICK, "--trainer.logger", "lightning.pytorch.loggers.CSVLogger", "--trainer.logger.save_dir", "csv")
    assert sorted(p.stem for p in Path("csv/lightning_logs/version_0").glob("*.png")) == FIT_FIGURES


def test_several_features_and_a_val_split(drawn: dict[str, Figure], capsys: pytest.CaptureFixture[str]) -> None:
    features = ("--data.weight", "[0.7, -0.2, 0.1]", "--model.variant", "linear")
    cli = LitLinregCLI(
        args=["fit", *map(str, QUICK), "--data.num_samples", "100", *features, "--data.val_split", "0.1"]
    )
    data = drawn["1_data"]  # y against each feature, side by side
    assert data.get_suptitle().startswith("The data: 80 train, 10 val and 10 test rows\n")
    assert [ax.get_xlabel() for ax in data.axes] == ["x0", "x1", "x2"]
    assert all(list(points_of(ax)) == ["train data", "val data", "test data"] for ax in data.axes)
    train = [points_of(ax)["train data"] for ax in data.axes]  # the same 80 rows: feature i against the same y
    assert all(len(p) == 80 for p in train) and all((p[:, 1] == train[0][:, 1]).all() for p in train)
    assert not np.array_equal(train[0][:, 0], train[1][:, 0])

    # The test split's predictions against its true y, around the line of perfect predictions.
    (ax,) = drawn["3_predictions_after_training"].axes
    assert (ax.get_xlabel(), ax.get_ylabel()) == ("true y", "predicted y")
    assert ax.get_title().splitlines()[2] == "true w=[0.7000, -0.2000, 0.1000], b=0.3000"
    assert len(points(drawn["3_predictions_after_training"])["test split"]) == 10
    assert [line.get_label() for line in ax.lines] == ["perfect: predicted = true"]
    predicted = points(drawn["3_predictions_after_training"])["test split"]
    x_test, y_test = cli.datamodule.splits["test"]
    np.testing.assert_allclose(predicted[:, 0], y_test[:, 0].numpy())
    np.testing.assert_allclose(predicted[:, 1], cli.model(x_test)[:, 0].detach().numpy(), rtol=1e-6)

    # predict: the new rows over the data, against each feature.
    capsys.readouterr()
    run("predict", "--ckpt_path", "checkpoints/base/version_0/last.ckpt", "--data.predict_x", "[[0.1, 0.2, 0.3]]")
    csv_path = Path(capsys.readouterr().out.split("predictions: ")[1].split(" (")[0])
    with open(csv_path) as file:
        (row,) = csv.DictReader(file)
    figure = drawn["5_predictions"]
    for i, ax in enumerate(figure.axes):
        np.testing.assert_allclose(points_of(ax)["predictions"], [[float(row[f"x{i}"]), float(row["y_pred"])]])


def test_a_resumed_fit_says_so_and_plots_its_own_epochs(drawn: dict[str, Figure]) -> None:
    run("fit", *QUICK)
    run("fit", *QUICK[:2], "--trainer.max_epochs", "30", "--table.every_n_epochs", "0", "--ckpt_path", "last")
    assert (
        drawn["2_predictions_before_training"]
        .axes[0]
        .get_title()
        .startswith("Predictions on the test split resumed at epoch 20\n")
    )
    np.testing.assert_array_equal(drawn["4_loss_curves"].axes[0].lines[0].get_xdata(), np.arange(20, 30))


def test_minibatch_loss_curves_every_k_steps_and_thousands_separators(
    drawn: dict[str, Figure], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(lit_linreg.callbacks, "STEP_POINTS", 30)  # 80 steps in all: every 3rd
    cli = LitLinregCLI(
        args=["fit", *map(str, QUICK), "--model.variant", "linear", "--data.num_samples", "2000"]
        + ["--data.noise_std", "0.1", "--data.batch_size", "400"]  # 1,600 training rows: 4 steps per epoch
    )
    assert drawn["1_data"].axes[0].get_title().startswith("The data: 1,600 train and 400 test rows\n")
    writer = next(c for c in cli.trainer.callbacks if isinstance(c, FigureWriter))
    assert writer.every_n_steps == 3
    (ax,) = drawn["4_loss_curves"].axes
    assert ax.get_title().startswith("Loss per epoch, and every 3 steps\n")
    steps, train, val = ax.lines
    assert [line.get_label() for line in ax.lines] == [
        "train loss (every 3 steps)",
        "train loss (epoch mean)",
        "val loss",
    ]
    # Steps 0 and 3 of each epoch (batch_idx % 3 == 0), at the fraction of the epoch done after them.
    expected = [epoch + done for epoch in range(20) for done in (1 / 4, 4 / 4)]
    np.testing.assert_allclose(steps.get_xdata(), expected)
    np.testing.assert_array_equal(steps.get_ydata(), writer.step_curve()[1])
    assert np.isfinite(steps.get_ydata()).all() and steps.get_ydata()[-1] < steps.get_ydata()[0]
    np.testing.assert_array_equal(train.get_xdata(), np.arange(20) + 0.5)  # an epoch's mean: mid-epoch
    np.testing.assert_array_equal(val.get_xdata(), np.arange(20) + 1.0)  # validation: after the epoch
    np.testing.assert_array_equal(val.get_ydata(), writer.curves()["val_loss"][1])

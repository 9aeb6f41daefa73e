"""The plotting functions: each figure's artists, labels and series (not its pixels), and the PNG they render to."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from matplotlib.colors import to_rgba
from PIL import Image

from lit_linreg.plots import (
    CLOUD_POINTS,
    MAX_PANELS,
    LossPanel,
    features_figure,
    format_numbers,
    gradient_figure,
    loss_figure,
    lr_finder_figure,
    predicted_vs_true_figure,
    predictions_figure,
    save_png,
    single_axes,
)

X = np.arange(0, 1, 0.02)
Y = 0.7 * X + 0.3
SPLITS = {"train": (X[:40], Y[:40]), "test": (X[40:], Y[40:])}


def scatter_points(ax) -> dict[str, np.ndarray]:
    """Each scatter's label -> its (n, 2) points."""
    return {c.get_label(): np.asarray(c.get_offsets()) for c in ax.collections}


def test_predictions_figure_is_the_tutorials_plot_predictions() -> None:
    predictions = (X[40:], 0.3367 * X[40:] + 0.1288)
    fig = predictions_figure(SPLITS, predictions, title="before training", xlabel="x")
    (ax,) = fig.axes
    points = scatter_points(ax)
    assert list(points) == ["train data", "test data", "predictions"]
    assert points["train data"].shape == (40, 2) and points["test data"].shape == (10, 2)
    np.testing.assert_allclose(points["predictions"], np.column_stack(predictions))
    train, test, predicted = ax.collections
    assert [tuple(c.get_facecolor()[0]) for c in (train, test)] == [to_rgba("b"), to_rgba("g")]  # the tutorial's
    # Its red predictions as rings on top: larger than the data points, which still show inside them.
    assert tuple(predicted.get_edgecolor()[0]) == to_rgba("r") and len(predicted.get_facecolor()) == 0
    assert predicted.get_zorder() > max(train.get_zorder(), test.get_zorder())
    assert predicted.get_sizes()[0] > max(train.get_sizes()[0], test.get_sizes()[0])
    assert (ax.get_xlabel(), ax.get_ylabel(), ax.get_title()) == ("x", "y", "before training")
    assert ax.get_legend() is None  # the legend sits below the axes, never over a point
    assert [t.get_text() for t in fig.legends[0].get_texts()] == ["train data", "test data", "predictions"]


def test_predictions_over_a_dense_cloud_thin_the_cloud_not_the_predictions() -> None:
    rng = np.random.default_rng(0)
    x = rng.random(5000)
    splits = {"train": (x[:4000], 0.7 * x[:4000] + 0.3), "test": (x[4000:], 0.7 * x[4000:] + 0.3)}
    (ax,) = predictions_figure(splits, (x[4000:], 0.5 * x[4000:]), title="dense").axes
    train, test, predicted = ax.collections
    assert [len(c.get_offsets()) for c in ax.collections] == [CLOUD_POINTS, 1000, 1000]
    assert train.get_alpha() < 1 and train.get_sizes()[0] < predicted.get_sizes()[0]  # small, translucent
    # Without predictions, the data figure keeps every point it is given.
    (data_ax,) = predictions_figure(splits, title="data").axes
    assert [len(c.get_offsets()) for c in data_ax.collections] == [4000, 1000]
    many = predictions_figure(splits, (x, 0.5 * x), title="many").axes[0].collections[2]
    assert len(many.get_offsets()) == 5000 and tuple(many.get_facecolor()[0]) == to_rgba("r")  # a band of dots


def test_features_figure_plots_y_against_each_feature() -> None:
    rng = np.random.default_rng(0)
    x = rng.random((50, 6))
    y = x.sum(1)
    fig = features_figure({"train": (x[:40], y[:40])}, (x[40:], y[40:]), title="data", feature_names=list("abcdef"))
    assert len(fig.axes) == MAX_PANELS and [ax.get_xlabel() for ax in fig.axes] == ["a", "b", "c", "d"]
    assert fig.get_suptitle() == "data (the first 4 of 6 features)"
    for i, ax in enumerate(fig.axes):
        points = scatter_points(ax)
        np.testing.assert_array_equal(points["train data"], np.column_stack([x[:40, i], y[:40]]))
        np.testing.assert_array_equal(points["predictions"], np.column_stack([x[40:, i], y[40:]]))
    assert fig.axes[0].get_ylabel() == "y" and len(fig.legends) == 1


def test_predicted_vs_true_figure_has_the_line_of_perfect_predictions(tmp_path: Path) -> None:
    y_true = np.array([-2.0, 0.0, 1.0, 5.0])
    y_pred = np.array([-1.8, 0.1, 1.0, 1.2])
    fig = predicted_vs_true_figure(y_true, y_pred, title="after training")
    (ax,) = fig.axes
    np.testing.assert_array_equal(scatter_points(ax)["test split"], np.column_stack([y_true, y_pred]))
    (line,) = ax.lines
    assert line.get_label() == "perfect: predicted = true"
    save_png(fig, tmp_path / "pvt.png")
    low, high = ax.get_xlim()
    assert low < -2 and high > 5 and ax.get_ylim()[0] < -2  # every point inside, on equal axes
    assert (ax.get_xlabel(), ax.get_ylabel()) == ("true y", "predicted y")


def test_predictions_figure_without_predictions_shows_the_data() -> None:
    (ax,) = predictions_figure(SPLITS, title="data").axes
    assert list(scatter_points(ax)) == ["train data", "test data"]


def test_single_loss_panel() -> None:
    epochs = np.arange(20)
    curves = {"train loss": (epochs, np.linspace(0.3, 0.01, 20)), "val loss": (epochs, np.linspace(0.5, 0.02, 20))}
    fig = loss_figure([LossPanel("Loss per epoch", curves)], ylabel="L1 loss (MAE)")
    (ax,) = fig.axes
    assert [line.get_label() for line in ax.lines] == ["train loss", "val loss"]
    for line, (x, y) in zip(ax.lines, curves.values()):
        np.testing.assert_array_equal(line.get_xdata(), x)
        np.testing.assert_array_equal(line.get_ydata(), y)
    assert (ax.get_xlabel(), ax.get_ylabel(), ax.get_title(), ax.get_yscale()) == (
        "epoch",
        "L1 loss (MAE)",
        "Loss per epoch",
        "linear",
    )
    assert [t.get_text() for t in fig.legends[0].get_texts()] == ["train loss", "val loss"]


def test_loss_panel_with_a_step_curve() -> None:
    steps = (np.arange(1, 301) / 100, np.linspace(0.5, 0.1, 300))
    curves = {
        "train loss (epoch mean)": (np.arange(3) + 0.5, [0.3, 0.12, 0.1]),
        "val loss": (np.arange(3) + 1.0, [0.2] * 3),
    }
    fig = loss_figure([LossPanel("steps", curves, lines={"train loss (every step)": steps})])
    (ax,) = fig.axes
    line, *points = ax.lines
    assert line.get_label() == "train loss (every step)" and line.get_linestyle() == "-"
    np.testing.assert_array_equal(line.get_xdata(), steps[0])
    assert [p.get_marker() for p in points] == ["o", "o"] and all(p.get_markersize() >= 5 for p in points)  # 3 each
    assert [t.get_text() for t in fig.legends[0].get_texts()] == ["train loss (every step)", *curves]


def test_loss_panels_side_by_side() -> None:
    epochs = np.arange(30)
    panels = [
        LossPanel(
            f"lr = {lr}",
            {"train loss": (epochs, np.full(30, lr)), "val loss": (epochs, np.full(30, 2 * lr))},
            color,
            mark,
        )
        for lr, color, mark in [
            (0.1, "darkgreen", 7),
            (0.2, "darkorange", None),
            (0.3, "firebrick", None),
            (0.4, "darkgreen", 3),
            (0.5, "darkgreen", 1),
        ]
    ]
    fig = loss_figure(panels, title="sweep", log_scale=True)
    assert len(fig.axes) == 5 and fig.axes[0].get_subplotspec().get_gridspec().get_geometry() == (2, 3)
    for ax, panel in zip(fig.axes, panels):
        assert ax.get_title() == panel.title and ax.title.get_color() == panel.title_color
        assert ax.get_yscale() == "log"
        assert [len(line.get_xdata()) for line in ax.lines] == [30, 30] + ([2] if panel.mark_epoch else [])
    assert fig.axes[0].lines[2].get_xdata()[0] == 7  # the converged epoch, dotted
    assert len(fig.legends) == 1 and not any(ax.get_legend() for ax in fig.axes)  # one, outside the panels
    assert [t.get_text() for t in fig.legends[0].get_texts()] == ["train loss", "val loss"]
    assert fig.get_suptitle() == "sweep"


def test_gradient_figure_has_the_tutorials_three_panels() -> None:
    w = np.linspace(-1, 6, 100)
    loss, gradient = (2 * w - 4) ** 2, 4 * (2 * w - 4)
    steps = (np.array([0.5, 1.7, 1.94]), np.array([9.0, 0.36, 0.0144]))
    fig = gradient_figure(w, loss, gradient, steps, 2.0)
    loss_ax, gradient_ax, descent_ax = fig.axes
    assert [line.get_label() for line in loss_ax.lines] == ["MSE loss", "optimum w=2.0"]
    assert loss_ax.lines[1].get_xdata()[0] == 2.0
    np.testing.assert_array_equal(gradient_ax.lines[0].get_ydata(), gradient)
    assert gradient_ax.get_ylabel() == "dL/dw"
    trajectory = next(line for line in descent_ax.lines if line.get_label() == "gradient-descent steps")
    np.testing.assert_array_equal(trajectory.get_xdata(), steps[0])
    assert all(ax.get_xlabel() == "weight w" and ax.get_legend() is not None for ax in fig.axes)


def test_lr_finder_figure_marks_the_suggestion() -> None:
    lrs = np.logspace(-6, 0, 50)
    (ax,) = lr_finder_figure(lrs, np.linspace(0.3, 0.2, 50), 0.01, title="finder").axes
    assert ax.get_xscale() == "log" and len(ax.lines[0].get_xdata()) == 50
    assert ax.lines[1].get_xdata()[0] == 0.01 and ax.lines[1].get_label() == "suggestion lr=0.01"


def test_save_png_renders_once_and_returns_the_pixels(tmp_path: Path) -> None:
    fig = predictions_figure(SPLITS, title="data")
    pixels = save_png(fig, tmp_path / "sub" / "data.png")
    assert pixels.shape == (450, 700, 4) and pixels.dtype == np.uint8  # 7 x 4.5 inches at 100 dpi
    with Image.open(tmp_path / "sub" / "data.png") as image:
        assert image.format == "PNG" and image.size == (700, 450)
        np.testing.assert_array_equal(np.asarray(image.convert("RGBA")), pixels)


def test_save_png_widens_fixed_margins_that_would_clip_a_label(tmp_path: Path) -> None:
    fig, ax = single_axes("a title")
    ax.set_yticks([0, 1], ["a tick label far too long for the left margin", "1"])
    left = fig.subplotpars.left
    save_png(fig, tmp_path / "wide.png")
    box = ax.get_tightbbox(fig.canvas.get_renderer())
    assert fig.subplotpars.left > left and box.x0 >= 0 and box.y1 <= fig.bbox.y1


def test_single_axes_wraps_long_titles() -> None:
    _, ax = single_axes("short\n" + "word " * 30)
    assert [len(line) <= 66 for line in ax.get_title().splitlines()] == [True] * 4


@pytest.mark.parametrize(
    ("values", "text"),
    [([0.69541], "0.6954"), ([0.7, 0.3], "[0.7000, 0.3000]"), ([1, 2, 3, 4], "[1.0000, 2.0000, 3.0000, ...]")],
)
def test_format_numbers(values: list[float], text: str) -> None:
    assert format_numbers(values) == text

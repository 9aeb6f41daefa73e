"""The plotting functions: each figure's artists, labels and series (not its pixels), and the PNG they render to."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from matplotlib.colors import to_rgba
from PIL import Image

from lit_linreg.analysis.plots import (
    LossPanel,
    format_numbers,
    gradient_figure,
    loss_figure,
    lr_finder_figure,
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
    colors = [tuple(c.get_facecolor()[0]) for c in ax.collections]
    assert colors == [to_rgba("b"), to_rgba("g"), to_rgba("r")]  # the tutorial's blue, green and red
    assert (ax.get_xlabel(), ax.get_ylabel(), ax.get_title()) == ("x", "y", "before training")
    assert ax.get_legend() is None  # the legend sits below the axes, never over a point
    assert [t.get_text() for t in fig.legends[0].get_texts()] == ["train data", "test data", "predictions"]


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

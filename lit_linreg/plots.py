"""Plots: the tutorial's figures as pure functions, arrays in and a matplotlib ``Figure`` out.

No pyplot and no global state: every figure is a ``matplotlib.figure.Figure`` on the non-interactive Agg canvas, so
nothing needs a display and nothing stays registered once the figure is dropped. ``save_png`` renders a figure once
and returns its pixels, which TensorBoard's ``add_image(..., dataformats="HWC")`` takes as they are.
"""

from __future__ import annotations

import math
import os
import textwrap
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import NamedTuple

import numpy as np
from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.image import imsave
from matplotlib.lines import Line2D

from lit_linreg.files import atomic_write

DPI = 100
LEGEND_INCHES = 0.45  # the strip under a single_axes figure that holds its legend
TITLE_CHARACTERS = 66  # what a title line of a 7-inch figure holds
SPLIT_COLORS = {"train": "b", "val": "tab:orange", "test": "g"}  # the tutorial's blue train and green test points
CLOUD_POINTS = 1000  # per split, under predictions: a denser cloud would hide them
MAX_PANELS = 4  # features drawn side by side

Points = tuple[np.ndarray, np.ndarray]  # (x, y): 1-D arrays of equal length


class LossPanel(NamedTuple):
    """One axes of loss curves: ``curves`` maps a label to (epochs, losses), drawn as points, ``lines`` to a line
    (e.g. the loss every k steps, at fractional epochs) drawn beneath them; ``mark_epoch`` draws a dotted line."""

    title: str
    curves: Mapping[str, Points]
    title_color: str = "black"
    mark_epoch: int | None = None
    lines: Mapping[str, Points] = {}


def format_numbers(values: np.ndarray | Sequence[float]) -> str:
    """``0.6954`` for one value, ``[0.7000, 0.3000, 0.1000, ...]`` (the first three) for several."""
    values = np.asarray(values, dtype=np.float64).ravel()
    shown = ", ".join(f"{v:.4f}" for v in values[:3]) + (", ..." if len(values) > 3 else "")
    return shown if len(values) == 1 else f"[{shown}]"


def new_figure(width: float, height: float) -> Figure:
    """A figure of ``width`` x ``height`` inches on the Agg canvas, laid out so that no label is clipped."""
    fig = Figure(figsize=(width, height), dpi=DPI, layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def single_axes(title: str) -> tuple[Figure, Axes]:
    """A 7 x 4.5 inch figure with one axes, room above for ``title``'s lines and below for a legend.

    Fixed margins instead of a layout engine, which would make up half the drawing time of the figures every run
    draws; ``save_png`` widens them in the rare figure whose labels do not fit. Title lines wrap at 66 characters.
    """
    fig = Figure(figsize=(7, 4.5), dpi=DPI)
    FigureCanvasAgg(fig)
    title = "\n".join(textwrap.fill(line, TITLE_CHARACTERS) for line in title.splitlines())
    lines = title.count("\n") + 1
    fig.subplots_adjust(left=0.1, right=0.97, bottom=0.19, top=1 - (0.1 + 0.22 * lines) / 4.5)
    ax = fig.add_subplot()
    ax.set_title(title)
    return fig, ax


def predictions_figure(
    splits: Mapping[str, Points], predictions: Points | None = None, *, title: str, xlabel: str = "x"
) -> Figure:
    """The tutorial's ``plot_predictions``: the data points of each split (train blue, test green), predictions red.

    The predictions are drawn on top, larger and outlined, so that they show over any data; under them each split's
    cloud is thinned to ``CLOUD_POINTS`` and, when it is dense, drawn small and translucent.
    """
    fig, ax = single_axes(title)
    _scatter_data(ax, splits, thin=predictions is not None)
    if predictions is not None:
        _scatter_predictions(ax, *predictions, label="predictions")
    ax.set(xlabel=xlabel, ylabel="y")
    ax.grid(alpha=0.3)
    _legend_below(fig, ax)
    return fig


def features_figure(
    splits: Mapping[str, tuple[np.ndarray, np.ndarray]],
    predictions: tuple[np.ndarray, np.ndarray] | None = None,
    *,
    title: str,
    feature_names: Sequence[str],
) -> Figure:
    """Several features: y against each feature (the first ``MAX_PANELS``), side by side on a shared y axis.

    ``splits`` and ``predictions`` hold (rows, features) arrays and their y; predictions are drawn as in
    :func:`predictions_figure`.
    """
    count = min(len(feature_names), MAX_PANELS)
    shown = "" if count == len(feature_names) else f" (the first {count} of {len(feature_names)} features)"
    fig = new_figure(max(7.0, 3.0 * count), 4.3)
    axes = fig.subplots(1, count, sharey=True, squeeze=False)[0]
    for i, ax in enumerate(axes):
        _scatter_data(ax, {name: (x[:, i], y) for name, (x, y) in splits.items()}, thin=predictions is not None)
        if predictions is not None:
            _scatter_predictions(ax, predictions[0][:, i], predictions[1], label="predictions")
        ax.set_xlabel(feature_names[i])
        ax.grid(alpha=0.3)
    axes[0].set_ylabel("y")
    _legend_below(fig, axes[0])
    fig.suptitle(title + shown, fontsize="large")
    return fig


def predicted_vs_true_figure(y_true: np.ndarray, y_pred: np.ndarray, *, title: str) -> Figure:
    """Predicted against true y on equal axes, with the line y = x that a perfect model's points would lie on."""
    fig, ax = single_axes(title)
    fig.set_size_inches(5.0, 5.2)  # near square: equal axes in the usual 7 x 4.5 inches leave wide empty margins
    both = np.concatenate([y_true, y_pred])
    low, high = (float(both.min()), float(both.max())) if both.size else (0.0, 1.0)
    pad = 0.05 * (high - low or 1.0)
    ax.axline((low, low), slope=1, ls="--", color="0.4", lw=1.2, label="perfect: predicted = true")
    _scatter_predictions(ax, y_true, y_pred, label="test split")
    ax.set(xlabel="true y", ylabel="predicted y", xlim=(low - pad, high + pad), ylim=(low - pad, high + pad))
    ax.set_aspect("equal", adjustable="box")
    ax.grid(alpha=0.3)
    _legend_below(fig, ax)
    return fig


def _scatter_data(ax: Axes, splits: Mapping[str, Points], thin: bool) -> None:
    """Each split's points in its colour: small and translucent when dense; at most CLOUD_POINTS each if ``thin``."""
    total = sum(len(x) for x, _ in splits.values())
    dense = total > 200
    for name, (x, y) in splits.items():
        if thin and len(x) > CLOUD_POINTS:
            step = math.ceil(len(x) / CLOUD_POINTS)
            x, y = x[::step], y[::step]
        ax.scatter(
            x, y, c=SPLIT_COLORS.get(name), s=5 if dense else 12, alpha=0.35 if dense else 1.0, label=f"{name} data"
        )


def _scatter_predictions(ax: Axes, x: np.ndarray, y: np.ndarray, label: str) -> None:
    """Red rings on top of the data, which still shows inside them; when many, a band of small red dots."""
    if len(x) > 1000:
        ax.scatter(x, y, s=10, c="r", linewidths=0, zorder=3, label=label)
    else:
        size = 60 if len(x) <= 100 else 25
        ax.scatter(x, y, s=size, facecolors="none", edgecolors="r", linewidths=1.8, zorder=3, label=label)


def loss_figure(
    panels: Sequence[LossPanel], *, title: str | None = None, log_scale: bool = False, ylabel: str = "L1 loss"
) -> Figure:
    """Loss curves per epoch: one panel full size, several side by side (4 per row at most) on a shared y axis."""
    rows = math.ceil(len(panels) / 4)
    columns = math.ceil(len(panels) / rows)
    if len(panels) == 1:
        fig, ax = single_axes(panels[0].title)
        axes = np.array([ax])
    else:
        fig = new_figure(3.2 * columns, 2.9 * rows + 0.9)
        axes = fig.subplots(rows, columns, sharey=True, squeeze=False).ravel()
    for ax, panel in zip(axes, panels):
        for label, (epochs, losses) in panel.lines.items():
            ax.plot(epochs, losses, "-", lw=0.8, color="0.55", label=label)
        for label, (epochs, losses) in panel.curves.items():
            # points: a loss alternating between two levels shows; large enough to see when there are few
            ax.plot(epochs, losses, "o" if len(epochs) <= 30 else ".", ms=5 if len(epochs) <= 30 else 2, label=label)
        if panel.mark_epoch is not None:
            ax.axvline(panel.mark_epoch, color="0.3", ls=":", lw=1.2)
        ax.set_title(panel.title, color=panel.title_color, fontsize="large" if len(panels) == 1 else 10)
        ax.set_xlabel("epoch")
        ax.set_yscale("log" if log_scale else "linear")
        ax.grid(alpha=0.3)
    for ax in axes[::columns]:
        ax.set_ylabel(ylabel)
    for ax in axes[len(panels) :]:
        fig.delaxes(ax)
    _legend_below(fig, axes[0])
    for handle in fig.legends[0].legend_handles:  # the same readable marker for dots and points
        if isinstance(handle, Line2D):
            handle.set_markersize(6)
    if title:
        fig.suptitle(title, fontsize=11)
    return fig


def gradient_figure(
    w: np.ndarray,
    loss: np.ndarray,
    gradient: np.ndarray,
    steps: Points,
    optimal_w: float,
    *,
    title: str | None = None,
    descent_curve: Points | None = None,
) -> Figure:
    """The tutorial's theory figure: the loss L(w), its derivative dL/dw, and the gradient-descent ``steps`` (w, L).

    ``descent_curve`` is the loss drawn under the steps (default: ``w``, ``loss``), e.g. over a range that holds
    steps which leave ``w``'s. Each legend sits under its panel, never over a curve, whatever the settings.
    """
    fig = new_figure(12, 4.8)
    fig.set_layout_engine("constrained", h_pad=0.08)  # room between the figure's title and the panels'
    loss_ax, gradient_ax, descent_ax = fig.subplots(1, 3)
    loss_ax.plot(w, loss, "b-", lw=2, label="MSE loss")
    loss_ax.axvline(optimal_w, color="r", ls="--", label=f"optimum w={optimal_w:.1f}")
    loss_ax.set(xlabel="weight w", ylabel="MSE loss", title="MSE loss  L(w) = (wx + b - t)²")
    gradient_ax.plot(w, gradient, "r-", lw=2, label="gradient dL/dw")
    gradient_ax.axhline(0, color="black", lw=0.8, ls="--", alpha=0.7)
    gradient_ax.axvline(optimal_w, color="r", ls="--", label="gradient = 0")
    gradient_ax.set(xlabel="weight w", ylabel="dL/dw", title="its gradient  dL/dw = 2x(wx + b - t)")
    descent_ax.plot(*(descent_curve or (w, loss)), "b-", alpha=0.6, label="MSE loss")
    descent_ax.plot(*steps, "ro-", ms=6 if len(steps[0]) <= 30 else 3, label="gradient-descent steps")
    descent_ax.axvline(optimal_w, color="g", ls="--", label="optimum")
    descent_ax.set(xlabel="weight w", ylabel="MSE loss", title="gradient descent")
    for ax in (loss_ax, gradient_ax, descent_ax):
        ax.grid(alpha=0.3)
        ax.locator_params(axis="x", nbins=5)  # long tick labels (a wide w range) stay apart
        ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.15), ncols=2, fontsize="small", frameon=False)
    if title:
        fig.suptitle(title, fontsize=12)
    return fig


def lr_finder_figure(lrs: np.ndarray, losses: np.ndarray, suggestion: float | None, *, title: str) -> Figure:
    """Lightning's learning-rate finder: the smoothed training loss against the (log-scaled) learning rate."""
    fig, ax = single_axes(title)
    ax.plot(lrs, losses, lw=1.5, label="smoothed training loss (bias-corrected)")
    if suggestion is not None:
        ax.axvline(suggestion, color="r", ls="--", label=f"suggestion lr={suggestion:.3g}")
    ax.set(xscale="log", xlabel="learning rate", ylabel="loss")
    ax.grid(alpha=0.3)
    _legend_below(fig, ax)
    return fig


def _legend_below(fig: Figure, ax: Axes) -> None:
    """One legend for the figure, under the axes: it never covers a point, however the data fall."""
    handles, labels = ax.get_legend_handles_labels()
    if fig.get_layout_engine() is None:  # single_axes: in the margin it keeps free
        fig.legend(handles, labels, ncols=len(labels), loc="lower center", bbox_to_anchor=(0.5, 0.01))
    else:
        fig.legend(handles, labels, ncols=len(labels), loc="outside lower center")


def _labels_inside(fig: Figure, canvas: FigureCanvasAgg) -> bool:
    """Whether every axes' title, labels and tick labels lie inside the figure (measured from the last draw)."""
    renderer, edges = canvas.get_renderer(), fig.bbox
    boxes = [ax.get_tightbbox(renderer, bbox_extra_artists=[]) for ax in fig.axes]  # decorations, not data
    return all(edges.x0 <= box.x0 and box.x1 <= edges.x1 and box.y1 <= edges.y1 for box in boxes if box is not None)


def save_png(fig: Figure, path: str | os.PathLike) -> np.ndarray:
    """Render ``fig`` once, write it to ``path`` as a PNG (atomically); returns its (height, width, 4) uint8 pixels."""
    canvas = fig.canvas
    if not isinstance(canvas, FigureCanvasAgg):  # what new_figure and single_axes give every figure
        raise TypeError(f"save_png draws on the Agg canvas, got a {type(canvas).__name__}; make it with new_figure")
    canvas.draw()
    if fig.get_layout_engine() is None and not _labels_inside(fig, canvas):  # single_axes margins too tight: widen them
        fig.tight_layout(rect=(0, LEGEND_INCHES / fig.get_figheight(), 1, 1))
        canvas.draw()
    pixels = np.asarray(canvas.buffer_rgba()).copy()
    atomic_write(Path(path), lambda file: imsave(file, pixels, format="png", dpi=DPI))
    return pixels

"""Figures of a run: the tutorial's plots, written as PNG files into the run's log directory and to TensorBoard.

``FigureWriter`` only decides when to draw and where the pictures go; ``lit_linreg.analysis.plots`` draws them.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import lightning as L
import numpy as np
import torch
from lightning.pytorch.callbacks import Callback
from lightning.pytorch.trainer.states import TrainerFn
from matplotlib.figure import Figure
from torch import Tensor

from lit_linreg.analysis.plots import (
    TITLE_CHARACTERS,
    LossPanel,
    Points,
    features_figure,
    format_numbers,
    loss_figure,
    predicted_vs_true_figure,
    predictions_figure,
    save_png,
)
from lit_linreg.data import attached_datamodule

MAX_POINTS = 2000  # per split and figure
STEP_POINTS = 500  # training-loss points per run when an epoch has several steps


class LossHistory(Callback):
    """Each epoch's ``train_loss`` and ``val_loss`` as the task published them, with their epochs, and with several
    steps per epoch also the training loss of every k-th step (about ``STEP_POINTS`` in all).

    Per epoch (and every k steps) it only keeps a reference to the published, detached tensors; :meth:`curves` and
    :meth:`step_curve` turn them into numbers with one transfer, so recording never waits for the device. A
    full-batch run (one step per epoch) records no steps: its epoch curve is the same.
    """

    def __init__(self) -> None:
        self._records: dict[str, tuple[list[int], list[Tensor]]] = {"train_loss": ([], []), "val_loss": ([], [])}
        self._steps: tuple[list[float], list[Tensor]] = ([], [])
        self.every_n_steps = 0  # 0: no step losses (one step per epoch)
        self._batches = 1

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._records = {key: ([], []) for key in self._records}
        self._steps = ([], [])
        self._batches = int(min(trainer.num_training_batches, 2**62))  # Lightning reports inf for an unsized loader
        self.every_n_steps = 0
        if 1 < self._batches < 2**62:
            total = trainer.estimated_stepping_batches
            total = total if math.isfinite(total) else 10 * self._batches
            self.every_n_steps = max(1, math.ceil(total / STEP_POINTS))

    def on_train_batch_end(
        self, trainer: L.Trainer, pl_module: L.LightningModule, outputs: Any, batch: Any, batch_idx: int
    ) -> None:
        if self.every_n_steps and batch_idx % self.every_n_steps == 0:
            loss = outputs.get("loss") if isinstance(outputs, Mapping) else outputs
            if isinstance(loss, Tensor):
                self._steps[0].append(trainer.current_epoch + (batch_idx + 1) / self._batches)
                self._steps[1].append(loss.detach())

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._record(trainer, "train_loss")

    def on_validation_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        # Here, and not at the train epoch end, so that epochs without validation add no stale value.
        if trainer.state.fn == TrainerFn.FITTING and not trainer.sanity_checking:
            self._record(trainer, "val_loss")

    def _record(self, trainer: L.Trainer, key: str) -> None:
        value = trainer.callback_metrics.get(key)
        if value is not None:
            epochs, values = self._records[key]
            epochs.append(trainer.current_epoch)
            values.append(value.detach())

    def curves(self) -> dict[str, Points]:
        """``{"train_loss": (epochs, losses), "val_loss": (epochs, losses)}`` for the epochs recorded so far."""
        return {key: (np.array(epochs), _stack(values)) for key, (epochs, values) in self._records.items()}

    def step_curve(self) -> Points:
        """(epoch + fraction of it done, loss) of every k-th training step so far; empty for one step per epoch."""
        return np.array(self._steps[0]), _stack(self._steps[1])


class FigureWriter(LossHistory):
    """Draws the tutorial's figures at the end of ``fit``, ``test`` and ``predict`` (never during training).

    fit: ``1_data.png`` (train and test points), ``2_predictions_before_training.png`` (the test split predicted
    before the first step), ``3_predictions_after_training.png`` and ``4_loss_curves.png`` (the published train and
    val loss of every epoch and, with several steps per epoch, the training loss every k steps); test:
    ``3_predictions_after_training.png`` for the evaluated model; predict: ``5_predictions.png`` beside
    ``predictions.csv``. Each goes into the run's log directory and, under ``figures/<name>``, to every logger that
    can ``add_image`` (TensorBoard's IMAGES tab). With several features, the data and predict figures plot y against
    each feature side by side, and the test split's predictions are plotted against the true y. A split is drawn
    from at most ``MAX_POINTS`` of its rows (``datamodule.sample``); the data figure's title says when they are a
    sample.

    Args:
        enabled: draw the figures (false: record and draw nothing, e.g. for benchmarks)
    """

    def __init__(self, enabled: bool = True) -> None:
        super().__init__()
        self.enabled = enabled
        self.paths: list[Path] = []
        self._directory = Path()
        self._before_training: tuple[np.ndarray, str, int] | None = None  # test predictions, title, global step
        self._predicted: list[tuple[Tensor, Tensor]] = []

    # fit
    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if not self.enabled:
            return
        super().on_train_start(trainer, pl_module)
        self._before_training = None
        test = _rows(trainer).get("test") if trainer.is_global_zero else None
        if test is not None:  # after any checkpoint restore, before the first step
            when = "before training" if trainer.ckpt_path is None else f"resumed at epoch {trainer.current_epoch:,}"
            title = f"Predictions on the test split {when}\n{_describe(trainer, pl_module)}"
            self._before_training = (_predict(pl_module, test[0]), title, trainer.global_step)

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if self.enabled:
            super().on_train_epoch_end(trainer, pl_module)

    def on_validation_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if self.enabled:
            super().on_validation_end(trainer, pl_module)

    def on_train_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if not self._start_drawing(trainer):
            return
        rows, model, datamodule = _rows(trainer), _describe(trainer, pl_module), attached_datamodule(trainer)
        if rows and datamodule is not None:  # rows come from a RegressionDataModule
            truth = _truth(trainer)
            line = "" if truth is None else f"\ntrue line: {_line(*truth)}"
            counts = {name: datamodule.moments(name).count for name in rows}
            sampled = any(len(y) < counts[name] for name, (_, y) in rows.items())
            *others, last = [
                f"{len(y):,} of {counts[name]:,} {name}" if sampled else f"{counts[name]:,} {name}"
                for name, (_, y) in rows.items()
            ]
            sizes = f"{', '.join(others)} and {last}" if others else last
            self._draw(trainer, "1_data", rows, None, f"The data: {'a sample of ' * sampled}{sizes} rows{line}")
        if self._before_training is not None:
            predictions, title, step = self._before_training
            self._draw_test(trainer, "2_predictions_before_training", rows, predictions, title, step)
        if "test" in rows:
            self._draw_test_predictions(trainer, pl_module, f"after training (epoch {trainer.current_epoch - 1:,})")
        curves = {name.replace("_", " "): curve for name, curve in self.curves().items() if len(curve[0])}
        steps = self.step_curve()
        if curves or len(steps[0]):
            if len(steps[0]):  # several steps per epoch: the epoch means mid-epoch, val at the epoch's end
                offsets = {"train loss": 0.5, "val loss": 1.0}
                curves = {
                    f"{name} (epoch mean)" if name == "train loss" else name: (epochs + offsets[name], losses)
                    for name, (epochs, losses) in curves.items()
                }
                every = "every step" if self.every_n_steps == 1 else f"every {self.every_n_steps:,} steps"
                title = f"Loss per epoch, and {every}"
                lines = {f"train loss ({every})": steps}
            else:
                title, lines = "Loss per epoch", {}
            epochs = next(iter(curves.values()))[0] if curves else steps[0]
            if trainer.ckpt_path is not None and len(epochs):  # a resumed fit: its own epochs only
                title += f", epochs {int(epochs.min()):,} to {int(epochs.max()):,} (resumed)"
            panel = LossPanel(f"{title}\n{model}", curves, lines=lines)
            # A log axis: the loss falls by orders of magnitude, and the two states it alternates between once
            # converged (the tutorial's last 150 epochs) stay visible instead of a flat line at 0.
            figure = loss_figure([panel], ylabel="L1 loss (MAE), log scale", log_scale=True)
            self._write(trainer, "4_loss_curves", figure)
        self._announce(pl_module)

    # test
    def on_test_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if self._start_drawing(trainer) and "test" in _rows(trainer):
            self._draw_test_predictions(trainer, pl_module, "of the evaluated model")
            self._announce(pl_module)

    # predict
    def on_predict_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._predicted = []

    def on_predict_batch_end(self, trainer, pl_module, outputs: Tensor, batch, batch_idx, dataloader_idx=0) -> None:
        if self.enabled and trainer.is_global_zero:
            self._predicted.append((batch[0], outputs[:, 0]))

    def on_predict_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if not self._start_drawing(trainer) or not self._predicted:
            return
        x, y_pred = (_numpy(_thin(torch.cat(parts))) for parts in zip(*self._predicted))
        self._predicted = []
        title = f"Predictions (predictions.csv) over the data\n{_describe(trainer, pl_module)}"
        self._draw(trainer, "5_predictions", _rows(trainer), (x, y_pred), title)
        self._announce(pl_module)

    # writing
    def _start_drawing(self, trainer: L.Trainer) -> bool:
        """Whether this process draws. Every process asks, since ``trainer.log_dir`` is a collective under DDP."""
        if not self.enabled:
            return False
        self._directory, self.paths = Path(trainer.log_dir or trainer.default_root_dir), []
        return trainer.is_global_zero

    def _draw_test_predictions(self, trainer: L.Trainer, pl_module: L.LightningModule, when: str) -> None:
        rows = _rows(trainer)
        title = f"Predictions on the test split {when}\n{_describe(trainer, pl_module)}"
        self._draw_test(trainer, "3_predictions_after_training", rows, _predict(pl_module, rows["test"][0]), title)

    def _draw_test(
        self,
        trainer: L.Trainer,
        name: str,
        rows: dict[str, tuple[Tensor, Tensor]],
        y_pred: np.ndarray,
        title: str,
        step: int | None = None,
    ) -> None:
        """The test split's predictions: over the data (one feature), or against the true y (several)."""
        x, y = rows["test"]
        if x.shape[1] == 1:
            self._draw(trainer, name, rows, (_numpy(x), y_pred), title, step)
        else:
            self._write(trainer, name, predicted_vs_true_figure(_numpy(y[:, 0]), y_pred, title=title), step)

    def _draw(
        self,
        trainer: L.Trainer,
        name: str,
        rows: dict[str, tuple[Tensor, Tensor]],
        predictions: tuple[np.ndarray, np.ndarray] | None,
        title: str,
        step: int | None = None,
    ) -> None:
        """The data of each split and ``predictions`` (rows of x, y): against x, or against each feature."""
        points = {split: (_numpy(x), _numpy(y[:, 0])) for split, (x, y) in rows.items()}
        names = _feature_names(trainer)
        if len(names) == 1:
            one = {split: (x[:, 0], y) for split, (x, y) in points.items()}
            single = None if predictions is None else (predictions[0][:, 0], predictions[1])
            fig = predictions_figure(one, single, title=title, xlabel=names[0])
        else:
            fig = features_figure(points, predictions, title=title, feature_names=names)
        self._write(trainer, name, fig, step)

    def _write(self, trainer: L.Trainer, name: str, fig: Figure, step: int | None = None) -> None:
        """``<log dir>/<name>.png``, and ``figures/<name>`` at ``step`` (default: now) for loggers with add_image."""
        path = self._directory / f"{name}.png"
        pixels = save_png(fig, path)
        step = trainer.global_step if step is None else step
        for logger in trainer.loggers:
            experiment: Any = getattr(logger, "experiment", None)  # a logger's own object, if it has one
            if hasattr(experiment, "add_image"):
                experiment.add_image(f"figures/{name}", pixels, step, dataformats="HWC")
        self.paths.append(path)

    def _announce(self, pl_module: L.LightningModule) -> None:
        if self.paths:
            pl_module.print(f"figures: {self.paths[0].parent} ({', '.join(p.name for p in self.paths)})")


def _rows(trainer: L.Trainer) -> dict[str, tuple[Tensor, Tensor]]:
    """At most MAX_POINTS rows of each split, for plotting (``datamodule.sample``: a whole small split, evenly spaced
    rows in memory, a seeded sample when streamed); val only when it is a split of its own (not the test split)."""
    datamodule = attached_datamodule(trainer)
    if datamodule is None:
        return {}
    names = ("train", "val", "test") if datamodule.val_split else ("train", "test")
    return {name: datamodule.sample(name, MAX_POINTS) for name in names}


def _thin(rows: Tensor) -> Tensor:
    """At most MAX_POINTS evenly spaced rows: a scatter of more shows nothing more and takes seconds to draw."""
    return rows[:: max(1, math.ceil(len(rows) / MAX_POINTS))]


def _predict(pl_module: L.LightningModule, x: Tensor) -> np.ndarray:
    """The model's predictions for ``x`` (rows of the data), in eval mode without autograd."""
    training = pl_module.training
    pl_module.eval()
    with torch.inference_mode():
        y = pl_module(x.to(pl_module.device, torch.float32))  # as the loaders give it
    pl_module.train(training)
    return _numpy(y[:, 0])


def _numpy(tensor: Tensor) -> np.ndarray:
    return tensor.detach().float().cpu().numpy()


def _describe(trainer: L.Trainer, pl_module: L.LightningModule) -> str:
    """``manual model: w=0.6954, b=0.2998 | true w=0.7000, b=0.3000``: the model, its line when it has
    ``coefficients()``, and the truth when the data know it."""
    text = f"{pl_module.hparams.get('variant', type(pl_module).__name__)} model"
    coefficients = getattr(pl_module, "coefficients", None)  # a linear model's (weight, bias), now
    if callable(coefficients):
        text += f": {_line(*coefficients())}"
    truth = _truth(trainer)
    if truth is None:
        return text
    true = f"true {_line(*truth)}"
    one_line = f"{text} | {true}"
    return one_line if len(one_line) <= TITLE_CHARACTERS else f"{text}\n{true}"


def _line(weight: Tensor, bias: Tensor) -> str:
    return f"w={format_numbers(weight.tolist())}, b={format_numbers(bias.tolist())}"


def _truth(trainer: L.Trainer) -> tuple[Tensor, Tensor] | None:
    """The data's true (weight, bias), when it knows them."""
    return getattr(attached_datamodule(trainer), "true_parameters", lambda: None)()


def _feature_names(trainer: L.Trainer) -> list[str]:
    datamodule = attached_datamodule(trainer)
    return ["x"] if datamodule is None else datamodule.feature_names


def _stack(values: list[Tensor]) -> np.ndarray:
    return torch.stack(values).float().cpu().numpy() if values else np.array([])

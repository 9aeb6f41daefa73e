"""Callbacks: the tutorial's training table, the predictions file, a divergence guard and a graceful Ctrl-C."""

from __future__ import annotations

import math
import signal
import sys
import threading
from pathlib import Path
from typing import Any

import lightning as L
import torch
from lightning.pytorch.callbacks import Callback
from lightning.pytorch.trainer.states import TrainerFn
from torch import Tensor
from tqdm import tqdm

from lit_linreg.errors import UserError, require
from lit_linreg.io import write_csv


def echo(message: str) -> None:
    """Print a line of the run's output without tearing a progress bar that is being drawn (Lightning's tqdm bar)."""
    tqdm.write(message, file=sys.stdout)
    sys.stdout.flush()


def format_weight(weight: Tensor) -> str:
    """A weight with 4 decimals, or a list of them for several features."""
    return f"{weight.item():.4f}" if weight.numel() == 1 else "[" + ", ".join(f"{w:.4f}" for w in weight.tolist()) + "]"


class EpochTable(Callback):
    """Prints the tutorial's training log every ``every_n_epochs`` epochs (0 = no table, nor its final line).

    Columns: epoch, train loss and val loss (6 decimals, like the tutorial), then weight and bias after the epoch's
    update (4 decimals). At the end it prints the final parameters beside the true ones, when known.
    """

    def __init__(self, every_n_epochs: int = 50) -> None:
        require(
            isinstance(every_n_epochs, int) and every_n_epochs >= 0,
            f"table.every_n_epochs must be an integer >= 0 (0 = no table), got {every_n_epochs!r}",
        )
        self.every_n_epochs = every_n_epochs
        self._header_printed = False

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._header_printed = False

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        epoch = trainer.current_epoch
        if not self.every_n_epochs or epoch % self.every_n_epochs or not trainer.is_global_zero:
            return
        if not self._header_printed:  # with the first row: whatever the run printed at its start comes before
            echo(f"{'epoch':>5} | {'train_loss':>10} | {'val_loss':>10} | {'weight':>6} | {'bias':>6}")
            self._header_printed = True
        metrics = trainer.callback_metrics
        losses = [f"{metrics[k].item():10.6f}" if k in metrics else f"{'-':>10}" for k in ("train_loss", "val_loss")]
        weight, bias = pl_module.coefficients()
        echo(f"{epoch:5d} | {losses[0]} | {losses[1]} | {format_weight(weight)} | {bias.item():.4f}")

    def on_train_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if not self.every_n_epochs or not trainer.is_global_zero:
            return
        weight, bias = pl_module.coefficients()
        line = f"final (epoch {trainer.current_epoch - 1}): weight {format_weight(weight)}, bias {bias.item():.4f}"
        truth = pl_module.true_parameters()
        if truth is not None:
            line += f" | true: weight {format_weight(truth[0])}, bias {truth[1].item():.4f}"
        echo(line)


class PredictionWriter(Callback):
    """Writes ``predictions.csv`` into the run's log directory and prints its path.

    Columns: the input feature(s) (``x``, or the datamodule's ``feature_names``), ``y_pred``, and ``y_true`` and
    ``abs_error`` when the targets are known.
    """

    def __init__(self, filename: str = "predictions.csv") -> None:
        self.filename = filename
        self.path: Path | None = None
        self._batches: list[tuple[Tensor, ...]] = []

    def on_predict_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._batches = []

    def on_predict_batch_end(self, trainer, pl_module, outputs: Tensor, batch, batch_idx, dataloader_idx=0) -> None:
        self._batches.append((batch[0].cpu(), outputs.detach().cpu(), *(t.cpu() for t in batch[1:2])))

    def on_predict_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        log_dir = trainer.log_dir or trainer.default_root_dir  # a collective under DDP: every rank must ask
        if not trainer.is_global_zero or not self._batches:
            return
        x, y_pred, *y_true = (torch.cat(parts) for parts in zip(*self._batches))
        self._batches = []
        names = getattr(trainer.datamodule, "feature_names", None)
        if names is None or len(names) != x.shape[1]:
            names = ["x"] if x.shape[1] == 1 else [f"x{i}" for i in range(x.shape[1])]
        header, columns = [*names, "y_pred"], [*x.T, y_pred[:, 0]]
        if y_true:
            header += ["y_true", "abs_error"]
            columns += [y_true[0][:, 0], (y_pred - y_true[0]).abs()[:, 0]]
        self.path = write_csv(Path(log_dir) / self.filename, header, columns)
        echo(f"predictions: {self.path} ({len(y_pred)} rows)")


class DivergenceGuard(Callback):
    """Stops training as soon as the loss or a parameter is NaN/inf, naming the epoch and suggesting a smaller lr.

    The loss is checked after every step while it lives on the CPU (free); the epoch's train and val loss and the
    parameters once per epoch, at the end of its validation (before the checkpoint callback, which Lightning runs
    last, can save the epoch) or of the epoch. Nothing is saved after divergence, so the last checkpoint written
    before it stays the last finite one.
    """

    def __init__(self) -> None:
        self._checked_step = -1

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        loss = outputs["loss"] if isinstance(outputs, dict) else outputs
        if isinstance(loss, Tensor) and loss.device.type == "cpu" and not math.isfinite(loss.item()):
            self._stop(trainer, pl_module, f"the training loss became {loss.item()}")

    def on_validation_end(self, trainer, pl_module) -> None:
        if trainer.state.fn == TrainerFn.FITTING and not trainer.sanity_checking:
            self._check_epoch(trainer, pl_module)

    def on_train_epoch_end(self, trainer, pl_module) -> None:
        self._check_epoch(trainer, pl_module)

    def _check_epoch(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if self._checked_step == trainer.global_step:
            return
        self._checked_step = trainer.global_step
        for key, name in (("train_loss", "training"), ("val_loss", "validation")):
            loss = trainer.callback_metrics.get(key)
            if loss is not None and not math.isfinite(loss.item()):
                self._stop(trainer, pl_module, f"the {name} loss became {loss.item()}")
        if not all(torch.isfinite(p).all() for p in pl_module.parameters()):
            self._stop(trainer, pl_module, "a model parameter became NaN/inf")

    @staticmethod
    def _stop(trainer: L.Trainer, pl_module: L.LightningModule, what: str) -> None:
        lr = pl_module.hparams.get("lr")
        last = getattr(trainer.checkpoint_callback, "last_model_path", "") or "none was written yet"
        raise UserError(
            f"training diverged at epoch {trainer.current_epoch}: {what} with model.lr={lr}; "
            f"use a smaller learning rate, e.g. --model.lr {lr / 10:g}; last checkpoint before the divergence: {last}"
        )


class GracefulInterrupt(Callback):
    """First Ctrl-C: finish the current epoch, save ``last.ckpt`` and stop. A second Ctrl-C stops at once."""

    def __init__(self) -> None:
        self.requested = False
        self.stopped_after_epoch: int | None = None
        self._previous: Any = None

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self.requested, self.stopped_after_epoch = False, None
        if threading.current_thread() is threading.main_thread():
            self._previous = signal.signal(signal.SIGINT, self._request)

    def _request(self, signum: int, frame: Any) -> None:
        self.requested = True
        signal.signal(signal.SIGINT, self._previous)
        print("\nCtrl-C: finishing this epoch and saving last.ckpt (press Ctrl-C again to stop at once)", flush=True)

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if trainer.strategy.reduce_boolean_decision(self.requested, all=False):
            trainer.should_stop = True
            self.stopped_after_epoch = trainer.current_epoch

    def on_train_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._restore()

    def on_exception(self, trainer: L.Trainer, pl_module: L.LightningModule, exception: BaseException) -> None:
        self._restore()

    def _restore(self) -> None:
        if self._previous is not None and threading.current_thread() is threading.main_thread():
            signal.signal(signal.SIGINT, self._previous)
            self._previous = None

"""The tutorial's training log: one table row every few epochs, and the final parameters."""

from __future__ import annotations

import lightning as L
from lightning.pytorch.callbacks import Callback

from lit_linreg.console import echo, fixed_width, format_weight
from lit_linreg.errors import require
from lit_linreg.task import as_task


class EpochTable(Callback):
    """Prints the tutorial's training log every ``every_n_epochs`` epochs (0 = no table, nor its final line).

    Columns: epoch, train loss and val loss (6 decimals, like the tutorial), then weight and bias after the epoch's
    update (4 decimals); a number too large for its column switches to scientific notation. At the end it prints
    the final parameters beside the true ones, when known.

    Args:
        every_n_epochs: print a row every this many epochs (0: no table and no final line)
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
        if not self.every_n_epochs or epoch % self.every_n_epochs:
            return
        task = as_task(pl_module)
        train_loss = task.epoch_metrics("train").get("train_loss")  # on every rank: a collective under DDP
        if not trainer.is_global_zero:
            return
        if not self._header_printed:  # with the first row: whatever the run printed at its start comes before
            echo(f"{'epoch':>5} | {'train_loss':>10} | {'val_loss':>10} | {'weight':>6} | {'bias':>6}")
            self._header_printed = True
        val_loss = task.epoch_metrics("val").get("val_loss")  # empty in an epoch without validation
        losses = [fixed_width(v.item(), 10, 6) if v is not None else f"{'-':>10}" for v in (train_loss, val_loss)]
        weight, bias = task.coefficients()
        echo(f"{epoch:5d} | {losses[0]} | {losses[1]} | {format_weight(weight)} | {format_weight(bias)}")

    def on_train_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if not self.every_n_epochs or not trainer.is_global_zero:
            return
        task = as_task(pl_module)
        weight, bias = task.coefficients()
        line = f"final (epoch {trainer.current_epoch - 1}): weight {format_weight(weight)}, bias {bias.item():.4f}"
        truth = task.true_parameters()
        if truth is not None:
            line += f" | true: weight {format_weight(truth[0])}, bias {truth[1].item():.4f}"
        echo(line)

"""Guards of a fit: stop on divergence, and stop cleanly on Ctrl-C."""

from __future__ import annotations

import math
import signal
import threading
from typing import Any

import lightning as L
import torch
from lightning.pytorch.callbacks import Callback
from lightning.pytorch.trainer.states import TrainerFn
from torch import Tensor

from lit_linreg.callbacks.checkpoints import RunCheckpoint
from lit_linreg.errors import UserError
from lit_linreg.task import as_task

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
        task = as_task(pl_module)
        losses = {"training": task.epoch_metrics("train")["train_loss"], "validation": trainer.callback_metrics.get("val_loss")}
        for name, loss in losses.items():
            if loss is not None and not math.isfinite(loss.item()):
                self._stop(trainer, pl_module, f"the {name} loss became {loss.item()}")
        if not all(torch.isfinite(p).all() for p in pl_module.parameters()):
            self._stop(trainer, pl_module, "a model parameter became NaN/inf")

    @staticmethod
    def _stop(trainer: L.Trainer, pl_module: L.LightningModule, what: str) -> None:
        lr = pl_module.hparams.get("lr")
        checkpoint = trainer.checkpoint_callback
        last = (checkpoint.last_model_path if isinstance(checkpoint, RunCheckpoint) else "") or "none was written yet"
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

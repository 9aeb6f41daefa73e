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

from lit_linreg.callbacks.checkpoints import RunCheckpoint
from lit_linreg.console import echo
from lit_linreg.errors import UserError, require
from lit_linreg.task import as_task

TUTORIAL_LR = {"manual": 0.005, "linear": 0.01}


class DivergenceGuard(Callback):
    """Stops a fit in the epoch its loss or parameters blow up, naming the epoch and a fix that can work.

    Diverged means: a loss or parameter is NaN or inf, or the epoch's training or validation loss exceeds
    ``max_growth`` times the training loss of the fit's first epoch. Gradient descent with a workable learning rate
    lowers the L1 loss, or overshoots it by a small factor while it settles; growing a thousandfold means every step
    overshoots further (the steps are too large for the data's scale), and the parameters then grow without bound
    until they overflow. The losses and parameters are checked once per epoch, at the end of its validation, before
    the checkpoint callback (which Lightning runs last) can save the epoch: no checkpoint ever holds a diverged state,
    and no step pays for the check.

    Args:
        max_growth: how many times the first epoch's training loss a loss may reach before the fit counts as
            diverged (null: only NaN/inf count)
    """

    def __init__(self, max_growth: float | None = 1000.0) -> None:
        require(
            max_growth is None
            or (isinstance(max_growth, (int, float)) and math.isfinite(max_growth) and max_growth > 1),
            f"divergence.max_growth must be a finite number > 1, or null (only NaN/inf count), got {max_growth!r}",
        )
        self.max_growth = max_growth
        self._checked_step = -1
        self._first_loss: float | None = None
        self._first_epoch = 0

    def setup(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        self._first_loss = None  # a resumed fit then restores its run's own (load_state_dict)

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._first_epoch, self._checked_step = trainer.current_epoch, -1

    def state_dict(self) -> dict[str, Any]:
        """The run's first training loss travels in its checkpoints: a resume compares against the same reference."""
        return {"first_loss": self._first_loss}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self._first_loss = state_dict.get("first_loss")

    def on_train_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        """A fit whose training loss barely fell (under 1 %) gets a warning that names the learning rate."""
        train = as_task(pl_module).epoch_metrics("train").get("train_loss")
        if self._first_loss is None or train is None or trainer.current_epoch - self._first_epoch < 2:
            return
        last, first = train.item(), self._first_loss
        if last > 0.99 * first and trainer.is_global_zero:
            lr = as_task(pl_module).hparams["lr"]
            cause = "too large (the steps overshoot)" if last > first else "too small (the steps barely move)"
            echo(
                f"warning: the training loss did not fall (epoch {self._first_epoch}: {first:.6g}, last epoch: "
                f"{last:.6g}); model.lr={lr:g} is likely {cause}: compare rates with lit-linreg lr-sweep"
            )

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
        train = task.epoch_metrics("train").get("train_loss")
        losses = {"training": train, "validation": task.epoch_metrics("val").get("val_loss")}
        for name, loss in losses.items():
            if loss is not None and not math.isfinite(loss.item()):
                self._stop(trainer, pl_module, f"the {name} loss became {loss.item()}")
        if not all(torch.isfinite(p).all() for p in pl_module.parameters()):
            self._stop(trainer, pl_module, "a model parameter became NaN/inf")
        if self._first_loss is None and train is not None:
            self._first_loss = train.item()
        if self.max_growth is None or self._first_loss is None:
            return
        limit = self.max_growth * max(self._first_loss, 1e-6)
        for name, loss in losses.items():
            if loss is not None and loss.item() > limit:
                self._stop(
                    trainer,
                    pl_module,
                    f"the {name} loss grew to {loss.item():.4g}, over {self.max_growth:g} times the first epoch's "
                    f"training loss {self._first_loss:.4g}",  # the run's first epoch, also after a resume
                )

    def _stop(self, trainer: L.Trainer, pl_module: L.LightningModule, what: str) -> None:
        task = as_task(pl_module)
        lr, variant = task.hparams["lr"], task.hparams["variant"]
        checkpoint = trainer.checkpoint_callback
        last = (checkpoint.last_model_path if isinstance(checkpoint, RunCheckpoint) else "") or "none was written yet"
        if trainer.ckpt_path and trainer.current_epoch == self._first_epoch:
            raise UserError(
                f"training diverged at epoch {trainer.current_epoch}, the first after resuming from "
                f"{trainer.ckpt_path}: {what} with model.lr={lr}; that checkpoint may itself hold a blown-up state, "
                f"so resume from an earlier good checkpoint of the run or retrain without --ckpt_path (e.g. with "
                f"--model.lr {TUTORIAL_LR[variant]}, the tutorial's)"
            )
        tutorial = TUTORIAL_LR[variant]
        fix = f"--model.lr {lr / 10:g}" if lr <= 10 * tutorial else f"--model.lr {tutorial:g} (the tutorial's)"
        raise UserError(
            f"training diverged at epoch {trainer.current_epoch}: {what} with model.lr={lr}; use a smaller "
            f"learning rate, e.g. {fix}, or compare rates with lit-linreg lr-sweep; last checkpoint before the "
            f"divergence: {last}"
        )


class GracefulInterrupt(Callback):
    """Ctrl-C (SIGINT) or SIGTERM, which SLURM and other schedulers send before they kill a job: finish the current
    epoch, save ``last.ckpt`` at that epoch boundary (so a resume is bit-identical to an uninterrupted run) and stop.
    A second Ctrl-C stops at once. Lightning's own SIGTERM handling, which stops after the current batch, is
    replaced for the duration of training.
    """

    SIGNALS = {signal.SIGINT: "Ctrl-C", signal.SIGTERM: "SIGTERM"}

    def __init__(self) -> None:
        self.requested: signal.Signals | None = None
        self.stopped_after_epoch: int | None = None
        self._previous: dict[int, Any] = {}

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self.requested, self.stopped_after_epoch = None, None
        if threading.current_thread() is threading.main_thread():
            self._previous = {number: signal.signal(number, self._request) for number in self.SIGNALS}

    def _request(self, signum: int, frame: Any) -> None:
        self.requested = signal.Signals(signum)
        signal.signal(signal.SIGINT, self._previous.get(signal.SIGINT, signal.default_int_handler))
        again = " (press Ctrl-C again to stop at once)" if signum == signal.SIGINT else ""
        print(f"\n{self.SIGNALS[self.requested]}: finishing this epoch and saving last.ckpt{again}", flush=True)

    @property
    def signal_name(self) -> str:
        """``Ctrl-C`` or ``SIGTERM``: what stopped the fit."""
        return self.SIGNALS[self.requested] if self.requested is not None else ""

    @property
    def exit_code(self) -> int:
        """The shell's convention: 128 + the signal's number (130 for Ctrl-C, 143 for SIGTERM)."""
        return 128 + int(self.requested or signal.SIGINT)

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if trainer.strategy.reduce_boolean_decision(self.requested is not None, all=False):
            trainer.should_stop = True
            self.stopped_after_epoch = trainer.current_epoch

    def on_train_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._restore()

    def on_exception(self, trainer: L.Trainer, pl_module: L.LightningModule, exception: BaseException) -> None:
        self._restore()

    def _restore(self) -> None:
        if self._previous and threading.current_thread() is threading.main_thread():
            for number, handler in self._previous.items():
                signal.signal(number, handler)
            self._previous = {}

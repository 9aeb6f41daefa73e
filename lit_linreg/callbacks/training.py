"""Callbacks that watch training epoch by epoch: the tutorial's table, the divergence guard, a clean stop on signals.

Each reads what the LightningModule logged, from ``trainer.callback_metrics``, so it works with any module that logs
``train_loss`` (and ``val_loss``): columns such as ``params/weight`` appear when they are logged.
"""

from __future__ import annotations

import math
import signal
import threading
from typing import Any

import lightning as L
import torch
from jsonargparse.typing import NonNegativeInt
from lightning.pytorch.callbacks import Callback, ModelCheckpoint

from lit_linreg.console import fixed_width, format_weight
from lit_linreg.errors import UserError, require

PARAMS = "params/"  # the prefix of the logged model parameters: one table column each
TUTORIAL_LR = {"manual": 0.005, "linear": 0.01}  # a learning rate known to work, by lit-linreg's model variant


def logged(trainer: L.Trainer, key: str) -> float | None:
    """The value ``key`` was last logged with, as a float; None if it was not logged."""
    value = trainer.callback_metrics.get(key)
    return None if value is None else float(value)


class EpochTable(Callback):
    """Prints the tutorial's training log every ``every_n_epochs`` epochs (0 = no table, nor its final line).

    Columns: epoch, ``train_loss`` and ``val_loss`` (6 decimals, like the tutorial), then every logged ``params/*``
    value (4 decimals). At the end it prints the final parameters, beside the data's true ones when known.

    Args:
        every_n_epochs: print a row every this many epochs (0: no table and no final line)
    """

    def __init__(self, every_n_epochs: NonNegativeInt = 50) -> None:
        self.every_n_epochs = every_n_epochs
        self._header_printed = False

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._header_printed = False

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        epoch = trainer.current_epoch
        if not self.every_n_epochs or epoch % self.every_n_epochs or not trainer.is_global_zero:
            return
        params = [key for key in trainer.callback_metrics if key.startswith(PARAMS)]
        names = [key.removeprefix(PARAMS) for key in params]
        if not self._header_printed:  # with the first row: whatever the run printed at its start comes before
            columns = [f"{name:>{max(6, len(name))}}" for name in names]
            pl_module.print(" | ".join([f"{'epoch':>5}", f"{'train_loss':>10}", f"{'val_loss':>10}", *columns]))
            self._header_printed = True
        losses = [logged(trainer, key) for key in ("train_loss", "val_loss")]
        cells = [fixed_width(v, 10, 6) if v is not None else f"{'-':>10}" for v in losses]
        values = [
            format_weight(torch.tensor([logged(trainer, key)])).rjust(max(6, len(name)))
            for key, name in zip(params, names)
        ]
        pl_module.print(" | ".join([f"{epoch:5d}", *cells, *values]))

    def on_train_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if not self.every_n_epochs or not trainer.is_global_zero:
            return
        params = {k.removeprefix(PARAMS): logged(trainer, k) for k in trainer.callback_metrics if k.startswith(PARAMS)}
        line = f"final (epoch {trainer.current_epoch - 1}): " + ", ".join(
            f"{name} {format_weight(torch.tensor([value]))}" for name, value in params.items()
        )
        truth = getattr(trainer.datamodule, "true_parameters", lambda: None)()  # type: ignore[attr-defined]
        if truth is not None:
            line += f" | true: weight {format_weight(truth[0])}, bias {truth[1].item():.4f}"
        pl_module.print(line)


class DivergenceGuard(Callback):
    """Stops a fit in the epoch its loss or parameters blow up, naming the epoch and a fix that can work.

    Diverged means: a logged loss or a parameter is NaN or inf, or the epoch's ``train_loss`` or ``val_loss`` exceeds
    ``max_growth`` times the fit's first ``train_loss``. Gradient descent with a workable learning rate lowers the L1
    loss, or overshoots it by a small factor while it settles; growing a thousandfold means every step overshoots
    further, until the parameters overflow. Checked once per epoch, before Lightning runs the checkpoint callbacks
    (it runs them last), so no checkpoint ever holds a diverged state.

    Args:
        max_growth: how many times the first epoch's training loss a loss may reach before the fit counts as
            diverged (null: only NaN/inf count)
        warn: warn at the end of a fit whose training loss did not fall by 1 % (lr-sweep turns it off: it compares
            the rates itself)
    """

    def __init__(self, max_growth: float | None = 1000.0, warn: bool = True) -> None:
        require(
            max_growth is None or (math.isfinite(max_growth) and max_growth > 1),
            f"divergence.max_growth must be a finite number > 1, or null (only NaN/inf count), got {max_growth!r}",
        )
        self.max_growth, self.warn = max_growth, warn
        self.first_loss: float | None = None  # the run's first train_loss; travels in its checkpoints
        self._first_epoch = 0
        self._checked_step = -1

    def setup(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        self.first_loss = None  # a resumed fit then restores its run's own (load_state_dict)

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._first_epoch, self._checked_step = trainer.current_epoch, -1

    def state_dict(self) -> dict[str, Any]:
        return {"first_loss": self.first_loss}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.first_loss = state_dict.get("first_loss")

    def on_validation_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if trainer.state.fn == "fit" and not trainer.sanity_checking:
            self.on_train_epoch_end(trainer, pl_module)  # before the checkpoint callbacks save this epoch

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if self._checked_step == trainer.global_step:
            return
        self._checked_step = trainer.global_step
        losses = {"training": logged(trainer, "train_loss"), "validation": logged(trainer, "val_loss")}
        for name, loss in losses.items():
            if loss is not None and not math.isfinite(loss):
                self._stop(trainer, pl_module, f"the {name} loss became {loss}")
        if not all(torch.isfinite(p).all() for p in pl_module.parameters()):
            self._stop(trainer, pl_module, "a model parameter became NaN/inf")
        if self.first_loss is None:
            self.first_loss = losses["training"]
        if self.max_growth is None or self.first_loss is None:
            return
        limit = self.max_growth * max(self.first_loss, 1e-6)
        for name, loss in losses.items():
            if loss is not None and loss > limit:
                self._stop(
                    trainer,
                    pl_module,
                    f"the {name} loss grew to {loss:.4g}, over {self.max_growth:g} times the first epoch's "
                    f"training loss {self.first_loss:.4g}",
                )

    def on_train_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        """A fit whose training loss barely fell (under 1 %) gets a warning that names the learning rate."""
        last, first = logged(trainer, "train_loss"), self.first_loss
        if first is None or last is None or trainer.current_epoch - self._first_epoch < 2 or last <= 0.99 * first:
            return
        if not self.warn:
            return
        cause = "too large (the steps overshoot)" if last > first else "too small (the steps barely move)"
        pl_module.print(
            f"warning: the training loss did not fall (epoch {self._first_epoch}: {first:.6g}, last epoch: "
            f"{last:.6g}); model.lr={_lr(trainer):g} is likely {cause}: compare rates with lit-linreg lr-sweep"
        )

    def _stop(self, trainer: L.Trainer, pl_module: L.LightningModule, what: str) -> None:
        lr = _lr(trainer)
        if trainer.ckpt_path and trainer.current_epoch == self._first_epoch:
            raise UserError(
                f"training diverged at epoch {trainer.current_epoch}, the first after resuming from "
                f"{trainer.ckpt_path}: {what} with model.lr={lr:g}; that checkpoint may itself hold a blown-up "
                f"state, so resume from an earlier good checkpoint of the run or retrain without --ckpt_path"
            )
        tutorial = TUTORIAL_LR.get(str(getattr(pl_module, "hparams", {}).get("variant")))
        fix = f"--model.lr {lr / 10:g}"
        if tutorial is not None and lr > 10 * tutorial:
            fix = f"--model.lr {tutorial:g} (the tutorial's)"
        saved = [
            getattr(c, "best_model_path", "") for c in trainer.checkpoint_callbacks if not getattr(c, "monitor", 1)
        ]
        raise UserError(
            f"training diverged at epoch {trainer.current_epoch}: {what} with model.lr={lr:g}; use a smaller learning "
            f"rate, e.g. {fix}, or compare rates with lit-linreg lr-sweep; last checkpoint before the divergence: "
            f"{next(filter(None, saved), 'none was written yet')}"
        )


def _lr(trainer: L.Trainer) -> float:
    return float(trainer.optimizers[0].param_groups[0]["lr"]) if trainer.optimizers else float("nan")


class GracefulInterrupt(Callback):
    """Ctrl-C (SIGINT) or SIGTERM, which SLURM and other schedulers send before they kill a job: finish the current
    epoch, let the checkpoint callbacks save it (so a resume is bit-identical to an uninterrupted run) and stop. A
    second Ctrl-C stops at once. Lightning's own SIGTERM handling, which stops after the current batch, is replaced
    for the duration of training.
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
        print(f"\n{self.SIGNALS[self.requested]}: finishing this epoch and saving it{again}", flush=True)

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


class LastCheckpoint(ModelCheckpoint):
    """Lightning's ``ModelCheckpoint`` for ``last.ckpt`` (no monitor) that also saves the epoch training stops at.

    ``every_n_epochs`` bounds what a kill can lose; the epoch a fit ends with (``max_epochs``, ``max_steps``, or a stop
    a callback asks for: Ctrl-C, SIGTERM, early stopping) is saved whatever the cadence, so ``last.ckpt`` is never
    stale when a fit ends. Saved in ``on_train_epoch_end`` like any ModelCheckpoint, so a resume is bit-identical.
    """

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        super().on_train_epoch_end(trainer, pl_module)
        every = self.every_n_epochs or 0
        saved = every > 0 and (trainer.current_epoch + 1) % every == 0  # by Lightning, on its cadence
        if saved or trainer.fast_dev_run or not _last_epoch(trainer):  # type: ignore[attr-defined]
            return
        self.best_model_path = self.format_checkpoint_name({})  # a monitor-less ModelCheckpoint's newest file
        trainer.save_checkpoint(self.best_model_path)


def _last_epoch(trainer: L.Trainer) -> bool:
    """Whether the fit stops after this epoch (``should_stop`` is set by then: checkpoint callbacks run last)."""
    max_epochs = trainer.max_epochs if trainer.max_epochs not in (None, -1) else math.inf
    max_steps = trainer.max_steps if trainer.max_steps != -1 else math.inf
    return trainer.should_stop or trainer.current_epoch + 1 >= max_epochs or trainer.global_step >= max_steps

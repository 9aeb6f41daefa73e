"""Callbacks that watch a fit: the tutorial's table, the divergence guard, a clean stop on signals, ``last.ckpt`` at
the epoch a fit stops at, and the tutorial's figures.

Each reads what the LightningModule logged, from ``trainer.callback_metrics``, so it works with any module that logs
``train_loss`` (and ``val_loss``); logged ``params/*`` values become table columns. ``FigureWriter`` decides when to
draw and where the PNG files go (the run's log directory and TensorBoard); ``lit_linreg.plots`` draws them.
"""

from __future__ import annotations

import math
import signal
import threading
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import lightning as L
import numpy as np
import torch
from jsonargparse.typing import NonNegativeInt
from lightning.pytorch.callbacks import Callback, Checkpoint, ModelCheckpoint
from lightning.pytorch.trainer.states import TrainerFn
from matplotlib.figure import Figure
from torch import Tensor

from lit_linreg.data import attached_datamodule
from lit_linreg.errors import UserError, fixed_width, format_value, format_weight, require
from lit_linreg.plots import (
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

# Training: the table, the divergence guard, signals and last.ckpt, each reading trainer.callback_metrics.
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
        params = _params(trainer)
        if not self._header_printed:  # with the first row: whatever the run printed at its start comes before
            columns = [name.rjust(max(6, len(name))) for name in params]
            pl_module.print(" | ".join([f"{'epoch':>5}", f"{'train_loss':>10}", f"{'val_loss':>10}", *columns]))
            self._header_printed = True
        losses = [logged(trainer, key) for key in ("train_loss", "val_loss")]
        cells = [fixed_width(v, 10, 6) if v is not None else f"{'-':>10}" for v in losses]
        values = [value.rjust(max(6, len(name))) for name, value in params.items()]
        pl_module.print(" | ".join([f"{epoch:5d}", *cells, *values]))

    def on_train_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if not self.every_n_epochs or not trainer.is_global_zero:
            return
        params = ", ".join(f"{name} {value}" for name, value in _params(trainer).items())
        line = f"final (epoch {trainer.current_epoch - 1}): {params}"
        truth = _truth(trainer)
        if truth is not None:
            line += f" | true: weight {format_weight(truth[0])}, bias {truth[1].item():.4f}"
        pl_module.print(line)


def _params(trainer: L.Trainer) -> dict[str, str]:
    """Each logged ``params/<name>`` value by its name, as the table shows it (4 decimals)."""
    return {
        k.removeprefix(PARAMS): format_value(float(v))
        for k, v in trainer.callback_metrics.items()
        if k.startswith(PARAMS)
    }


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
        over = f"over {self.max_growth:g} times the first epoch's training loss {self.first_loss:.4g}"
        for name, loss in losses.items():
            if loss is not None and loss > limit:
                self._stop(trainer, pl_module, f"the {name} loss grew to {loss:.4g}, {over}")

    def on_train_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        """A fit whose training loss barely fell (under 1 %) gets a warning that names the learning rate."""
        last, first = logged(trainer, "train_loss"), self.first_loss
        too_short = trainer.current_epoch - self._first_epoch < 2
        if not self.warn or too_short or first is None or last is None or last <= 0.99 * first:
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
        raise UserError(
            f"training diverged at epoch {trainer.current_epoch}: {what} with model.lr={lr:g}; use a smaller learning "
            f"rate, e.g. {fix}, or compare rates with lit-linreg lr-sweep; last checkpoint before the divergence: "
            f"{getattr(last_checkpoint_callback(trainer), 'best_model_path', '') or 'none was written yet'}"
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
        if trainer.fast_dev_run or self.save_top_k == 0 or not _last_epoch(trainer):  # type: ignore[attr-defined]
            return
        # Saved even if Lightning just saved on its cadence: whether it did depends on when validation ran (with
        # trainer.check_val_every_n_epoch > 1 it saves after validation), and one more write beats a guess.
        step = {"epoch": torch.tensor(trainer.current_epoch), "step": torch.tensor(trainer.global_step)}
        metrics = {**step, **trainer.callback_metrics}
        self.best_model_path = self.format_checkpoint_name(metrics)  # a monitor-less ModelCheckpoint's newest file
        trainer.save_checkpoint(self.best_model_path, weights_only=self.save_weights_only)


def last_checkpoint_callback(trainer: L.Trainer) -> Checkpoint | None:
    """The checkpoint callback without a monitor (lit-linreg's ``last``): the file it wrote is the newest state."""
    return next((c for c in trainer.checkpoint_callbacks if getattr(c, "monitor", "") is None), None)


def _last_epoch(trainer: L.Trainer) -> bool:
    """Whether the fit stops after this epoch (``should_stop`` is set by then: checkpoint callbacks run last)."""
    max_epochs = trainer.max_epochs if trainer.max_epochs not in (None, -1) else math.inf
    max_steps = trainer.max_steps if trainer.max_steps != -1 else math.inf
    return trainer.should_stop or trainer.current_epoch + 1 >= max_epochs or trainer.global_step >= max_steps


# Figures: what a run records for its loss curves, and when and where it draws the tutorial's plots.
MAX_POINTS = 2000  # per split and figure
STEP_POINTS = 500  # training-loss points per run when an epoch has several steps


class LossHistory(Callback):
    """Each epoch's ``train_loss`` and ``val_loss`` as the task published them, with their epochs, and with several
    steps per epoch also the training loss of every k-th step (about ``STEP_POINTS`` in all).

    It only keeps references to the published, detached tensors; :meth:`curves` and :meth:`step_curve` turn them into
    numbers with one transfer, so recording never waits for the device. A full-batch run (one step per epoch) records
    no steps: its epoch curve is the same.
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
    before the first step), ``3_predictions_after_training.png`` and ``4_loss_curves.png`` (the train and val loss of
    every epoch and, with several steps per epoch, the training loss every k steps); test:
    ``3_predictions_after_training.png`` for the evaluated model; predict: ``5_predictions.png`` beside
    ``predictions.csv``. Each goes into the run's log directory and, as ``figures/<name>``, to every logger that can
    ``add_image`` (TensorBoard's IMAGES tab). With several features, y is plotted against each feature side by side,
    and the test split's predictions against the true y. Each split is drawn from at most ``MAX_POINTS`` rows (the
    data figure's title says when they are a sample).

    Args:
        enabled: draw the figures (false: record and draw nothing, e.g. for benchmarks)
    """

    def __init__(self, enabled: bool = True) -> None:
        super().__init__()
        self.enabled = enabled
        self.paths: list[Path] = []
        self._directory = Path()
        self._rows: dict[str, tuple[Tensor, Tensor]] = {}  # the data drawn, by split
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

    def _record(self, trainer: L.Trainer, key: str) -> None:
        if self.enabled:
            super()._record(trainer, key)

    def on_train_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if not self._start_drawing(trainer):
            return
        rows, datamodule = self._rows, attached_datamodule(trainer)
        if datamodule is not None:  # a RegressionDataModule: rows holds its train and test (and val) splits
            truth = _truth(trainer)
            line = "" if truth is None else f"\ntrue line: {_line(*truth)}"
            counts = {name: datamodule.moments(name).count for name in rows}
            sampled = any(len(y) < counts[name] for name, (_, y) in rows.items())
            *others, last = [
                f"{len(y):,} of {counts[name]:,} {name}" if sampled else f"{counts[name]:,} {name}"
                for name, (_, y) in rows.items()
            ]
            sizes = f"{', '.join(others)} and {last}"  # train and test, and val when it is a split of its own
            self._draw(trainer, "1_data", None, f"The data: {'a sample of ' * sampled}{sizes} rows{line}")
        if self._before_training is not None:
            self._draw_test(trainer, "2_predictions_before_training", *self._before_training)
        if "test" in rows:
            self._draw_test_predictions(trainer, pl_module, f"after training (epoch {trainer.current_epoch - 1:,})")
        curves = {name.replace("_", " "): curve for name, curve in self.curves().items() if len(curve[0])}
        steps = self.step_curve()
        title = "Loss per epoch"
        lines: dict[str, Points] = {}
        if len(steps[0]):  # several steps per epoch: the epoch means mid-epoch, val at the epoch's end
            offsets = {"train loss": 0.5, "val loss": 1.0}
            curves = {
                f"{name} (epoch mean)" if name == "train loss" else name: (epochs + offsets[name], losses)
                for name, (epochs, losses) in curves.items()
            }
            every = "every step" if self.every_n_steps == 1 else f"every {self.every_n_steps:,} steps"
            title += f", and {every}"
            lines = {f"train loss ({every})": steps}
        if curves or lines:
            if trainer.ckpt_path is not None:  # a resumed fit: its own epochs only
                epochs = next(iter(curves.values()))[0] if curves else steps[0]
                title += f", epochs {int(epochs.min()):,} to {int(epochs.max()):,} (resumed)"
            panel = LossPanel(f"{title}\n{_describe(trainer, pl_module)}", curves, lines=lines)
            # A log axis: the loss falls by orders of magnitude, and the two states it alternates between once
            # converged (the tutorial's last 150 epochs) stay visible instead of a flat line at 0.
            figure = loss_figure([panel], ylabel="L1 loss (MAE), log scale", log_scale=True)
            self._write(trainer, "4_loss_curves", figure)
        self._announce(pl_module)

    # test
    def on_test_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if self._start_drawing(trainer) and "test" in self._rows:
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
        x, y_pred = (torch.cat(parts) for parts in zip(*self._predicted))
        self._predicted = []
        every = max(1, math.ceil(len(x) / MAX_POINTS))  # a scatter of more shows nothing more, and takes seconds
        title = f"Predictions (predictions.csv) over the data\n{_describe(trainer, pl_module)}"
        self._draw(trainer, "5_predictions", (_numpy(x[::every]), _numpy(y_pred[::every])), title)
        self._announce(pl_module)

    # writing
    def _start_drawing(self, trainer: L.Trainer) -> bool:
        """Whether this process draws. Every process asks, since ``trainer.log_dir`` is a collective under DDP."""
        if not self.enabled:
            return False
        self._directory, self.paths = Path(trainer.log_dir or trainer.default_root_dir), []
        self._rows = _rows(trainer) if trainer.is_global_zero else {}
        return trainer.is_global_zero

    def _draw_test_predictions(self, trainer: L.Trainer, pl_module: L.LightningModule, when: str) -> None:
        title = f"Predictions on the test split {when}\n{_describe(trainer, pl_module)}"
        self._draw_test(trainer, "3_predictions_after_training", _predict(pl_module, self._rows["test"][0]), title)

    def _draw_test(
        self, trainer: L.Trainer, name: str, y_pred: np.ndarray, title: str, step: int | None = None
    ) -> None:
        """The test split's predictions: over the data (one feature), or against the true y (several)."""
        x, y = self._rows["test"]
        if x.shape[1] == 1:
            self._draw(trainer, name, (_numpy(x), y_pred), title, step)
        else:
            self._write(trainer, name, predicted_vs_true_figure(_numpy(y[:, 0]), y_pred, title=title), step)

    def _draw(
        self, trainer: L.Trainer, name: str, predictions: Points | None, title: str, step: int | None = None
    ) -> None:
        """The data of each split and ``predictions`` (rows of x, y): against x, or against each feature."""
        points = {split: (_numpy(x), _numpy(y[:, 0])) for split, (x, y) in self._rows.items()}
        datamodule = attached_datamodule(trainer)
        names = ["x"] if datamodule is None else datamodule.feature_names
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
    if truth is not None:  # beside the model's line if both fit on one title line, else under it
        true = f"true {_line(*truth)}"
        text += f" | {true}" if len(f"{text} | {true}") <= TITLE_CHARACTERS else f"\n{true}"
    return text


def _line(weight: Tensor, bias: Tensor) -> str:
    return f"w={format_numbers(weight.tolist())}, b={format_numbers(bias.tolist())}"


def _truth(trainer: L.Trainer) -> tuple[Tensor, Tensor] | None:
    """The data's true (weight, bias), when its datamodule knows them (``true_parameters()``)."""
    return getattr(trainer.datamodule, "true_parameters", lambda: None)()  # type: ignore[attr-defined]


def _stack(values: list[Tensor]) -> np.ndarray:
    return torch.stack(values).float().cpu().numpy() if values else np.array([])

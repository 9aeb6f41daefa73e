"""Checkpoints of a fit: ``last.ckpt``, always the newest state, and the best epoch by ``val_loss``.

Written with Lightning's public ``trainer.save_checkpoint``. Lightning's own ``ModelCheckpoint`` refreshes the
``last.ckpt`` of a monitored checkpoint only when it also writes a top-k file, so once ``val_loss`` stops improving
its ``last.ckpt`` silently goes stale; here ``last`` and ``best`` are decided separately.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any, Literal

import lightning as L
from lightning.pytorch.callbacks import Checkpoint
from lightning.pytorch.utilities.exceptions import SIGTERMException

from lit_linreg.errors import require
from lit_linreg.task import LinearRegressionTask

STAGES = ("train", "val", "test")


class RunCheckpoint(Checkpoint):
    """Saves ``last.ckpt`` and ``best-epoch=<E>-<monitor>=<value>.ckpt`` into ``dirpath``.

    ``last.ckpt`` is written every ``every_n_epochs`` epochs, when training ends, and when SIGTERM stops it at an
    epoch boundary. The best checkpoint is chosen among the same epochs by the logged ``monitor`` value; the
    previous best file is removed when a better one is written. Both survive a resume: the best score is part of
    the callback's state in every checkpoint.

    Args:
        dirpath: the folder for this run's checkpoint files (lit-linreg fit sets checkpoints/<run>/version_N/; with a
            plain Trainer, ``<default_root_dir>/checkpoints``)
        every_n_epochs: write last.ckpt (and a better best) every this many epochs, and always at the end
        monitor: the logged metric that ranks the best checkpoint
        mode: ``min`` (lower is better) or ``max``
        save_best: also keep the best checkpoint (false: last.ckpt only)
        save_last: write last.ckpt (false: nothing is saved unless save_best)
    """

    def __init__(
        self,
        dirpath: str | None = None,
        every_n_epochs: int = 1,
        monitor: str = "val_loss",
        mode: Literal["min", "max"] = "min",
        save_best: bool = True,
        save_last: bool = True,
    ) -> None:
        require(
            isinstance(every_n_epochs, int) and every_n_epochs >= 1,
            f"checkpoint.every_n_epochs must be a positive integer, got {every_n_epochs!r}",
        )
        require(mode in ("min", "max"), f"checkpoint.mode must be 'min' or 'max', got {mode!r}")
        self.dirpath = dirpath
        self.every_n_epochs, self.monitor, self.mode = every_n_epochs, monitor, mode
        self.save_best, self.save_last = save_best, save_last
        self.best_model_path = ""
        self.best_model_score: float | None = None
        self.last_model_path = ""
        self._saved_step = -1  # the global step of the newest last.ckpt

    @property
    def state_key(self) -> str:
        return f"{type(self).__name__}[{self.monitor}]"

    def setup(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        if stage == "fit" and self.dirpath is None:
            self.dirpath = str(Path(trainer.default_root_dir) / "checkpoints")

    def on_validation_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if not trainer.sanity_checking and self._is_checkpoint_epoch(trainer):
            self._save(trainer, trainer.current_epoch)

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if self._is_checkpoint_epoch(trainer):  # epochs without validation: saved here instead
            self._save(trainer, trainer.current_epoch)

    def on_train_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        # Lightning has counted the final epoch as done by now: name files after the epoch that trained the weights.
        self._save(trainer, trainer.current_epoch - 1)

    def on_exception(self, trainer: L.Trainer, pl_module: L.LightningModule, exception: BaseException) -> None:
        if isinstance(exception, SIGTERMException):  # raised at an epoch boundary: the state is consistent
            self._save(trainer, trainer.current_epoch, best=False)

    def state_dict(self) -> dict[str, Any]:
        return {"best_model_path": self.best_model_path, "best_model_score": self.best_model_score}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.best_model_path = state_dict.get("best_model_path", "")
        self.best_model_score = state_dict.get("best_model_score")

    def _is_checkpoint_epoch(self, trainer: L.Trainer) -> bool:
        return (trainer.current_epoch + 1) % self.every_n_epochs == 0

    def _save(self, trainer: L.Trainer, epoch: int, best: bool = True) -> None:
        # Trainer sets its public ``fast_dev_run`` in a setup function, not in its class body: type checkers miss it.
        fast_dev_run = trainer.fast_dev_run  # type: ignore[attr-defined]
        if trainer.sanity_checking or fast_dev_run or trainer.global_step in (0, self._saved_step):
            return
        self._saved_step = trainer.global_step
        directory = Path(self.dirpath or ".")
        if best and self.save_best:
            self._save_best(trainer, directory, epoch)
        if self.save_last:
            path = directory / "last.ckpt"
            trainer.save_checkpoint(path, weights_only=False)  # everything a resume needs
            self.last_model_path = str(path)

    def _save_best(self, trainer: L.Trainer, directory: Path, epoch: int) -> None:
        stage = self.monitor.partition("_")[0]  # the task's own record first: no self.log needed for it
        task = trainer.lightning_module
        record = task.epoch_metrics(stage) if isinstance(task, LinearRegressionTask) and stage in STAGES else {}
        value = record.get(self.monitor, trainer.callback_metrics.get(self.monitor))
        if value is None or not math.isfinite(score := float(value)):
            return
        best = self.best_model_score
        if best is not None and not (score < best if self.mode == "min" else score > best):
            return
        path = directory / f"best-epoch={epoch}-{self.monitor}={score:.6f}.ckpt"
        previous = self.best_model_path
        self.best_model_path, self.best_model_score = str(path), score  # saved inside the file itself too
        trainer.save_checkpoint(path, weights_only=False)
        if trainer.is_global_zero and previous and previous != str(path) and Path(previous).parent == directory:
            Path(previous).unlink(missing_ok=True)

"""Checkpointing during fit: a ``last.ckpt`` that never goes stale, and finding a run's last or best checkpoint."""

from __future__ import annotations

import warnings
from pathlib import Path

import torch
from lightning.pytorch.callbacks import ModelCheckpoint
from lightning.pytorch.trainer.states import TrainerFn
from lightning.pytorch.utilities import rank_zero_info
from lightning.pytorch.utilities.exceptions import SIGTERMException

from lit_linreg.checkpoint_io import load_checkpoint_file
from lit_linreg.errors import require


class RunCheckpoint(ModelCheckpoint):
    """ModelCheckpoint whose ``last.ckpt`` always holds the newest state.

    Lightning 2.6 refreshes ``last.ckpt`` of a monitored ModelCheckpoint only when it also writes a top-k file, so
    once ``val_loss`` stops improving ``last.ckpt`` silently goes stale. Here ``last.ckpt`` is written at every
    checkpoint epoch (``every_n_epochs``), when training ends, and when SIGTERM stops it at an epoch boundary; the
    best checkpoint is chosen among the checkpoint epochs and the final epoch. A rerun with the same directory
    overwrites its files instead of adding ``-v1`` copies.
    """

    def __init__(
        self,
        dirpath: str | None = None,
        filename: str = "best-{epoch}-{val_loss:.6f}",
        monitor: str | None = "val_loss",
        mode: str = "min",
        save_top_k: int = 1,
        save_last: bool = True,
        every_n_epochs: int = 1,
        verbose: bool = False,
    ) -> None:
        super().__init__(
            dirpath=dirpath,
            filename=filename,
            monitor=monitor,
            mode=mode,
            save_top_k=save_top_k,
            save_last=save_last,
            every_n_epochs=every_n_epochs,
            verbose=verbose,
            enable_version_counter=False,
        )
        self._last_written_step = -1
        self.resuming = False  # set when fit resumes from a checkpoint: this folder then holds the run's own files
        # Lightning formats its key (which also names the cadence) on every hook call of every epoch. A fixed key
        # is cheaper and lets a resume with another every_n_epochs keep the best-checkpoint bookkeeping.
        self._state_key = self._generate_state_key(monitor=monitor, mode=mode)

    @property
    def state_key(self) -> str:
        return self._state_key

    def setup(self, trainer, pl_module, stage: str) -> None:
        with warnings.catch_warnings():  # Lightning's "exists and is not empty", replaced by what it means here
            warnings.filterwarnings("ignore", message="Checkpoint directory .* exists and is not empty")
            super().setup(trainer, pl_module, stage)
        if stage == "fit" and not self.resuming and self.dirpath and any(Path(self.dirpath).glob("*.ckpt")):
            rank_zero_info(
                f"{self.dirpath} holds checkpoints of an earlier run: this fit overwrites its last.ckpt and "
                f"--ckpt_path best will mean this fit's best (resume instead with --ckpt_path last, or keep the runs "
                f"apart with --run_name)"
            )

    def _save_last_checkpoint(self, trainer, monitor_candidates) -> None:
        super()._save_last_checkpoint(trainer, monitor_candidates)
        self._last_written_step = trainer.global_step

    def _is_checkpoint_epoch(self, trainer) -> bool:
        return self._every_n_epochs >= 1 and (trainer.current_epoch + 1) % self._every_n_epochs == 0

    def _refresh_last(self, trainer, include_top_k: bool = False) -> None:
        if trainer.state.fn != TrainerFn.FITTING or trainer.sanity_checking or trainer.fast_dev_run:
            return
        if self._last_written_step == trainer.global_step or trainer.global_step == 0:
            return
        candidates = self._monitor_candidates(trainer)
        # At the end of training Lightning has already counted the last epoch: name files after the epoch whose
        # training produced these weights (``epoch`` in the file name), as the saves during an epoch do.
        candidates["epoch"] = torch.tensor(trainer.fit_loop.epoch_progress.current.started - 1)
        if include_top_k and self._last_global_step_saved != trainer.global_step:
            self._save_topk_checkpoint(trainer, candidates)
        if self.save_last:
            self._save_last_checkpoint(trainer, candidates)

    # Lightning's hooks deep-copy every callback metric each epoch before deciding not to save; skip them entirely
    # between checkpoint epochs (all that this class's every_n_epochs trigger can save).
    def on_validation_end(self, trainer, pl_module) -> None:
        if self._is_checkpoint_epoch(trainer):
            super().on_validation_end(trainer, pl_module)
            if not self._should_save_on_train_epoch_end(trainer):
                self._refresh_last(trainer)

    def on_train_epoch_end(self, trainer, pl_module) -> None:
        if self._is_checkpoint_epoch(trainer):
            super().on_train_epoch_end(trainer, pl_module)
            if self._should_save_on_train_epoch_end(trainer):
                self._refresh_last(trainer)

    def on_train_end(self, trainer, pl_module) -> None:
        self._refresh_last(trainer, include_top_k=True)

    def on_exception(self, trainer, pl_module, exception: BaseException) -> None:
        if isinstance(exception, SIGTERMException):  # raised at an epoch boundary: the state is consistent
            self._refresh_last(trainer)


def find_checkpoint(directory: Path, alias: str, fitting: bool = False) -> str | None:
    """The file that ``--ckpt_path last`` or ``--ckpt_path best`` names in a run's checkpoint ``directory``.

    ``last`` without a ``last.ckpt`` is None when ``fitting`` (a fresh start) and an error otherwise; ``best`` is
    read from the RunCheckpoint state saved in ``last.ckpt``.
    """
    last = directory / "last.ckpt"
    if alias == "last":
        require(last.is_file() or fitting, f"--ckpt_path last: there is no {last}; run fit first")
        return str(last) if last.is_file() else None
    require(last.is_file(), f"--ckpt_path best: there is no {last} to read the best checkpoint from; run fit first")
    states = load_checkpoint_file(last).get("callbacks", {})
    best = next((s.get("best_model_path") for k, s in states.items() if k.startswith(RunCheckpoint.__name__)), None)
    require(bool(best) and Path(best).is_file(), f"--ckpt_path best: {last} names no existing best checkpoint")
    return best

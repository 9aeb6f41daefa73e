"""Checkpoints: atomic writes, weights-only loads, a ``last.ckpt`` that never goes stale, and safe reading."""

from __future__ import annotations

import pickle
import sys
import zipfile
from pathlib import Path
from typing import Any

import torch
from lightning.fabric.plugins.io.torch_io import TorchCheckpointIO
from lightning.pytorch.callbacks import ModelCheckpoint
from lightning.pytorch.trainer.states import TrainerFn
from lightning.pytorch.utilities.exceptions import SIGTERMException

from lit_linreg.errors import UserError
from lit_linreg.io import atomic_write

TASK_CLASS_PATH = "lit_linreg.task.LinearRegressionTask"
TRUSTED_INSTANTIATORS = {"lightning.pytorch.cli.instantiate_module"}


class AtomicCheckpointIO(TorchCheckpointIO):
    """Saves through a temporary file + fsync + rename (a kill mid-write leaves the old file) and always loads with
    ``weights_only=True``, turning unreadable files into a one-line :class:`UserError`."""

    def save_checkpoint(self, checkpoint: dict[str, Any], path: str, storage_options: Any | None = None) -> None:
        atomic_write(path, lambda file: torch.save(checkpoint, file))

    def load_checkpoint(self, path: str, map_location: Any = None, weights_only: bool | None = None) -> dict[str, Any]:
        return load_checkpoint_file(path, map_location or "cpu")


def load_checkpoint_file(path: str | Path, map_location: Any = "cpu") -> dict[str, Any]:
    """``torch.load(path, weights_only=True)`` with a clear message for every way the file can be wrong."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"checkpoint {path} does not exist; list the saved ones with: ls checkpoints/*/")
    if path.stat().st_size == 0:
        raise UserError(f"checkpoint {path} is an empty file; use another checkpoint or retrain")
    try:
        checkpoint = torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as err:
        if "Weights only load failed" in str(err):
            raise UserError(
                f"checkpoint {path} is not a trusted lit-linreg checkpoint: it holds Python objects that would run "
                f"code when loaded, so it was refused and nothing in it was run"
            ) from err
        raise UserError(f"checkpoint {path} is not a PyTorch checkpoint (it cannot be unpickled)") from err
    except (RuntimeError, EOFError, OSError, ValueError, zipfile.BadZipFile) as err:
        raise UserError(
            f"checkpoint {path} is damaged or not a PyTorch checkpoint (truncated, corrupted or another format); "
            f"use another checkpoint, e.g. the best-*.ckpt beside it"
        ) from err
    if not isinstance(checkpoint, dict) or not isinstance(checkpoint.get("state_dict"), dict):
        raise UserError(f"checkpoint {path} is not a Lightning checkpoint (it has no state_dict)")
    return checkpoint


def task_hyperparameters(checkpoint: dict[str, Any], path: str | Path) -> dict[str, Any]:
    """The checkpoint's LinearRegressionTask hyperparameters, refusing foreign classes and instantiators."""
    hparams = dict(checkpoint.get("hyper_parameters") or {})
    class_path = hparams.pop("_class_path", TASK_CLASS_PATH)
    instantiator = hparams.pop("_instantiator", None)
    if class_path != TASK_CLASS_PATH:
        raise UserError(
            f"checkpoint {path} was saved by {class_path}, not by lit-linreg's {TASK_CLASS_PATH}; "
            f"use a checkpoint written by lit-linreg fit"
        )
    if instantiator is not None and instantiator not in TRUSTED_INSTANTIATORS:
        raise UserError(
            f"checkpoint {path} is not a trusted lit-linreg checkpoint: its hyperparameters name the instantiator "
            f"{instantiator!r}, which lit-linreg refuses to call"
        )
    if not {"variant", "lr"} <= hparams.keys():
        raise UserError(f"checkpoint {path} has no lit-linreg hyperparameters (variant, lr); was it saved by lit-linreg?")
    return hparams


def data_config(checkpoint: dict[str, Any], path: str | Path) -> dict[str, Any] | None:
    """The checkpoint's datamodule as a ``{"class_path", "init_args"}`` config, or None if it has none.

    Only already-imported subclasses of lit-linreg's RegressionDataModule are accepted: a class path from a file is
    never imported or instantiated otherwise.
    """
    hparams = dict(checkpoint.get("datamodule_hyper_parameters") or {})
    class_path = hparams.pop("_class_path", None)
    hparams.pop("_instantiator", None)
    if class_path is None:
        return None
    module_name, _, class_name = class_path.rpartition(".")
    cls = getattr(sys.modules.get(module_name), class_name, None)
    from lit_linreg.data import RegressionDataModule

    if not (isinstance(cls, type) and issubclass(cls, RegressionDataModule)):
        raise UserError(
            f"checkpoint {path} is not a trusted lit-linreg checkpoint: its data class {class_path!r} is not a "
            f"lit-linreg data module"
        )
    return {"class_path": class_path, "init_args": hparams}


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
            dirpath=dirpath, filename=filename, monitor=monitor, mode=mode, save_top_k=save_top_k,
            save_last=save_last, every_n_epochs=every_n_epochs, verbose=verbose, enable_version_counter=False,
        )
        self._last_written_step = -1
        # Lightning formats its key (which also names the cadence) on every hook call of every epoch. A fixed key
        # is cheaper and lets a resume with another every_n_epochs keep the best-checkpoint bookkeeping.
        self._state_key = self._generate_state_key(monitor=monitor, mode=mode)

    @property
    def state_key(self) -> str:
        return self._state_key

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

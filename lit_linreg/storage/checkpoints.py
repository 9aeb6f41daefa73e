"""Checkpoint files: atomic writes, and weights-only loads that accept only trusted lit-linreg checkpoints."""

from __future__ import annotations

import glob
import importlib
import pickletools
import sys
import zipfile
from pathlib import Path
from typing import Any

import torch
from lightning.fabric.plugins.io.torch_io import TorchCheckpointIO
from torch import Tensor

from lit_linreg.data import RegressionDataModule
from lit_linreg.errors import UserError, require
from lit_linreg.storage.files import atomic_write
from lit_linreg.task import CHECKPOINT_FORMAT as FORMAT
from lit_linreg.task import CHECKPOINT_KEY as FORMAT_KEY
from lit_linreg.task import LinearRegressionTask

TASK_CLASS_PATH = "lit_linreg.task.LinearRegressionTask"
LEGACY_DATA_CLASSES = {"lit_linreg.csv_data.CSVRegressionData": "lit_linreg.datasets.csv.CSVRegressionData"}
DATA_MODULES = ("lit_linreg.data", "lit_linreg.datasets.csv", "lit_linreg.datasets.parquet")  # a file may name these
TRUSTED_INSTANTIATORS = {"lightning.pytorch.cli.instantiate_module"}


class AtomicCheckpointIO(TorchCheckpointIO):
    """Saves through a temporary file + fsync + rename (a kill mid-write leaves the old file) and always loads with
    ``weights_only=True``, turning unreadable files into a one-line :class:`UserError`.

    A process killed mid-write leaves its temporary ``.<name>.*.tmp`` file (never read: it is no ``*.ckpt``); the
    next save of the same checkpoint removes it.
    """

    def save_checkpoint(self, checkpoint: dict[str, Any], path: str | Path, storage_options: Any | None = None) -> None:
        target = Path(path)
        atomic_write(target, lambda file: torch.save(checkpoint, file))
        for stale in target.parent.glob(f".{glob.escape(target.name)}.*.tmp"):
            stale.unlink(missing_ok=True)

    def load_checkpoint(
        self, path: str | Path, map_location: Any = None, weights_only: bool | None = None
    ) -> dict[str, Any]:
        return load_checkpoint_file(path, map_location or "cpu")


def load_checkpoint_file(path: str | Path, map_location: Any = "cpu") -> dict[str, Any]:
    """``torch.load(path, weights_only=True)`` of a trusted lit-linreg checkpoint, or a one-line :class:`UserError`.

    Every way the file can be wrong has its message: missing, empty, damaged, a pickle that would run code, another
    module's checkpoint, or hyperparameters that name classes or instantiators lit-linreg does not trust.
    """
    path = Path(path)
    if path.is_dir():
        raise UserError(_directory_message(path))
    if not path.is_file():
        raise UserError(f"checkpoint {path} does not exist; list the saved ones with: ls checkpoints/*/")
    if path.stat().st_size == 0:
        raise UserError(f"checkpoint {path} is an empty file; use another checkpoint or retrain")
    try:
        checkpoint = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as err:  # a bad file fails in many ways: UnpicklingError, RuntimeError, KeyError, EOFError...
        if _names_python_callables(path, err):
            raise UserError(
                f"checkpoint {path} is not a trusted lit-linreg checkpoint: it holds Python objects that would run "
                f"code when loaded, so it was refused and nothing in it was run"
            ) from err
        others = sorted(p.name for p in Path(path).parent.glob("*.ckpt") if p.name != Path(path).name)
        hint = f"use another checkpoint, e.g. {others[0]} beside it" if others else "use another checkpoint or retrain"
        raise UserError(
            f"checkpoint {path} is damaged or not a PyTorch checkpoint (truncated, corrupted or another format); {hint}"
        ) from err
    if not isinstance(checkpoint, dict) or not isinstance(checkpoint.get("state_dict"), dict):
        raise UserError(f"checkpoint {path} is not a Lightning checkpoint (it has no state_dict)")
    task_hyperparameters(checkpoint, path)
    data_config(checkpoint, path)
    check_finite_weights(checkpoint["state_dict"], path)
    return checkpoint


def check_finite_weights(state_dict: dict[str, Any], path: str | Path) -> None:
    """Every floating-point tensor of a checkpoint's ``state_dict`` is finite (and ``feature_std`` positive), or a
    one-line :class:`UserError` naming the checkpoint and the first bad entry: a diverged run can save NaN weights."""
    for key, value in state_dict.items():
        if not (isinstance(value, Tensor) and value.is_floating_point()):
            continue
        std = key.endswith("_std")  # the standardisation divides by it
        bad = ~torch.isfinite(value) | (value <= 0 if std else False)
        if bad.any():
            raise UserError(
                f"checkpoint {path} holds unusable weights: {key} has {int(bad.sum())} "
                f"{'non-positive or ' if std else ''}NaN or infinite value(s), e.g. {value[bad][0].item()}; use "
                f"another checkpoint (e.g. best) or retrain"
            )


def load_task(
    path: str | Path, map_location: Any = "cpu", weights_only: bool = True, **kwargs: Any
) -> LinearRegressionTask:
    """``LinearRegressionTask.load_from_checkpoint(path)`` of a file checked first (:func:`load_checkpoint_file`):
    weights-only, trusted lit-linreg checkpoints with finite weights only, each problem a one-line UserError."""
    require(
        weights_only,
        "weights_only=False is refused: lit-linreg loads checkpoints with weights_only=True only, so that a "
        "checkpoint cannot run code",
    )
    load_checkpoint_file(path)
    return LinearRegressionTask.load_from_checkpoint(path, map_location, weights_only=True, **kwargs)


def _directory_message(path: Path, shown: int = 4) -> str:
    """``--ckpt_path`` names a folder: the checkpoint files in it (and its version_N folders), newest first."""
    found = sorted(path.rglob("*.ckpt"), key=lambda p: (p.stat().st_mtime, p.name == "last.ckpt"), reverse=True)
    aliases = "or --ckpt_path last (or best) for the newest fit of the --config's run"
    if not found:
        return (
            f"checkpoint {path} is a directory, and it holds no checkpoint (*.ckpt) files; give a .ckpt file {aliases}"
        )
    listing = ", ".join(str(p) for p in found[:shown]) + (
        f" and {len(found) - shown} more" if len(found) > shown else ""
    )
    return f"checkpoint {path} is a directory, not a checkpoint file; give one of its files, e.g. {listing} ({aliases})"


# Pickle opcodes that import or call Python objects; a weights-only load allows them only for tensors and containers.
_CALLABLE_OPCODES = {"GLOBAL", "STACK_GLOBAL", "INST", "OBJ", "REDUCE", "NEWOBJ", "NEWOBJ_EX"}


def _names_python_callables(path: Path, error: Exception) -> bool:
    """Whether a weights-only load refused ``path`` because its pickle imports or calls Python objects.

    torch names the refused global for its own zip format; a bare pickle is read opcode by opcode (never run).
    """
    if "GLOBAL" in str(error):
        return True
    if zipfile.is_zipfile(path):
        return False
    try:
        with open(path, "rb") as file:
            return any(opcode.name in _CALLABLE_OPCODES for opcode, _, _ in pickletools.genops(file))
    except Exception:  # not a pickle at all
        return False


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
        weights = ", ".join(list(checkpoint["state_dict"])[:4]) or "none"
        raise UserError(
            f"checkpoint {path} was saved by another LightningModule, not by lit-linreg (it has no variant/lr "
            f"hyperparameters; its weights: {weights}); use a checkpoint written by lit-linreg fit"
        )
    return hparams


def checkpoint_info(checkpoint: dict[str, Any], path: str | Path) -> dict[str, Any]:
    """lit-linreg's entry of ``checkpoint`` (empty for format 1); a newer format than this version reads is an error."""
    info = checkpoint.get(FORMAT_KEY) or {}
    fmt = info.get("format", 1) if isinstance(info, dict) else None
    if not isinstance(fmt, int) or fmt > FORMAT:
        raise UserError(
            f"checkpoint {path} was written by another lit-linreg version (checkpoint format {fmt!r}; this version "
            f"reads formats 1 to {FORMAT}); load it with the lit-linreg that wrote it, or retrain"
        )
    return info


def data_config(checkpoint: dict[str, Any], path: str | Path) -> dict[str, Any] | None:
    """The checkpoint's datamodule as a ``{"class_path", "init_args"}`` config, or None if it has none.

    Only already-imported subclasses of lit-linreg's RegressionDataModule are accepted: a class path from a file is
    never imported or instantiated otherwise.
    """
    hparams = dict(checkpoint.get("datamodule_hyper_parameters") or {})
    legacy_class_path = hparams.pop("_class_path", None)  # lit-linreg 0.1 checkpoints: written by LightningCLI
    hparams.pop("_instantiator", None)
    named = [checkpoint_info(checkpoint, path).get("data_class"), legacy_class_path]
    for class_path in filter(None, named):  # every class a file names must be one of lit-linreg's data modules
        module_name, _, class_name = LEGACY_DATA_CLASSES.get(class_path, class_path).rpartition(".")
        if module_name in DATA_MODULES:  # imported only when named: the Parquet data needs pyarrow
            importlib.import_module(module_name)
        cls = getattr(sys.modules.get(module_name), class_name, None)
        if not (isinstance(cls, type) and issubclass(cls, RegressionDataModule)):
            raise UserError(
                f"checkpoint {path} is not a trusted lit-linreg checkpoint: its data class {class_path!r} is not a "
                f"lit-linreg data module"
            )
    class_path = next(filter(None, named), None)
    if class_path is None:
        return None
    class_path = LEGACY_DATA_CLASSES.get(class_path, class_path)
    return {"class_path": class_path, "init_args": hparams}

"""Checkpoints and run folders.

- Checkpoint files: atomic writes (:class:`AtomicCheckpointIO`, a Lightning CheckpointIO plugin), and weights-only
  loads that accept only trusted lit-linreg checkpoints (:func:`load_checkpoint_file`, :func:`load_task`).
- Run folders (:class:`RunFolders`, a callback): a fit writes checkpoints to ``checkpoints/<run>/version_N/`` and
  logs to ``lightning_logs/<run>/version_N/``, N the first number free in both, claimed on rank zero with an atomic
  ``mkdir`` and broadcast, so concurrent fits, DDP and ``torchrun`` agree. Resuming from a folder's ``last.ckpt``
  continues there; from an older one (``best``) starts the next version. ``validate``, ``test`` and ``predict`` write
  into ``<command>_K/`` inside the log folder of the fit whose checkpoint they load.
"""

from __future__ import annotations

import fcntl
import glob
import importlib
import os
import pickletools
import re
import shutil
import sys
import zipfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import lightning as L
import torch
from lightning.fabric.plugins.io.torch_io import TorchCheckpointIO
from lightning.pytorch.callbacks import Callback
from lightning.pytorch.loggers import TensorBoardLogger
from torch import Tensor

from lit_linreg.data import RegressionDataModule
from lit_linreg.errors import UserError, require
from lit_linreg.files import atomic_write, shown_path, storage_error
from lit_linreg.task import CHECKPOINT_FORMAT as FORMAT
from lit_linreg.task import CHECKPOINT_KEY as FORMAT_KEY
from lit_linreg.task import LinearRegressionTask

# Checkpoint files: atomic saves, and loads that trust only lit-linreg's own checkpoints.
TASK_CLASS_PATH = "lit_linreg.task.LinearRegressionTask"
LEGACY_DATA_CLASSES = {"lit_linreg.csv_data.CSVRegressionData": "lit_linreg.datasets.csv.CSVRegressionData"}
DATA_MODULES = ("lit_linreg.data", "lit_linreg.datasets.csv", "lit_linreg.datasets.parquet")  # a file may name these
TRUSTED_INSTANTIATORS = ("lightning.pytorch.cli.instantiate_module",)  # a tuple: a file may hold a list


class AtomicCheckpointIO(TorchCheckpointIO):
    """Saves atomically (:func:`atomic_write`) and loads through :func:`load_checkpoint_file`. A temporary
    ``.<name>.*.tmp`` left by a process killed mid-write (never read: no ``*.ckpt``) goes at the next save of ``name``.
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
        others = sorted(p.name for p in path.parent.glob("*.ckpt") if p.name != path.name)
        hint = f"use another checkpoint, e.g. {others[0]} beside it" if others else "use another checkpoint or retrain"
        raise UserError(
            f"checkpoint {path} is damaged or not a PyTorch checkpoint (truncated, corrupted or another format); {hint}"
        ) from err
    if not isinstance(checkpoint, dict) or not isinstance(checkpoint.get("state_dict"), dict):
        raise UserError(f"checkpoint {path} is not a Lightning checkpoint (it has no state_dict)")
    for key in ("hyper_parameters", "datamodule_hyper_parameters", "callbacks"):
        if not isinstance(checkpoint.get(key) or {}, dict):
            raise UserError(f"checkpoint {path} is damaged: its {key} is no mapping; use another checkpoint or retrain")
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
        std = str(key).endswith("_std")  # the standardisation divides by it
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


def _directory_message(path: Path) -> str:
    """``--ckpt_path`` names a folder: the checkpoint files in it (and its version_N folders), newest first."""
    found = sorted(path.rglob("*.ckpt"), key=lambda p: (p.stat().st_mtime, p.name == "last.ckpt"), reverse=True)
    aliases = "or --ckpt_path last (or best) for the newest fit of the --config's run"
    if not found:
        return (
            f"checkpoint {path} is a directory, and it holds no checkpoint (*.ckpt) files; give a .ckpt file {aliases}"
        )
    listing = ", ".join(map(str, found[:4])) + (f" and {len(found) - 4} more" if len(found) > 4 else "")
    return f"checkpoint {path} is a directory, not a checkpoint file; give one of its files, e.g. {listing} ({aliases})"


# Pickle opcodes that import or call Python objects; a weights-only load allows them only for tensors and containers.
_CALLABLE_OPCODES = {"GLOBAL", "STACK_GLOBAL", "INST", "OBJ", "REDUCE", "NEWOBJ", "NEWOBJ_EX"}


def _names_python_callables(path: Path, error: Exception) -> bool:
    """Whether a weights-only load refused ``path`` because its pickle imports or calls Python objects: torch names
    the refused global for its own zip format; a bare pickle is read opcode by opcode (never run)."""
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
        weights = ", ".join(map(str, list(checkpoint["state_dict"])[:4])) or "none"
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
    named = [c for c in (checkpoint_info(checkpoint, path).get("data_class"), legacy_class_path) if c]
    class_paths = [LEGACY_DATA_CLASSES.get(c, c) if isinstance(c, str) else c for c in named]
    for class_path in class_paths:  # every class a file names must be one of lit-linreg's data modules
        module_name, _, class_name = str(class_path).rpartition(".")
        if module_name in DATA_MODULES:  # imported only when named: the Parquet data needs pyarrow
            importlib.import_module(module_name)
        cls = getattr(sys.modules.get(module_name), class_name, None)
        if not (isinstance(class_path, str) and isinstance(cls, type) and issubclass(cls, RegressionDataModule)):
            raise UserError(
                f"checkpoint {path} is not a trusted lit-linreg checkpoint: its data class {class_path!r} is not a "
                f"lit-linreg data module"
            )
    return {"class_path": class_paths[0], "init_args": hparams} if class_paths else None


# Run folders: one version for a fit's logs and checkpoints, claimed once.
CHECKPOINT_ALIASES = ("last", "best")  # --ckpt_path values that name a run's checkpoint rather than a file


def run_name(explicit: str | None = None, configs: Sequence[str | Path] = (), ckpt_path: str | None = None) -> str:
    """The run's name: ``--run_name``, else the last ``--config`` file's stem, else the run of the ``--ckpt_path``
    file (``checkpoints/<run>/version_N/last.ckpt``), else ``default``."""
    configs = [c for c in configs if c]  # a config given as a string is no file: it names nothing
    if explicit:
        name = explicit
    elif configs:
        name = Path(str(configs[-1])).stem
    elif ckpt_path and ckpt_path not in CHECKPOINT_ALIASES:
        folder = Path(ckpt_path).resolve().parent
        name = folder.parent.name if version_of(folder) is not None else folder.name
    else:
        name = "default"
    require(
        name not in ("", ".", "..") and "/" not in name and "\\" not in name and len(name.encode()) <= 200,
        f"run_name must be a plain folder name of at most 200 bytes, got {name[:60]!r}{'...' * (len(name) > 60)}",
    )
    return name


def version_of(folder: Path) -> int | None:
    """N for a ``version_N`` folder, else None."""
    match = re.fullmatch(r"version_(\d+)", folder.name)
    return int(match.group(1)) if match else None


def numbers(prefix: str, *roots: Path) -> list[int]:
    """The numbers N of the ``<prefix>N`` entries of the folders ``roots``, in increasing order."""
    pattern = re.compile(rf"{re.escape(prefix)}(\d+)")
    return sorted(
        {int(m.group(1)) for root in roots if root.is_dir() for p in root.iterdir() if (m := pattern.fullmatch(p.name))}
    )


def claim(parent: Path, prefix: str, *others: Path) -> Path:
    """Create ``parent/<prefix>N`` for the first N above every ``<prefix>N`` in ``parent`` and ``others``,
    atomically."""
    number = max(numbers(prefix, parent, *others), default=-1) + 1
    while True:
        folder = parent / f"{prefix}{number}"
        try:
            folder.mkdir(parents=True)
            return folder
        except FileExistsError:  # another command claimed it a moment ago
            number += 1
        except OSError as err:
            raise storage_error(err, folder) from err


def checkpoint_dir(root: Path, name: str, dirpath: str | None = None) -> Path:
    """Where ``--ckpt_path last|best`` looks: the config's ``checkpoint.dirpath``, else ``root/checkpoints/name``."""
    return Path(dirpath) if dirpath else root / "checkpoints" / name


def find_checkpoint(run_dir: Path, alias: str) -> Path | None:
    """The file ``--ckpt_path last`` or ``best`` names: in the newest ``version_N`` of ``run_dir`` with a
    ``last.ckpt`` (or in ``run_dir`` itself, for a ``checkpoint.dirpath`` of its own); ``best`` is the best
    checkpoint that this ``last.ckpt`` records. None: the run has no checkpoint."""
    folders = [run_dir / f"version_{n}" for n in reversed(numbers("version_", run_dir))] + [run_dir]
    last = next((f / "last.ckpt" for f in folders if (f / "last.ckpt").is_file()), None)
    if alias == "last" or last is None:
        return last
    states = load_checkpoint_file(last).get("callbacks") or {}
    recorded = [s.get("best_model_path") for k, s in states.items() if "val_loss" in str(k) and isinstance(s, dict)]
    best = next((path for path in recorded if path and isinstance(path, str)), None)
    if best and not Path(best).is_file():  # the run folder was moved: look beside last.ckpt
        best = str(last.parent / Path(best).name)
    if not best or not Path(best).is_file():
        raise UserError(f"--ckpt_path best: {last} names no existing best checkpoint; use --ckpt_path last")
    return Path(best)


class RunFolders(Callback):
    """Gives the run ``name`` its folders in ``root``'s ``checkpoints/`` and ``lightning_logs/`` (see the module's
    docstring) and, when ``logger`` is true, a TensorBoardLogger writing into its log folder. ``ckpt_path``: the
    checkpoint the command starts from (a fit resumes it; other commands load it)."""

    def __init__(self, root: Path, name: str, ckpt_path: str | None = None, logger: bool = True) -> None:
        self.root, self.name, self.ckpt_path, self.logger = Path(root), name, ckpt_path, logger
        self.log_dir: Path | None = None
        self._created: Path | None = None  # the folder this command claimed (rank zero)
        self._lock: int | None = None

    def setup(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        stage = trainer.state.fn.value if trainer.state.fn else str(stage)  # "fit", "validate", "test", "predict"
        logs, checkpoints = self.root / "lightning_logs" / self.name, checkpoint_dir(self.root, self.name)
        resumed = Path(self.ckpt_path).resolve().parent if self.ckpt_path else None
        in_run = (
            resumed if resumed and resumed.parent == checkpoints.resolve() and version_of(resumed) is not None else None
        )
        own = [c for c in trainer.checkpoint_callbacks if getattr(c, "dirpath", "") is None]  # no dirpath of their own
        folder: str | None = None
        if trainer.is_global_zero:
            if stage == "fit" and in_run and Path(self.ckpt_path or "").name == "last.ckpt":
                folder = str(checkpoints / in_run.name)  # its newest state: go on there
            else:
                parent = (checkpoints if own else logs) if stage == "fit" else logs / in_run.name if in_run else logs
                claimed = claim(parent, "version_" if stage == "fit" else f"{stage}_", logs)
                self._created = claimed
                folder = str(claimed)
        folder = trainer.strategy.broadcast(folder)
        assert folder is not None
        saved_to: Path | None = None
        if stage == "fit":
            self.log_dir = logs / Path(folder).name
            for callback in own:
                callback.dirpath = folder  # type: ignore[attr-defined]
            dirpaths = [getattr(c, "dirpath", None) for c in trainer.checkpoint_callbacks]
            saved_to = Path(next(filter(None, dirpaths), folder))
            if trainer.is_global_zero:
                saved_to.mkdir(parents=True, exist_ok=True)
                self._lock = lock(saved_to)
        else:
            self.log_dir = Path(folder)
            for callback in own:  # the folder they saved into, where nothing is written now
                callback.dirpath = str(resumed) if resumed is not None else folder  # type: ignore[attr-defined]
        if self.logger:
            version = self.log_dir.name if stage == "fit" else str(self.log_dir.relative_to(logs))
            trainer.loggers = [TensorBoardLogger(self.root / "lightning_logs", name=self.name, version=version)]
        elif trainer.is_global_zero and stage != "fit":
            self.log_dir.mkdir(parents=True, exist_ok=True)
        strategy = trainer.strategy
        devices = getattr(strategy, "parallel_devices", None) or [strategy.root_device]
        where = f" | checkpoints: {shown_path(saved_to)}" if saved_to else ""
        pl_module.print(
            f"lit-linreg {stage}: run '{self.name}' on {type(trainer.accelerator).__name__} "
            f"({', '.join(map(str, devices))}; {type(strategy).__name__}){where} | logs: {shown_path(self.log_dir)}"
        )

    def teardown(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        if self._lock is not None:
            os.close(self._lock)  # releases the flock
            self._lock = None

    def on_exception(self, trainer: L.Trainer, pl_module: L.LightningModule, exception: BaseException) -> None:
        """A command that failed before it saved anything leaves no folder behind (its version number stays free)."""
        self.teardown(trainer, pl_module, "")
        created, self._created = self._created, None
        if created is not None and next(created.glob("*.ckpt"), None) is None:
            for folder in filter(None, (created, self.log_dir)):
                shutil.rmtree(folder, ignore_errors=True)


def lock(folder: Path) -> int:
    """Hold ``folder``'s lock (an flock on the folder itself) until the returned descriptor is closed; a one-line
    error if another fit holds it."""
    try:
        descriptor = os.open(folder, os.O_RDONLY)
    except OSError as err:
        raise storage_error(err, folder) from err
    try:
        fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(descriptor)
        raise UserError(
            f"{folder} is in use by another lit-linreg fit; wait for it to finish, or start a new version of the run "
            f"without --ckpt_path"
        ) from None
    return descriptor

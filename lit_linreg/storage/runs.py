"""Run folders: every fit writes into folders of its own, so no run can overwrite or delete another's files.

A fit's checkpoints go to ``checkpoints/<run>/version_N/`` and its logs (TensorBoard events, config.yaml, figures) to
``lightning_logs/<run>/version_N/``, with one N: the first number free in both, claimed on global rank zero with an
atomic ``mkdir`` and broadcast to every other process, so fits started together, DDP and ``torchrun`` all agree. A
resumed fit continues in the folders of the checkpoint it resumes from, if that checkpoint is the folder's newest
state; from an older one (``best``), it starts the next version. ``validate``, ``test`` and ``predict`` never take a
version: they write into ``<command>_K/`` inside the log folder of the fit whose checkpoint they load.
"""

from __future__ import annotations

import fcntl
import os
import re
import shutil
from collections.abc import Sequence
from pathlib import Path

import lightning as L
from lightning.pytorch.callbacks import Callback
from lightning.pytorch.loggers import TensorBoardLogger

from lit_linreg.errors import UserError, require
from lit_linreg.storage.checkpoints import load_checkpoint_file
from lit_linreg.storage.files import shown_path, storage_error

VERSION = re.compile(r"^version_(\d+)$")
CHECKPOINT_ALIASES = ("last", "best")  # --ckpt_path values that name a run's checkpoint rather than a file


def run_name(explicit: str | None = None, configs: Sequence[str | Path] = (), ckpt_path: str | None = None) -> str:
    """The run's name: ``--run_name``, else the last ``--config`` file's stem, else the run of the ``--ckpt_path``
    file (``checkpoints/<run>/version_N/last.ckpt``), else ``default``."""
    if explicit:
        name = explicit
    elif [c for c in configs if c]:  # a config given as a string is no file: it names nothing
        name = Path(str([c for c in configs if c][-1])).stem
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
    match = VERSION.match(folder.name)
    return int(match.group(1)) if match else None


def versions(*roots: Path) -> list[int]:
    """The version numbers N of the ``version_N`` folders under ``roots``, in increasing order."""
    found = {int(m.group(1)) for root in roots if root.is_dir() for p in root.iterdir() if (m := VERSION.match(p.name))}
    return sorted(found)


def claim(parent: Path, prefix: str, *others: Path) -> Path:
    """Create ``parent/<prefix>N`` for the first N above every ``<prefix>N`` in ``parent`` and ``others``,
    atomically."""
    pattern = re.compile(rf"^{re.escape(prefix)}(\d+)$")
    taken = [
        int(m.group(1))
        for root in (parent, *others)
        if root.is_dir()
        for p in root.iterdir()
        if (m := pattern.match(p.name))
    ]
    number = max(taken, default=-1) + 1
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
    """Where ``--ckpt_path last|best`` looks: the config's ``checkpoint.dirpath`` when it sets one, else
    ``<root>/checkpoints/<name>/``, with a ``version_N`` folder per fit."""
    return Path(dirpath) if dirpath else root / "checkpoints" / name


def find_checkpoint(run_dir: Path, alias: str) -> Path | None:
    """The file ``--ckpt_path last`` or ``best`` names: in the newest ``version_N`` of ``run_dir`` with a
    ``last.ckpt`` (or in ``run_dir`` itself, for a ``checkpoint.dirpath`` of its own); ``best`` is the best
    checkpoint that this ``last.ckpt`` records. None: the run has no checkpoint."""
    folders = [run_dir / f"version_{n}" for n in reversed(versions(run_dir))] + [run_dir]
    last = next((f / "last.ckpt" for f in folders if (f / "last.ckpt").is_file()), None)
    if alias == "last" or last is None:
        return last
    states = load_checkpoint_file(last).get("callbacks", {})
    best = next(
        (s.get("best_model_path") for k, s in states.items() if "val_loss" in k and s.get("best_model_path")), None
    )
    if best and not Path(best).is_file():  # the run folder was moved: look beside last.ckpt
        best = str(last.parent / Path(best).name)
    if not best or not Path(best).is_file():
        raise UserError(f"--ckpt_path best: {last} names no existing best checkpoint; use --ckpt_path last")
    return Path(best)


class RunFolders(Callback):
    """Gives a run its folders (see the module's docstring) and, when ``logger`` is true, its TensorBoard logger.

    Args:
        root: the folder that holds ``checkpoints/`` and ``lightning_logs/``
        name: the run's name
        ckpt_path: the checkpoint the command starts from (a fit resumes it; other commands load it)
        logger: give the trainer a TensorBoardLogger writing into the run's log folder
    """

    def __init__(self, root: Path, name: str, ckpt_path: str | None = None, logger: bool = True) -> None:
        self.root, self.name, self.ckpt_path, self.logger = Path(root), name, ckpt_path, logger
        self.checkpoint_dir: Path | None = None
        self.log_dir: Path | None = None
        self._created: list[Path] = []
        self._lock: int | None = None

    def setup(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        stage = trainer.state.fn.value if trainer.state.fn else str(stage)  # "fit", "validate", "test", "predict"
        logs, checkpoints = self.root / "lightning_logs" / self.name, self.root / "checkpoints" / self.name
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
                self._created = [claimed]
                folder = str(claimed)
        folder = trainer.strategy.broadcast(folder)
        assert folder is not None
        if stage == "fit":
            self.log_dir = logs / Path(folder).name
            for callback in own:
                callback.dirpath = folder  # type: ignore[attr-defined]
            dirpaths = [getattr(c, "dirpath", None) for c in trainer.checkpoint_callbacks]
            self.checkpoint_dir = Path(next(filter(None, dirpaths), folder))
            if trainer.is_global_zero:
                self.checkpoint_dir.mkdir(parents=True, exist_ok=True)
                self._lock = lock(self.checkpoint_dir)
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
        where = f" | checkpoints: {shown_path(self.checkpoint_dir)}" if self.checkpoint_dir else ""
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
        if not trainer.is_global_zero or not self._created:
            return
        if any(next(folder.glob("*.ckpt"), None) for folder in self._created):
            return
        for folder in [*self._created, self.log_dir]:
            if folder is not None and folder.is_dir():
                shutil.rmtree(folder, ignore_errors=True)
        self._created = []


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

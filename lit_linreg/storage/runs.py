"""Run folders: every fit writes into a folder of its own, so no run can overwrite or delete another's files.

``checkpoints/<run>/version_N/`` (last.ckpt, best-*.ckpt, report.json) sits beside ``lightning_logs/<run>/version_N/``
with the same N. A new fit claims the next N with an atomic ``mkdir``, so fits started together get different
folders; a resumed fit continues in the folder of the checkpoint it resumes from, holding a lock on it, so a second
fit of that folder refuses at once. ``--ckpt_path last|best`` names the newest version that has a ``last.ckpt``.
"""

from __future__ import annotations

import errno
import fcntl
import os
import re
from collections.abc import Sequence
from pathlib import Path
from typing import IO

from lit_linreg.errors import UserError, require

VERSION = re.compile(r"^version_(\d+)$")
LOCK_FILE = ".lock"
CHECKPOINT_ALIASES = ("last", "best")  # --ckpt_path values that name a run's checkpoint rather than a file


def run_name(explicit: str | None = None, configs: Sequence[str | Path] = (), ckpt_path: str | None = None) -> str:
    """The run's name: ``--run_name``, else the last ``--config`` file's stem, else the run of the ``--ckpt_path``
    file (``checkpoints/<run>/version_N/last.ckpt``, or the flat ``checkpoints/<run>/last.ckpt``), else ``default``."""
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
        name not in ("", ".", "..") and "/" not in name and "\\" not in name,
        f"run_name must be a plain folder name, got {name!r}",
    )
    return name


def checkpoint_dir(root: Path, name: str, dirpath: str | None = None) -> Path:
    """Where a run's checkpoints are, and where ``--ckpt_path last|best`` looks: the config's ``checkpoint.dirpath``
    when it sets one, else ``<root>/checkpoints/<name>/`` (with a ``version_N`` folder per fit)."""
    return Path(dirpath) if dirpath else root / "checkpoints" / name


def versions(*roots: Path) -> list[int]:
    """The version numbers N of the ``version_N`` folders under ``roots``, in increasing order."""
    found = {int(m.group(1)) for root in roots if root.is_dir() for p in root.iterdir() if (m := VERSION.match(p.name))}
    return sorted(found)


def version_of(folder: Path) -> int | None:
    """N for a ``version_N`` folder, else None."""
    match = VERSION.match(folder.name)
    return int(match.group(1)) if match else None


def claim_version(run_dir: Path, log_dir: Path) -> tuple[int, Path]:
    """Create ``run_dir/version_N`` for the smallest N above every version in ``run_dir`` and ``log_dir``."""
    number = max(versions(run_dir, log_dir), default=-1) + 1
    while True:
        folder = run_dir / f"version_{number}"
        try:
            folder.mkdir(parents=True)
        except FileExistsError:  # another fit claimed it a moment ago
            number += 1
            continue
        except OSError as err:
            raise storage_error(err, folder) from err
        return number, folder


def lock(folder: Path) -> IO[str]:
    """Hold ``folder``'s lock for as long as the returned file stays open; a one-line error if a fit holds it."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
        file = open(folder / LOCK_FILE, "a+")  # noqa: SIM115 (held open for the whole fit)
    except OSError as err:
        raise storage_error(err, folder) from err
    try:
        fcntl.flock(file, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        file.seek(0)
        holder = file.read().strip() or "another process"
        file.close()
        raise UserError(
            f"{folder} is in use by another lit-linreg fit ({holder}); wait for it to finish, or start a new "
            f"version of the run without --ckpt_path"
        ) from None
    file.seek(0)
    file.truncate()
    file.write(f"pid {os.getpid()}\n")
    file.flush()
    return file


def release(lock_file: IO[str]) -> None:
    """Give up a folder's lock; a version folder that holds nothing but its lock (its fit failed before writing
    anything: a bad setting, a divergence in the first epoch) is removed, so it neither lingers nor uses up N."""
    folder = Path(lock_file.name).parent
    lock_file.close()
    if version_of(folder) is not None and [p.name for p in folder.iterdir()] == [LOCK_FILE]:
        (folder / LOCK_FILE).unlink(missing_ok=True)
        folder.rmdir()


def find_checkpoint(run_dir: Path, alias: str, fitting: bool = False) -> str | None:
    """The file that ``--ckpt_path last`` or ``best`` names: in the newest ``version_N`` of ``run_dir`` that has a
    ``last.ckpt`` (else a ``last.ckpt`` of the older flat layout in ``run_dir`` itself).

    ``last`` with no checkpoint is None when ``fitting`` (a fresh start) and an error otherwise; ``best`` is the best
    checkpoint that ``last.ckpt`` records.
    """
    from lit_linreg.storage.checkpoints import load_checkpoint_file

    folders = [run_dir / f"version_{n}" for n in reversed(versions(run_dir))] + [run_dir]
    last = next((f / "last.ckpt" for f in folders if (f / "last.ckpt").is_file()), None)
    wanted = run_dir / "version_*" / "last.ckpt"
    if alias == "last":
        require(last is not None or fitting, f"--ckpt_path last: there is no {wanted}; run fit first")
        return None if last is None else str(last)
    require(last is not None, f"--ckpt_path best: there is no {wanted} to read the best checkpoint from; run fit first")
    assert last is not None
    states = load_checkpoint_file(last).get("callbacks", {})
    best = next((s.get("best_model_path") for k, s in states.items() if k.startswith("RunCheckpoint")), None)
    if best and not Path(best).is_file():  # the run folder was moved: look beside last.ckpt
        best = str(last.parent / Path(best).name)
    if not best or not Path(best).is_file():
        raise UserError(f"--ckpt_path best: {last} names no existing best checkpoint")
    return best


def storage_error(error: OSError, path: Path | str) -> UserError:
    """One line for a file that cannot be written: what happened to which path, and the fix."""
    fixes = {
        errno.ENOSPC: "the disk is full: free space there, or point --trainer.default_root_dir at another disk",
        errno.EDQUOT: "the disk quota is exceeded: free space, or point --trainer.default_root_dir elsewhere",
        errno.EROFS: "that file system is read-only: point --trainer.default_root_dir at a writable folder",
        errno.EACCES: "permission denied: make it writable, or point --trainer.default_root_dir elsewhere",
        errno.EPERM: "permission denied: make it writable, or point --trainer.default_root_dir elsewhere",
    }
    fix = fixes.get(error.errno or 0, "check the disk and the folder, or point --trainer.default_root_dir elsewhere")
    where = error.filename or path
    return UserError(f"cannot write {where} ({error.strerror or error}): {fix}")

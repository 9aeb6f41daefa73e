"""Files: atomic writes, so an interrupted write leaves the previous file or the new one, never a torn one."""

from __future__ import annotations

import errno
import os
import secrets
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO

import numpy as np

if TYPE_CHECKING:  # a type hint only: `lit-linreg theory` imports this module without torch
    from torch import Tensor

from lit_linreg.errors import UserError


def atomic_write(path: str | os.PathLike, write: Callable[[BinaryIO], object]) -> Path:
    """Write through ``write(file)`` into a temporary file next to ``path``, fsync it, then rename it over ``path``.

    The fsync comes before the rename, so the name never points at data still unwritten.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.parent / f".{path.name}.{secrets.token_hex(4)}.tmp"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)  # the usual permissions, less the umask
    try:
        with os.fdopen(fd, "wb") as file:
            write(file)
            file.flush()
            os.fsync(file.fileno())
        os.replace(tmp, path)
    except BaseException as err:
        Path(tmp).unlink(missing_ok=True)
        if isinstance(err, OSError) and err.filename is None:
            err.filename = str(path)  # name the file the user knows, not the temporary one
        raise
    # The folder is not fsynced: after a power cut the rename may be undone, leaving the previous file, whole.
    return path


def write_csv(path: str | os.PathLike, header: Sequence[str], columns: Sequence[Tensor]) -> Path:
    """Write equal-length 1-D columns as a CSV file with ``header``, atomically."""
    table = np.column_stack([c.detach().cpu().double().numpy() for c in columns])

    def write(file: BinaryIO) -> None:
        np.savetxt(file, table, delimiter=",", header=",".join(header), comments="", fmt="%.9g")

    return atomic_write(path, write)


def shown_path(path: str | os.PathLike | None) -> str:
    """``path`` relative to the current directory when it lies below it (as the user would type it), else as is."""
    if not path:
        return "-"
    try:
        return str(Path(path).resolve().relative_to(Path.cwd()))
    except ValueError:
        return str(path)


STORAGE_FIXES = {
    errno.ENOSPC: "the disk is full: free space there, or point --trainer.default_root_dir at another disk",
    errno.EDQUOT: "the disk quota is exceeded: free space, or point --trainer.default_root_dir elsewhere",
    errno.EROFS: "that file system is read-only: point --trainer.default_root_dir at a writable folder",
    errno.EACCES: "permission denied: make it writable, or point --trainer.default_root_dir elsewhere",
    errno.EPERM: "permission denied: make it writable, or point --trainer.default_root_dir elsewhere",
}


def storage_error(error: OSError, path: str | os.PathLike | None = None) -> UserError:
    """One line for a file that cannot be written: what happened to which path, and the fix."""
    fix = STORAGE_FIXES.get(
        error.errno or 0, "check the disk and the folder, or point --trainer.default_root_dir elsewhere"
    )
    return UserError(f"cannot write {error.filename or path or 'a file'} ({error.strerror or error}): {fix}")

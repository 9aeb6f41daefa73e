"""Files: atomic writes, so an interrupted write leaves the previous file or the new one, never a torn one."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import BinaryIO

import numpy as np
from torch import Tensor

_UMASK = os.umask(0o022)  # the only way to read the umask is to set it: read it once, at import, and put it back
os.umask(_UMASK)


def atomic_write(path: str | os.PathLike, write: Callable[[BinaryIO], None]) -> Path:
    """Write through ``write(file)`` into a temporary file next to ``path``, fsync it, then rename it over ``path``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        os.fchmod(fd, 0o666 & ~_UMASK)  # mkstemp makes the file owner-only; give it the usual permissions
        with os.fdopen(fd, "wb") as file:
            write(file)
            file.flush()
            os.fsync(file.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    dir_fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)  # make the rename itself durable
    finally:
        os.close(dir_fd)
    return path


def write_csv(path: str | os.PathLike, header: Sequence[str], columns: Sequence[Tensor]) -> Path:
    """Write equal-length 1-D columns as a CSV file with ``header``, atomically."""
    table = np.column_stack([c.detach().cpu().double().numpy() for c in columns])

    def write(file: BinaryIO) -> None:
        np.savetxt(file, table, delimiter=",", header=",".join(header), comments="", fmt="%.9g")

    return atomic_write(path, write)

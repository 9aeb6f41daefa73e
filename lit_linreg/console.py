"""Console output: lines that never tear a progress bar, and numbers formatted the tutorial's way."""

from __future__ import annotations

import sys
from pathlib import Path

from torch import Tensor
from tqdm import tqdm


def echo(message: str) -> None:
    """Print a line of the run's output without tearing a progress bar that is being drawn (Lightning's tqdm bar)."""
    tqdm.write(message, file=sys.stdout)
    sys.stdout.flush()


def shown_path(path: str | Path | None) -> str:
    """``path`` relative to the current directory when it lies below it (as the user would type it), else as is."""
    if not path:
        return "-"
    try:
        return str(Path(path).resolve().relative_to(Path.cwd()))
    except ValueError:
        return str(path)


def fixed_width(value: float, width: int, decimals: int) -> str:
    """``value`` right-aligned in ``width`` characters with ``decimals`` decimals, or in scientific notation when the
    fixed form would not fit (a diverging run's 1e30), so a table stays aligned whatever it holds."""
    text = f"{value:{width}.{decimals}f}"
    if len(text) <= width:
        return text
    for digits in range(max(0, width - 6), -1, -1):  # as many significant digits as fit
        text = f"{value:{width}.{digits}e}"
        if len(text) <= width:
            return text
    return text  # -1e-300 in 6 characters: one character too wide, still readable


def format_weight(weight: Tensor) -> str:
    """A weight or bias with 4 decimals (``0.6954``, ``-0.2000``), or a list of them for several features; a value
    too large for that (a diverging run's) in scientific notation."""
    values = [fixed_width(w, 7 if w < 0 else 6, 4) for w in weight.reshape(-1).tolist()]
    return values[0] if len(values) == 1 else "[" + ", ".join(v.strip() for v in values) + "]"

"""What the user reads: :class:`UserError` (``lit-linreg`` prints it as one line, ``lit-linreg: error: <what is wrong,
where>; <how to fix it>``; any other exception is a bug and keeps its traceback), and the run's lines and numbers.
Imports nothing from lit-linreg, nor torch, so every layer can use it.
"""

from __future__ import annotations

import codecs
import sys
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # type hints only: `lit-linreg --help` imports this module without torch
    from torch import Tensor


class UserError(ValueError):
    """A problem the user can fix: printed as one line (what, where, how to fix), exit status ``exit_code``."""

    def __init__(self, message: str, exit_code: int = 2) -> None:
        super().__init__(message)
        self.exit_code = exit_code


def require(condition: bool, message: str) -> None:
    """Raise :class:`UserError` with ``message`` unless ``condition`` holds."""
    if not condition:
        raise UserError(message)


def one_line(message: str) -> str:
    """``message`` with every run of whitespace, newlines included, as one space."""
    return " ".join(message.split())


def not_utf8(data: bytes) -> str | None:
    """Why ``data`` is not UTF-8 text, naming the first bad byte and its line and column; None if it is UTF-8."""
    if data.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        return "is UTF-16 text, not UTF-8"
    try:
        data.decode("utf-8")
    except UnicodeDecodeError as err:
        start = data.rfind(b"\n", 0, err.start) + 1
        line, column = data.count(b"\n", 0, err.start) + 1, len(data[start : err.start].decode("utf-8")) + 1
        try:
            data.decode("cp1252")
            guess = ": Latin-1 or Windows-1252?"
        except UnicodeDecodeError:
            guess = ""
        return f"is not UTF-8 text (byte 0x{data[err.start]:02x} at line {line}, column {column}{guess})"
    return None


# Console output: lines that never tear a progress bar, numbers formatted the tutorial's way.
def echo(message: str) -> None:
    """Print a line of the run's output without tearing a progress bar that is being drawn (Lightning's tqdm bar)."""
    from tqdm import tqdm  # here, not at the top: launch imports this module for --help, which needs no tqdm

    tqdm.write(message, file=sys.stdout)
    sys.stdout.flush()


SIGNIFICANT_DIGITS = 6  # a fixed-point number shows at most this many (or ``decimals`` decimals, when fewer)


def fixed_width(value: float, width: int, decimals: int, small: float = 0.0) -> str:
    """``value`` right-aligned in ``width`` characters: up to ``decimals`` decimals, fewer when the integer part needs
    the room or past 6 significant digits (``0.312881``, ``70.6123``, ``2645.30``). Scientific notation only from 1e6,
    below ``small`` (a loss of 1e-9 reads ``0.000000``) or where nothing else fits, so a table stays aligned."""
    value += 0.0  # -0.0 reads 0.0
    if not (abs(value) >= 1e6 or 0 < abs(value) < small):
        integer_digits = len(str(int(abs(value)))) if abs(value) >= 1 else 0  # nan: 0; inf took the other branch
        for digits in range(min(decimals, max(0, SIGNIFICANT_DIGITS - integer_digits)), -1, -1):
            text = f"{value:{width}.{digits}f}"
            if len(text) <= width:
                return text
    for digits in range(max(0, width - 6), -1, -1):
        text = f"{value:{width}.{digits}e}"
        if len(text) <= width:
            return text
    return text  # -1e-300 in 6 characters: one character too wide, still readable


def format_value(value: float, width: int = 6, decimals: int = 4) -> str:
    """A weight or bias: 4 decimals (``0.6954``, ``-0.2000``), fewer when its integer part needs the room (``70.612``),
    scientific only from 1e6 or below 1e-4 in magnitude (``3e-05``); ``width`` characters, plus one for a minus sign."""
    return fixed_width(value, width + (value < 0), decimals, small=1e-4)


def format_weight(weight: Tensor) -> str:
    """A weight or bias (:func:`format_value`), or a list of them for several features."""
    values = [format_value(w) for w in weight.reshape(-1).tolist()]
    return values[0] if len(values) == 1 else "[" + ", ".join(v.strip() for v in values) + "]"

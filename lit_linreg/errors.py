"""Errors: the one error type for problems a user can fix, and ``require``.

``lit-linreg`` prints a :class:`UserError` as one line, ``lit-linreg: error: <what is wrong, where>; <how to fix it>``,
and exits with its ``exit_code``; any other exception is a bug and keeps its traceback. This module imports nothing
from lit-linreg, so every layer can use it.
"""

from __future__ import annotations

import codecs


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

"""User errors: the one error type for problems a user can fix, and turning known errors into one line.

``main`` prints every user error as ``lit-linreg: error: <what is wrong, where>; <how to fix it>`` and exits with
its ``exit_code``; any other exception is a programming error and keeps its traceback.
"""

from __future__ import annotations

import codecs
import errno
import math
import os
import re
from argparse import ArgumentError
from collections.abc import Iterable, Sequence

from lightning.fabric.utilities.exceptions import MisconfigurationException


class UserError(ValueError):
    """A problem the user can fix. ``main`` prints it as one line (what, where, how to fix) and exits with status 2."""

    exit_code = 2


class Interrupted(UserError):
    """The run was stopped by a signal: exit status 128 + its number (130 for Ctrl-C, 143 for SIGTERM)."""

    def __init__(self, message: str, exit_code: int = 130) -> None:
        super().__init__(message)
        self.exit_code = exit_code


# A full disk, an exceeded quota, a read-only file system or a folder without write permission: the user's to fix.
STORAGE_ERRNOS = {errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EACCES, errno.EPERM}


def require(condition: bool, message: str) -> None:
    """Raise :class:`UserError` with ``message`` unless ``condition`` holds."""
    if not condition:
        raise UserError(message)


def require_finite(name: str, value: float | Iterable[float]) -> None:
    """Every number in ``value`` must be finite (not NaN or ±inf)."""
    values = list(value) if isinstance(value, Iterable) else [value]
    require(
        all(isinstance(v, (int, float)) and math.isfinite(v) for v in values),
        f"{name} must be finite numbers, got {value!r}",
    )


def as_user_error(error: BaseException, argv: Sequence[str] = ()) -> UserError | None:
    """The user error behind ``error`` (raised while running the command line ``argv``), or None for a bug.

    Known: a :class:`UserError`, also when a library re-raised it ``from`` it (jsonargparse wraps errors raised while
    instantiating a class); a command-line or config parse error; Lightning's MisconfigurationException; Ctrl-C.
    """
    cause: BaseException | None = error
    while cause is not None:
        if isinstance(cause, UserError):
            return cause
        if isinstance(cause, OSError) and cause.errno in STORAGE_ERRNOS:
            from lit_linreg.storage.runs import storage_error

            return storage_error(cause, cause.filename or "a file")
        cause = cause.__cause__ or cause.__context__
    if isinstance(error, ArgumentError):
        message = str(error)
        file_error = _config_file_error(argv) if message.startswith(_CONFIG_FILE_ERRORS) else None
        return UserError(file_error or _parse_error_line(message, argv))
    if isinstance(error, MisconfigurationException):  # Lightning's own check of a setting
        return UserError(f"{one_line(str(error)).rstrip('.')}; fix that setting (see `{_help_command(argv)}`)")
    if isinstance(error, KeyboardInterrupt):
        return Interrupted("interrupted by Ctrl-C")
    return None


def one_line(message: str) -> str:
    """``message`` with every run of whitespace, newlines included, as one space."""
    return " ".join(message.split())


def _help_command(argv: Sequence[str]) -> str:
    from lightning.pytorch.cli import LightningCLI  # here: it imports jsonargparse, which the data classes do not need

    from lit_linreg.commands import EXTRA_COMMANDS  # here: it imports this module

    commands = [*LightningCLI.subcommands(), *EXTRA_COMMANDS]
    subcommand = argv[0] if argv and argv[0] in commands else None
    return f"lit-linreg {subcommand} --help" if subcommand else "lit-linreg --help"


# jsonargparse nests its messages: one level per option (`Parser key "data":`), union alternative and class. These
# lines only frame the reason; the innermost other line, under the keys that enclose it, says what is wrong.
_FRAME = re.compile(
    r"Does not validate against any of the Union subtypes|Subtypes:|Errors:|Given value|Problem with given class_path|"
    r"Expected a <class 'NoneType'>"
)
_KEY = re.compile(r'Parser key "([^"]+)":\s*')


def _as_typed(path: str, argv: Sequence[str]) -> str:
    """``path`` as the command line spelled it (``configs/bsae.yaml``), when one of its arguments names it."""
    for arg in argv:
        value = str(arg).partition("=")[2] if str(arg).startswith("--") else str(arg)
        if value and os.path.abspath(value) == os.path.abspath(path):
            return value
    return path


def _parse_error_line(message: str, argv: Sequence[str]) -> str:
    """One line from a jsonargparse message: ``--<option>: <innermost reason> (given: <value>); <how to fix>``."""
    parsed: list[tuple[int, str | None, str]] = []  # (indent, option key or None, reason or "")
    for line in filter(str.strip, message.splitlines()):
        text = line.strip().removeprefix("- ")
        match = _KEY.match(text)
        reason = text[match.end() :] if match else text
        key = match.group(1) if match else None
        parsed.append((len(line) - len(line.lstrip()), key, "" if _FRAME.match(reason) else reason))
    candidates = [i for i, (_, _, reason) in enumerate(parsed) if reason]
    if not candidates:
        return f"{one_line(message)}; see `{_help_command(argv)}`"
    at = max(candidates, key=lambda i: (parsed[i][0], -i))  # the first of the innermost reasons
    keys: list[str] = []
    level = parsed[at][0] + 1
    for indent, key, _ in reversed(parsed[: at + 1]):
        if key and indent < level:
            keys.insert(0, key)
            level = indent
    reason = re.sub(r"<class '(\w+)'>", r"\1", parsed[at][2])
    reason = re.sub(r"typing\.Literal\[(.*)\]", r"one of \1", reason)
    reason = re.sub(r"^Expected (an? )?", "expected ", reason).replace(". Got value: ", ", got ").rstrip(".")
    if re.search("does not exist|is not a file", reason):  # the path as typed, not jsonargparse's absolute one
        reason = re.sub(r"'(/[^']+)'", lambda path: f"'{_as_typed(path.group(1), argv)}'", reason)
    line = (f"--{'.'.join(keys)}: " if keys else "") + reason
    given = [
        (len(g) - len(g.lstrip()), g.partition(":")[2].strip())
        for g in message.splitlines()
        if g.strip().startswith("Given value:")
    ]
    value = max(given, key=lambda g: g[0])[1] if given else ""  # the innermost, unless it is jsonargparse's wrapper
    notes = [f"given: {value}"] if value and value not in line and not value.startswith(_WRAPPERS) else []
    if keys:
        from lit_linreg.storage.config_files import config_location

        location = config_location(argv, keys)  # a value from a config file: name the file and line
        notes += [f"in {location}"] if location else []
    line += f" ({', '.join(notes)})" if notes else ""
    return f"{one_line(line)}; " + (
        "check the path" if re.search("does not exist|is not a file", reason) else f"see `{_help_command(argv)}`"
    )


_WRAPPERS = ("NestedArg(", "Namespace(", "{")  # jsonargparse's own wrappers of a given value, not what the user wrote

# jsonargparse's messages for a config file it could not read as a mapping of options: empty, a list, not YAML.
_CONFIG_FILE_ERRORS = ("Problems parsing config", "Unexpected config")


def _config_file_error(argv: Sequence[str]) -> str | None:
    """What is wrong with the first bad ``--config`` file in ``argv`` (see :mod:`lit_linreg.storage.config_files`)."""
    from lit_linreg.storage.config_files import config_file_error, config_paths

    return next(filter(None, map(config_file_error, config_paths(argv))), None)


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

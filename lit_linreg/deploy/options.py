"""Command lines of ``serve`` and ``export``: options from a typed function and its docstring, through jsonargparse,
and the one-line error for an optional extra that is not installed."""

from __future__ import annotations

import importlib
import re
from argparse import ArgumentError
from collections.abc import Callable
from typing import Any

from jsonargparse import ArgumentParser

from lit_linreg.errors import UserError, one_line


def parse_function_arguments(function: Callable[..., Any], command: str, argv: list[str]) -> dict[str, Any]:
    """``argv`` parsed as the options of ``function`` (one ``--name`` per parameter, its help from the docstring)."""
    summary = (function.__doc__ or "").strip().split("\n\n")[0]
    description = " ".join(line.strip() for line in (function.__doc__ or "").split("Args:")[0].splitlines()).strip()
    parser = ArgumentParser(prog=f"lit-linreg {command}", description=description or summary, exit_on_error=False)
    parser.add_function_arguments(function, fail_untyped=True, as_group=False)
    try:
        config = parser.parse_args(argv)
    except ArgumentError as err:
        message = one_line(str(err)).rstrip(".")
        message = re.sub(r'Parser key "([^"]+)":\s*', r"--\1: ", message)
        message = re.sub(r"<class '(\w+)'>", r"\1", message)
        message = re.sub(r"typing\.Literal\[(.*)\]", r"one of \1", message)
        message = re.sub(r"Expected (an? )?", "expected ", message).replace(". Got value: ", ", got ")
        required = re.match(r"the following arguments are required: (.*)", message)
        if required:
            message = "missing " + ", ".join(f"--{name.strip()}" for name in required.group(1).split(","))
        raise UserError(f"{message}; see `lit-linreg {command} --help`") from None
    return config.as_dict()


def require_extra(extra: str, modules: list[str]) -> None:
    """Each of ``modules`` imports, or a one-line :class:`UserError` naming the ``pip install`` that brings it."""
    for name in modules:
        try:
            importlib.import_module(name)
        except ImportError:
            raise UserError(
                f"lit-linreg {extra} needs the optional package {name!r}, which is not installed: "
                f"pip install -e '.[{extra}]' in the lit-linreg folder (make setup installs it too)"
            ) from None

"""The commands beside LightningCLI's fit/validate/test/predict (``lit_linreg.launch.COMMANDS`` lists them), and the
parser they share: one option per parameter of a typed, documented function."""

from __future__ import annotations

from collections.abc import Callable, Collection
from typing import Any

import docstring_parser
from jsonargparse import ArgumentParser


def command_parser(
    prog: str, function: Callable[..., Any], skip: Collection[str] = (), epilog: str | None = None
) -> ArgumentParser:
    """A parser with one option per parameter of ``function`` (but ``skip``), typed by its annotations.

    The description is the docstring's text above ``Args:``, each option's help its ``Args:`` entry. A bad command
    line raises ``ArgumentError``, which ``lit_linreg.launch.main`` prints as one line.
    """
    doc = docstring_parser.parse(function.__doc__ or "")
    text = "\n\n".join(part for part in (doc.short_description, doc.long_description) if part)
    parser = ArgumentParser(prog=prog, description=text, epilog=epilog, exit_on_error=False)
    parser.add_function_arguments(function, as_group=False, skip=set(skip))
    return parser


def option_help(function: Callable[..., Any], name: str) -> str:
    """The ``Args:`` entry of parameter ``name`` in ``function``'s docstring, for an option added by hand."""
    params = docstring_parser.parse(function.__doc__ or "").params
    return next(param.description or "" for param in params if param.arg_name == name)

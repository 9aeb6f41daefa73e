"""The commands beside LightningCLI's fit/validate/test/predict, and the top-level help that lists them."""

from __future__ import annotations

import argparse
import importlib
import shutil
import textwrap
from collections.abc import Callable, Collection
from typing import Any

import docstring_parser
from jsonargparse import ArgumentParser, DefaultHelpFormatter

from lit_linreg.errors import UserError

# name -> ("module:function", help). Each function takes the remaining argv; it raises UserError for user problems.
EXTRA_COMMANDS: dict[str, tuple[str, str]] = {
    "theory": ("lit_linreg.commands.theory:main", "the tutorial's gradient and gradient-descent figure"),
    "lr-sweep": ("lit_linreg.commands.sweep:main", "train once per learning rate, compare the runs"),
    "make-data": (
        "lit_linreg.datasets.csv:make_data_main",
        "write an example CSV (x1, x2, x3 -> y) and rows to predict",
    ),
    "serve": ("lit_linreg.deploy.serve:main", "serve a checkpoint over HTTP (POST /predict), on LitServe"),
    "export": ("lit_linreg.deploy.export:main", "export a checkpoint to ONNX, TorchScript or torch.export (.pt2)"),
}


def check_command(argv: list[str], subcommands: list[str]) -> None:
    """A command line must start with a command (or an option such as --help): else a one-line error listing them."""
    commands = [*subcommands, *EXTRA_COMMANDS]
    if argv and (argv[0] in commands or argv[0].startswith("-")):
        return
    given = f"unknown command {argv[0]!r}" if argv else "no command given"
    raise UserError(
        f"{given}: start with one of {', '.join(commands)}, e.g. lit-linreg fit --config configs/base.yaml "
        f"(lit-linreg --help describes each)"
    )


def run_extra_command(name: str, argv: list[str]) -> None:
    module_name, _, function_name = EXTRA_COMMANDS[name][0].partition(":")
    getattr(importlib.import_module(module_name), function_name)(argv)


def description(width: int | None = None) -> str:
    """The top-level help's text wrapped to ``width`` (default: the terminal's, as argparse), one command a line."""
    width = width or shutil.get_terminal_size().columns - 2
    intro = (
        "lit-linreg: the PyTorch linear-regression workflow as a Lightning project. "
        "Train with `lit-linreg fit --config configs/base.yaml`; `lit-linreg <subcommand> --help` lists every option; "
        "--verbose anywhere shows an error's full traceback."
    )
    lines = [textwrap.fill(intro, width), "More commands (each with --help):"]
    for name, (_, help) in EXTRA_COMMANDS.items():
        command = f"  lit-linreg {name:<10} "
        lines.append(textwrap.fill(command + help, width, subsequent_indent=" " * len(command)))
    return "\n".join(lines)


class HelpFormatter(argparse.RawDescriptionHelpFormatter, DefaultHelpFormatter):
    """jsonargparse's help, with the description printed as written (:func:`description` wraps it itself)."""


def command_parser(
    prog: str, function: Callable[..., Any], skip: Collection[str] = (), epilog: str | None = None
) -> ArgumentParser:
    """A parser with one option per parameter of ``function`` (but ``skip``), typed by its annotations.

    The description is the docstring's text above ``Args:``, each option's help its ``Args:`` entry. A bad command
    line raises ``ArgumentError``, which ``lit_linreg.cli.main`` prints as one line.
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

"""The commands beside LightningCLI's fit/validate/test/predict, and the top-level help that lists them."""

from __future__ import annotations

import importlib
import re
import textwrap

from jsonargparse import DefaultHelpFormatter

from lit_linreg.errors import UserError

# name -> ("module:function", help). Each function takes the remaining argv; it raises UserError for user problems.
EXTRA_COMMANDS: dict[str, tuple[str, str]] = {
    "theory": ("lit_linreg.theory:main", "the tutorial's gradient and gradient-descent figure"),
    "lr-sweep": ("lit_linreg.sweep:main", "train once per learning rate, compare the runs"),
    "make-data": ("lit_linreg.csv_data:make_data_main", "write an example CSV (x1, x2, x3 -> y) and rows to predict"),
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


def description() -> str:
    extra = "".join(f"\n  lit-linreg {name:<10} {help}" for name, (_, help) in EXTRA_COMMANDS.items())
    return (
        "lit-linreg: the PyTorch linear-regression workflow as a Lightning project. "
        "Train with `lit-linreg fit --config configs/base.yaml`; `lit-linreg <subcommand> --help` lists every option."
        f"\nMore commands (each with --help):{extra}"
    )


class HelpFormatter(DefaultHelpFormatter):
    """Wraps each line of the description on its own, so the command list keeps one command per line."""

    def _fill_text(self, text: str, width: int, indent: str) -> str:
        lines = []
        for line in text.splitlines():
            command = re.match(r" +\S+ \S+ +", line)  # "  lit-linreg theory   ": wrap under the command's help
            hanging = indent + " " * (command.end() if command else 0)
            lines.append(textwrap.fill(line, width, initial_indent=indent, subsequent_indent=hanging))
        return "\n".join(lines)

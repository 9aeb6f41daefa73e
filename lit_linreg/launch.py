"""The ``lit-linreg`` entry point and command table: ``--help`` and a missing or unknown command are answered without
torch or Lightning (seconds to import); Ctrl-C or SIGTERM during start-up ends in one line (exit status 130 or 143).
"""

from __future__ import annotations

import errno
import importlib
import logging
import os
import shutil
import signal
import sys
import textwrap
import warnings
from argparse import ArgumentError
from collections.abc import Sequence
from functools import partial
from types import FrameType
from typing import NoReturn

from lit_linreg.errors import UserError, one_line

# LightningCLI's commands (``LitLinregCLI.subcommands()``): name -> help.
TRAINER_COMMANDS = {
    "fit": "train a model: its checkpoints, figures and report go to the run's folders",
    "validate": "evaluate a trained model (--ckpt_path) on the validation split",
    "test": "evaluate a trained model (--ckpt_path) on the test split",
    "predict": "write a trained model's (--ckpt_path) predictions to predictions.csv",
}

# The commands beside LightningCLI's: name -> ("module:function", help). Each function takes the remaining argv.
COMMANDS: dict[str, tuple[str, str]] = {
    "theory": ("lit_linreg.commands.theory:main", "the tutorial's gradient and gradient-descent figure"),
    "lr-sweep": ("lit_linreg.cli:lr_sweep", "train once per learning rate, compare the runs"),
    "make-data": (
        "lit_linreg.commands.make_data:main",
        "write an example CSV (x1, x2, x3 -> y) and rows to predict; --format parquet: Parquet files",
    ),
    "serve": ("lit_linreg.deploy.serve:main", "serve a checkpoint over HTTP (POST /predict), on LitServe"),
    "export": ("lit_linreg.deploy.export:main", "export a checkpoint to ONNX, TorchScript or torch.export (.pt2)"),
}

# What a signal during start-up prints, after ``lit-linreg: error: ``; the exit status is 128 + its number.
SIGNALS = {signal.SIGINT: "interrupted by Ctrl-C", signal.SIGTERM: "stopped by SIGTERM"}


class Stopped(BaseException):
    """A signal during start-up: not an ``Exception``, so that no ``except Exception`` in an import swallows it."""


def main(args: Sequence[str] | None = None) -> None:
    """Entry point of ``lit-linreg`` and ``python -m lit_linreg``: :func:`top_level`, else :func:`run` (in-process:
    ``main(["fit", "--config", "configs/base.yaml"])``). The previous signal handlers are back before :func:`run`,
    which turns Ctrl-C into one line itself (and a fit's ``GracefulInterrupt`` handles both signals)."""
    argv = [str(a) for a in (sys.argv[1:] if args is None else args)]
    previous = {number: signal.getsignal(number) for number in SIGNALS}
    for number, handler in previous.items():
        if handler is not signal.SIG_IGN:  # what the shell has us ignore (a background job's Ctrl-C) stays ignored
            signal.signal(number, _stop)
    try:
        if not traceback_wanted(argv):  # else run() shows even a mistyped command's traceback
            top_level(argv)
        # The command's module, torch and Lightning included, imported while a signal still ends in one line: a
        # KeyboardInterrupt inside an extension module's import can break the interpreter's own exit.
        command = COMMANDS.get(argv[0], ("lit_linreg.cli:",))[0] if argv else "lit_linreg.cli:"
        importlib.import_module(command.partition(":")[0])
    except UserError as error:
        fail(error)
    except Stopped as stopped:
        number = signal.Signals(stopped.args[0])
        fail(UserError(SIGNALS[number], exit_code=128 + number))
    finally:
        for number, handler in previous.items():
            signal.signal(number, handler)
    run(argv)


def run(argv: list[str]) -> None:
    """Run one of :data:`COMMANDS`, or fit, validate, test or predict through ``lit_linreg.cli.LitLinregCLI``.

    A user error ends as one line, ``lit-linreg: error: <what is wrong, where>; <how to fix it>`` (exit status 2, 130
    after Ctrl-C, 143 after SIGTERM); ``--verbose`` or ``LIT_LINREG_VERBOSE=1`` shows the traceback instead.
    Lightning's info lines and warnings no user can act on are kept off the output.
    """
    verbose = traceback_wanted(argv)
    argv = [a for a in argv if a != "--verbose"]
    loggers = [logging.getLogger(name) for name in ("lightning.pytorch", "lightning.fabric")]
    levels = [logger.level for logger in loggers]
    sigterm = signal.getsignal(signal.SIGTERM)
    with warnings.catch_warnings():
        try:
            if sigterm == signal.SIG_DFL:  # one line, not a silent death (in training, GracefulInterrupt takes over)
                signal.signal(signal.SIGTERM, _stopped_by_sigterm)
            if not verbose:
                warnings.filterwarnings("ignore", message=r".*isinstance\(treespec, LeafSpec\)")
                for resumed in (r"Checkpoint directory .* exists and is not empty", r"The dirpath has changed from"):
                    warnings.filterwarnings("ignore", message=resumed)  # a resume, in its folder or the next version
                if argv[:1] != ["fit"]:  # an evaluation restores no callback state: other checkpoint cadences are fine
                    warnings.filterwarnings("ignore", message=r"Be aware that when using `ckpt_path`, callbacks")
            import yaml
            from jsonargparse import set_loader

            from lit_linreg.files import load_yaml

            set_loader("yaml", load_yaml, exceptions=(yaml.YAMLError,))  # config files and values, with limits
            top_level(argv)
            if argv[0] in COMMANDS:
                module, _, function = COMMANDS[argv[0]][0].partition(":")
                run_command = partial(getattr(importlib.import_module(module), function), argv[1:])
            else:
                from lit_linreg.cli import HelpFormatter, LitLinregCLI

                parser_kwargs = {"prog": "lit-linreg", "description": description(), "formatter_class": HelpFormatter}
                run_command = partial(LitLinregCLI, argv, parser_kwargs={**parser_kwargs, "exit_on_error": False})
            for logger in loggers if not verbose else []:  # after the import: importing Lightning sets its level
                logger.setLevel(logging.WARNING)
            run_command()
        except BaseException as err:
            command = f"{argv[0]} " if argv and not argv[0].startswith("-") else ""
            error = None if verbose or isinstance(err, SystemExit) else as_user_error(err, command)
            if error is None:
                raise
            fail(error)
        finally:
            if sigterm == signal.SIG_DFL:
                signal.signal(signal.SIGTERM, sigterm)
            for logger, level in zip(loggers, levels):
                logger.setLevel(level)


def _stopped_by_sigterm(signum: int, frame: FrameType | None) -> None:
    raise UserError(SIGNALS[signal.SIGTERM], exit_code=128 + signal.SIGTERM)


def as_user_error(error: BaseException, command: str = "") -> UserError | None:
    """The user error behind ``error``, or None for a bug: a :class:`UserError` (also one a library re-raised),
    a command line or config that does not parse, a full disk or a read-only folder, a path too long, Lightning's
    check of a setting, or Ctrl-C."""
    if isinstance(error, ArgumentError):  # jsonargparse's own message, which names the option
        return UserError(f"{one_line(str(error)).rstrip('.')}; see `lit-linreg {command}--help`")
    cause: BaseException | None = error
    while cause is not None:
        if isinstance(cause, UserError):
            return cause
        if isinstance(cause, OSError):
            from lit_linreg.files import STORAGE_FIXES, storage_error  # here: it imports numpy

            if cause.errno in STORAGE_FIXES:
                return storage_error(cause)
            if cause.errno in (errno.ENAMETOOLONG, errno.ENOTDIR, errno.ELOOP):
                return UserError(f"{cause.filename or 'a path'}: {cause.strerror}; give a shorter or existing path")
        cause = cause.__cause__ or cause.__context__
    if type(error).__name__ == "MisconfigurationException":  # Lightning's own check of a setting
        return UserError(f"{one_line(str(error)).rstrip('.')}; fix that setting (see `lit-linreg {command}--help`)")
    if isinstance(error, KeyboardInterrupt):
        return UserError(SIGNALS[signal.SIGINT], exit_code=128 + signal.SIGINT)
    return None


def _stop(number: int, frame: FrameType | None) -> NoReturn:
    raise Stopped(number)


def top_level(argv: Sequence[str]) -> None:
    """What needs no command: print the top-level help and exit (``-h``/``--help`` first), or raise
    :class:`UserError` for a missing or unknown command. Returns for anything else."""
    if argv and argv[0] in ("-h", "--help"):
        print(f"usage: lit-linreg <command> [options]\n\n{description(all_commands=True)}")
        raise SystemExit(0)
    commands = [*TRAINER_COMMANDS, *COMMANDS]
    if not argv or not (argv[0] in commands or argv[0].startswith("-")):
        given = f"unknown command {argv[0]!r}" if argv else "no command given"
        raise UserError(
            f"{given}: start with one of {', '.join(commands)}, e.g. lit-linreg fit --config configs/base.yaml "
            f"(lit-linreg --help describes each)"
        )


def traceback_wanted(argv: Sequence[str]) -> bool:
    """``--verbose`` anywhere on the command line, or ``LIT_LINREG_VERBOSE`` set (but not to 0)."""
    return "--verbose" in argv or os.environ.get("LIT_LINREG_VERBOSE", "") not in ("", "0")


def fail(error: UserError) -> NoReturn:
    """Print ``error`` as the one line ``lit-linreg: error: ...`` on stderr and exit with its status."""
    print(f"lit-linreg: error: {one_line(str(error))}", file=sys.stderr, flush=True)
    raise SystemExit(error.exit_code) from None


def description(all_commands: bool = False) -> str:
    """What lit-linreg is, then its commands beside LightningCLI's, whose help lists fit, validate, test and predict
    itself (``all_commands``: those too, first, for ``lit-linreg --help``)."""
    intro = (
        "lit-linreg: the PyTorch linear-regression workflow as a Lightning project. Train with `lit-linreg fit "
        "--config configs/base.yaml`; `lit-linreg <command> --help` lists every option; --verbose anywhere shows an "
        "error's full traceback."
    )
    lists = {"Commands (each with --help):": TRAINER_COMMANDS} if all_commands else {}
    lists["More commands (each with --help):"] = {name: help for name, (_, help) in COMMANDS.items()}
    width = shutil.get_terminal_size().columns - 2
    lines = [textwrap.fill(intro, width)]
    for title, commands in lists.items():  # one "lit-linreg <name>  <help>" entry a command, wrapped to the terminal
        lines.append(title)
        for name, help in commands.items():
            command = f"  lit-linreg {name:<10} "
            lines.append(textwrap.fill(command + help, width, subsequent_indent=" " * len(command)))
    return "\n".join(lines)

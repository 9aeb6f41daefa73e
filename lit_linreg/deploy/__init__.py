"""Using a trained model outside training: ``lit-linreg serve`` (HTTP, on LitServe) and ``lit-linreg export`` (ONNX,
TorchScript, torch.export), whose optional packages are imported only when they run."""

from __future__ import annotations

import importlib
import re
from argparse import ArgumentError
from collections.abc import Callable
from typing import Any

from lit_linreg.commands import command_parser
from lit_linreg.deploy.model_io import load_for_inference, resolve_checkpoint
from lit_linreg.errors import UserError, one_line

__all__ = ["load_for_inference", "parse_function_arguments", "require_extra", "resolve_checkpoint"]


def parse_function_arguments(function: Callable[..., Any], command: str, argv: list[str]) -> dict[str, Any]:
    """``argv`` parsed as the options of ``function``; a bad one is a one-line :class:`UserError`."""
    try:
        return command_parser(f"lit-linreg {command}", function).parse_args(argv).as_dict()
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

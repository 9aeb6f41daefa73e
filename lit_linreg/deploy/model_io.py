"""Loading a trained checkpoint for serve and export, resolved and checked as ``lit-linreg predict`` does."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import yaml
from torch import Tensor

from lit_linreg.checkpoints import (
    CHECKPOINT_ALIASES,
    checkpoint_dir,
    data_config,
    find_checkpoint,
    load_checkpoint_file,
    run_name,
)
from lit_linreg.datasets.csv_reader import is_number, read_head
from lit_linreg.errors import UserError, require
from lit_linreg.files import config_file_error
from lit_linreg.task import LinearRegressionTask

PARITY_ROWS = 10_000  # the most test rows that export's parity check predicts


def resolve_checkpoint(ckpt_path: str, config: str | None = None) -> str:
    """The checkpoint file that ``--ckpt_path`` names: ``last``, ``best`` (of the ``--config``'s run) or a file."""
    settings: dict[str, Any] = {}
    if config is not None:  # checked as fit checks its --config files
        require(Path(config).is_file(), f"--config {config} does not exist or is not a file; check the path")
        problem = config_file_error(config)
        if problem:
            raise UserError(problem)
        settings = yaml.safe_load(Path(config).read_text(encoding="utf-8-sig"))
    root = Path((settings.get("trainer") or {}).get("default_root_dir") or ".")
    name = run_name(settings.get("run_name"), [config] if config else [])  # checks the name, wherever the checkpoint
    directory = checkpoint_dir(root, name, (settings.get("checkpoint") or {}).get("dirpath"))
    if ckpt_path not in CHECKPOINT_ALIASES:
        return ckpt_path
    path = find_checkpoint(directory, ckpt_path)
    if path is None:
        without = ""
        if not config:
            without = (
                "; without --config, last and best mean the run 'default': add the fit's --config (e.g. --config "
                "configs/base.yaml) or name the file (--ckpt_path checkpoints/base/version_0/last.ckpt)"
            )
        raise UserError(f"--ckpt_path {ckpt_path}: there is no {directory}/version_*/last.ckpt; run fit first{without}")
    return str(path)


def load_for_inference(ckpt_path: str) -> tuple[LinearRegressionTask, list[str] | None]:
    """The checked task of ``ckpt_path`` in eval mode on the CPU, and the CSV columns it was trained on (else None)."""
    path = resolve_checkpoint(ckpt_path)
    checkpoint = load_checkpoint_file(path)
    try:
        task = LinearRegressionTask.load_from_checkpoint(path, map_location="cpu")
    except UserError as err:  # a hyperparameter the task refuses: the checkpoint's, not an option the user typed
        raise UserError(
            f"checkpoint {path} holds a setting lit-linreg refuses ({err}); use another checkpoint"
        ) from None
    task.eval().requires_grad_(False)
    names = task.hparams.get("feature_names") or _names_from_data(checkpoint, path)
    if names is None or len(names) != task.hparams["in_features"] or not all(isinstance(n, str) for n in names):
        return task, None
    return task, list(names)


def _names_from_data(checkpoint: dict[str, Any], path: str) -> list[str] | None:
    """Feature names from the data settings of a checkpoint saved before ``feature_names`` (None if unknown)."""
    data = data_config(checkpoint, path)
    args = (data or {}).get("init_args", {})
    if args.get("features"):
        return list(args["features"])
    if not {"csv_path", "target"} <= args.keys():
        return None
    try:  # features null: every numeric column but the target, as CSVRegressionData chooses them
        header, first = read_head(str(args["csv_path"]), "data.csv_path", str(args.get("delimiter", ",")))
    except UserError:
        return None
    return [name for name, cell in zip(header, first) if name != args["target"] and is_number(cell)]


def held_out_rows(ckpt_path: str) -> tuple[Tensor | None, str]:
    """Up to ``PARITY_ROWS`` x of the checkpoint's rebuilt test split and where they came from, else None and why."""
    checkpoint = load_checkpoint_file(ckpt_path)
    data = data_config(checkpoint, ckpt_path)
    if data is None:
        return None, "the checkpoint holds no data settings"
    module_name, _, class_name = data["class_path"].rpartition(".")
    cls = getattr(sys.modules[module_name], class_name)  # data_config accepted it: an imported lit-linreg data class
    try:
        datamodule = cls(**data["init_args"])
        datamodule.setup("test")
        x = datamodule.sample("test", PARITY_ROWS)[0].float()
        rows = datamodule.moments("test").count
    except (UserError, OSError, TypeError) as err:
        return None, " ".join(str(err).split())
    split = f"the test split of {class_name}"
    if len(x) == rows:
        return x, f"{split} ({rows:,} rows)"
    return x, f"a sample of {len(x):,} of the {rows:,} rows of {split}"


def prediction_bound(task: LinearRegressionTask) -> tuple[list[tuple[float, float, float]], float]:
    """Per feature (mean, std, |weight|) and |bias|, in the model's units: bounds on what ``task(x)`` computes."""
    weight, bias = (t.double() for t in task.model.coefficients())
    n = weight.numel()
    if task.hparams["standardize"]:  # the model's output is scaled back to the target's units
        mean, std = task.feature_mean.double().tolist(), task.feature_std.double().tolist()
        scale, shift = float(task.target_std), abs(float(task.target_mean))
    else:
        mean, std, scale, shift = [0.0] * n, [1.0] * n, 1.0, 0.0
    terms = [(m, s, abs(w) * scale) for m, s, w in zip(mean, std, weight.tolist())]
    return terms, abs(float(bias.sum())) * scale + shift

"""Loading a trained checkpoint for inference (serve, export), with the same resolution and checks as ``predict``.

``--ckpt_path last|best`` names the run's checkpoint folder as ``lit-linreg predict`` does: ``checkpoints/<run>/``
under ``trainer.default_root_dir`` (``.``), where ``<run>`` is the ``--config`` file's ``run_name``, else its stem,
else ``default``, and ``checkpoint.dirpath`` in the config wins over both (``checkpoints.run_name`` and
``checkpoint_dir``, which the CLI uses too). Every file is read weights-only through the project's
trusted-checkpoint checks.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import torch
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
from lit_linreg.errors import UserError
from lit_linreg.files import check_yaml, config_file_error
from lit_linreg.task import LinearRegressionTask

PARITY_ROWS = 10_000  # the most test rows that export's parity check predicts


def run_checkpoint_dir(config: str | None = None) -> Path:
    """The folder whose ``last.ckpt``/``best`` the aliases name: as ``lit-linreg predict --config <config>``."""
    settings: dict[str, Any] = {}
    if config is not None:
        path = Path(config)
        if not path.is_file():
            raise UserError(f"--config {config} does not exist or is not a file; check the path")
        check_yaml(path.read_bytes().decode("utf-8-sig", "replace"), f"config file {config}")  # size, depth, aliases
        problem = config_file_error(config)  # the checks of fit's --config files: UTF-8, YAML, a mapping, ...
        if problem:
            raise UserError(problem)
        settings = yaml.safe_load(path.read_text(encoding="utf-8-sig"))
    root = Path((settings.get("trainer") or {}).get("default_root_dir") or ".")
    name = run_name(settings.get("run_name"), [config] if config else [])
    return checkpoint_dir(root, name, (settings.get("checkpoint") or {}).get("dirpath"))


def resolve_checkpoint(ckpt_path: str, config: str | None = None) -> str:
    """The checkpoint file that ``--ckpt_path`` names: ``last``, ``best`` (of the ``--config``'s run) or a file."""
    directory = run_checkpoint_dir(config)  # also checks the config file, wherever the checkpoint is
    if ckpt_path not in CHECKPOINT_ALIASES:
        return ckpt_path
    path = find_checkpoint(directory, ckpt_path)
    if path is None:
        without = (
            ""
            if config
            else (
                "; without --config, last and best mean the run 'default': add the fit's --config (e.g. --config "
                "configs/base.yaml) or name the file (--ckpt_path checkpoints/base/version_0/last.ckpt)"
            )
        )
        raise UserError(f"--ckpt_path {ckpt_path}: there is no {directory}/version_*/last.ckpt; run fit first{without}")
    return str(path)


def load_for_inference(ckpt_path: str, config: str | None = None) -> tuple[LinearRegressionTask, list[str] | None]:
    """The trained task of ``ckpt_path`` (``last``, ``best`` or a file) in eval mode on the CPU, and its features.

    The file passes the same checks as ``predict`` (weights only, trusted lit-linreg checkpoints only) and
    :func:`check_finite_weights`: a missing, damaged, foreign or diverged file is a one-line :class:`UserError`. The
    feature names are the CSV columns the model was trained on (None for the synthetic data); checkpoints from before
    the ``feature_names`` hyperparameter get them from their data settings where these still name them.
    """
    path = resolve_checkpoint(ckpt_path, config)
    checkpoint = load_checkpoint_file(path)
    try:
        task = LinearRegressionTask.load_from_checkpoint(path, map_location="cpu")
    except UserError as err:  # a hyperparameter the task refuses: the checkpoint's, not an option the user typed
        raise UserError(
            f"checkpoint {path} holds a setting lit-linreg refuses ({err}); use another checkpoint"
        ) from None
    task.eval().requires_grad_(False)
    names = task.hparams.get("feature_names") or _names_from_data(checkpoint, path)
    in_features = task.hparams["in_features"]
    if names is not None and (len(names) != in_features or not all(isinstance(n, str) for n in names)):
        names = None
    return task, None if names is None else list(names)


def check_finite_predictions(y_pred: Tensor, source: str) -> None:
    """Every prediction in ``y_pred`` (rows, ...) is finite, or a one-line :class:`UserError` naming the first row
    whose prediction overflowed float32 (its inputs are too large for this model)."""
    finite = torch.isfinite(y_pred.reshape(len(y_pred), -1)).all(dim=1)
    if not finite.all():
        row = int((~finite).nonzero()[0, 0])
        raise UserError(
            f"the prediction for row {row} of {source} overflows float32 (magnitudes up to 3.4e38, which the model "
            f"computes in): its inputs are too large for this model; send smaller values"
        )


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
    """Up to ``PARITY_ROWS`` x of the checkpoint's test split (``datamodule.sample``), rebuilt from its data
    settings, and where the rows came from.

    None (and the reason) when the data cannot be rebuilt here, e.g. a data file that is no longer at its path.
    """
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
    return x, f"{split} ({rows:,} rows)" if len(
        x
    ) == rows else f"a sample of {len(x):,} of the {rows:,} rows of {split}"


def predictions(task: LinearRegressionTask, x: Tensor) -> Tensor:
    """``task(x)`` without autograd: the checkpoint's own predictions, shape (rows, 1)."""
    with torch.inference_mode():
        return task(x)


def prediction_bound(task: LinearRegressionTask) -> tuple[list[tuple[float, float, float]], float]:
    """Per feature (mean, std, |weight|) in the model's own units, and |bias|: enough to bound every intermediate
    value of ``task(x)`` for a row, so that a row whose prediction would overflow float32 can be refused up front."""
    weight, bias = (t.double() for t in task.model.coefficients())
    n = weight.numel()
    if task.hparams["standardize"]:  # the model's output is scaled back to the target's units
        mean, std = task.feature_mean.double().tolist(), task.feature_std.double().tolist()
        scale, shift = float(task.target_std), abs(float(task.target_mean))
    else:
        mean, std, scale, shift = [0.0] * n, [1.0] * n, 1.0, 0.0
    terms = [(m, s, abs(w) * scale) for m, s, w in zip(mean, std, weight.tolist())]
    return terms, abs(float(bias.sum())) * scale + shift

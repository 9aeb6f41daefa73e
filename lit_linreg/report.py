"""How close did training get? The learned line beside the exact OLS and LAD optima (and the truth, when known).

``BaselineReport`` runs after ``fit`` and after ``test``; see the README's "Your own data (CSV) and exact baselines".
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import lightning as L
import torch
from lightning.pytorch.callbacks import Callback
from torch import Tensor

from lit_linreg.baselines import LinearFit, least_absolute_deviations, ordinary_least_squares, regression_errors
from lit_linreg.callbacks import echo, format_weight
from lit_linreg.io import atomic_write

MAX_BASELINE_ROWS = 200_000  # larger training splits: OLS and LAD are fitted on evenly spaced rows, at most this many
MODEL_LABELS = {"learned": "learned", "true": "true", "ols": "OLS", "lad": "LAD"}


def build_report(learned: LinearFit, truth: LinearFit | None, splits: dict[str, tuple[Tensor, Tensor]]) -> dict:
    """The report's content: each model's parameters and its MAE/MSE/R² on the training and test splits (float64).

    OLS and LAD are fitted on the training split (on at most ``MAX_BASELINE_ROWS`` of its rows, evenly spaced).
    """
    data = {name: splits[name] for name in ("train", "test")}
    x_fit, y_fit = baseline_rows(*data["train"])
    fits = {
        "learned": learned,
        "true": truth,
        "ols": ordinary_least_squares(x_fit, y_fit),
        "lad": least_absolute_deviations(x_fit, y_fit),
    }
    models = {
        name: None
        if fit is None
        else {
            "weight": fit.weight.double().tolist(),
            "bias": fit.bias.double().item(),
            **{split: _finite(regression_errors(fit, *data[split])) for split in ("train", "test")},
        }
        for name, fit in fits.items()
    }
    rows = {"train": len(data["train"][0]), "test": len(data["test"][0]), "baseline_fit": len(x_fit)}
    return {"rows": rows, "models": models}


def baseline_rows(x: Tensor, y: Tensor) -> tuple[Tensor, Tensor]:
    """What OLS and LAD are fitted on: at most ``MAX_BASELINE_ROWS`` evenly spaced rows, in float64 on the CPU."""
    stride = math.ceil(len(x) / MAX_BASELINE_ROWS)  # evenly spaced rows: views, and fair to sorted data too
    return x[::stride].detach().cpu().double(), y[::stride].detach().cpu().double()


def lowest_l1_loss(x: Tensor, y: Tensor) -> float:
    """The lowest L1 loss (MAE) that a linear model reaches on these rows: the exact LAD fit's."""
    return regression_errors(least_absolute_deviations(*baseline_rows(x, y)), x, y)["mae"]


def _finite(metrics: dict[str, float]) -> dict[str, float | None]:
    return {k: v if math.isfinite(v) else None for k, v in metrics.items()}  # JSON has no NaN: R² of a constant y


def report_table(report: dict) -> tuple[list[str], list[list[str]]]:
    """The header and rows of the report's table (one row per known model)."""
    header = ["model", "weight", "bias", "train L1", "test L1", "test MSE", "test R²"]
    rows = []
    for name, model in report["models"].items():
        if model is None:
            continue
        numbers = [model["train"]["mae"], model["test"]["mae"], model["test"]["mse"]]
        rows.append(
            [
                MODEL_LABELS[name],
                format_weight(torch.tensor(model["weight"])),
                f"{model['bias']:.4f}",
                *(f"{v:.6f}" for v in numbers),
                "-" if model["test"]["r2"] is None else f"{model['test']['r2']:.4f}",
            ]
        )
    return header, rows


def format_console(header: list[str], rows: list[list[str]]) -> str:
    widths = [max(len(cell) for cell in column) for column in zip(header, *rows)]
    lines = [
        [cell.ljust(w) if i == 0 else cell.rjust(w) for i, (cell, w) in enumerate(zip(line, widths))]
        for line in (header, *rows)
    ]
    return "\n".join(" | ".join(line) for line in lines)


def format_markdown(header: list[str], rows: list[list[str]]) -> str:
    lines = [header, ["---"] * len(header), *rows]
    return "\n".join("| " + " | ".join(line) + " |" for line in lines)


class BaselineReport(Callback):
    """After ``fit`` and ``test``: the learned parameters beside the exact OLS and LAD fits of the training split.

    LAD minimises the L1 loss the model trains on, so its training L1 is the lowest any linear model can reach; OLS
    minimises the squared error. The callback prints a table, logs it to the loggers (``report`` text and
    ``baseline/<model>_<split>_<metric>`` scalars) and writes ``report.json`` into the run's checkpoint directory,
    atomically. It does its work on global rank zero once per run, nothing per epoch.
    """

    def __init__(self, filename: str = "report.json") -> None:
        self.filename = filename
        self.path: Path | None = None

    def on_fit_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        last = getattr(trainer.checkpoint_callback, "last_model_path", None)
        self._report(trainer, pl_module, "fit", last or None)

    def on_test_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._report(trainer, pl_module, "test", trainer.ckpt_path)

    def _report(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str, checkpoint: str | None) -> None:
        datamodule = trainer.datamodule
        # trainer.log_dir is a collective under DDP: every process asks before rank zero writes.
        directory = Path(getattr(trainer.checkpoint_callback, "dirpath", None) or trainer.log_dir or ".")
        if not trainer.is_global_zero or not getattr(datamodule, "splits", None):
            return
        truth = pl_module.true_parameters()
        report = {
            "stage": stage,
            "checkpoint": checkpoint,
            "features": getattr(datamodule, "feature_names", None),
            **build_report(
                LinearFit(*pl_module.coefficients()), None if truth is None else LinearFit(*truth), datamodule.splits
            ),
        }
        header, rows = report_table(report)
        fitted, train = report["rows"]["baseline_fit"], report["rows"]["train"]
        sample = "" if fitted == train else f" (every {math.ceil(train / fitted)}th of the {train:,})"
        echo(
            f"baselines: OLS and LAD fitted in float64 on {fitted:,} training rows{sample}; "
            f"L1 = mean absolute error, the training loss"
        )
        echo(format_console(header, rows))
        self._log(trainer, report, format_markdown(header, rows))
        text = json.dumps(report, indent=2, allow_nan=False) + "\n"
        self.path = atomic_write(directory / self.filename, lambda file: file.write(text.encode()))
        echo(f"report: {self.path}")

    @staticmethod
    def _log(trainer: L.Trainer, report: dict[str, Any], markdown: str) -> None:
        scalars = {
            f"baseline/{name}_{split}_{metric}": value
            for name, model in report["models"].items()
            if model is not None
            for split in ("train", "test")
            for metric, value in model[split].items()
            if value is not None
        }
        for logger in trainer.loggers:
            experiment = getattr(logger, "experiment", None)
            if hasattr(experiment, "add_text"):
                experiment.add_text("report", markdown, trainer.global_step)
            logger.log_metrics(scalars, step=trainer.global_step)

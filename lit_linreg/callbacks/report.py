"""The end-of-run report: the learned line beside the exact OLS and LAD optima (analysis/report.py builds it)."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import lightning as L
from lightning.pytorch.callbacks import Callback

from lit_linreg.analysis.baselines import LinearFit
from lit_linreg.analysis.report import build_report, format_console, format_markdown, report_table
from lit_linreg.callbacks.checkpoints import RunCheckpoint
from lit_linreg.console import echo, shown_path
from lit_linreg.data import attached_datamodule
from lit_linreg.storage.files import atomic_write
from lit_linreg.task import as_task

BASELINE_SCALARS = ("lad", "ols")  # the exact fits whose L1 goes to the loggers as scalars


class BaselineReport(Callback):
    """After ``fit`` and ``test``: the learned parameters beside the exact OLS and LAD fits of the training split.

    LAD minimises the L1 loss the model trains on, so its training L1 is the lowest any linear model can reach; OLS
    minimises the squared error. The callback prints a table, logs it to the loggers (the ``report`` text, and the
    exact fits' L1 as ``baseline/{lad,ols}_{train,test}_mae`` scalars, which TensorBoard's HPARAMS shows) and writes
    ``report.json`` into the run's checkpoint directory, atomically. It does its work on global rank zero once per
    run, nothing per epoch.
    """

    def __init__(self, filename: str = "report.json") -> None:
        self.filename = filename
        self.path: Path | None = None

    def on_fit_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        checkpoint = trainer.checkpoint_callback
        last = checkpoint.last_model_path if isinstance(checkpoint, RunCheckpoint) else ""
        self._report(trainer, pl_module, "fit", last or None)

    def on_test_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._report(trainer, pl_module, "test", None if trainer.ckpt_path is None else str(trainer.ckpt_path))

    def _report(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str, checkpoint: str | None) -> None:
        datamodule, callback = attached_datamodule(trainer), trainer.checkpoint_callback
        # trainer.log_dir is a collective under DDP: every process asks before rank zero writes.
        log_dir = trainer.log_dir
        fit_dir = callback.dirpath if stage == "fit" and isinstance(callback, RunCheckpoint) else None
        directory = Path(fit_dir or log_dir or trainer.default_root_dir)  # test: beside its logs, not in the fit's
        if not trainer.is_global_zero or datamodule is None or not datamodule.splits:
            return
        task = as_task(pl_module)
        truth = task.true_parameters()
        report = {
            "stage": stage,
            "checkpoint": checkpoint,
            "features": datamodule.feature_names,
            **build_report(
                LinearFit(*task.coefficients()), None if truth is None else LinearFit(*truth), datamodule.splits
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
        echo(f"report: {shown_path(self.path)}")

    @staticmethod
    def _log(trainer: L.Trainer, report: dict[str, Any], markdown: str) -> None:
        # The whole table once, as text; of its numbers only the exact fits' L1, which HPARAMS shows beside the run's
        # own losses (a scalar per number would be a single-point chart each).
        scalars = {
            f"baseline/{name}_{split}_mae": report["models"][name][split]["mae"]
            for name in BASELINE_SCALARS
            for split in ("train", "test")
            if report["models"].get(name) is not None and report["models"][name][split]["mae"] is not None
        }
        for logger in trainer.loggers:
            experiment: Any = getattr(logger, "experiment", None)  # a logger's own object, if it has one
            if hasattr(experiment, "add_text"):
                experiment.add_text("report", markdown, trainer.global_step)
            logger.log_metrics(scalars, step=trainer.global_step)

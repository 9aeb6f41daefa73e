"""What a run leaves behind: the report (the learned line beside the exact OLS and LAD fits), ``predictions.csv``,
and the run's settings in TensorBoard's HPARAMS tab."""

from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import Any

import lightning as L
import torch
from lightning.pytorch.callbacks import Callback
from lightning.pytorch.loggers import TensorBoardLogger
from torch import Tensor

from lit_linreg.analysis.baselines import LinearFit
from lit_linreg.analysis.report import build_report, format_console, format_markdown, report_table
from lit_linreg.data import attached_datamodule, default_feature_names
from lit_linreg.errors import UserError
from lit_linreg.storage.files import atomic_write, shown_path, write_csv
from lit_linreg.task import plain

# The HPARAMS columns, the same for every run (TensorBoard shows the columns of the first run it reads for all):
# the settings a user compares, then each data class's own, then what the run ended at.
SETTINGS = ("command", "variant", "lr", "batch_size", "max_epochs", "seed_everything", "data", "ckpt_path")
BASELINES = tuple(f"baseline/{model}_{split}_mae" for model in ("lad", "ols") for split in ("train", "test"))
RESULTS = ("train_loss", "val_loss", "test_loss", "val/r2", "test/r2", *BASELINES)


class RunReport(Callback):
    """After ``fit`` and ``test``: the learned parameters beside the exact OLS and LAD fits of the training split.

    LAD minimises the L1 loss the model trains on, so its training L1 is the lowest any linear model can reach; OLS
    minimises the squared error. Prints a table, writes ``report.json`` (into the fit's checkpoint folder, or the
    test's log folder) and the table as TensorBoard text. After every command (fit, validate, test, predict) it logs
    the run's settings and results with the logger's ``log_hyperparams``, under the same HPARAMS columns.

    Args:
        baselines: fit the exact OLS and LAD baselines (false: no report table or report.json)
    """

    def __init__(self, baselines: bool = True) -> None:
        self.baselines = baselines
        self.path: Path | None = None

    def on_fit_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        # The newest checkpoint: the one a checkpoint callback without a monitor (lit-linreg's `last`) wrote.
        last = next((c for c in trainer.checkpoint_callbacks if getattr(c, "monitor", "") is None), None)
        directory = getattr(last or trainer.checkpoint_callback, "dirpath", None)
        results = self._report(trainer, pl_module, "fit", getattr(last, "best_model_path", None) or None, directory)
        self._log_hyperparameters(trainer, pl_module, "fit", results)

    def on_test_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        results = self._report(trainer, pl_module, "test", trainer.ckpt_path, None)
        self._log_hyperparameters(trainer, pl_module, "test", results)

    def on_validation_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if trainer.state.fn == "validate":
            self._log_hyperparameters(trainer, pl_module, "validate", {})

    def on_predict_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._log_hyperparameters(trainer, pl_module, "predict", {})

    def _report(
        self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str, checkpoint: Any, directory: str | None
    ) -> dict[str, float]:
        log_dir = trainer.log_dir  # a collective under DDP: every process asks before rank zero writes
        datamodule = attached_datamodule(trainer)
        if not (self.baselines and trainer.is_global_zero and datamodule is not None):
            return {}
        coefficients = getattr(pl_module, "coefficients", None)  # a linear model's (weight, bias)
        learned = LinearFit(*coefficients()) if callable(coefficients) else None
        truth = datamodule.true_parameters()
        report = {
            "stage": stage,
            "checkpoint": None if checkpoint is None else str(checkpoint),
            "features": datamodule.feature_names,
            **build_report(
                learned,
                None if truth is None else LinearFit(*truth),
                datamodule,
            ),
        }
        if stage == "fit" and report["models"].get("learned"):
            report["convergence"] = convergence(report["models"], datamodule.sample("train")[1])
        header, rows = report_table(report)
        counts, sample = report["rows"], report["sample"]
        if all(sample[split] == counts[split] for split in sample):
            fitted = f"OLS and LAD fitted in float64 on {counts['train']:,} training rows"
        else:
            fitted = (
                f"OLS exact over all {counts['train']:,} training rows (float64 normal equations); LAD and L1 on a "
                f"sample of {sample['train']:,} training and {sample['test']:,} test rows"
            )
        pl_module.print(f"baselines: {fitted}; L1 = mean absolute error, the training loss")
        pl_module.print(format_console(header, rows))
        markdown = format_markdown(header, rows)
        verdict = report.get("convergence")
        if verdict:  # the same verdict as the warning and report.json
            state = "converged" if verdict["converged"] else "**not converged**"
            learned, lad = verdict["learned_train_l1"], verdict["lad_train_l1"]
            markdown += f"\n\n{state}: learned train L1 {learned:.6g}, exact LAD's {lad:.6g}"
        for logger in trainer.loggers:
            experiment: Any = getattr(logger, "experiment", None)  # a logger's own object, if it has one
            if hasattr(experiment, "add_text"):
                experiment.add_text("report", markdown, trainer.global_step)
        text = json.dumps(report, indent=2, allow_nan=False) + "\n"
        target = Path(directory or log_dir or trainer.default_root_dir) / "report.json"
        self.path = atomic_write(target, lambda file: file.write(text.encode()))
        pl_module.print(f"report: {shown_path(self.path)}")
        if verdict and not verdict["converged"]:
            pl_module.print(
                f"warning: training stopped at {verdict['ratio'] or math.inf:.3g}x the lowest train L1 a line "
                f"reaches (learned {verdict['learned_train_l1']:.6g}, exact LAD {verdict['lad_train_l1']:.6g}): "
                f"model.lr is likely too small or too large for the target's scale, or the epochs too few; find a "
                f'good lr with lit-linreg lr-sweep --config <this config> --lrs "[0.01, 0.1, 1]", or add '
                f"--trainer.max_epochs"
            )
        models = report["models"]
        return {
            f"baseline/{m}_{split}_mae": models[m][split]["mae"] for m in ("lad", "ols") for split in ("train", "test")
        }

    @staticmethod
    def _log_hyperparameters(
        trainer: L.Trainer, pl_module: L.LightningModule, stage: str, results: dict[str, float]
    ) -> None:
        if not trainer.loggers:
            return
        settings = run_settings(trainer, pl_module, stage)
        logged = {key: float(trainer.callback_metrics[key]) for key in RESULTS if key in trainer.callback_metrics}
        metrics = {f"hp/{key}": {**logged, **results}.get(key, math.nan) for key in RESULTS}
        for logger in trainer.loggers:
            if isinstance(logger, TensorBoardLogger):  # HPARAMS: the settings, and the results as its columns
                logger.log_hyperparams(settings, metrics)
            else:
                logger.log_hyperparams(settings)


CONVERGED = 0.02  # a fit converged when its train L1 is within 2 % of the exact LAD's (+ 2 % of y's spread)


def convergence(models: dict[str, Any], y: Tensor) -> dict[str, Any]:
    """Did training reach the optimum of its own loss? The learned train L1 against exact LAD's, the lowest a line
    reaches on the same rows; within ``CONVERGED`` of it, plus that fraction of the mean absolute deviation of ``y``
    (those rows' targets; data on an exact line have LAD's L1 0)."""
    learned, lad = models["learned"]["train"]["mae"], models["lad"]["train"]["mae"]
    spread = float((y.double() - y.double().median()).abs().mean())
    return {
        "learned_train_l1": learned,
        "lad_train_l1": lad,
        "ratio": learned / lad if lad > 0 else None,  # JSON has no infinity
        "tolerance": CONVERGED,
        "converged": learned <= (1 + CONVERGED) * lad + CONVERGED * spread,
    }


def run_settings(trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> dict[str, Any]:
    """A run's settings under their plain names, the same keys for every run (None where a run has no such
    setting): the command, the model's hyperparameters, the Trainer's max_epochs, the seed, the data class and every
    setting of lit-linreg's data classes."""
    datamodule = attached_datamodule(trainer)
    data = dict(datamodule.hparams) if datamodule is not None else {}
    model = {key: value for key, value in pl_module.hparams.items() if not isinstance(value, (list, dict))}
    settings: dict[str, Any] = {**dict.fromkeys(SETTINGS), **model, **dict.fromkeys(data_settings())}  # the columns
    settings.update(
        command=stage,
        max_epochs=trainer.max_epochs if stage == "fit" else None,
        seed_everything=int(os.environ.get("PL_GLOBAL_SEED", -1)),  # what lightning.seed_everything set (-1: none)
        data=None if datamodule is None else type(datamodule).__name__,
        ckpt_path=None if trainer.ckpt_path is None else shown_path(trainer.ckpt_path),
    )
    settings.update(model)
    settings.update({k: v for k, v in data.items() if k in settings and not isinstance(v, (list, dict))})
    return {key: "-" if value is None else plain(value) for key, value in settings.items()}


def data_settings() -> list[str]:
    """Every setting of lit-linreg's own data classes: HPARAMS columns whichever run TensorBoard reads first."""
    import inspect

    from lit_linreg.data import SyntheticRegressionData
    from lit_linreg.datasets.csv import CSVRegressionData

    return [name for cls in (SyntheticRegressionData, CSVRegressionData) for name in inspect.signature(cls).parameters]


class PredictionWriter(Callback):
    """Writes ``predictions.csv`` into the run's log directory and prints its path.

    Columns: the input feature(s) (``x``, or the datamodule's ``feature_names``), ``y_pred``, and ``y_true`` and
    ``abs_error`` when the targets are known.
    """

    def __init__(self, filename: str = "predictions.csv") -> None:
        self.filename = filename
        self.path: Path | None = None
        self._batches: list[tuple[Tensor, ...]] = []

    def on_predict_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._batches = []

    def on_predict_batch_end(self, trainer, pl_module, outputs: Tensor, batch, batch_idx, dataloader_idx=0) -> None:
        self._batches.append((batch[0].cpu(), outputs.detach().cpu(), *(t.cpu() for t in batch[1:2])))

    def on_predict_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        log_dir = trainer.log_dir or trainer.default_root_dir  # a collective under DDP: every rank must ask
        if not trainer.is_global_zero or not self._batches:
            return
        x, y_pred, *y_true = (torch.cat(parts) for parts in zip(*self._batches))
        self._batches = []
        datamodule = attached_datamodule(trainer)
        names = [] if datamodule is None else datamodule.feature_names
        if len(names) != x.shape[1]:
            names = default_feature_names(x.shape[1])
        overflowed = (~torch.isfinite(y_pred[:, 0])).nonzero()
        if len(overflowed):
            raise UserError(
                f"the prediction for row {int(overflowed[0, 0])} overflows float32 (magnitudes up to 3.4e38): its "
                f"inputs are too large for this model; predict smaller values"
            )
        header, columns = [*names, "y_pred"], [*x.T, y_pred[:, 0]]
        if y_true:
            header += ["y_true", "abs_error"]
            columns += [y_true[0][:, 0], (y_pred - y_true[0]).abs()[:, 0]]
        self.path = write_csv(Path(log_dir) / self.filename, header, columns)
        pl_module.print(f"predictions: {self.path} ({len(y_pred)} rows)")

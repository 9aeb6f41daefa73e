"""What a run leaves behind: the report (the learned line beside the exact OLS and LAD optima), ``predictions.csv``,
and the run's settings in TensorBoard's HPARAMS tab.

The exact baselines, in float64: ordinary least squares (numpy's ``lstsq``) and least absolute deviations (scipy's
HiGHS), the minimum of the L1 loss the task trains on, so the lowest training loss any linear model reaches. Both solve
on centred, scaled data, which keeps them accurate whatever its units (Longley's, NIST's hardest). A linearly dependent
feature (a constant column, a duplicate) gets weight 0, which still attains the optimum.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any, NamedTuple

import lightning as L
import numpy as np
import torch
from lightning.pytorch.callbacks import Callback
from lightning.pytorch.loggers import TensorBoardLogger
from scipy.optimize import linprog
from torch import Tensor

from lit_linreg.callbacks import last_checkpoint_callback
from lit_linreg.data import CHUNK_ROWS, RegressionDataModule, attached_datamodule, default_feature_names
from lit_linreg.errors import UserError, fixed_width, format_value
from lit_linreg.files import atomic_write, shown_path, write_csv
from lit_linreg.task import plain

# Exact baselines: OLS and LAD in float64.
# HiGHS's default 1e-7 on the scaled residuals misplaces rows within 1e-7 of the line (rounded noise-free data).
HIGHS_OPTIONS = {"dual_feasibility_tolerance": 1e-10}


class LinearFit(NamedTuple):
    """Coefficients in the data's units, float64: ``weight`` of shape (features,) and ``bias`` of shape (1,)."""

    weight: Tensor
    bias: Tensor


def _fit(x: Tensor, y: Tensor, solve: Callable[[np.ndarray, np.ndarray], np.ndarray]) -> LinearFit:
    """``solve(a, z)`` on the intercept column and the centred, scaled, linearly independent features (``a``) and the
    centred, scaled response (``z``), mapped back to the data's units."""
    features, target = x.detach().cpu().double().numpy(), y.detach().cpu().double().numpy().reshape(-1)
    rows, mean, std = len(features), features.mean(0), features.std(0)
    columns = np.flatnonzero(std > 1e-12 * np.abs(features).max(0, initial=0))  # constant columns: weight 0
    z = (features[:, columns] - mean[columns]) / std[columns]
    # |R_jj| of a QR is column j's distance from the span of the columns before it: 0 for a dependent column.
    r_diagonal = np.abs(np.diag(np.linalg.qr(z, mode="r"))) if len(columns) else np.zeros(0)
    independent = np.flatnonzero(r_diagonal > 1e-9 * math.sqrt(rows))
    columns, z = columns[independent], z[:, independent]
    shift = target.mean()
    scale = max(np.abs(target - shift).mean(), 1e-300)
    coef = solve(np.column_stack([np.ones(rows), z]), (target - shift) / scale)
    weight = np.zeros(features.shape[1])
    weight[columns] = coef[1:] * scale / std[columns]
    bias = shift + coef[0] * scale - weight @ mean
    return LinearFit(torch.from_numpy(weight), torch.tensor([bias], dtype=torch.float64))


def ordinary_least_squares(x: Tensor, y: Tensor) -> LinearFit:
    """The least-squares line (x: (rows, features), y: (rows,) or (rows, 1)), by ``numpy.linalg.lstsq`` in float64."""
    return _fit(x, y, lambda a, z: np.linalg.lstsq(a, z, rcond=None)[0])


def least_absolute_deviations(x: Tensor, y: Tensor) -> LinearFit:
    """The exact minimiser of sum |y - x·weight - bias| (x: (rows, features), y: (rows,) or (rows, 1)), in float64."""
    return _fit(x, y, _lad)


def _lad(a: np.ndarray, y: np.ndarray) -> np.ndarray:
    """The LAD coefficients of ``a`` (all rows' exact optimum), by HiGHS on fewer rows when there are many.

    Portnoy and Koenker's preprocessing (1997): a fit on a sample predicts the sign of most residuals; the rows clearly
    above (or below) the line enter the LP as one mean row weighted by their count, and any row that the full fit puts
    on the wrong side rejoins the LP.
    """
    rows, p = a.shape
    sample_rows = int(math.sqrt(p) * rows ** (2 / 3))
    if 2 * sample_rows >= rows:
        return _lad_lp(a, y, np.ones(rows))
    sample = np.random.default_rng(0).choice(rows, sample_rows, replace=False)
    residual = y - a @ _lad_lp(a[sample], y[sample], np.ones(sample_rows))
    band = np.partition(np.abs(residual), sample_rows)[sample_rows]
    above, below = residual > band, residual < -band
    while True:
        near, sides = ~(above | below), [side for side in (above, below) if side.any()]
        coef = _lad_lp(
            np.vstack([a[near], *(a[side].mean(0) for side in sides)]),
            np.concatenate([y[near], [y[side].mean() for side in sides]]),
            np.concatenate([np.ones(near.sum()), [side.sum() for side in sides]]),
        )
        residual = y - a @ coef
        wrong = (above & (residual < 0)) | (below & (residual > 0))
        if not wrong.any():
            return coef
        above, below = above & ~wrong, below & ~wrong


def _lad_lp(a: np.ndarray, y: np.ndarray, weight: np.ndarray) -> np.ndarray:
    """The coefficients that minimise sum weight·|y - a·coef|: the multipliers of the dual LP, max y·d subject to
    aᵀd = 0 and -weight <= d <= weight. HiGHS's interior point method ends at a vertex (its crossover), so ``p`` rows
    are fitted exactly, as by the simplex on the primal LP, which measured 20x slower."""
    bounds = np.column_stack([-weight, weight])
    for method in ("highs-ipm", "highs-ds"):  # the simplex, should the interior point method stop short
        result = linprog(-y, A_eq=a.T, b_eq=np.zeros(a.shape[1]), bounds=bounds, method=method, options=HIGHS_OPTIONS)
        if result.status == 0:
            return -result.eqlin.marginals
    raise RuntimeError(f"least_absolute_deviations: HiGHS stopped: {result.message}; please report the data")


def regression_errors(fit: LinearFit, x: Tensor, y: Tensor, chunk_rows: int = CHUNK_ROWS) -> dict[str, float]:
    """MAE, MSE and R² of ``fit`` on (x, y) in float64, a chunk of rows at a time (so millions of rows need no
    float64 copy); R² is NaN when y is constant."""
    weight, bias = fit.weight.cpu().double(), fit.bias.cpu().double()
    shift = y.reshape(-1)[:1].detach().cpu().double()  # sums about a value of y's, not 0: R² keeps its digits
    sums = torch.zeros(4, dtype=torch.float64)  # |error|, error², y - shift and its square
    for start in range(0, len(y), chunk_rows):
        x_chunk = x[start : start + chunk_rows].detach().cpu().double()
        y_chunk = y[start : start + chunk_rows].detach().cpu().double().reshape(-1)
        error = x_chunk @ weight + bias - y_chunk
        centred = y_chunk - shift
        sums += torch.stack((error.abs().sum(), error.square().sum(), centred.sum(), centred.square().sum()))
    abs_error, squared_error, y_sum, y_squares = sums.tolist()
    rows = len(y)
    total = y_squares - y_sum * y_sum / rows
    r2 = 1 - squared_error / total if total > 1e-12 * y_squares else math.nan
    return {"mae": abs_error / rows, "mse": squared_error / rows, "r2": r2}


# The report: every model's parameters and errors, and its table.
MODEL_LABELS = {"learned": "learned", "true": "true", "ols": "OLS", "lad": "LAD"}
ERRORS = (("train", "mae"), ("test", "mae"), ("test", "mse"))  # the table's error columns, beside test R²
SPLITS = ("train", "test")


def build_report(learned: LinearFit | None, truth: LinearFit | None, data: RegressionDataModule) -> dict:
    """The report's content: each model's parameters and its MAE/MSE/R² on the training and test splits (float64).

    OLS, and each split's MSE and R², are exact over every row, in memory or streamed (``data.exact_ols``,
    ``exact_mse``, ``moments``); LAD and every L1 (MAE) use ``data.sample(split)``: a large split's sample.
    """
    samples = {split: data.sample(split) for split in SPLITS}
    moments = {split: data.moments(split) for split in SPLITS}
    fits = {
        "learned": learned,
        "true": truth,
        "ols": LinearFit(*data.exact_ols()),
        "lad": least_absolute_deviations(*samples["train"]),
    }

    def model(fit: LinearFit) -> dict[str, Any]:
        result: dict[str, Any] = {"weight": fit.weight.double().tolist(), "bias": fit.bias.double().item()}
        for split in SPLITS:  # None for what JSON cannot hold (no NaN): R² of a constant y
            mse, variance = data.exact_mse(fit.weight, fit.bias, split), float(moments[split].cov[-1, -1])
            r2 = 1 - mse / variance if variance > 0 else math.nan
            metrics = {"mae": regression_errors(fit, *samples[split])["mae"], "mse": mse, "r2": r2}
            result[split] = {k: v if math.isfinite(v) else None for k, v in metrics.items()}
        return result

    models = {name: None if fit is None else model(fit) for name, fit in fits.items()}
    rows = {split: moments[split].count for split in SPLITS}
    sample = {split: len(samples[split][1]) for split in SPLITS}
    return {"rows": {**rows, "baseline_fit": sample["train"]}, "sample": sample, "models": models}


def report_table(report: dict) -> tuple[list[str], list[list[str]]]:
    """The header and rows of the report's table, its weights labelled by the report's ``features``.

    One feature: a row per model, ``model | weight | bias | train L1 | ...``. Several: a row per weight, the bias and
    each error, and a column per model, as statistics packages print coefficients, so that 10 read as easily as 2.
    """
    models = {MODEL_LABELS[name]: model for name, model in report["models"].items() if model is not None}
    count = len(next(iter(models.values()))["weight"])
    names = report.get("features") or default_feature_names(count)
    columns = {label: _cells(model) for label, model in models.items()}
    errors = ["train L1", "test L1", "test MSE", "test R²"]
    if count == 1:
        weight = "weight" if names == ["x"] else f"weight[{names[0]}]"
        return ["model", weight, "bias", *errors], [[label, *cells] for label, cells in columns.items()]
    return ["", *columns], [[label, *cells] for label, *cells in zip([*names, "bias", *errors], *columns.values())]


def _cells(model: dict) -> list[str]:
    """A model's weights, bias (4 decimals) and errors (6 decimals; R², 4): fewer decimals for a large number."""
    r2 = model["test"]["r2"]
    return [
        *(format_value(w, 10).strip() for w in [*model["weight"], model["bias"]]),
        *(fixed_width(model[split][metric], 10, 6).strip() for split, metric in ERRORS),
        "-" if r2 is None else fixed_width(r2, 10, 4).strip(),
    ]


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


# The callbacks: the report after fit and test, HPARAMS after every command, predictions.csv.
# The HPARAMS columns, the same for every run (TensorBoard shows the columns of the first run it reads for all):
# the settings a user compares, then each data class's own, then what the run ended at.
SETTINGS = ("command", "variant", "lr", "batch_size", "max_epochs", "seed_everything", "data", "ckpt_path")
BASELINES = tuple(f"baseline/{model}_{split}_mae" for model in ("lad", "ols") for split in ("train", "test"))
# Every setting of the in-memory data classes (synthetic, CSV): listed, so that a synthetic fit never imports the CSV
# reader; tests/test_cli.py checks it against their signatures.
DATA_SETTINGS = (
    *("weight", "bias", "start", "end", "step", "train_split", "batch_size", "predict_x", "num_samples"),
    *("num_features", "noise_std", "val_split", "split", "shuffle", "seed", "csv_path", "target", "features"),
    *("standardize", "predict_csv", "delimiter", "missing", "categorical", "levels"),
)
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
        last = last_checkpoint_callback(trainer)  # the newest state
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
            **build_report(learned, None if truth is None else LinearFit(*truth), datamodule),
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
        """The run's settings and results under the same HPARAMS columns for every run ("-" where a run has no such
        setting): the command, the model's hyperparameters, max_epochs, the seed, the data class and its settings."""
        if not trainer.loggers:
            return
        datamodule = attached_datamodule(trainer)
        data = dict(datamodule.hparams) if datamodule is not None else {}
        model = {key: value for key, value in pl_module.hparams.items() if not isinstance(value, (list, dict))}
        settings: dict[str, Any] = dict.fromkeys((*SETTINGS, *model, *DATA_SETTINGS))  # the columns, in this order
        settings.update(
            command=stage,
            max_epochs=trainer.max_epochs if stage == "fit" else None,
            seed_everything=int(os.environ.get("PL_GLOBAL_SEED", -1)),  # what lightning.seed_everything set (-1: none)
            data=None if datamodule is None else type(datamodule).__name__,
            ckpt_path=None if trainer.ckpt_path is None else shown_path(trainer.ckpt_path),
        )
        settings.update(model)
        settings.update({k: v for k, v in data.items() if k in settings and not isinstance(v, (list, dict))})
        settings = {key: "-" if value is None else plain(value) for key, value in settings.items()}
        logged = {key: float(trainer.callback_metrics[key]) for key in RESULTS if key in trainer.callback_metrics}
        metrics = {f"hp/{key}": {**logged, **results}.get(key, math.nan) for key in RESULTS}
        for logger in trainer.loggers:
            if isinstance(logger, TensorBoardLogger):  # HPARAMS: the settings, and the results as its columns
                logger.log_hyperparams(settings, metrics)
            else:
                logger.log_hyperparams(settings)


CONVERGED = 0.02  # a fit converged when its train L1 is within 2 % of the exact LAD's (+ 2 % of y's spread)


def convergence(models: dict[str, Any], y: Tensor) -> dict[str, Any]:
    """Did training reach the optimum of its own loss: is the learned train L1 within ``CONVERGED`` of exact LAD's, plus
    that fraction of the mean absolute deviation of ``y`` (those rows' targets; for data on a line LAD's L1 is 0)?"""
    learned, lad = models["learned"]["train"]["mae"], models["lad"]["train"]["mae"]
    spread = float((y.double() - y.double().median()).abs().mean())
    return {
        "learned_train_l1": learned,
        "lad_train_l1": lad,
        "ratio": learned / lad if lad > 0 else None,  # JSON has no infinity
        "tolerance": CONVERGED,
        "converged": learned <= (1 + CONVERGED) * lad + CONVERGED * spread,
    }


class PredictionWriter(Callback):
    """Writes ``predictions.csv`` into the run's log directory and prints its path. Columns: the features (the
    datamodule's ``feature_names``, else ``x`` or ``x0``, ``x1``, ...), ``y_pred``, and ``y_true`` and ``abs_error``
    when the targets are known."""

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

"""How close did training get? The learned line beside the exact OLS and LAD optima (and the truth, when known).

``BaselineReport`` runs after ``fit`` and after ``test``; see the README's "Your own data (CSV) and exact baselines".
"""

from __future__ import annotations

import math

from torch import Tensor

from lit_linreg.analysis.baselines import LinearFit, least_absolute_deviations, regression_errors
from lit_linreg.console import fixed_width, format_value
from lit_linreg.data import RegressionDataModule, default_feature_names

MODEL_LABELS = {"learned": "learned", "true": "true", "ols": "OLS", "lad": "LAD"}
ERRORS = (("train", "mae"), ("test", "mae"), ("test", "mse"))  # the table's error columns, beside test R²
SPLITS = ("train", "test")


def build_report(learned: LinearFit | None, truth: LinearFit | None, data: RegressionDataModule) -> dict:
    """The report's content: each model's parameters and its MAE/MSE/R² on the training and test splits (float64).

    The same for data in memory and streamed: OLS is exact over every training row (``data.exact_ols()``), and so are
    each split's MSE and R² (``data.exact_mse``, ``data.moments``). LAD is fitted, and every L1 (MAE) measured, on
    ``data.sample(split)``: every row of a small split, a sample of a large one (their counts are ``sample``).
    """
    samples = {split: data.sample(split) for split in SPLITS}
    moments = {split: data.moments(split) for split in SPLITS}
    fits = {
        "learned": learned,
        "true": truth,
        "ols": LinearFit(*data.exact_ols()),
        "lad": least_absolute_deviations(*samples["train"]),
    }

    def errors(fit: LinearFit, split: str) -> dict[str, float | None]:
        mse, variance = data.exact_mse(fit.weight, fit.bias, split), float(moments[split].cov[-1, -1])
        mae = regression_errors(fit, *samples[split])["mae"]
        return _finite({"mae": mae, "mse": mse, "r2": 1 - mse / variance if variance > 0 else math.nan})

    models = {
        name: None
        if fit is None
        else {
            "weight": fit.weight.double().tolist(),
            "bias": fit.bias.double().item(),
            **{split: errors(fit, split) for split in SPLITS},
        }
        for name, fit in fits.items()
    }
    rows = {split: moments[split].count for split in SPLITS}
    sample = {split: len(samples[split][1]) for split in SPLITS}
    return {"rows": {**rows, "baseline_fit": sample["train"]}, "sample": sample, "models": models}


def lowest_l1_loss(x: Tensor, y: Tensor) -> float:
    """The lowest L1 loss (MAE) that a linear model reaches on these rows (``data.sample(split)``): the exact LAD
    fit's."""
    return regression_errors(least_absolute_deviations(x, y), x, y)["mae"]


def _finite(metrics: dict[str, float]) -> dict[str, float | None]:
    return {k: v if math.isfinite(v) else None for k, v in metrics.items()}  # JSON has no NaN: R² of a constant y


def report_table(report: dict) -> tuple[list[str], list[list[str]]]:
    """The header and rows of the report's table, its weights labelled by the report's ``features``.

    One feature: a row per model, ``model | weight | bias | train L1 | ...`` (``weight[name]`` for a named feature,
    ``weight`` for the synthetic ``x``). Several: a row per weight, the bias and each error, and a column per model,
    the way statistics packages print coefficients, so that 10 features read as easily as 2.
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

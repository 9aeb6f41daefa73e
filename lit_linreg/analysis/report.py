"""How close did training get? The learned line beside the exact OLS and LAD optima (and the truth, when known).

``BaselineReport`` runs after ``fit`` and after ``test``; see the README's "Your own data (CSV) and exact baselines".
"""

from __future__ import annotations

import math

from torch import Tensor

from lit_linreg.analysis.baselines import (
    LinearFit,
    least_absolute_deviations,
    ordinary_least_squares,
    regression_errors,
)
from lit_linreg.console import fixed_width, format_value
from lit_linreg.data import default_feature_names

MAX_BASELINE_ROWS = 200_000  # larger training splits: OLS and LAD are fitted on evenly spaced rows, at most this many
MODEL_LABELS = {"learned": "learned", "true": "true", "ols": "OLS", "lad": "LAD"}
ERRORS = (("train", "mae"), ("test", "mae"), ("test", "mse"))  # the table's error columns, beside test R²


def build_report(learned: LinearFit | None, truth: LinearFit | None, splits: dict[str, tuple[Tensor, Tensor]]) -> dict:
    """The report's content: each model's parameters and its MAE/MSE/R² on the training and test splits (float64).

    ``splits`` are the data's float64 splits, ``datamodule.exact_splits()``: a CSV file's own values, not their float32
    rounding. OLS and LAD are fitted on the training split (on at most ``MAX_BASELINE_ROWS`` of its rows, evenly
    spaced).
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

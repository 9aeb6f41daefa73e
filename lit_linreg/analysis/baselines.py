"""Exact linear baselines in float64: ordinary least squares (numpy's ``lstsq``) and least absolute deviations (HiGHS).

They answer "how close did SGD get?": OLS minimises the squared error and LAD the mean absolute error, the L1 loss
the task trains on, so LAD's training loss is the lowest any linear model can reach. Both solve on centred, scaled
features and a centred, scaled response, which keeps them accurate whatever the data's units (Longley's, NIST's
hardest); results come back in the data's units. Linearly dependent features (a constant column, a duplicate) make
the optimum non-unique: such a feature gets weight 0, which still attains the optimum.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import NamedTuple

import numpy as np
import torch
from scipy.optimize import linprog
from torch import Tensor

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

    Portnoy and Koenker's preprocessing (1997): a fit on a sample predicts the sign of most residuals; the rows whose
    residual is clearly positive (or negative) enter the LP as their mean row, weighted by their count, which stays on
    its side exactly when they all do. Their signs are then checked on the full fit, and any row on the wrong side
    rejoins the LP.
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
    """The coefficients that minimise sum weight·|y - a·coef|, from its dual LP: max y·d subject to aᵀd = 0 and
    -weight <= d <= weight, one variable per row and one constraint per column, whose multipliers are the coefficients.
    HiGHS's interior point method ends with a crossover to a vertex, so ``p`` rows are fitted exactly, as by the simplex
    on the primal LP, min sum(weight·(u + v)) s.t. a·coef + u - v = y, u, v >= 0, which measured 20x slower."""
    bounds = np.column_stack([-weight, weight])
    for method in ("highs-ipm", "highs-ds"):  # the simplex, should the interior point method stop short
        result = linprog(-y, A_eq=a.T, b_eq=np.zeros(a.shape[1]), bounds=bounds, method=method, options=HIGHS_OPTIONS)
        if result.status == 0:
            return -result.eqlin.marginals
    raise RuntimeError(f"least_absolute_deviations: HiGHS stopped: {result.message}; please report the data")


def regression_errors(fit: LinearFit, x: Tensor, y: Tensor, chunk_rows: int = 262_144) -> dict[str, float]:
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


__all__ = ["LinearFit", "least_absolute_deviations", "ordinary_least_squares", "regression_errors"]

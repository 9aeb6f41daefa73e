"""Exact linear baselines in float64: ordinary least squares and least absolute deviations.

They answer "how close did SGD get?": OLS minimises the squared error and LAD the mean absolute error, the L1 loss
the task trains on, so LAD's training loss is the lowest any linear model can reach. Both work on a design whose
features are centred and scaled (and whose response is centred and scaled), which keeps them accurate whatever the
data's units; results come back in the data's units. Linearly dependent features (a constant column, a duplicate)
make the optimum non-unique: such a feature gets weight 0, which still attains the optimum.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import torch
from torch import Tensor

# A residual within this many rounding errors of zero is a tie (a row on the line), placed by the tie order.
ROUNDING_ERRORS = 1000
SUBSAMPLE_ABOVE = 50_000  # larger data start from the optimum of a random sixteenth of their rows


class LinearFit(NamedTuple):
    """Coefficients in the data's units, float64: ``weight`` of shape (features,) and ``bias`` of shape (1,)."""

    weight: Tensor
    bias: Tensor


class _Design:
    """The intercept column and the centred, scaled, linearly independent features; the centred, scaled response."""

    def __init__(self, x: Tensor, y: Tensor) -> None:
        x, y = x.detach().cpu().double(), y.detach().cpu().double().reshape(-1)
        rows, features = x.shape
        self.mean, self.std = x.mean(0), x.std(0, correction=0)
        varying = self.std > 1e-12 * x.abs().amax(0).clamp_min(1e-300)
        z = (x[:, varying] - self.mean[varying]) / self.std[varying]
        # |R_jj| of a QR is column j's distance from the span of the columns before it: 0 for a dependent column.
        independent = torch.zeros(z.shape[1], dtype=torch.bool)
        r_diagonal = torch.linalg.qr(z, mode="r").R.diagonal().abs()
        independent[: len(r_diagonal)] = r_diagonal > 1e-9 * math.sqrt(rows)
        self.columns = varying.nonzero()[:, 0][independent]
        self.num_features = features
        self.a = torch.cat([torch.ones(rows, 1, dtype=torch.float64), z[:, independent]], 1)
        self.y_shift = y.mean()
        self.y_scale = (y - self.y_shift).abs().mean().clamp_min(1e-300)
        self.y = (y - self.y_shift) / self.y_scale

    def unscale(self, coef: Tensor) -> LinearFit:
        """Map coefficients of ``self.a`` (intercept first) back to the data's units."""
        weight = torch.zeros(self.num_features, dtype=torch.float64)
        weight[self.columns] = coef[1:] * self.y_scale / self.std[self.columns]
        bias = self.y_shift + coef[0] * self.y_scale - (weight * self.mean).sum()
        return LinearFit(weight, bias.reshape(1))


def ordinary_least_squares(x: Tensor, y: Tensor) -> LinearFit:
    """The least-squares line (x: (rows, features), y: (rows,) or (rows, 1)), by a QR-based solve in float64."""
    design = _Design(x, y)
    return design.unscale(_least_squares(design.a, design.y))


def _least_squares(a: Tensor, y: Tensor) -> Tensor:
    return torch.linalg.lstsq(a, y.unsqueeze(1)).solution[:, 0]


def least_absolute_deviations(x: Tensor, y: Tensor) -> LinearFit:
    """The exact minimiser of sum |y - x·weight - bias| (x: (rows, features), y: (rows,) or (rows, 1)), in float64.

    The L1 optimum is attained at a vertex: a basis of p = features + 1 rows that the line fits exactly. From a
    starting basis, each exchange releases the basis row whose release lowers the loss most steeply, moves along that
    edge to the exact minimum on it (a weighted median of the rows' crossing points) and takes in the row met there.
    It stops when no edge descends, which certifies optimality: sum sign(residual_i)·row_i over the other rows equals
    a combination of the basis rows with multipliers in [-1, 1], so 0 is a subgradient. Rows that fit exactly without
    being in the basis (ties, as in noise-free or rounded data) are ordered by a fixed random symbolic perturbation,
    and each row's sign is state that only the steps change, so rounding cannot make the exchanges cycle. (This is
    the exchange method of Barrodale and Roberts, 1973.) The starting basis is the optimum on a random sixteenth of
    the rows for large data, else the rows closest to the least-squares fit.
    """
    design = _Design(x, y)
    basis = _optimal_basis(design.a, design.y, torch.Generator().manual_seed(0))
    return design.unscale(torch.linalg.solve(design.a[basis], design.y[basis]))


def _optimal_basis(a: Tensor, y: Tensor, generator: torch.Generator) -> Tensor:
    rows = len(a)
    if rows > SUBSAMPLE_ABOVE:
        sample = torch.randperm(rows, generator=generator)[: rows // 16]
        basis = sample[_optimal_basis(a[sample], y[sample], generator)]
    else:
        basis = _independent_rows(a, (y - a @ _least_squares(a, y)).abs().argsort())
    return _exchange(a, y, basis, torch.randn(rows, generator=generator, dtype=torch.float64))


def _exchange(a: Tensor, y: Tensor, basis: Tensor, perturbation: Tensor) -> Tensor:
    """Exchanges from ``basis`` until it is optimal.

    The sign of each row's residual is state: set at the start (exact ties by the tie order), then flipped for exactly
    the rows a step moves across, so that rounding in the residuals never contradicts it.
    """
    p = a.shape[1]
    basis, sign = basis.clone(), None
    seen = set()
    while (key := tuple(sorted(basis.tolist()))) not in seen:
        seen.add(key)
        lu = torch.linalg.lu_factor(a[basis])
        residual = _residuals(a, y, basis, lu)
        tie_order = perturbation - a @ torch.linalg.lu_solve(*lu, perturbation[basis].unsqueeze(1))[:, 0]
        if sign is None:
            sign = torch.where(residual != 0, residual.sign(), tie_order.sign())
            sign[basis] = 0
        multipliers = torch.linalg.lu_solve(*lu, (a.T @ sign).unsqueeze(1), adjoint=True)[:, 0]
        leave = int(multipliers.abs().argmax())
        if multipliers[leave].abs() <= 1 + 1e-10:
            return basis
        direction = torch.linalg.lu_solve(*lu, torch.eye(p, dtype=torch.float64)[:, leave : leave + 1])[:, 0]
        rate = (a @ direction) * multipliers[leave].sign()  # d residual_i / dt = -rate_i
        rate[basis] = 0
        enter, crossed = _entering_row(residual, tie_order, rate, sign, 1 - multipliers[leave].abs())
        sign[crossed] *= -1
        sign[basis[leave]] = -multipliers[leave].sign()  # the released row's residual becomes -t·sign
        sign[enter] = 0
        basis[leave] = enter
    raise RuntimeError("least_absolute_deviations: a basis came back (the exchanges cycle); please report the data")


def _residuals(a: Tensor, y: Tensor, basis: Tensor, lu: tuple[Tensor, Tensor]) -> Tensor:
    """y - a·coef for the line through the ``basis`` rows; residuals within rounding error of 0 are exactly 0."""
    coef = torch.linalg.lu_solve(*lu, y[basis].unsqueeze(1))[:, 0]
    residual = y - a @ coef
    rounding = torch.finfo(torch.float64).eps * (1 + a.abs().amax() * coef.abs().sum())
    residual[residual.abs() <= ROUNDING_ERRORS * rounding] = 0
    residual[basis] = 0
    return residual


def _entering_row(
    residual: Tensor, tie_order: Tensor, rate: Tensor, sign: Tensor, slope: Tensor
) -> tuple[Tensor, Tensor]:
    """The row met at the exact minimum along the edge, and the rows crossed before it.

    Rows whose residual moves toward zero (sign·rate > 0) cross it at residual / rate (ties at 0, in ``tie_order``).
    The loss's slope, ``slope`` < 0 at the start, grows by 2|rate| at each crossing: the minimum is at the crossing
    where it turns >= 0. Only the smallest crossing points are sorted, more only when they do not carry the weight.
    """
    ahead = sign * rate > 0
    crossing = torch.where(ahead, (residual / rate).clamp_min(0), math.inf)  # < 0: rounding, a tie
    tie_crossing = tie_order / rate
    weight = 2 * rate.abs()
    count = 64 + int(-2 * slope / weight[ahead].mean())  # about twice the rows an average weight would need
    while True:
        bound = crossing.kthvalue(min(count, len(crossing))).values
        near = (crossing <= bound).nonzero()[:, 0]  # a prefix of the sorted order, ties at the bound included
        near = near[tie_crossing[near].argsort()]
        near = near[crossing[near].argsort(stable=True)]  # lexicographic (crossing, tie_crossing)
        turn = int(torch.searchsorted(weight[near].cumsum(0), -slope))
        if turn < len(near) or count >= len(crossing):
            turn = min(turn, len(near) - 1)
            return near[turn], near[:turn]
        count *= 8


def _independent_rows(a: Tensor, order: Tensor) -> Tensor:
    """The first p rows of ``a`` in ``order`` that are linearly independent (``a`` has full column rank p)."""
    rows, p = a.shape
    candidates = a[order]
    spanned = torch.zeros(0, p, dtype=torch.float64)  # orthonormal basis of the chosen rows
    chosen = []
    for _ in range(p):
        left = candidates - (candidates @ spanned.T) @ spanned
        k = int((left.norm(dim=1) > 1e-8 * candidates.norm(dim=1)).nonzero()[0])
        chosen.append(order[k])
        spanned = torch.cat([spanned, left[k : k + 1] / left[k].norm()])
    return torch.stack(chosen)


def regression_errors(fit: LinearFit, x: Tensor, y: Tensor, chunk_rows: int = 262_144) -> dict[str, float]:
    """MAE, MSE and R² of ``fit`` on (x, y) in float64, a chunk of rows at a time (so millions of rows need no
    float64 copy); R² is NaN when y is constant."""
    weight, bias = fit.weight.cpu().double(), fit.bias.cpu().double()
    sums = torch.zeros(4, dtype=torch.float64)  # |error|, error², y, y²
    for start in range(0, len(y), chunk_rows):
        x_chunk = x[start : start + chunk_rows].detach().cpu().double()
        y_chunk = y[start : start + chunk_rows].detach().cpu().double().reshape(-1)
        error = x_chunk @ weight + bias - y_chunk
        sums += torch.stack((error.abs().sum(), error.square().sum(), y_chunk.sum(), y_chunk.square().sum()))
    abs_error, squared_error, y_sum, y_squares = sums.tolist()
    rows = len(y)
    total = y_squares - y_sum * y_sum / rows
    r2 = 1 - squared_error / total if total > 1e-12 * y_squares else math.nan
    return {"mae": abs_error / rows, "mse": squared_error / rows, "r2": r2}


__all__ = ["LinearFit", "least_absolute_deviations", "ordinary_least_squares", "regression_errors"]

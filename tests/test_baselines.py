"""The exact baselines against independent computations: numpy's lstsq, brute force over vertices, KKT conditions."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch
from torch import Tensor

from lit_linreg.analysis.baselines import (
    SUBSAMPLE_ABOVE,
    LinearFit,
    least_absolute_deviations,
    ordinary_least_squares,
    regression_errors,
)


def l1(fit: LinearFit, x: Tensor, y: Tensor) -> float:
    return (y - x @ fit.weight - fit.bias).abs().sum().item()


def brute_force_l1(x: Tensor, y: Tensor) -> float:
    """The L1 optimum by trying every line (plane) through features + 1 of the points: the optimum is one of them."""
    rows, features = x.shape
    a = torch.cat([x, torch.ones(rows, 1, dtype=torch.float64)], 1)
    subsets = torch.tensor(list(itertools.combinations(range(rows), features + 1)))
    systems = a[subsets]
    solvable = torch.linalg.det(systems).abs() > 1e-9
    coefs = torch.linalg.solve(systems[solvable], y[subsets][solvable])
    return (y - coefs @ a.T).abs().sum(1).min().item()


def irls(x: Tensor, y: Tensor, steps: int = 50) -> LinearFit:
    """Iteratively reweighted least squares for L1: an approximation, for comparison."""
    a = torch.cat([x, torch.ones(len(x), 1, dtype=torch.float64)], 1)
    coef = torch.linalg.lstsq(a, y.unsqueeze(1)).solution[:, 0]
    for _ in range(steps):
        weights = 1 / (y - a @ coef).abs().clamp_min(1e-8)
        coef = torch.linalg.solve(a.T @ (weights[:, None] * a), a.T @ (weights * y))
    return LinearFit(coef[:-1], coef[-1:])


def random_case(generator: torch.Generator, kind: str, rows: int, features: int) -> tuple[Tensor, Tensor]:
    if kind == "integer ties":  # many points on the same lines: degenerate vertices
        x = torch.randint(0, 3, (rows, features), generator=generator).double()
        return x, torch.randint(0, 4, (rows,), generator=generator).double()
    x = torch.randn(rows, features, generator=generator, dtype=torch.float64)
    y = x @ torch.randn(features, generator=generator, dtype=torch.float64) + 0.3
    if kind == "outliers":
        y += 0.1 * torch.randn(rows, generator=generator, dtype=torch.float64)
        y[: rows // 5] += 10
    return x, y


@pytest.mark.parametrize("features", [1, 2])
@pytest.mark.parametrize("kind", ["outliers", "integer ties", "exact line"])
def test_lad_reaches_the_brute_force_optimum(kind: str, features: int) -> None:
    generator = torch.Generator().manual_seed(features)
    for _ in range(10):
        x, y = random_case(generator, kind, int(torch.randint(4, 18, (1,), generator=generator)), features)
        if torch.linalg.matrix_rank(torch.cat([x, torch.ones(len(x), 1, dtype=torch.float64)], 1)) <= features:
            continue  # all points on one line: no unique vertex set to brute-force
        fit = least_absolute_deviations(x, y)
        best = brute_force_l1(x, y)
        assert l1(fit, x, y) == pytest.approx(best, rel=1e-12, abs=1e-12)
        assert l1(fit, x, y) <= l1(ordinary_least_squares(x, y), x, y) + 1e-12
        assert l1(fit, x, y) <= l1(irls(x, y), x, y) + 1e-12


def test_lad_recovers_a_plane_despite_outliers() -> None:
    generator = torch.Generator().manual_seed(0)
    x = torch.rand(200, 2, generator=generator, dtype=torch.float64)
    y = x @ torch.tensor([1.5, -2.0], dtype=torch.float64) + 0.25
    y[::10] += 5 + torch.rand(20, generator=generator, dtype=torch.float64)  # 10 % one-sided outliers
    lad, ols = least_absolute_deviations(x, y), ordinary_least_squares(x, y)
    torch.testing.assert_close(lad.weight, torch.tensor([1.5, -2.0], dtype=torch.float64), rtol=0, atol=1e-12)
    torch.testing.assert_close(lad.bias, torch.tensor([0.25], dtype=torch.float64), rtol=0, atol=1e-12)
    assert ols.bias.item() > 0.5  # the outliers pull least squares up


def test_lad_on_data_too_large_for_brute_force_meets_the_optimality_conditions() -> None:
    """0 is a subgradient: sum sign(r_i)·a_i over the rows with r_i != 0 equals -sum u_i·a_i over the exact rows,
    for some u_i in [-1, 1] (checked with numpy, from the residuals alone)."""
    generator = torch.Generator().manual_seed(1)
    rows = 2 * SUBSAMPLE_ABOVE  # also exercises the start from a subsample's optimum
    x = torch.rand(rows, 2, generator=generator, dtype=torch.float64) * torch.tensor([1.0, 100.0], dtype=torch.float64)
    y = x @ torch.tensor([0.7, 0.01], dtype=torch.float64) + 0.3
    y += 0.1 * torch.randn(rows, generator=generator, dtype=torch.float64)
    y[::20] += 3  # one-sided outliers
    fit = least_absolute_deviations(x, y)
    a = np.column_stack([x.numpy(), np.ones(rows)])
    residual = y.numpy() - a @ np.append(fit.weight.numpy(), fit.bias.numpy())
    exact = np.abs(residual) < 1e-9
    assert exact.sum() == 3  # a vertex: features + 1 rows fitted exactly
    u = np.linalg.solve(a[exact].T, -a[~exact].T @ np.sign(residual[~exact]))
    assert np.abs(u).max() <= 1 + 1e-9
    assert l1(fit, x, y) < l1(irls(x, y, steps=10), x, y)


def test_ols_matches_numpy_lstsq() -> None:
    generator = torch.Generator().manual_seed(2)
    x = torch.randn(500, 3, generator=generator, dtype=torch.float64) * torch.tensor([1.0, 10.0, 0.1]) + 5
    y = x @ torch.tensor([0.5, -0.2, 3.0], dtype=torch.float64) + torch.randn(500, generator=generator)
    fit = ordinary_least_squares(x, y.float().unsqueeze(1))  # float32 (rows, 1) targets, as the splits hold them
    a = np.column_stack([x.numpy(), np.ones(500)])
    expected = np.linalg.lstsq(a, y.float().double().numpy(), rcond=None)[0]
    np.testing.assert_allclose(fit.weight.numpy(), expected[:3], rtol=1e-9)
    np.testing.assert_allclose(fit.bias.numpy(), expected[3:], rtol=1e-9)


def test_dependent_features_get_weight_zero_and_keep_the_optimum() -> None:
    generator = torch.Generator().manual_seed(3)
    x = torch.randn(50, 1, generator=generator, dtype=torch.float64)
    y = 2 * x[:, 0] + 1 + 0.1 * torch.randn(50, generator=generator, dtype=torch.float64)
    tripled = torch.cat([x, 2 * x, torch.full((50, 1), 3.0, dtype=torch.float64)], 1)  # a multiple and a constant
    for solve in (ordinary_least_squares, least_absolute_deviations):
        alone, with_dependent = solve(x, y), solve(tripled, y)
        assert with_dependent.weight[1:].tolist() == [0.0, 0.0]
        torch.testing.assert_close(with_dependent.weight[:1], alone.weight)
        torch.testing.assert_close(with_dependent.bias, alone.bias)


def test_regression_errors() -> None:
    x = torch.tensor([[0.0], [1.0], [2.0], [3.0]])
    y = torch.tensor([[1.0], [3.0], [5.0], [8.0]])
    errors = regression_errors(LinearFit(torch.tensor([2.0]), torch.tensor([1.0])), x, y)
    assert errors == pytest.approx({"mae": 0.25, "mse": 0.25, "r2": 1 - 1 / 26.75})
    constant = regression_errors(LinearFit(torch.tensor([0.0]), torch.tensor([1.0])), x, torch.ones(4, 1))
    assert constant["mae"] == 0 and np.isnan(constant["r2"])

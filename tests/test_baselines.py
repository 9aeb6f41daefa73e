"""The exact baselines against independent computations: numpy's lstsq, brute force over vertices, KKT conditions."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch
from torch import Tensor

from lit_linreg.report import (
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
    rows = 100_000  # also exercises the start from a sample's fit
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


# NIST StRD's Longley data (employment against 6 collinear economic series, 1947-1962) and its certified OLS fit.
LONGLEY = """TOTEMP,GNPDEFL,GNP,UNEMP,ARMED,POP,YEAR
60323,83,234289,2356,1590,107608,1947
61122,88.5,259426,2325,1456,108632,1948
60171,88.2,258054,3682,1616,109773,1949
61187,89.5,284599,3351,1650,110929,1950
63221,96.2,328975,2099,3099,112075,1951
63639,98.1,346999,1932,3594,113270,1952
64989,99,365385,1870,3547,115094,1953
63761,100,363112,3578,3350,116219,1954
66019,101.2,397469,2904,3048,117388,1955
67857,104.6,419180,2822,2857,118734,1956
68169,108.4,442769,2936,2798,120445,1957
66513,110.8,444546,4681,2637,121950,1958
68655,112.6,482704,3813,2552,123366,1959
69564,114.2,502601,3931,2514,125368,1960
69331,115.7,518173,4806,2572,127852,1961
70551,116.9,554894,4007,2827,130081,1962
"""
LONGLEY_CERTIFIED = [15.0618722713733, -0.0358191792925910, -2.02022980381683, -1.03322686717359]
LONGLEY_CERTIFIED += [-0.0511041056535807, 1829.15146461355, -3482258.63459582]  # ... and the intercept


def test_ols_reaches_nist_certified_values_on_longley() -> None:
    table = torch.from_numpy(np.loadtxt(LONGLEY.splitlines()[1:], delimiter=","))
    fit = ordinary_least_squares(table[:, 1:], table[:, 0])
    np.testing.assert_allclose([*fit.weight.tolist(), fit.bias.item()], LONGLEY_CERTIFIED, rtol=1e-12, atol=0)
    rounded = ordinary_least_squares(table[:, 1:].float(), table[:, 0].float())  # why the report fits float64 values
    assert not np.allclose([*rounded.weight.tolist(), rounded.bias.item()], LONGLEY_CERTIFIED, rtol=1e-7, atol=0)
    lad = least_absolute_deviations(table[:, 1:], table[:, 0])
    assert l1(lad, table[:, 1:], table[:, 0]) == pytest.approx(brute_force_l1(table[:, 1:], table[:, 0]), rel=1e-11)
    residual = table[:, 0] - table[:, 1:] @ lad.weight - lad.bias
    assert int((residual.abs() < 1e-6).sum()) == 7  # a vertex: features + 1 rows fitted exactly, despite collinearity

"""RegressionMetrics equals torchmetrics' MeanAbsoluteError, MeanSquaredError and R2Score."""

from __future__ import annotations

import math

import torch
from torchmetrics import MeanAbsoluteError, MeanSquaredError, R2Score

from lit_linreg.metrics import RegressionMetrics


def test_matches_torchmetrics_over_several_batches() -> None:
    generator = torch.Generator().manual_seed(0)
    ours, references = RegressionMetrics(), (MeanAbsoluteError(), MeanSquaredError(), R2Score())
    for rows in (7, 64, 1, 33):
        target = torch.rand(rows, 1, generator=generator)
        preds = target + 0.1 * torch.randn(rows, 1, generator=generator)
        ours.update(preds, target)
        for reference in references:
            reference.update(preds.squeeze(1), target.squeeze(1))
    result = ours.compute()
    for name, reference in zip(("mae", "mse", "r2"), references):
        torch.testing.assert_close(result[name], reference.compute(), rtol=1e-5, atol=1e-6)


def test_reset_and_constant_target() -> None:
    metrics = RegressionMetrics()
    metrics.update(torch.tensor([[1.0], [2.0]]), torch.tensor([[1.0], [1.0]]))
    result = metrics.compute()
    assert result["mae"].item() == 0.5 and result["mse"].item() == 0.5
    assert math.isnan(result["r2"].item())  # R² is undefined for a constant target
    metrics.reset()
    metrics.update(torch.tensor([[0.0], [2.0]]), torch.tensor([[0.0], [2.0]]))
    assert metrics.compute()["r2"].item() == 1.0

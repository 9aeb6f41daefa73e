"""RegressionMetrics equals torchmetrics' MeanAbsoluteError, MeanSquaredError and R2Score; the task's epoch metrics."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torchmetrics import MeanAbsoluteError, MeanSquaredError, R2Score

from lit_linreg.analysis.metrics import RegressionMetrics
from lit_linreg.task import LinearRegressionTask


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


def test_epoch_metrics_are_the_stage_rows_l1_mse_and_r2() -> None:
    task = LinearRegressionTask(variant="linear")
    generator = torch.Generator().manual_seed(0)
    x, y = torch.rand(50, 1, generator=generator), torch.rand(50, 1, generator=generator)
    for rows in (slice(0, 7), slice(7, 40), slice(40, 50)):  # several batches: one epoch over all rows
        task.validation_step((x[rows], y[rows]), 0)
    with torch.no_grad():
        preds = task(x)
    metrics = task.epoch_metrics("val")
    residual = ((y - preds) ** 2).sum() / ((y - y.mean()) ** 2).sum()
    torch.testing.assert_close(metrics["val_loss"], F.l1_loss(preds, y))
    torch.testing.assert_close(metrics["val_mae"], F.l1_loss(preds, y))
    torch.testing.assert_close(metrics["val_mse"], F.mse_loss(preds, y))
    torch.testing.assert_close(metrics["val_r2"], 1 - residual)
    task.on_validation_epoch_start()  # a new epoch starts from nothing
    task.validation_step((x[:2], y[:2]), 0)
    torch.testing.assert_close(task.epoch_metrics("val")["val_mae"], F.l1_loss(preds[:2], y[:2]))

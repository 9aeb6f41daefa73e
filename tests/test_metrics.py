"""The task's per-stage metrics are torchmetrics' own, reset per epoch, and complete whichever hook reads them."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torchmetrics import MetricCollection

from lit_linreg.task import LinearRegressionTask


def test_epoch_metrics_are_the_stage_rows_l1_mse_and_r2() -> None:
    task = LinearRegressionTask(variant="linear")
    collection = task.stage_metrics("val")
    assert isinstance(collection, MetricCollection)
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

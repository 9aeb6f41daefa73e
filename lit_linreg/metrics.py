"""Metrics: MAE, MSE and R² for one stage as a single torchmetrics ``Metric``.

One update and one compute per step/epoch instead of three: on a 40-row full batch the bookkeeping of three separate
metric objects costs several times the training step itself. The results equal torchmetrics' ``MeanAbsoluteError``,
``MeanSquaredError`` and ``R2Score`` (see tests/test_metrics.py); states are summed across processes under DDP.
"""

from __future__ import annotations

import torch
from torch import Tensor
from torchmetrics import Metric


class RegressionMetrics(Metric):
    """MAE, MSE and R² from running sums of |e|, e², y and y² (e = prediction - target)."""

    is_differentiable = False
    higher_is_better = None
    full_state_update = False

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        self.add_state("sums", default=torch.zeros(4), dist_reduce_fx="sum")
        self.add_state("total", default=torch.tensor(0), dist_reduce_fx="sum")

    def update(self, preds: Tensor, target: Tensor) -> None:
        error = preds - target
        # In place: ``self.sums += ...`` would also re-assign the attribute through nn.Module.__setattr__ (slow).
        self.sums.add_(torch.stack((error.abs().sum(), error.square().sum(), target.sum(), target.square().sum())))
        self.total.add_(target.numel())

    def compute(self) -> dict[str, Tensor]:
        abs_error, squared_error, target_sum, target_squares = self.sums
        total = self.total.to(self.sums.dtype)
        total_variance = target_squares - target_sum * target_sum / total
        r2 = torch.where(total_variance > 0, 1 - squared_error / total_variance, torch.nan)  # constant target: NaN
        return {"mae": abs_error / total, "mse": squared_error / total, "r2": r2}

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
        # A handful of scalars: Python arithmetic on one host copy beats a dozen tiny tensor ops.
        abs_error, squared_error, target_sum, target_squares, total = torch.cat(
            [self.sums, self.total.to(self.sums.dtype).unsqueeze(0)]
        ).tolist()
        total_variance = target_squares - target_sum * target_sum / total
        r2 = 1 - squared_error / total_variance if total_variance > 0 else float("nan")  # constant target: NaN
        mae, mse, r2 = torch.tensor([abs_error / total, squared_error / total, r2], device=self.sums.device).unbind()
        return {"mae": mae, "mse": mse, "r2": r2}

"""Metrics: MAE, MSE and R² for one stage as a single torchmetrics ``Metric`` (a measured shortcut).

torchmetrics' own ``MetricCollection(MeanAbsoluteError, MeanSquaredError, R2Score)`` is the idiomatic choice, and
the results here equal it (tests/test_metrics.py). But it makes the tutorial's fit 0.5 s slower per 500 epochs, about
1 ms per epoch of a train and a val stage, on the 2-core CPUs here (benchmarks/overheads.py, row "torchmetrics'
MetricCollection(MAE, MSE, R²) instead of RegressionMetrics": +0.51 s), as much as the whole bare training loop
takes. So this one metric keeps four running sums in one state tensor instead.
States are summed across processes under DDP.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor
from torchmetrics import Metric


class RegressionMetrics(Metric):
    """MAE, MSE and R² from running sums of |e|, e², y and y² (e = prediction - target)."""

    is_differentiable = False
    higher_is_better = None
    full_state_update = False
    sums: Tensor  # states (add_state): sum of |e|, sum of e², sum of y, sum of y²
    total: Tensor  # the number of targets

    def __init__(self, prefix: str = "", **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.prefix = prefix
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
        return {f"{self.prefix}mae": mae, f"{self.prefix}mse": mse, f"{self.prefix}r2": r2}

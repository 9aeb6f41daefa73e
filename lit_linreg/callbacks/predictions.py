"""``predictions.csv``: what ``lit-linreg predict`` writes."""

from __future__ import annotations

from pathlib import Path

import lightning as L
import torch
from lightning.pytorch.callbacks import Callback
from torch import Tensor

from lit_linreg.console import echo
from lit_linreg.data import attached_datamodule, default_feature_names
from lit_linreg.storage.files import write_csv


class PredictionWriter(Callback):
    """Writes ``predictions.csv`` into the run's log directory and prints its path.

    Columns: the input feature(s) (``x``, or the datamodule's ``feature_names``), ``y_pred``, and ``y_true`` and
    ``abs_error`` when the targets are known.
    """

    def __init__(self, filename: str = "predictions.csv") -> None:
        self.filename = filename
        self.path: Path | None = None
        self._batches: list[tuple[Tensor, ...]] = []

    def on_predict_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._batches = []

    def on_predict_batch_end(self, trainer, pl_module, outputs: Tensor, batch, batch_idx, dataloader_idx=0) -> None:
        self._batches.append((batch[0].cpu(), outputs.detach().cpu(), *(t.cpu() for t in batch[1:2])))

    def on_predict_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        log_dir = trainer.log_dir or trainer.default_root_dir  # a collective under DDP: every rank must ask
        if not trainer.is_global_zero or not self._batches:
            return
        x, y_pred, *y_true = (torch.cat(parts) for parts in zip(*self._batches))
        self._batches = []
        datamodule = attached_datamodule(trainer)
        names = [] if datamodule is None else datamodule.feature_names
        if len(names) != x.shape[1]:
            names = default_feature_names(x.shape[1])
        header, columns = [*names, "y_pred"], [*x.T, y_pred[:, 0]]
        if y_true:
            header += ["y_true", "abs_error"]
            columns += [y_true[0][:, 0], (y_pred - y_true[0]).abs()[:, 0]]
        self.path = write_csv(Path(log_dir) / self.filename, header, columns)
        echo(f"predictions: {self.path} ({len(y_pred)} rows)")

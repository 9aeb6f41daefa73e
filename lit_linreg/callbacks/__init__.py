"""Callbacks: what a run prints, draws and leaves behind, each usable with a plain ``Trainer`` and any
LightningModule that logs ``train_loss`` and ``val_loss`` (they read ``trainer.callback_metrics``)."""

from lit_linreg.callbacks.figures import FigureWriter, LossHistory
from lit_linreg.callbacks.report import PredictionWriter, RunReport
from lit_linreg.callbacks.training import DivergenceGuard, EpochTable, GracefulInterrupt, LastCheckpoint

__all__ = [
    "DivergenceGuard",
    "EpochTable",
    "FigureWriter",
    "GracefulInterrupt",
    "LastCheckpoint",
    "LossHistory",
    "PredictionWriter",
    "RunReport",
]

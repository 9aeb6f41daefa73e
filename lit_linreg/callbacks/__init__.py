"""Callbacks: what a run prints, saves and draws around the training loop, each usable with a plain ``Trainer``."""

from lit_linreg.callbacks.checkpoints import RunCheckpoint
from lit_linreg.callbacks.figures import FigureWriter
from lit_linreg.callbacks.guards import DivergenceGuard, GracefulInterrupt
from lit_linreg.callbacks.predictions import PredictionWriter
from lit_linreg.callbacks.report import BaselineReport
from lit_linreg.callbacks.table import EpochTable

__all__ = [
    "BaselineReport",
    "DivergenceGuard",
    "EpochTable",
    "FigureWriter",
    "GracefulInterrupt",
    "RunCheckpoint",
    "PredictionWriter",
]

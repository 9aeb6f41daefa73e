"""Loggers: Lightning's TensorBoard logger, cheap enough for hundreds of tiny epochs, with a real ``hp_metric``."""

from lit_linreg.loggers.tensorboard import TensorBoardLogger

__all__ = ["TensorBoardLogger"]

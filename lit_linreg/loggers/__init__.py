"""Loggers: Lightning's TensorBoard logger, cheap enough for hundreds of tiny epochs, laid out for a person to read."""

from lit_linreg.loggers.tensorboard import TensorBoardLogger

__all__ = ["TensorBoardLogger"]

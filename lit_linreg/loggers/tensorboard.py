"""Logging: TensorBoard, written in batches, with one event per step and a real ``hp_metric``."""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

from lightning.pytorch.loggers import TensorBoardLogger as _TensorBoardLogger
from lightning.pytorch.utilities import rank_zero_only
from tensorboard.compat.proto.summary_pb2 import Summary
from torch import Tensor

from lit_linreg.errors import require


class TensorBoardLogger(_TensorBoardLogger):
    """Lightning's TensorBoardLogger, cheap enough for hundreds of tiny epochs, with a real ``hp_metric``.

    - All scalars of a step go into one event: TensorBoard checksums every event in pure Python, so a dozen events
      per epoch cost more than the tutorial's whole training step.
    - Events are kept in memory and written every ``write_every_s`` seconds (and when the run ends or Lightning
      saves the logger), with training paused: written one by one, TensorBoard's writer thread and the training
      loop hand the interpreter back and forth at every event, which measured 1 ms per epoch here. TensorBoard
      itself flushes its files only every ``flush_secs`` (120 s), so this adds no delay you could see.
    - The hyperparameters are written when the run ends, with its last ``val_loss`` as ``hp_metric`` (Lightning
      writes a placeholder -1 at the start).
    """

    def __init__(
        self,
        save_dir: str,
        name: str | None = "lightning_logs",
        version: int | str | None = None,
        write_every_s: float = 10.0,
        **kwargs: Any,
    ) -> None:
        require(not kwargs.get("prefix"), "lit-linreg's TensorBoardLogger takes no prefix; name the run instead")
        kwargs["default_hp_metric"] = False
        super().__init__(save_dir, name=name, version=version, **kwargs)
        self.write_every_s = write_every_s
        self._pending: list[tuple[Summary, int | None]] = []
        self._next_write = time.monotonic() + write_every_s
        self._final_val_loss: float | None = None
        self._last_step = 0

    @rank_zero_only
    def log_metrics(self, metrics: Mapping[str, float | Tensor], step: int | None = None) -> None:
        values = {k: v.item() if isinstance(v, Tensor) else v for k, v in metrics.items()}
        if any(isinstance(v, dict) for v in values.values()):
            return super().log_metrics(values, step)
        summary = Summary(value=[Summary.Value(tag=k, simple_value=float(v)) for k, v in values.items()])
        self._pending.append((summary, step))
        self._last_step = step if step is not None else self._last_step
        if "val_loss" in values:
            self._final_val_loss = float(values["val_loss"])
        if time.monotonic() >= self._next_write:
            self.write_pending()

    def write_pending(self) -> None:
        """Write the events held in memory now."""
        if self._pending:
            writer = self.experiment.file_writer  # SummaryWriter's public FileWriter: one event for many scalars
            for summary, step in self._pending:
                writer.add_summary(summary, step)
            self.experiment.flush()  # let the writer thread finish now rather than compete with training
            self._pending = []
        self._next_write = time.monotonic() + self.write_every_s

    @rank_zero_only
    def save(self) -> None:
        """Lightning asks after every logging step; written every ``write_every_s`` seconds and at the end instead
        (each write waits for TensorBoard's writer thread: four times an epoch, that cost more than the epoch)."""
        if time.monotonic() >= self._next_write:
            self.write_pending()
            super().save()

    @rank_zero_only
    def finalize(self, status: str) -> None:
        if status == "success" and self._final_val_loss is not None and self.hparams:
            self.log_hyperparams(self.hparams, {"hp_metric": self._final_val_loss}, step=self._last_step)
        self.write_pending()
        super().save()
        super().finalize(status)

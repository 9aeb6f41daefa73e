"""The metric contract: the task logs exact epoch values with self.log, and lit-linreg's callbacks read them from
trainer.callback_metrics, so they work with any LightningModule that logs train_loss and val_loss."""

from __future__ import annotations

import math
from pathlib import Path

import lightning as L
import pytest
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from lit_linreg.callbacks import DivergenceGuard, EpochTable, FigureWriter
from lit_linreg.data import SyntheticRegressionData
from lit_linreg.errors import UserError
from lit_linreg.task import LinearRegressionTask


def quiet_trainer(**kwargs) -> L.Trainer:
    return L.Trainer(
        logger=False, enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False, **kwargs
    )


class LossRecorder(L.Callback):
    """Each training batch's loss (before its step) and its row count."""

    def __init__(self) -> None:
        self.losses: list[tuple[float, int]] = []

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        self.losses.append((float(outputs["loss"]), len(batch[1])))


def test_logged_epoch_values_are_exact_over_several_batches() -> None:
    data = SyntheticRegressionData(num_samples=203, noise_std=0.3, batch_size=32, val_split=0.1, split="random")
    task, recorder = LinearRegressionTask(variant="linear", lr=0.05), LossRecorder()
    trainer = quiet_trainer(max_epochs=1, callbacks=[recorder])
    trainer.fit(task, data)
    logged = trainer.callback_metrics
    # train_loss: the mean L1 over the epoch's rows, each batch's loss taken before its own step.
    rows = sum(n for _, n in recorder.losses)
    assert len(recorder.losses) == 6 and rows == len(data.splits["train"][0])
    assert float(logged["train_loss"]) == pytest.approx(sum(loss * n for loss, n in recorder.losses) / rows, rel=1e-6)
    # The parameters after the epoch's last update.
    weight, bias = task.coefficients()
    assert float(logged["params/weight"]) == weight.item() and float(logged["params/bias"]) == bias.item()
    # val_loss and the val/ metrics: the whole validation split at the end of the epoch.
    x, y = data.splits["val"]
    with torch.no_grad():
        preds = task(x)
    r2 = 1 - ((y - preds) ** 2).sum() / ((y - y.mean()) ** 2).sum()
    torch.testing.assert_close(logged["val_loss"], F.l1_loss(preds, y))
    torch.testing.assert_close(logged["val/mae"], F.l1_loss(preds, y))
    torch.testing.assert_close(logged["val/mse"], F.mse_loss(preds, y))
    torch.testing.assert_close(logged["val/r2"], r2)
    # test: the same keys for its own split.
    trainer.test(task, data, verbose=False)
    x, y = data.splits["test"]
    with torch.no_grad():
        torch.testing.assert_close(trainer.callback_metrics["test_loss"], F.l1_loss(task(x), y))


def test_several_features_log_one_weight_each_by_name() -> None:
    data = SyntheticRegressionData(weight=[0.5, -1.0, 2.0], num_samples=100)
    task = LinearRegressionTask(variant="manual", in_features=3, feature_names=["a", "b", "c"])
    trainer = quiet_trainer(max_epochs=2)
    trainer.fit(task, data)
    keys = [k for k in trainer.callback_metrics if k.startswith("params/")]
    assert keys == ["params/weight[a]", "params/weight[b]", "params/weight[c]", "params/bias"]


class TinyModule(L.LightningModule):
    """Not lit-linreg's task: a bare LightningModule that logs the contract's keys, and blows up on request."""

    def __init__(self, blow_up_at: int | None = None) -> None:
        super().__init__()
        self.layer = nn.Linear(1, 1)
        self.blow_up_at = blow_up_at

    def forward(self, x: Tensor) -> Tensor:  # what the figures predict with
        return self.layer(x)

    def training_step(self, batch: tuple[Tensor, Tensor], batch_idx: int) -> Tensor:
        x, y = batch
        loss = F.l1_loss(self.layer(x), y)
        if self.current_epoch == self.blow_up_at:
            loss = loss * math.inf
        self.log("train_loss", loss)
        self.log("params/slope", self.layer.weight[0, 0])
        return loss

    def validation_step(self, batch: tuple[Tensor, Tensor], batch_idx: int) -> None:
        x, y = batch
        self.log("val_loss", F.l1_loss(self.layer(x), y))

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.SGD(self.parameters(), lr=0.01)


def test_the_callbacks_work_with_any_lightning_module(capsys: pytest.CaptureFixture[str]) -> None:
    figures = FigureWriter()
    trainer = quiet_trainer(max_epochs=4, default_root_dir=".", callbacks=[EpochTable(2), figures, DivergenceGuard()])
    trainer.fit(TinyModule(), SyntheticRegressionData())
    out = capsys.readouterr().out
    lines = out.splitlines()
    assert lines[0].split(" | ") == ["epoch", "train_loss", "  val_loss", " slope"]
    assert [line.split(" | ")[0].strip() for line in lines[1:3]] == ["0", "2"]
    assert lines[3].startswith("final (epoch 3): slope ") and lines[3].endswith("| true: weight 0.7000, bias 0.3000")
    assert {p.name for p in figures.paths} >= {"4_loss_curves.png"} and all(p.is_file() for p in figures.paths)

    with pytest.raises(UserError, match="training diverged at epoch 1: the training loss became inf"):
        quiet_trainer(max_epochs=4, callbacks=[DivergenceGuard()]).fit(
            TinyModule(blow_up_at=1), SyntheticRegressionData()
        )
    assert not list(Path(".").glob("**/*.ckpt"))

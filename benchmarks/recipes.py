"""What lit-linreg is measured against: the tutorial's plain loop, a bare Lightning loop, the DataLoader recipe.

Each function trains and returns the learned (weight, bias) so the benchmark can check they all learned the same line.
"""

from __future__ import annotations

import itertools
import logging
import time

import lightning as L
import torch
import torch.nn.functional as F
from lightning.pytorch.callbacks import Callback
from torch import Tensor, nn
from torch.utils.data import DataLoader, TensorDataset

from lit_linreg.data import TensorBatches
from lit_linreg.models import build_model

for _name in ("lightning.pytorch", "lightning.fabric"):
    logging.getLogger(_name).setLevel(logging.ERROR)


def tutorial_data() -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """The tutorial's 40 train and 10 test rows of y = 0.7x + 0.3."""
    x = torch.arange(0, 1, 0.02).unsqueeze(dim=1)
    y = 0.7 * x + 0.3
    return x[:40], y[:40], x[40:], y[40:]


def plain_loop(epochs: int = 500, lr: float = 0.005) -> tuple[float, float]:
    """The tutorial's own loop: manual model, L1 loss, SGD, a test evaluation after every epoch."""
    x_train, y_train, x_test, y_test = tutorial_data()
    torch.manual_seed(42)
    model = build_model("manual")
    optimizer = torch.optim.SGD(model.parameters(), lr=lr)
    for _ in range(epochs):
        model.train()
        loss = F.l1_loss(model(x_train), y_train)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        model.eval()
        with torch.inference_mode():
            F.l1_loss(model(x_test), y_test)
    return model.weights.item(), model.bias.item()


class IdiomaticTutorial(L.LightningModule):
    """The tutorial as idiomatic Lightning, the reference lit-linreg's speed is compared with: a MetricCollection per
    stage, ``self.log``/``log_dict`` every epoch, TensorBoardLogger, best and last ModelCheckpoint, DataLoaders."""

    def __init__(self, lr: float = 0.005) -> None:
        super().__init__()
        self.save_hyperparameters()
        self.model = build_model("manual")
        self.metrics = nn.ModuleDict({stage: _metrics(stage) for stage in ("fit", "val")})

    def _common_step(self, batch: tuple[Tensor, Tensor], stage: str) -> Tensor:
        x, y = batch
        preds = self.model(x)
        loss = F.l1_loss(preds, y)
        self.log(f"{stage}_loss", loss, on_step=False, on_epoch=True, batch_size=len(y))
        self.metrics["fit" if stage == "train" else stage].update(preds, y)
        return loss

    def training_step(self, batch: tuple[Tensor, Tensor], batch_idx: int) -> Tensor:
        return self._common_step(batch, "train")

    def validation_step(self, batch: tuple[Tensor, Tensor], batch_idx: int) -> None:
        self._common_step(batch, "val")

    def on_train_epoch_end(self) -> None:
        self.log_dict(self.metrics["fit"].compute())
        self.metrics["fit"].reset()

    def on_validation_epoch_end(self) -> None:
        self.log_dict(self.metrics["val"].compute())
        self.metrics["val"].reset()

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.SGD(self.parameters(), lr=self.hparams["lr"])


def _metrics(stage: str):
    from torchmetrics import MeanAbsoluteError, MeanSquaredError, MetricCollection, R2Score

    return MetricCollection(
        {"mae": MeanAbsoluteError(), "mse": MeanSquaredError(), "r2": R2Score()}, prefix=f"{stage}/"
    )


def idiomatic_tutorial(root: str) -> tuple[float, float]:
    """The tutorial's 500 epochs with :class:`IdiomaticTutorial`, writing logs and checkpoints under ``root``."""
    from lightning.pytorch.callbacks import ModelCheckpoint
    from lightning.pytorch.loggers import TensorBoardLogger

    x_train, y_train, x_test, y_test = tutorial_data()
    torch.manual_seed(42)
    module = IdiomaticTutorial()
    trainer = L.Trainer(
        max_epochs=500,
        logger=TensorBoardLogger(root, name="idiomatic"),
        callbacks=[
            ModelCheckpoint(f"{root}/checkpoints", "best-{epoch}", monitor="val_loss", every_n_epochs=50),
            ModelCheckpoint(f"{root}/checkpoints", "last", every_n_epochs=50),
        ],
        log_every_n_steps=1,
        enable_progress_bar=False,
        enable_model_summary=False,
    )
    loader = DataLoader(TensorDataset(x_train, y_train), batch_size=len(x_train))
    trainer.fit(module, loader, DataLoader(TensorDataset(x_test, y_test), batch_size=len(x_test)))
    return module.model.weights.item(), module.model.bias.item()


class _BareModule(L.LightningModule):
    def __init__(self, lr: float, log_keys: int = 0, variant: str = "manual") -> None:
        super().__init__()
        self.lr, self.log_keys = lr, log_keys
        self.model = build_model(variant)

    def training_step(self, batch: tuple[Tensor, Tensor], batch_idx: int) -> Tensor:
        loss = F.l1_loss(self.model(batch[0]), batch[1])
        for key in range(self.log_keys):  # what logging a dozen epoch metrics the usual way costs
            self.log(f"key_{key}", loss, on_step=False, on_epoch=True, batch_size=len(batch[0]))
        return loss

    def validation_step(self, batch: tuple[Tensor, Tensor], batch_idx: int) -> None:
        F.l1_loss(self.model(batch[0]), batch[1])

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.SGD(self.parameters(), lr=self.lr)


class _OneBatch:
    """The whole split as one in-memory batch (a single object: Lightning reads a list as several loaders)."""

    def __init__(self, *tensors: Tensor) -> None:
        self.tensors = tensors

    def __iter__(self):
        yield self.tensors

    def __len__(self) -> int:
        return 1


def bare_lightning_loop(
    epochs: int = 500, lr: float = 0.005, minimal: bool = False, log_keys: int = 0
) -> tuple[float, float]:
    """The same schedule as a bare LightningModule, the batch in memory, no logger and no checkpoints.

    By default the rest is Lightning's defaults (a progress bar refreshed every step, the model summary);
    ``minimal`` turns those off too; ``log_keys`` adds that many ``self.log`` calls per step.
    """
    x_train, y_train, x_test, y_test = tutorial_data()
    torch.manual_seed(42)
    module = _BareModule(lr, log_keys)
    extra = {"enable_progress_bar": False, "enable_model_summary": False} if minimal else {}
    trainer = L.Trainer(
        max_epochs=epochs, accelerator="cpu", devices=1, logger=False, enable_checkpointing=False, **extra
    )
    trainer.fit(module, _OneBatch(x_train, y_train), _OneBatch(x_test, y_test))
    return module.model.weights.item(), module.model.bias.item()


def scale_data(rows: int, seed: int = 0, device: str = "cpu") -> tuple[Tensor, Tensor]:
    """``rows`` noisy training rows of y = 0.7x + 0.3 with x uniform in [0, 1) (generated on the CPU, then moved)."""
    generator = torch.Generator().manual_seed(seed)
    x = torch.rand(rows, 1, generator=generator)
    y = 0.7 * x + 0.3 + 0.1 * torch.randn(rows, 1, generator=generator)
    return x.to(device), y.to(device)


def plain_minibatch_epoch(
    x: Tensor, y: Tensor, batch_size: int, lr: float = 0.01, seed: int = 0, gather_once: bool = False
) -> nn.Module:
    """One shuffled epoch of a plain loop over tensors already in memory: one permutation, then one gather per
    batch, or with ``gather_once`` one gather of all rows and a slice per batch (lit-linreg's data path)."""
    torch.manual_seed(42)
    model = build_model("linear").to(x.device)
    optimizer = torch.optim.SGD(model.parameters(), lr=lr)
    order = torch.randperm(len(x), generator=torch.Generator(x.device).manual_seed(seed), device=x.device)
    if gather_once:
        x, y = x.index_select(0, order), y.index_select(0, order)
    for start in range(0, len(x), batch_size):
        if gather_once:
            xb, yb = x[start : start + batch_size], y[start : start + batch_size]
        else:
            index = order[start : start + batch_size]
            xb, yb = x.index_select(0, index), y.index_select(0, index)
        loss = F.l1_loss(model(xb), yb)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    return model


def dataloader_steps(x: Tensor, y: Tensor, batch_size: int, steps: int, lr: float = 0.01) -> nn.Module:
    """The common recipe: ``DataLoader(TensorDataset(x, y), shuffle=True)``, which indexes and collates row by row."""
    torch.manual_seed(42)
    model = build_model("linear")
    optimizer = torch.optim.SGD(model.parameters(), lr=lr)
    loader = DataLoader(TensorDataset(x, y), batch_size=batch_size, shuffle=True)
    for xb, yb in itertools.islice(loader, steps):
        loss = F.l1_loss(model(xb), yb)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    return model


def bare_lightning_epoch(
    x: Tensor, y: Tensor, batch_size: int, lr: float = 0.01, idle_callbacks: int = 0
) -> tuple[float, nn.Module]:
    """One shuffled epoch of a bare LightningModule on lit-linreg's batches: the seconds of the training epoch.

    ``idle_callbacks`` adds that many callbacks that override no hook: what Lightning's per-step calls of every
    callback's hooks cost by themselves.
    """
    torch.manual_seed(42)
    module, timer = _BareModule(lr, variant="linear"), TrainEpochTimer()
    trainer = L.Trainer(
        max_epochs=1,
        accelerator=x.device.type,
        devices=1,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        callbacks=[timer, *(Callback() for _ in range(idle_callbacks))],
    )
    trainer.fit(module, TensorBatches((x, y), batch_size, shuffle=True))
    return timer.seconds, module.model


def scale_fit_args(rows: int, batch_size: int, accelerator: str = "cpu") -> list[str]:
    """``lit-linreg fit`` arguments: one timed, shuffled epoch of the linear model over ``rows`` noisy training rows."""
    return [
        "fit",
        "--model.variant=linear",
        "--model.lr=0.01",
        "--trainer.max_epochs=1",
        f"--trainer.accelerator={accelerator}",
        "--trainer.enable_progress_bar=false",
        "--seed_everything=42",
        f"--data.num_samples={round(rows / 0.8)}",  # the train split is 80 %
        "--data.noise_std=0.1",
        f"--data.batch_size={batch_size}",
        "--table.every_n_epochs=0",
        "--trainer.callbacks+=recipes.TrainEpochTimer",
    ]


class TrainEpochTimer(Callback):
    """Seconds from the start of a training epoch to its last training batch (validation excluded)."""

    def on_train_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self.start = time.perf_counter()

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        if batch_idx + 1 == trainer.num_training_batches:
            self.seconds = time.perf_counter() - self.start

"""Task: one LightningModule that trains either plain model variant with L1 loss and SGD.

Run: lit-linreg fit --config configs/base.yaml
"""

from __future__ import annotations

from typing import Any

import lightning as L
import torch
import torch.nn.functional as F
from jsonargparse.typing import restricted_number_type
from torch import Tensor
from torchmetrics import MeanAbsoluteError, MeanSquaredError, MetricCollection, R2Score

from lit_linreg.data import FLOAT32_MAX, STATIC_TYPING, PositiveFloat32, RegressionDataModule, attached_datamodule
from lit_linreg.errors import UserError, require
from lit_linreg.models import VARIANTS, Variant, build_model

if STATIC_TYPING:  # see lit_linreg.data
    Features = int
else:  # in_features: a weight vector that fits in memory
    Features = restricted_number_type("Features", int, [(">", 0), ("<=", 100_000)], join="and")
CHECKPOINT_KEY = "lit_linreg"  # lit-linreg's own entry in every checkpoint: {"format": ..., "data_class": ...}
CHECKPOINT_FORMAT = 2  # 1: lit-linreg 0.1, whose checkpoints have no such entry


class LinearRegressionTask(L.LightningModule):
    """L1 loss + SGD around the ``manual`` (two ``nn.Parameter``) or ``linear`` (``nn.Linear``) model.

    Hyperparameters are primitives, so Lightning's ``load_from_checkpoint`` rebuilds the right variant anywhere
    (``lit_linreg.load_task(path)`` checks the file first: use it for files you did not write). Each epoch it logs
    (``self.log``) ``train_loss``, ``params/weight`` (``params/weight[<feature>]`` for several features) and
    ``params/bias`` after its last update, then ``val_loss`` and ``val/`` MAE, MSE and R²; ``test`` logs ``test_loss``
    and ``test/``. Callbacks read them from ``trainer.callback_metrics``.

    With ``standardize`` (linked from the data, like ``in_features`` and ``feature_names``) the model sees features
    and target scaled by the training split's mean and std, buffers that every checkpoint carries; predictions,
    weights and losses are in the data's own units.

    Args:
        variant: ``linear`` (one ``nn.Linear`` layer) or ``manual`` (the tutorial's two ``nn.Parameter``)
        lr: the SGD learning rate (the tutorial uses 0.01 for linear, 0.005 for manual)
        in_features: the number of input features; set from the data's num_features, never directly
        standardize: scale features and target by the training split's mean and std; set from the data
        feature_names: the features' names when the data name them (a CSV file's columns); set from the data
    """

    feature_mean: Tensor  # buffers, registered with standardize only
    feature_std: Tensor
    target_mean: Tensor
    target_std: Tensor

    def __init__(
        self,
        variant: Variant = "linear",
        lr: PositiveFloat32 = 0.01,
        in_features: Features = 1,
        standardize: bool = False,
        feature_names: list[str] | None = None,
    ) -> None:
        super().__init__()
        require(variant in VARIANTS, f"model.variant must be one of {sorted(VARIANTS)}, got {variant!r}")
        require(
            isinstance(lr, (int, float)) and 0 < lr <= FLOAT32_MAX,  # NaN fails both comparisons
            f"model.lr must be a positive finite number (at most 3.4e38, the float32 limit), got {lr!r}; the tutorial "
            f"uses 0.005 (manual) and 0.01 (linear)",
        )
        require(
            feature_names is None or len(feature_names) == in_features,
            f"model.feature_names must be null or {in_features} names (one per feature), got {feature_names!r}",
        )
        lr, in_features = float(lr), int(in_features)  # plain numbers (not jsonargparse's checked types) everywhere
        self.save_hyperparameters(logger=False)  # the run's settings reach the loggers through the report callback
        if standardize:
            self.register_buffer("feature_mean", torch.zeros(in_features))
            self.register_buffer("feature_std", torch.ones(in_features))
            self.register_buffer("target_mean", torch.zeros(1))
            self.register_buffer("target_std", torch.ones(1))
        self.model = build_model(variant, in_features)
        # MAE (the L1 loss), MSE and R², logged as val/mae, val/mse, val/r2 (test/... for test).
        metrics = MetricCollection({"mae": MeanAbsoluteError(), "mse": MeanSquaredError(), "r2": R2Score()})
        self.val_metrics, self.test_metrics = metrics.clone(prefix="val/"), metrics.clone(prefix="test/")
        # The training loss of the epoch, summed over its batches: one add per step. A torchmetrics metric (or a
        # per-step self.log) costs about 0.4 ms a step here, as much as the step itself at batch 8192
        # (benchmarks/bench.py, "scale"), so the training stage keeps this running sum and logs it once an epoch.
        self._train_l1 = torch.zeros(())
        self._train_rows = 0

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        """Plain Python values only (jsonargparse's checked types are subclasses of int and float, which a weights-only
        load refuses), and lit-linreg's entry: the format and the data class a checkpoint alone can rebuild."""
        for key in ("hyper_parameters", "datamodule_hyper_parameters"):
            if key in checkpoint:
                checkpoint[key] = plain(checkpoint[key])
        datamodule = attached_datamodule(self.trainer)
        data_class = None if datamodule is None else f"{type(datamodule).__module__}.{type(datamodule).__qualname__}"
        checkpoint[CHECKPOINT_KEY] = {"format": CHECKPOINT_FORMAT, "data_class": data_class}

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        """Weights of another variant or feature count are a one-line :class:`UserError`, not a state-dict dump."""
        expected = {name: tuple(t.shape) for name, t in self.state_dict().items()}
        found = {name: tuple(t.shape) for name, t in checkpoint["state_dict"].items()}
        require(
            found == expected,
            f"the checkpoint's weights {found} do not fit this model (variant={self.hparams['variant']!r}, "
            f"in_features={self.hparams['in_features']}, weights {expected}); load it with its own model settings",
        )

    def on_train_start(self) -> None:
        # A resumed fit restores the optimizer, learning rate included: the lr asked for now must win.
        for optimizer in self.trainer.optimizers:
            for group in optimizer.param_groups:
                group["lr"] = self.hparams["lr"]

    def on_fit_start(self) -> None:
        if not self.hparams["standardize"]:
            return
        datamodule = attached_datamodule(self.trainer)
        stats = (None, None) if datamodule is None else (datamodule.feature_stats(), datamodule.target_stats())
        if None in stats:
            raise UserError(
                "model.standardize needs a datamodule with feature_stats() and target_stats() (the CSV data)"
            )
        values = [*stats[0], *stats[1]]  # type: ignore[misc]  # the features' mean and std, the target's
        for buffer, value in zip((self.feature_mean, self.feature_std, self.target_mean, self.target_std), values):
            buffer.copy_(value)

    def forward(self, x: Tensor) -> Tensor:
        if not self.hparams["standardize"]:
            return self.model(x)
        return self.model((x - self.feature_mean) / self.feature_std) * self.target_std + self.target_mean

    def coefficients(self) -> tuple[Tensor, Tensor]:
        """The learned (weight, bias) in the data's own units, whatever the model sees inside."""
        weight, bias = self.model.coefficients()
        if self.hparams["standardize"]:
            weight = weight * self.target_std / self.feature_std
            bias = (bias * self.target_std + self.target_mean) - (weight * self.feature_mean).sum()
        return weight, bias

    def parameter_metrics(self) -> dict[str, Tensor]:
        """``params/weight`` (``params/weight[<feature>]`` for several features) and ``params/bias``."""
        weight, bias = self.coefficients()
        names = self.hparams["feature_names"] or [f"x{i}" for i in range(len(weight))]
        keys = ["params/weight"] if len(weight) == 1 else [f"params/weight[{name}]" for name in names]
        return {**dict(zip(keys, weight.unbind())), "params/bias": bias[0]}

    def training_step(self, batch: tuple[Tensor, Tensor], batch_idx: int) -> Tensor:
        x, y = batch
        loss = F.l1_loss(self(x), y)  # in the target's units: what the table and the baselines compare
        self._train_l1 += loss.detach() * len(y)
        self._train_rows += len(y)
        if self.hparams["standardize"]:  # the gradient of the L1 loss on the standardised target
            return loss / self.target_std[0]
        return loss

    def on_train_epoch_start(self) -> None:
        self._train_l1 = torch.zeros((), device=self.device)
        self._train_rows = 0

    def on_train_batch_end(self, outputs: Any, batch: Any, batch_idx: int) -> None:
        if self.trainer.is_last_batch:  # once an epoch, after its last update
            # batch_size: one value per epoch (Lightning would otherwise infer it from the batch)
            self.log("train_loss", self._train_l1 / self._train_rows, prog_bar=True, sync_dist=True, batch_size=1)
            self.log_dict(self.parameter_metrics(), batch_size=1)

    def _common_step(self, batch: tuple[Tensor, Tensor], stage: str) -> None:
        x, y = batch
        preds = self(x)
        self.log(f"{stage}_loss", F.l1_loss(preds, y), prog_bar=True, batch_size=len(y), sync_dist=True)
        (self.val_metrics if stage == "val" else self.test_metrics).update(preds, y)

    def validation_step(self, batch: tuple[Tensor, Tensor], batch_idx: int) -> None:
        self._common_step(batch, "val")

    def test_step(self, batch: tuple[Tensor, Tensor], batch_idx: int) -> None:
        self._common_step(batch, "test")

    def on_validation_epoch_end(self) -> None:
        self.log_dict(self.val_metrics.compute())
        self.val_metrics.reset()

    def on_test_epoch_end(self) -> None:
        self.log_dict(self.test_metrics.compute())
        self.test_metrics.reset()

    def predict_step(self, batch: tuple[Tensor, ...], batch_idx: int) -> Tensor:
        return self(batch[0])

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.SGD(self.parameters(), lr=self.hparams["lr"])


def plain(value: Any) -> Any:
    """``value`` with every int, float and str subclass (jsonargparse's checked types) as the plain type."""
    if isinstance(value, dict):
        return {k: plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(plain(v) for v in value) if type(value) in (list, tuple) else [plain(v) for v in value]
    for kind in (bool, int, float, str):
        if isinstance(value, kind):
            return kind(value)
    return value


def num_features_of(data: RegressionDataModule) -> int:
    return data.num_features


def standardize_of(data: RegressionDataModule) -> bool:
    return data.standardize


def feature_names_of(data: RegressionDataModule) -> list[str] | None:
    """The data's feature names when they are its own (a CSV file's columns); None for the synthetic data."""
    names = list(data.feature_names)
    return None if names == ["x"] or names == [f"x{i}" for i in range(data.num_features)] else names


# Task hyperparameters that the data decide: the CLI links them at instantiation, so they are never set directly.
LINKED_FROM_DATA = {"in_features": num_features_of, "standardize": standardize_of, "feature_names": feature_names_of}

"""Task: one LightningModule that trains either plain model variant with L1 loss and SGD.

Run: lit-linreg fit --config configs/base.yaml
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import IO, Any

import lightning as L
import torch
import torch.nn.functional as F
from lightning.pytorch.callbacks import EarlyStopping, ModelCheckpoint
from lightning.pytorch.trainer.states import TrainerFn
from lightning.pytorch.utilities import rank_zero_info
from torch import Tensor

from lit_linreg.analysis.metrics import RegressionMetrics
from lit_linreg.data import RegressionDataModule, attached_datamodule, default_feature_names
from lit_linreg.errors import UserError, require
from lit_linreg.models import VARIANTS, Variant, build_model
from lit_linreg.storage.checkpoints import FORMAT, FORMAT_KEY, load_checkpoint_file


class LinearRegressionTask(L.LightningModule):
    """L1 loss + SGD around the ``manual`` (two ``nn.Parameter``) or ``linear`` (``nn.Linear``) model.

    Hyperparameters are primitives, so ``LinearRegressionTask.load_from_checkpoint(path)`` rebuilds the right variant
    anywhere. Per stage and epoch it reports ``{stage}_loss`` and ``{stage}_mae/mse/r2``; every training epoch also
    the learned ``weight`` and ``bias`` and, when the data know the true line, their absolute errors.

    ``in_features``, ``standardize`` and ``feature_names`` come from the data (the CLI links them); the names (None
    for the synthetic data) let a served model take rows keyed by feature name. With ``standardize`` the model sees
    features scaled by the training split's mean and std, which are buffers of this module: they travel in every
    checkpoint, so prediction applies the same transform to new rows.

    Args:
        variant: ``linear`` (one ``nn.Linear`` layer) or ``manual`` (the tutorial's two ``nn.Parameter``)
        lr: the SGD learning rate (the tutorial uses 0.01 for linear, 0.005 for manual)
        in_features: the number of input features; set from the data's num_features, never directly
        standardize: scale each feature by the training split's mean and std (kept in the checkpoint); set from the
            data's standardize, never directly
        feature_names: the features' names when the data name them (a CSV file's columns, for serving rows keyed by
            name); set from the data, never directly
    """

    feature_mean: Tensor  # buffers, registered with standardize only
    feature_std: Tensor

    def __init__(
        self,
        variant: Variant = "linear",
        lr: float = 0.01,
        in_features: int = 1,
        standardize: bool = False,
        feature_names: list[str] | None = None,
    ) -> None:
        super().__init__()
        require(variant in VARIANTS, f"model.variant must be one of {sorted(VARIANTS)}, got {variant!r}")
        require(
            isinstance(lr, (int, float)) and 0 < lr <= torch.finfo(torch.float32).max,  # NaN fails both comparisons
            f"model.lr must be a positive finite number (at most 3.4e38, the float32 limit), got {lr!r}; the tutorial "
            f"uses 0.005 (manual) and 0.01 (linear)",
        )
        require(
            isinstance(in_features, int) and in_features >= 1,
            f"model.in_features must be a positive integer, got {in_features!r}",
        )
        require(
            feature_names is None
            or (len(feature_names) == in_features and all(isinstance(n, str) for n in feature_names)),
            f"model.feature_names must be null or {in_features} column names (one per feature), got {feature_names!r}",
        )
        self.save_hyperparameters()
        self.standardize = standardize
        if standardize:
            self.register_buffer("feature_mean", torch.zeros(in_features))
            self.register_buffer("feature_std", torch.ones(in_features))
        self.model = build_model(variant, in_features)
        self.train_metrics = RegressionMetrics(prefix="train_")
        self.val_metrics = RegressionMetrics(prefix="val_")
        self.test_metrics = RegressionMetrics(prefix="test_")
        self._truth: Tensor | None = None  # true (weight..., bias), cached at fit start
        self._validated_at_step = -1
        self._self_logged: set[str] = set()  # the losses that go through self.log (see on_fit_start)
        self._checkpoint_lr: float | None = None  # the lr of the checkpoint a fit resumes from

    @classmethod
    def load_from_checkpoint(
        cls,
        checkpoint_path: str | Path | IO[bytes],
        map_location: Any = None,
        hparams_file: str | Path | None = None,
        strict: bool | None = None,
        weights_only: bool | None = None,
        **kwargs: Any,
    ) -> LinearRegressionTask:
        """Lightning's ``load_from_checkpoint``, after lit-linreg's checks of the file, and always weights-only.

        A missing, damaged, foreign or untrusted checkpoint file is a one-line :class:`UserError`, raised before
        anything from the file is used; ``weights_only=False`` is refused.
        """
        require(
            weights_only is not False,
            "weights_only=False is refused: lit-linreg loads checkpoints with weights_only=True only, so that a "
            "checkpoint cannot run code",
        )
        if isinstance(checkpoint_path, (str, os.PathLike)):
            load_checkpoint_file(checkpoint_path)
        return super().load_from_checkpoint(checkpoint_path, map_location, hparams_file, strict, True, **kwargs)

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        """Adds lit-linreg's entry: the checkpoint format, and the data class a checkpoint alone can rebuild."""
        datamodule = attached_datamodule(self.trainer)
        data_class = None if datamodule is None else type(datamodule)
        checkpoint[FORMAT_KEY] = {
            "format": FORMAT,
            "data_class": None if data_class is None else f"{data_class.__module__}.{data_class.__qualname__}",
        }

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        """Weights of another variant or feature count are a one-line :class:`UserError`, not a state-dict dump."""
        expected = {name: tuple(t.shape) for name, t in self.state_dict().items()}
        found = {name: tuple(t.shape) for name, t in checkpoint["state_dict"].items()}
        require(
            found == expected,
            f"the checkpoint's weights {found} do not fit this model (variant={self.hparams['variant']!r}, "
            f"in_features={self.hparams['in_features']}, weights {expected}); load it with its own model settings",
        )
        self._checkpoint_lr = checkpoint.get("hyper_parameters", {}).get("lr")

    def on_train_start(self) -> None:
        # Resuming restores the optimizer, learning rate included: an lr given for the resumed run must still win.
        lr = self.hparams["lr"]
        if self._checkpoint_lr not in (None, lr):
            for optimizer in self.trainer.optimizers:  # the one SGD of configure_optimizers
                for group in optimizer.param_groups:
                    group["lr"] = lr
            rank_zero_info(f"model.lr={lr} replaces the checkpoint's lr={self._checkpoint_lr}")

    def forward(self, x: Tensor) -> Tensor:
        if self.standardize:
            x = (x - self.feature_mean) / self.feature_std
        return self.model(x)

    def on_fit_start(self) -> None:
        trainer = self.trainer
        callbacks = trainer.callbacks  # type: ignore[attr-defined]  # set by Lightning's callback connector
        monitored: set[str | None] = {
            cb.monitor for cb in callbacks if isinstance(cb, (ModelCheckpoint, EarlyStopping))
        }
        monitored |= {config.monitor for config in trainer.lr_scheduler_configs}
        shown = {"train_loss", "val_loss"} if trainer.progress_bar_callback is not None else set()
        self._self_logged = {key for key in ("train_loss", "val_loss") if key in monitored or key in shown}
        truth = self.true_parameters()
        self._truth = None if truth is None else torch.cat(truth).to(self.device, torch.float32)
        if self.standardize:
            datamodule = attached_datamodule(self.trainer)
            stats = None if datamodule is None else datamodule.feature_stats()
            if stats is None:
                raise UserError("model.standardize needs a datamodule with feature_stats() (the CSV data)")
            self.feature_mean.copy_(stats[0])
            self.feature_std.copy_(stats[1])

    def coefficients(self) -> tuple[Tensor, Tensor]:
        """The learned (weight, bias) in the units of the raw features, whatever the model sees inside."""
        weight, bias = self.model.coefficients()
        if self.standardize:
            weight = weight / self.feature_std
            bias = bias - (weight * self.feature_mean).sum()
        return weight, bias

    def _common_step(self, batch: tuple[Tensor, Tensor], stage: str) -> Tensor:
        x, y = batch
        preds = self(x)
        loss = F.l1_loss(preds, y)
        self.stage_metrics(stage).update(preds.detach(), y)
        return loss

    def training_step(self, batch: tuple[Tensor, Tensor], batch_idx: int) -> Tensor:
        return self._common_step(batch, "train")

    def validation_step(self, batch: tuple[Tensor, Tensor], batch_idx: int) -> None:
        self._common_step(batch, "val")

    def test_step(self, batch: tuple[Tensor, Tensor], batch_idx: int) -> None:
        self._common_step(batch, "test")

    def predict_step(self, batch: tuple[Tensor, ...], batch_idx: int) -> Tensor:
        return self(batch[0])

    # Epoch-level reporting. A stage's metrics restart at its epoch start, so they are complete from its last batch
    # on, whichever hook reads them (lit-linreg's callbacks read them here, through epoch_metrics). ``self.log`` costs
    # about 0.3-1 ms per key and epoch in Lightning 2.6 (benchmarks/overheads.py), more than this task's whole step,
    # so a fit sends through it only what Lightning itself reads: a loss that a ModelCheckpoint, EarlyStopping or
    # lr-scheduler monitors, and the losses a progress bar shows. The loggers get everything in one ``log_metrics``
    # call per epoch.
    def stage_metrics(self, stage: str) -> RegressionMetrics:
        """The torchmetrics metric (MAE, MSE, R²) of ``stage``: train, val or test."""
        metrics = {"train": self.train_metrics, "val": self.val_metrics, "test": self.test_metrics}
        require(stage in metrics, f"stage must be train, val or test, got {stage!r}")
        return metrics[stage]

    def epoch_metrics(self, stage: str) -> dict[str, Tensor]:
        """The current epoch's ``{stage}_loss`` (the L1 loss over all its rows) and ``{stage}_mae/_mse/_r2``.

        Complete once the stage's last batch has run (e.g. in any ``on_train_epoch_end``, ``on_validation_end``);
        empty while the stage has seen no batch this epoch (an epoch resumed at its end). Computed once per epoch
        (torchmetrics caches it), which under DDP is a collective: call it on every rank.
        """
        metrics = self.stage_metrics(stage)
        if not metrics.update_called or (stage == "val" and self._validation_stale()):
            return {}
        computed = metrics.compute()
        return {f"{stage}_loss": computed[f"{stage}_mae"], **computed}

    def _validation_stale(self) -> bool:
        """In a fit, whether this training epoch has run no validation (yet): the val metrics are an older epoch's."""
        trainer = self._attached_trainer()
        return (
            trainer is not None
            and trainer.state.fn == TrainerFn.FITTING
            and not (trainer.sanity_checking or self._validated_at_step == trainer.global_step)
        )

    def _attached_trainer(self) -> L.Trainer | None:
        try:
            return self.trainer
        except RuntimeError:  # not attached: a task used on its own
            return None

    def on_train_epoch_start(self) -> None:
        self.train_metrics.reset()

    def on_validation_epoch_start(self) -> None:
        self.val_metrics.reset()
        trainer = self._attached_trainer()
        if trainer is not None and trainer.state.fn == TrainerFn.FITTING and not trainer.sanity_checking:
            self._validated_at_step = trainer.global_step  # this training epoch's validation

    def on_test_epoch_start(self) -> None:
        self.test_metrics.reset()

    def on_validation_epoch_end(self) -> None:
        if self.trainer.sanity_checking:
            return
        if self.trainer.state.fn == TrainerFn.FITTING:
            values = self.epoch_metrics("val")
            if values and "val_loss" in self._self_logged:
                self.log("val_loss", values["val_loss"], prog_bar=True, sync_dist=True)
            return
        values = self.epoch_metrics("val")
        if values:  # validate: one epoch, so Lightning's own logging (and its results table) costs nothing here
            self.log_dict(values, sync_dist=True)

    def on_test_epoch_end(self) -> None:
        self.log_dict(self.epoch_metrics("test"), sync_dist=True)

    def on_train_epoch_end(self) -> None:
        train = self.epoch_metrics("train")
        if not train:
            return
        if "train_loss" in self._self_logged:
            self.log("train_loss", train["train_loss"], prog_bar=True, sync_dist=True)
        if not self.loggers:
            return
        values = {**train, **self.epoch_metrics("val"), **self.parameter_summary()}
        for key in self._self_logged:
            values.pop(key, None)  # Lightning sends those to the loggers itself
        numbers = dict(zip(values, torch.stack([v.float() for v in values.values()]).tolist()))
        for logger in self.loggers:
            logger.log_metrics({**numbers, "epoch": self.current_epoch}, step=self.global_step)

    def parameter_summary(self) -> dict[str, Tensor]:
        """The learned ``weight`` (``weight_i`` per feature) and ``bias``; when the truth is known, also the true
        values (``weight_true``, ``weight_i_true``, ``bias_true``: constant series to plot beside the learned ones)
        and the largest absolute errors (``weight_abs_error``, ``bias_abs_error``)."""
        weight, bias = self.coefficients()
        parameters = torch.cat([weight, bias])
        names = [*(["weight"] if len(weight) == 1 else [f"weight_{i}" for i in range(len(weight))]), "bias"]
        summary = dict(zip(names, parameters.unbind()))
        if self._truth is not None:
            summary.update(zip([f"{name}_true" for name in names], self._truth.unbind()))
            errors = (parameters - self._truth).abs()
            summary["weight_abs_error"], summary["bias_abs_error"] = errors[:-1].max(), errors[-1]
        return summary

    def true_parameters(self) -> tuple[Tensor, Tensor] | None:
        """The attached datamodule's true (weight, bias), if it has them."""
        datamodule = attached_datamodule(self.trainer)
        return None if datamodule is None else datamodule.true_parameters()

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.SGD(self.parameters(), lr=self.hparams["lr"])


def as_task(module: L.LightningModule) -> LinearRegressionTask:
    """``module`` as the task that lit-linreg's callbacks read; a clear error for any other LightningModule."""
    if not isinstance(module, LinearRegressionTask):
        raise TypeError(f"lit-linreg's callbacks need a LinearRegressionTask, got {type(module).__name__}")
    return module


def num_features_of(data: RegressionDataModule) -> int:
    return data.num_features


def standardize_of(data: RegressionDataModule) -> bool:
    return data.standardize


def feature_names_of(data: RegressionDataModule) -> list[str] | None:
    """The data's feature names when they are its own (a CSV file's columns); None for the synthetic data."""
    names = data.feature_names
    return None if names == default_feature_names(data.num_features) else list(names)


# Task hyperparameters that the data decide: the CLI links them at instantiation, so they are never set directly.
LINKED_FROM_DATA = {"in_features": num_features_of, "standardize": standardize_of, "feature_names": feature_names_of}

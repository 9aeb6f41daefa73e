"""Task: one LightningModule that trains either plain model variant with L1 loss and SGD.

Run: lit-linreg fit --config configs/base.yaml
"""

from __future__ import annotations

import os
from typing import IO, Any

import lightning as L
import torch
import torch.nn.functional as F
from lightning.pytorch.trainer.states import TrainerFn
from lightning.pytorch.utilities import rank_zero_info
from torch import Tensor

from lit_linreg.checkpoint_io import load_checkpoint_file
from lit_linreg.errors import require
from lit_linreg.metrics import RegressionMetrics
from lit_linreg.models import VARIANTS, Variant, build_model


class LinearRegressionTask(L.LightningModule):
    """L1 loss + SGD around the ``manual`` (two ``nn.Parameter``) or ``linear`` (``nn.Linear``) model.

    Hyperparameters are primitives, so ``LinearRegressionTask.load_from_checkpoint(path)`` rebuilds the right variant
    anywhere. Per stage and epoch it reports ``{stage}_loss`` and ``{stage}_mae/mse/r2``; every training epoch also
    the learned ``weight`` and ``bias`` and, when the data know the true line, their absolute errors.

    ``in_features``, ``standardize`` and ``feature_names`` come from the data (the CLI links them); the names (None
    for the synthetic data) let a served model take rows keyed by feature name. With ``standardize`` the model sees
    features scaled by the training split's mean and std, which are buffers of this module: they travel in every
    checkpoint, so prediction applies the same transform to new rows.
    """

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
        self.train_metrics = RegressionMetrics()
        self.val_metrics = RegressionMetrics()
        self.test_metrics = RegressionMetrics()
        self._truth: Tensor | None = None  # true (weight..., bias), cached at fit start
        self._unlogged: dict[str, Tensor] = {}
        self._checkpoint_lr: float | None = None  # the lr of the checkpoint a fit resumes from

    @classmethod
    def load_from_checkpoint(
        cls,
        checkpoint_path: str | os.PathLike | IO[bytes],
        map_location: Any = None,
        hparams_file: str | os.PathLike | None = None,
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

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        """Weights of another variant or feature count are a one-line :class:`UserError`, not a state-dict dump."""
        expected = {name: tuple(t.shape) for name, t in self.state_dict().items()}
        found = {name: tuple(t.shape) for name, t in checkpoint["state_dict"].items()}
        require(
            found == expected,
            f"the checkpoint's weights {found} do not fit this model (variant={self.hparams.variant!r}, "
            f"in_features={self.hparams.in_features}, weights {expected}); load it with its own model settings",
        )
        self._checkpoint_lr = checkpoint.get("hyper_parameters", {}).get("lr")

    def on_train_start(self) -> None:
        # Resuming restores the optimizer, learning rate included: an lr given for the resumed run must still win.
        if self._checkpoint_lr not in (None, self.hparams.lr):
            for group in self.optimizers().optimizer.param_groups:
                group["lr"] = self.hparams.lr
            rank_zero_info(f"model.lr={self.hparams.lr} replaces the checkpoint's lr={self._checkpoint_lr}")

    def forward(self, x: Tensor) -> Tensor:
        if self.standardize:
            x = (x - self.feature_mean) / self.feature_std
        return self.model(x)

    def on_fit_start(self) -> None:
        truth = self.true_parameters()
        self._truth = None if truth is None else torch.cat(truth).to(self.device, torch.float32)
        if self.standardize:
            stats = getattr(self.trainer.datamodule, "feature_stats", lambda: None)()
            require(stats is not None, "model.standardize needs a datamodule with feature_stats() (the CSV data)")
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
        getattr(self, f"{stage}_metrics").update(preds.detach(), y)
        return loss

    def training_step(self, batch: tuple[Tensor, Tensor], batch_idx: int) -> Tensor:
        return self._common_step(batch, "train")

    def validation_step(self, batch: tuple[Tensor, Tensor], batch_idx: int) -> None:
        self._common_step(batch, "val")

    def test_step(self, batch: tuple[Tensor, Tensor], batch_idx: int) -> None:
        self._common_step(batch, "test")

    def predict_step(self, batch: tuple[Tensor, ...], batch_idx: int) -> Tensor:
        return self(batch[0])

    # Epoch-level reporting. ``{stage}_loss`` is the epoch's L1 loss over all its rows (= ``{stage}_mae``).
    def on_train_batch_end(self, outputs: Tensor, batch: tuple[Tensor, Tensor], batch_idx: int) -> None:
        if batch_idx + 1 == self.trainer.num_training_batches:  # before validation, so callbacks see both
            self._report("train", self.parameter_summary())

    def on_validation_epoch_end(self) -> None:
        self._report("val")

    def on_test_epoch_end(self) -> None:
        self._report("test")

    def _report(self, stage: str, extra: dict[str, Tensor] | None = None) -> None:
        metrics = getattr(self, f"{stage}_metrics")
        computed = metrics.compute()
        metrics.reset()
        if self.trainer.sanity_checking:
            return
        values = {f"{stage}_loss": computed["mae"], **{f"{stage}_{k}": v for k, v in computed.items()}, **(extra or {})}
        if self.trainer.state.fn == TrainerFn.FITTING:
            self._publish(values)
        else:  # validate/test: one epoch, so Lightning's own logging (and its results table) costs nothing here
            self.log_dict(values, sync_dist=True)

    def _publish(self, values: dict[str, Tensor]) -> None:
        """Hand epoch values to callbacks now, and to the loggers once per epoch (in ``on_train_epoch_end``).

        ``self.log`` costs about 1 ms per key per epoch with Lightning 2.6 on a 2-core CPU (its result collection
        re-walks each key's state on every call and reduces it again at epoch end): for the tutorial's 500 epochs of
        40 rows, a dozen keys would cost four times the training itself. These values are already reduced over the
        epoch (and across processes) by torchmetrics, so they go straight to ``trainer.callback_metrics`` (what
        ModelCheckpoint, EarlyStopping and the table read), the progress bar and the loggers.
        """
        self.trainer.callback_metrics.update(values)
        self.trainer.progress_bar_metrics.update({k: v for k, v in values.items() if k.endswith("_loss")})
        self._unlogged.update(values)

    def on_train_epoch_end(self) -> None:
        if self._unlogged and self.loggers:
            numbers = dict(zip(self._unlogged, torch.stack(list(self._unlogged.values())).tolist()))
            for logger in self.loggers:
                logger.log_metrics({**numbers, "epoch": self.current_epoch}, step=self.global_step)
        self._unlogged = {}

    def parameter_summary(self) -> dict[str, Tensor]:
        """The learned ``weight`` (``weight_i`` per feature) and ``bias``, and their errors when the truth is known."""
        weight, bias = self.coefficients()
        parameters = torch.cat([weight, bias])
        names = ["weight"] if len(weight) == 1 else [f"weight_{i}" for i in range(len(weight))]
        summary = dict(zip([*names, "bias"], parameters.unbind()))
        if self._truth is not None:
            errors = (parameters - self._truth).abs()
            summary["weight_abs_error"], summary["bias_abs_error"] = errors[:-1].max(), errors[-1]
        return summary

    def true_parameters(self) -> tuple[Tensor, Tensor] | None:
        """The attached datamodule's true (weight, bias), if it has them."""
        datamodule = self.trainer.datamodule if self._trainer is not None else None
        true_parameters = getattr(datamodule, "true_parameters", None)
        return true_parameters() if callable(true_parameters) else None

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.SGD(self.parameters(), lr=self.hparams.lr)

"""Task: one LightningModule that trains either plain model variant with L1 loss and SGD.

Run: lit-linreg fit --config configs/base.yaml
"""

from __future__ import annotations

import math

import lightning as L
import torch
import torch.nn.functional as F
from lightning.pytorch.trainer.states import TrainerFn
from torch import Tensor

from lit_linreg.errors import require
from lit_linreg.metrics import RegressionMetrics
from lit_linreg.models import VARIANTS, Variant, build_model


class LinearRegressionTask(L.LightningModule):
    """L1 loss + SGD around the ``manual`` (two ``nn.Parameter``) or ``linear`` (``nn.Linear``) model.

    Hyperparameters are primitives, so ``LinearRegressionTask.load_from_checkpoint(path)`` rebuilds the right variant
    anywhere. Per stage and epoch it reports ``{stage}_loss`` and ``{stage}_mae/mse/r2``; every training epoch also
    the learned ``weight`` and ``bias`` and, when the data know the true line, their absolute errors.

    ``in_features`` and ``standardize`` come from the data (the CLI links them). With ``standardize`` the model sees
    features scaled by the training split's mean and std, which are buffers of this module: they travel in every
    checkpoint, so prediction applies the same transform to new rows.
    """

    def __init__(
        self, variant: Variant = "linear", lr: float = 0.01, in_features: int = 1, standardize: bool = False
    ) -> None:
        super().__init__()
        require(variant in VARIANTS, f"model.variant must be one of {sorted(VARIANTS)}, got {variant!r}")
        require(
            isinstance(lr, (int, float)) and math.isfinite(lr) and lr > 0,
            f"model.lr must be a positive finite number, got {lr!r}; the tutorial uses 0.005 (manual) and 0.01 (linear)",
        )
        require(
            isinstance(in_features, int) and in_features >= 1,
            f"model.in_features must be a positive integer, got {in_features!r}",
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

    def forward(self, x: Tensor) -> Tensor:
        if self.standardize:
            x = (x - self.feature_mean) / self.feature_std
        return self.model(x)

    def on_fit_start(self) -> None:
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
        if batch_idx + 1 == self.trainer.num_training_batches:  # report before validation, so callbacks see both
            self._report("train", self.parameter_summary())

    def on_validation_epoch_end(self) -> None:
        self._report("val")

    def on_test_epoch_end(self) -> None:
        self._report("test")

    def _report(self, stage: str, extra: dict[str, Tensor] | None = None) -> None:
        metrics = getattr(self, f"{stage}_metrics")
        values = {f"{stage}_{name}": value for name, value in metrics.compute().items()}
        metrics.reset()
        values = {f"{stage}_loss": values[f"{stage}_mae"], **values, **(extra or {})}
        if self.trainer.sanity_checking:
            return
        if self.trainer.state.fn == TrainerFn.FITTING:
            self._publish(values)
        else:  # validate/test: one epoch, so Lightning's own logging (and its results table) costs nothing here
            self.log_dict(values, sync_dist=True)

    def _publish(self, values: dict[str, Tensor]) -> None:
        """Hand one epoch's values to callbacks and to every logger in a single call.

        ``self.log`` costs about 1 ms per key per epoch with Lightning 2.6 on a 2-core CPU (its result collection
        re-walks each key's state on every call and reduces it again at epoch end): for the tutorial's 500 epochs of
        40 rows, a dozen keys would cost four times the training itself. These values are already reduced over the
        epoch (and across processes) by torchmetrics, so they go straight to ``trainer.callback_metrics`` (what
        ModelCheckpoint, EarlyStopping and the table read), the progress bar and the loggers.
        """
        trainer = self.trainer
        trainer.callback_metrics.update(values)
        trainer.progress_bar_metrics.update({k: v for k, v in values.items() if k.endswith("_loss")})
        if self.loggers:
            numbers = dict(zip(values, torch.stack([v.float() for v in values.values()]).tolist()))
            for logger in self.loggers:
                logger.log_metrics({**numbers, "epoch": self.current_epoch}, step=self.global_step)

    def parameter_summary(self) -> dict[str, Tensor]:
        """The learned ``weight`` (``weight_i`` per feature) and ``bias``, and their errors when the truth is known."""
        weight, bias = self.coefficients()
        summary = {"weight": weight[0]} if weight.numel() == 1 else {f"weight_{i}": w for i, w in enumerate(weight)}
        summary["bias"] = bias[0]
        truth = self.true_parameters()
        if truth is not None:
            true_weight, true_bias = (t.to(weight) for t in truth)
            summary["weight_abs_error"] = (weight - true_weight).abs().max()
            summary["bias_abs_error"] = (bias - true_bias).abs().max()
        return summary

    def true_parameters(self) -> tuple[Tensor, Tensor] | None:
        """The attached datamodule's true (weight, bias), if it has them."""
        datamodule = self.trainer.datamodule if self._trainer is not None else None
        true_parameters = getattr(datamodule, "true_parameters", None)
        return true_parameters() if callable(true_parameters) else None

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.SGD(self.parameters(), lr=self.hparams.lr)

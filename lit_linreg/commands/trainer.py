"""The Trainer that LightningCLI builds: Lightning's own, with lit-linreg's help for fit, validate, test and predict.

LightningCLI makes each subcommand's options and its line in ``lit-linreg --help`` from these methods' signatures and
docstrings, so each carries its own (they differ in what ``ckpt_path`` means and what the command does); every method
only calls Lightning's, with checkpoints always loaded weights-only.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import lightning as L
from lightning.pytorch.loggers import Logger
from lightning.pytorch.utilities.types import EVAL_DATALOADERS, TRAIN_DATALOADERS


class LitLinregTrainer(L.Trainer):
    """Lightning's Trainer: the hardware, the length of training and Lightning's own features.

    A ``lightning.Trainer`` whose methods only call Lightning's: LightningCLI builds the options and the one-line
    description of ``lit-linreg fit|validate|test|predict`` from their signatures and docstrings, which say what
    ``--ckpt_path`` means here. ``weights_only`` defaults to True: lit-linreg loads every checkpoint weights-only and
    refuses False.
    """

    def __init__(
        self,
        *,
        logger: Logger | Iterable[Logger] | bool | None = None,
        enable_checkpointing: bool | None = None,
        default_root_dir: str | Path | None = None,
        **kwargs: Any,
    ) -> None:
        """
        Args:
            logger: null or true: lit-linreg's TensorBoard logger, writing to lightning_logs/<run>/version_N/ (with
                the figures and predictions.csv); false: none (those files go to default_root_dir); or a Logger
            enable_checkpointing: leave it null or true: lit-linreg always adds its --checkpoint callback (to save
                nothing, set --checkpoint.save_last and --checkpoint.save_best false)
            default_root_dir: the folder that holds checkpoints/ and lightning_logs/ (default: the current directory)
            kwargs: every other argument of ``lightning.Trainer``
        """
        super().__init__(
            logger=logger, enable_checkpointing=enable_checkpointing, default_root_dir=default_root_dir, **kwargs
        )

    def fit(
        self,
        model: L.LightningModule,
        train_dataloaders: TRAIN_DATALOADERS | L.LightningDataModule | None = None,
        val_dataloaders: EVAL_DATALOADERS | None = None,
        datamodule: L.LightningDataModule | None = None,
        ckpt_path: str | Path | None = None,
        weights_only: bool | None = True,
    ) -> None:
        """Train the model on the data, validating after every epoch.

        Args:
            model: the task to train
            train_dataloaders: the training batches, or a datamodule
            val_dataloaders: the validation batches
            datamodule: the data (instead of the loaders)
            ckpt_path: last|best|<file.ckpt>: resume training from the run's newest last.ckpt
                (checkpoints/<run>/version_N/; a fresh start while the run has none), from the best checkpoint it
                records, or from that file; null (default): train from scratch in a new version_N
            weights_only: load checkpoints restricted to tensors and primitive types (a checkpoint cannot run code);
                must stay true: lit-linreg refuses false
        """
        super().fit(model, train_dataloaders, val_dataloaders, datamodule, ckpt_path, weights_only)

    def validate(
        self,
        model: L.LightningModule | None = None,
        dataloaders: EVAL_DATALOADERS | L.LightningDataModule | None = None,
        ckpt_path: str | Path | None = None,
        verbose: bool = True,
        datamodule: L.LightningDataModule | None = None,
        weights_only: bool | None = True,
    ) -> list[Mapping[str, float]]:
        """Evaluate a trained checkpoint on the validation split (the test split when data.val_split is 0).

        Args:
            model: the task to evaluate
            dataloaders: the validation batches, or a datamodule
            ckpt_path: last|best|<file.ckpt> (required): the run's newest last.ckpt (checkpoints/<run>/version_N/),
                the best checkpoint it records, or that file
            verbose: print the results
            datamodule: the data (instead of the loaders)
            weights_only: load checkpoints restricted to tensors and primitive types (a checkpoint cannot run code);
                must stay true: lit-linreg refuses false
        """
        return super().validate(model, dataloaders, ckpt_path, verbose, datamodule, weights_only)

    def test(
        self,
        model: L.LightningModule | None = None,
        dataloaders: EVAL_DATALOADERS | L.LightningDataModule | None = None,
        ckpt_path: str | Path | None = None,
        verbose: bool = True,
        datamodule: L.LightningDataModule | None = None,
        weights_only: bool | None = True,
    ) -> list[Mapping[str, float]]:
        """Evaluate a trained checkpoint on the test split and compare it with the exact OLS and LAD fits.

        Args:
            model: the task to evaluate
            dataloaders: the test batches, or a datamodule
            ckpt_path: last|best|<file.ckpt> (required): the run's newest last.ckpt (checkpoints/<run>/version_N/),
                the best checkpoint it records, or that file
            verbose: print the results
            datamodule: the data (instead of the loaders)
            weights_only: load checkpoints restricted to tensors and primitive types (a checkpoint cannot run code);
                must stay true: lit-linreg refuses false
        """
        return super().test(model, dataloaders, ckpt_path, verbose, datamodule, weights_only)

    def predict(
        self,
        model: L.LightningModule | None = None,
        dataloaders: EVAL_DATALOADERS | L.LightningDataModule | None = None,
        datamodule: L.LightningDataModule | None = None,
        return_predictions: bool | None = None,
        ckpt_path: str | Path | None = None,
        weights_only: bool | None = True,
    ) -> list[Any] | list[list[Any]] | None:
        """Predict with a trained checkpoint and write the predictions to predictions.csv.

        Args:
            model: the task to predict with
            dataloaders: the rows to predict, or a datamodule
            datamodule: the data (instead of the loaders)
            return_predictions: return the predictions (default: unless the strategy spawns processes)
            ckpt_path: last|best|<file.ckpt> (required): the run's newest last.ckpt (checkpoints/<run>/version_N/),
                the best checkpoint it records, or that file
            weights_only: load checkpoints restricted to tensors and primitive types (a checkpoint cannot run code);
                must stay true: lit-linreg refuses false
        """
        return super().predict(model, dataloaders, datamodule, return_predictions, ckpt_path, weights_only)

"""TensorBoard's HPARAMS for every run (fit, validate, test, predict): its settings under their plain names."""

from __future__ import annotations

import inspect
from pathlib import Path
from typing import Any

import lightning as L
from jsonargparse import Namespace
from lightning.pytorch.cli import SaveConfigCallback

from lit_linreg.console import shown_path
from lit_linreg.data import SyntheticRegressionData, attached_datamodule
from lit_linreg.datasets.csv import CSVRegressionData
from lit_linreg.loggers.tensorboard import TensorBoardLogger
from lit_linreg.task import LINKED_FROM_DATA

# What TensorBoard's HPARAMS tab ticks for every run: the settings a user compares.
HEADLINE_HPARAMS = ("variant", "lr", "batch_size", "max_epochs", "seed_everything")


class SaveConfig(SaveConfigCallback):
    """LightningCLI's ``config.yaml`` writer, which also gives lit-linreg's TensorBoard logger the run's settings.

    HPARAMS then shows each run (fit, validate, test, predict) by plain names: the command, ``variant``, ``lr``,
    ``batch_size``, ``max_epochs`` (fit), ``seed_everything``, the data class and every data setting by its own name,
    the model's ``in_features`` and ``standardize`` and the ``ckpt_path`` it started from; no class paths.
    """

    def save_config(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        loggers = [logger for logger in trainer.loggers if isinstance(logger, TensorBoardLogger)]
        if loggers:
            settings = run_settings(self.config, trainer, pl_module, stage)
            for logger in loggers:
                logger.log_session_hparams(settings, HEADLINE_HPARAMS, KNOWN_SETTINGS)


def run_settings(config: Namespace, trainer: L.Trainer, model: L.LightningModule, stage: str) -> dict[str, Any]:
    """A run's settings under their plain names, as HPARAMS shows them (see :class:`SaveConfig`)."""
    datamodule = attached_datamodule(trainer)
    data = dict(datamodule.hparams) if datamodule is not None else {}
    settings = {
        "command": stage,
        "variant": model.hparams.get("variant"),
        "lr": model.hparams.get("lr"),
        "batch_size": data.pop("batch_size", None),
    }
    if stage == "fit":
        settings["max_epochs"] = trainer.max_epochs
    settings["seed_everything"] = config.get("seed_everything")
    if datamodule is not None:
        settings["data"] = type(datamodule).__name__
    settings.update(data)
    settings.update({k: model.hparams[k] for k in LINKED_FROM_DATA if k in model.hparams})
    if config.get("ckpt_path"):
        settings["ckpt_path"] = shown_path(Path(config.ckpt_path).resolve())  # absolute when outside the cwd
    return settings


# Every setting a run of lit-linreg's own data classes can have: HPARAMS columns whichever run TensorBoard reads first.
KNOWN_SETTINGS = tuple(
    dict.fromkeys(
        [
            *HEADLINE_HPARAMS,
            "command",
            "data",
            *(
                name
                for data_class in (SyntheticRegressionData, CSVRegressionData)
                for name in inspect.signature(data_class).parameters
            ),
            *LINKED_FROM_DATA,
            "ckpt_path",
        ]
    )
)

"""CLI: ``lit-linreg fit|validate|test|predict`` through LightningCLI.

Run: lit-linreg fit --config configs/base.yaml
"""

from __future__ import annotations

import importlib
import json
import logging
import sys
from pathlib import Path
from typing import Any

from jsonargparse import Namespace
from lightning.pytorch.cli import ArgsType, LightningArgumentParser, LightningCLI
from lightning.pytorch.utilities import rank_zero_only

from lit_linreg.callbacks import DivergenceGuard, EpochTable, GracefulInterrupt, PredictionWriter
from lit_linreg.checkpointing import (
    AtomicCheckpointIO,
    RunCheckpoint,
    data_config,
    load_checkpoint_file,
    task_hyperparameters,
)
from lit_linreg.data import RegressionDataModule, SyntheticRegressionData
from lit_linreg.errors import UserError, require
from lit_linreg.loggers import TensorBoardLogger
from lit_linreg.task import LinearRegressionTask

CHECKPOINT_ALIASES = ("last", "best")


class _DropLightningTip(logging.Filter):
    """Lightning 2.6 advertises a cloud logger on every run; keep the console for the run itself."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.msg).startswith("💡 Tip")


logging.getLogger("lightning.pytorch.utilities.rank_zero").addFilter(_DropLightningTip())


class LitLinregCLI(LightningCLI):
    """LightningCLI with the project's run layout: ``checkpoints/<run>/`` and ``lightning_logs/<run>/version_N/``.

    ``<run>`` is ``--run_name``, else the last ``--config`` file's stem, else the checkpoint's folder, else
    ``default``; both folders sit under ``--trainer.default_root_dir`` (the current directory by default).
    """

    def __init__(self, args: ArgsType = None, **kwargs: Any) -> None:
        self.interrupt = GracefulInterrupt()
        super().__init__(
            LinearRegressionTask,
            RegressionDataModule,
            subclass_mode_data=True,
            args=args,
            save_config_kwargs={"overwrite": True},
            **kwargs,
        )

    def add_arguments_to_parser(self, parser: LightningArgumentParser) -> None:
        parser.add_argument(
            "--run_name",
            type=str | None,
            default=None,
            help="Names checkpoints/<run_name>/ and lightning_logs/<run_name>/ (default: the config file's name).",
        )
        parser.add_lightning_class_args(RunCheckpoint, "checkpoint")
        parser.add_lightning_class_args(EpochTable, "table")
        parser.set_defaults({"data": {"class_path": f"{SyntheticRegressionData.__module__}.SyntheticRegressionData"}})
        for target, compute in LINKED_FROM_DATA.items():
            parser.link_arguments("data", f"model.{target}", compute_fn=compute, apply_on="instantiate")

    # Run layout.
    def _subcommand_config(self):
        subcommand = self.config.get("subcommand")
        return self.config[subcommand] if subcommand else self.config

    @property
    def root_dir(self) -> Path:
        return Path(self._subcommand_config().trainer.default_root_dir or ".")

    @property
    def run_name(self) -> str:
        cfg = self._subcommand_config()
        if cfg.get("run_name"):
            name = cfg.run_name
        elif cfg.get("config"):
            name = Path(str(cfg.config[-1])).stem
        elif cfg.get("ckpt_path") and cfg.ckpt_path not in CHECKPOINT_ALIASES:
            name = Path(cfg.ckpt_path).resolve().parent.name
        else:
            name = "default"
        require(
            name not in ("", ".", "..") and "/" not in name and "\\" not in name,
            f"run_name must be a plain folder name, got {name!r}",
        )
        return name

    @property
    def checkpoint_dir(self) -> Path:
        dirpath = self._subcommand_config().checkpoint.dirpath
        return Path(dirpath) if dirpath else self.root_dir / "checkpoints" / self.run_name

    def instantiate_trainer(self, **kwargs: Any):
        cfg = self._subcommand_config()
        checkpoint = self._get(self.config_init, "checkpoint")
        checkpoint.dirpath = str(self.checkpoint_dir.resolve())
        if cfg.trainer.logger in (None, True):
            kwargs["logger"] = TensorBoardLogger(save_dir=str(self.root_dir / "lightning_logs"), name=self.run_name)
        trainer_init = self._get(self.config_init, "trainer")
        kwargs["plugins"] = [*_as_list(trainer_init.get("plugins")), AtomicCheckpointIO()]
        # Every callback costs a dispatch on every hook of every epoch: add each only where it does something.
        stage_callbacks = {"fit": [DivergenceGuard(), self.interrupt], "predict": [PredictionWriter()]}
        kwargs["callbacks"] = [*_as_list(trainer_init.get("callbacks")), *stage_callbacks.get(self.subcommand, [])]
        return super().instantiate_trainer(**kwargs)

    def parse_arguments(self, parser: LightningArgumentParser, args: ArgsType) -> None:
        """Parse, and with ``--ckpt_path`` parse again with the checkpoint's model and data placed first.

        The checkpoint then acts like a config file given before everything else: without ``--config`` it rebuilds
        the model variant and the data it was trained on, while any explicit argument still wins. A conflicting
        explicit variant or feature count is an error (see ``after_instantiate_classes``).
        """
        super().parse_arguments(parser, args)
        self.checkpoint_hparams: dict[str, Any] | None = None
        subcommand = self.config.get("subcommand")
        path = self.config[subcommand].get("ckpt_path") if subcommand else None
        if not path or isinstance(args, (dict, Namespace)):
            return
        if path in CHECKPOINT_ALIASES:
            path = self._resolve_alias(path)
        if path is None:
            self.config[subcommand].ckpt_path = None
            return
        checkpoint = load_checkpoint_file(path)
        self.checkpoint_hparams = task_hyperparameters(checkpoint, path)
        model = {k: v for k, v in self.checkpoint_hparams.items() if k not in LINKED_FROM_DATA}
        injected = ["--model", json.dumps(model)]
        data = data_config(checkpoint, path)
        if data is not None:
            injected += ["--data", json.dumps(data)]
        argv = list(sys.argv[1:] if args is None else args)
        at = argv.index(subcommand) + 1
        self.config = parser.parse_args([*argv[:at], *injected, *argv[at:]])
        self.config[subcommand].ckpt_path = str(path)

    def _parse_ckpt_path(self) -> None:
        """Done in :meth:`parse_arguments`, with the checkpoint validated before anything in it is used."""

    def after_instantiate_classes(self) -> None:
        expected = self.checkpoint_hparams
        if expected is None:
            return
        path = self._subcommand_config().ckpt_path
        for key in ("variant", *LINKED_FROM_DATA):
            wanted = self.model.hparams[key]
            if key in expected and expected[key] != wanted:
                option = "model.variant" if key == "variant" else f"model.{key} (set by the data)"
                raise UserError(
                    f"checkpoint {path} holds a model with {key}={expected[key]!r}, but the config asks for "
                    f"{option}={wanted!r}; drop the conflicting --config/argument or use a matching checkpoint"
                )

    def _resolve_alias(self, alias: str) -> str | None:
        directory = self.checkpoint_dir
        last = directory / "last.ckpt"
        if alias == "last":
            if last.is_file():
                return str(last)
            require(self.config.subcommand == "fit", f"--ckpt_path last: there is no {last}; run fit first")
            _print(f"no {last} yet: starting from scratch")
            return None
        require(last.is_file(), f"--ckpt_path best: there is no {last} to read the best checkpoint from; run fit first")
        state = load_checkpoint_file(last).get("callbacks", {})
        best = next((s.get("best_model_path") for k, s in state.items() if k.startswith("RunCheckpoint")), None)
        require(bool(best) and Path(best).is_file(), f"--ckpt_path best: {last} names no existing best checkpoint")
        return best

    # Reporting.
    def _announce(self) -> None:
        trainer = self.trainer
        devices = getattr(trainer.strategy, "parallel_devices", None) or [trainer.strategy.root_device]
        logs = trainer.log_dir if trainer.logger is not None else "none"
        _print(
            f"lit-linreg {self.subcommand}: run '{self.run_name}' on {trainer.accelerator.__class__.__name__} "
            f"({', '.join(str(d) for d in devices)}; {trainer.strategy.__class__.__name__}) | "
            f"checkpoints: {self.checkpoint_dir} | logs: {logs}"
        )

    def before_fit(self) -> None:
        self._announce()

    def after_fit(self) -> None:
        checkpoint = self.trainer.checkpoint_callback
        if checkpoint is not None and checkpoint.last_model_path:
            _print(f"checkpoints: last {checkpoint.last_model_path} | best {checkpoint.best_model_path or '-'}")
        if self.interrupt.stopped_after_epoch is not None:
            raise Interrupted(
                f"interrupted: stopped after epoch {self.interrupt.stopped_after_epoch} and saved "
                f"{getattr(checkpoint, 'last_model_path', '')}; resume with the same command plus --ckpt_path last"
            )

    before_validate = before_test = before_predict = _announce


class Interrupted(UserError):
    """Training stopped early on Ctrl-C after saving ``last.ckpt``."""

    exit_code = 130


def _as_list(value: Any) -> list:
    return [] if value is None else list(value) if isinstance(value, (list, tuple)) else [value]


def _num_features(data: RegressionDataModule) -> int:
    return data.num_features


def _standardize(data: RegressionDataModule) -> bool:
    return data.standardize


# Model hyperparameters that the data decide (linked at instantiation, so never set directly).
LINKED_FROM_DATA = {"in_features": _num_features, "standardize": _standardize}


@rank_zero_only
def _print(message: str) -> None:
    print(message, flush=True)


# Commands beside LightningCLI's fit/validate/test/predict: name -> ("module:function", help). Each function takes
# the remaining argv and returns None; it raises UserError for problems the user can fix.
EXTRA_COMMANDS: dict[str, tuple[str, str]] = {}


def _description() -> str:
    extra = "".join(f"\n  lit-linreg {name:<10} {help}" for name, (_, help) in EXTRA_COMMANDS.items())
    return (
        "lit-linreg: the PyTorch linear-regression workflow as a Lightning project. "
        "Train with `lit-linreg fit --config configs/base.yaml`; `lit-linreg <subcommand> --help` lists every option."
        + (f"\nMore commands (each with --help):{extra}" if extra else "")
    )


def _run_extra_command(name: str, argv: list[str]) -> None:
    module_name, _, function_name = EXTRA_COMMANDS[name][0].partition(":")
    getattr(importlib.import_module(module_name), function_name)(argv)


def main(args: ArgsType = None) -> None:
    """Entry point of ``lit-linreg``: ``main(["fit", "--config", "configs/base.yaml"])`` runs in-process."""
    argv = sys.argv[1:] if args is None else args
    try:
        if isinstance(argv, list) and argv and argv[0] in EXTRA_COMMANDS:
            _run_extra_command(argv[0], [str(a) for a in argv[1:]])
        else:
            LitLinregCLI(args=args, parser_kwargs={"description": _description()})
    except UserError as err:
        print(f"lit-linreg: error: {err}", file=sys.stderr, flush=True)
        raise SystemExit(getattr(err, "exit_code", 2)) from None


if __name__ == "__main__":
    main()

"""CLI: ``lit-linreg fit|validate|test|predict`` through LightningCLI, and the other commands (one table).

Run: lit-linreg fit --config configs/base.yaml
"""

from __future__ import annotations

import json
import sys
from argparse import RawDescriptionHelpFormatter
from pathlib import Path
from typing import Any

from jsonargparse import DefaultHelpFormatter, Namespace
from lightning.fabric.utilities.exceptions import MisconfigurationException
from lightning.pytorch.callbacks import Callback, ModelCheckpoint
from lightning.pytorch.cli import ArgsType, LightningArgumentParser, LightningCLI

from lit_linreg.callbacks import (
    DivergenceGuard,
    EpochTable,
    FigureWriter,
    GracefulInterrupt,
    LastCheckpoint,
    last_checkpoint_callback,
)
from lit_linreg.checkpoints import (
    CHECKPOINT_ALIASES,
    AtomicCheckpointIO,
    RunFolders,
    checkpoint_dir,
    data_config,
    find_checkpoint,
    load_checkpoint_file,
    run_name,
    task_hyperparameters,
)
from lit_linreg.data import RegressionDataModule, Seed, SyntheticRegressionData
from lit_linreg.errors import UserError, one_line, require
from lit_linreg.files import check_config_files, shown_path
from lit_linreg.report import PredictionWriter, RunReport
from lit_linreg.task import LINKED_FROM_DATA, LinearRegressionTask

# The options that are groups of options, each set in a config file by a mapping (True: or by a class path).
CONFIG_SECTIONS = {
    **dict.fromkeys(["trainer", "model", "checkpoint", "last", "table", "figures", "divergence", "report"], False),
    "data": True,
}


class LitLinregCLI(LightningCLI):
    """LightningCLI with lit-linreg's callbacks and run folders (see :mod:`lit_linreg.checkpoints`).

    Two ``ModelCheckpoint``s: the best epoch by ``val_loss`` (section ``checkpoint``) and ``last.ckpt``, the newest
    state (section ``last``). A ``--ckpt_path`` file (or ``last`` / ``best`` of the run) acts like a config given
    before all others: its model and data settings, which any option still overrides.
    """

    def __init__(self, args: ArgsType = None, **kwargs: Any) -> None:
        self.interrupt = GracefulInterrupt()
        super().__init__(
            LinearRegressionTask,
            RegressionDataModule,
            subclass_mode_data=True,
            seed_everything_default=42,  # the tutorial's: a run without a config is reproducible too
            args=args,
            save_config_kwargs={"overwrite": True},
            load_from_checkpoint_support=False,  # checkpoints hold plain init arguments, never class paths to import
            # What a lit-linreg run shows: its own lines (the table, where files went), not Lightning's model summary
            # or a progress bar (configs/large.yaml turns one on); each option still overrides these.
            trainer_defaults={"enable_model_summary": False, "enable_progress_bar": False, "log_every_n_steps": 1},
            **kwargs,
        )

    @staticmethod
    def subcommands() -> dict[str, set[str]]:
        """LightningCLI's commands, without the method arguments that make no sense here (``verbose``; ``predict``
        always writes predictions.csv)."""
        skipped = {"validate": {"verbose"}, "test": {"verbose"}, "predict": {"return_predictions"}}
        return {name: args | skipped.get(name, set()) for name, args in LightningCLI.subcommands().items()}

    def add_default_arguments_to_parser(self, parser: LightningArgumentParser) -> None:
        parser.add_argument(
            "--seed_everything",
            type=bool | Seed,
            default=self.seed_everything_default,
            help="the seed of Python, NumPy and torch (0 to 2**32 - 1), set before the model is built, so its initial "
            "weights; true: a random seed; false: no seeding",
        )

    def add_arguments_to_parser(self, parser: LightningArgumentParser) -> None:
        parser.add_argument(
            "--run_name",
            type=str | None,
            default=None,
            help="the run's name: its files go to checkpoints/<run_name>/version_N/ and lightning_logs/<run_name>/"
            "version_N/ (default: the last --config file's name, else the run of the --ckpt_path file, else 'default')",
        )
        parser.add_lightning_class_args(ModelCheckpoint, "checkpoint")
        parser.add_lightning_class_args(LastCheckpoint, "last")
        parser.link_arguments("checkpoint.dirpath", "last.dirpath")  # one folder for a run's checkpoints
        parser.add_lightning_class_args(EpochTable, "table")
        parser.add_lightning_class_args(FigureWriter, "figures")
        parser.add_lightning_class_args(DivergenceGuard, "divergence")
        parser.add_lightning_class_args(RunReport, "report")
        parser.set_defaults(
            {
                "checkpoint.monitor": "val_loss",
                "checkpoint.filename": "best-{epoch}-{val_loss:.6f}",
                "checkpoint.every_n_epochs": 1,
                "last.filename": "last",
                "last.monitor": None,
                "last.every_n_epochs": 1,
                "last.enable_version_counter": False,
                "data": {"class_path": f"{SyntheticRegressionData.__module__}.SyntheticRegressionData"},
            }
        )
        for target, compute in LINKED_FROM_DATA.items():
            parser.link_arguments("data", f"model.{target}", compute_fn=compute, apply_on="instantiate")

    # A checkpoint acts like a config file given before everything else.
    def parse_arguments(self, parser: LightningArgumentParser, args: ArgsType) -> None:
        self.requested_model: Namespace | None = None
        self.checkpoint_hparams: dict[str, Any] | None = None
        if isinstance(args, (dict, Namespace)):
            self.config = parser.parse_object(args)
            return
        argv = [str(a) for a in (sys.argv[1:] if args is None else args)]
        printing = [a for a in argv if a.partition("=")[0] == "--print_config"]
        argv = [a for a in argv if a not in printing]
        check_config_files(argv, CONFIG_SECTIONS, self.subcommands())
        given = _option_value(argv, "--ckpt_path")
        if given and given not in CHECKPOINT_ALIASES:  # before parsing: its data class's options need it
            argv = self._with_checkpoint(argv, given)
        self.config = parser.parse_args(argv)
        subcommand = self.config.get("subcommand")
        cfg = self._subcommand_config()
        for name, class_path in CONFIG_SECTIONS.items():  # a config given as a string, which no file check read
            value = cfg.get(name)
            require(
                isinstance(value, Namespace) or (class_path and isinstance(value, str)),
                f"the {name} section is {value!r}, not a group of options; give it options (e.g. --{name}.<option> "
                f"<value>; `lit-linreg {subcommand or 'fit'} --help` lists them) or leave it out",
            )
        path = cfg.get("ckpt_path")
        if path in CHECKPOINT_ALIASES:
            folder = checkpoint_dir(self.root_dir, self.run_name, cfg.checkpoint.dirpath)
            found = find_checkpoint(folder, path)
            wanted = (
                shown_path(folder / "version_*" / "last.ckpt") if not cfg.checkpoint.dirpath else folder / "last.ckpt"
            )
            require(
                found is not None or subcommand == "fit", f"--ckpt_path {path}: there is no {wanted}; run fit first"
            )
            print(
                f"--ckpt_path {path}: "
                + (shown_path(found) if found else "no checkpoint yet: this fit starts from scratch")
            )
            path = None if found is None else str(found)
        if path and path != given:  # the file of last/best, or one named in a config file
            argv = self._with_checkpoint(argv, path)
            self.config = parser.parse_args(argv)
            cfg = self._subcommand_config()
        if subcommand:
            cfg.ckpt_path = path
            if path:
                self.requested_model = cfg.model.clone()
        self._check_config(printing=bool(printing))
        if printing:
            parser.instantiate(self.config)
            parser.parse_args([*argv, *printing])  # prints and exits

    def _with_checkpoint(self, argv: list[str], path: str) -> list[str]:
        """``argv`` with ``--model``/``--data`` JSON of the (checked) checkpoint at ``path`` right after the command."""
        checkpoint = load_checkpoint_file(path)
        self.checkpoint_hparams = task_hyperparameters(checkpoint, path)
        model = {k: v for k, v in self.checkpoint_hparams.items() if k not in LINKED_FROM_DATA}
        data = data_config(checkpoint, path)
        injected = ["--model", json.dumps(model), *(["--data", json.dumps(data)] if data else [])]
        at = next((i + 1 for i, a in enumerate(argv) if a in self.subcommands()), None)
        return argv if at is None else [*argv[:at], *injected, *argv[at:]]

    def _check_config(self, printing: bool) -> None:
        """What Lightning accepts but would make a useless run: an untrained model to evaluate, no epochs to train,
        or unsafe checkpoint loading."""
        cfg, subcommand = self._subcommand_config(), self.config.get("subcommand")
        require(
            cfg.get("weights_only") is not False,
            "--weights_only false is refused: lit-linreg loads every checkpoint with weights_only=True, so that a "
            "checkpoint cannot run code; drop the option",
        )
        require(
            subcommand in (None, "fit") or bool(cfg.get("ckpt_path")) or printing,
            f"lit-linreg {subcommand} needs a trained model, or it would use freshly initialised weights: add "
            f"--ckpt_path last or best (the run of the --config given) or --ckpt_path <file.ckpt>",
        )
        if subcommand == "fit":
            epochs, steps = cfg.trainer.max_epochs, cfg.trainer.max_steps
            require(
                steps == -1 or steps > 0, f"trainer.max_steps must be a positive number of steps or -1, got {steps}"
            )
            require(
                epochs is None or epochs > 0 or (epochs == -1 and steps > 0),
                f"trainer.max_epochs must be a positive number of epochs, got {epochs}; e.g. --trainer.max_epochs 100 "
                f"(-1, no epoch limit, is accepted only with a positive --trainer.max_steps)",
            )

    def _subcommand_config(self, config: Namespace | None = None) -> Namespace:
        config = self.config if config is None else config
        subcommand = self.config.get("subcommand")
        return config[subcommand] if subcommand else config

    @property
    def root_dir(self) -> Path:
        return Path(self._subcommand_config().trainer.default_root_dir or ".")

    @property
    def run_name(self) -> str:
        cfg = self._subcommand_config()
        return run_name(cfg.get("run_name"), cfg.get("config") or (), cfg.get("ckpt_path"))

    def before_instantiate_classes(self) -> None:
        if self.requested_model is not None:
            # Lightning re-applies the hyperparameters of --ckpt_path over the parsed model (explicit arguments
            # included): the model as parse_arguments built it has them first and explicit arguments over them.
            self._subcommand_config().model = self.requested_model

    def instantiate_trainer(self, **kwargs: Any):
        cfg = self._subcommand_config()
        default_logger = cfg.trainer.logger in (None, True)
        if default_logger:
            kwargs["logger"] = False  # RunFolders gives the trainer its TensorBoardLogger, in the run's folder
        self.folders = RunFolders(self.root_dir, self.run_name, cfg.get("ckpt_path"), logger=default_logger)
        trainer_init = self._subcommand_config(self.config_init).trainer
        kwargs["plugins"] = [*_as_list(trainer_init.get("plugins")), AtomicCheckpointIO()]
        stage_callbacks: dict[str, list[Callback]] = {"fit": [self.interrupt], "predict": [PredictionWriter()]}
        kwargs["callbacks"] = [
            self.folders,
            *_as_list(trainer_init.get("callbacks")),
            *stage_callbacks.get(self.subcommand or "", []),
        ]
        try:
            return super().instantiate_trainer(**kwargs)
        except (MisconfigurationException, ValueError, TypeError, ImportError) as err:  # Trainer's checks of its args
            raise UserError(
                f"the trainer cannot be set up with trainer.accelerator={trainer_init.get('accelerator')!r}, "
                f"devices={trainer_init.get('devices')!r}: {one_line(str(err)).rstrip('.')}; fix the --trainer option "
                f"it names (--trainer.accelerator auto uses what this machine has: CUDA, MPS or the CPU)"
            ) from err

    def after_instantiate_classes(self) -> None:
        expected, path = self.checkpoint_hparams, self._subcommand_config().get("ckpt_path")
        if expected is None or not path:
            return
        for key in ("variant", *LINKED_FROM_DATA):
            wanted = self.model.hparams[key]
            if key in expected and expected[key] != wanted:
                option = "model.variant" if key == "variant" else f"model.{key} (set by the data)"
                raise UserError(
                    f"checkpoint {path} holds a model with {key}={expected[key]!r}, but the config asks for "
                    f"{option}={wanted!r}; drop the conflicting --config/argument or use a matching checkpoint"
                )

    def fit(self, model: LinearRegressionTask, **kwargs: Any) -> None:
        """``trainer.fit``, except for a resume whose checkpoint already trained every epoch asked for."""
        path = kwargs.get("ckpt_path")
        if path:
            checkpoint = load_checkpoint_file(path)
            try:  # Lightning's own record of the epochs done, and the optimizer state a resume restores
                done = int(checkpoint["loops"]["fit_loop"]["epoch_progress"]["current"]["processed"])
                checkpoint["optimizer_states"][0]
            except (KeyError, IndexError, TypeError, ValueError) as err:
                raise UserError(
                    f"checkpoint {shown_path(path)} cannot resume a fit: it holds no training state (Lightning's loop "
                    "and optimizer state); resume from a last.ckpt written by lit-linreg fit, or evaluate this one "
                    "with test, validate or predict"
                ) from err
            asked = self.trainer.max_epochs
            if asked is not None and asked != -1 and done >= asked:
                print(
                    f"{shown_path(path)} already trained {done} epochs (trainer.max_epochs={asked}): nothing to do; "
                    f"add --trainer.max_epochs {done + max(asked, 1)} (or more) to train it further"
                )
                return
            print(f"resuming {shown_path(path)} at epoch {done} (lr {model.hparams['lr']:g}), up to {asked} epochs")
        self.trainer.fit(model, **kwargs)
        paths = {
            getattr(c, "monitor", None): getattr(c, "best_model_path", "") for c in self.trainer.checkpoint_callbacks
        }
        best, last = paths.get("val_loss", ""), getattr(last_checkpoint_callback(self.trainer), "best_model_path", "")
        if last:
            print(f"checkpoints: last {shown_path(last)} | best {shown_path(best)}")
        if self.interrupt.requested is not None:
            raise UserError(
                f"interrupted by {self.interrupt.SIGNALS[self.interrupt.requested]}: stopped after epoch "
                f"{self.interrupt.stopped_after_epoch} and saved {shown_path(last)}; resume with the same command plus "
                "--ckpt_path last",
                exit_code=self.interrupt.exit_code,
            )


def lr_sweep(argv: list[str]) -> None:
    """``lit-linreg lr-sweep``: a fit of this CLI per learning rate."""
    from lit_linreg.commands.sweep import main as sweep

    sweep(argv, LitLinregCLI)


def _as_list(value: Any) -> list:
    return [] if value is None else list(value) if isinstance(value, (list, tuple)) else [value]


def _option_value(argv: list[str], option: str) -> str | None:
    """The value given to ``option`` in ``argv`` (``option value`` or ``option=value``), if any."""
    for i, arg in enumerate(argv):
        if arg == option and i + 1 < len(argv):
            return argv[i + 1]
        if arg.startswith(f"{option}="):
            return arg.partition("=")[2]
    return None


class HelpFormatter(RawDescriptionHelpFormatter, DefaultHelpFormatter):
    """jsonargparse's help, with the description printed as written: one command a line."""

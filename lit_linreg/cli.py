"""CLI: ``lit-linreg fit|validate|test|predict`` through LightningCLI, and the other commands (commands/).

Run: lit-linreg fit --config configs/base.yaml
"""

from __future__ import annotations

import json
import logging
import os
import sys
import warnings
from pathlib import Path
from typing import IO, Any

import lightning as L
from jsonargparse import Namespace
from lightning.fabric.utilities.exceptions import MisconfigurationException
from lightning.pytorch.cli import ArgsType, LightningArgumentParser, LightningCLI
from lightning.pytorch.utilities import rank_zero_only

from lit_linreg.callbacks import (
    BaselineReport,
    DivergenceGuard,
    EpochTable,
    FigureWriter,
    GracefulInterrupt,
    PredictionWriter,
    RunCheckpoint,
)
from lit_linreg.commands import EXTRA_COMMANDS, HelpFormatter, check_command, description, run_extra_command
from lit_linreg.commands.trainer import LitLinregTrainer
from lit_linreg.console import echo, shown_path
from lit_linreg.data import RegressionDataModule, SyntheticRegressionData
from lit_linreg.errors import Interrupted, UserError, as_user_error, one_line, require
from lit_linreg.loggers.hparams import SaveConfig
from lit_linreg.loggers.tensorboard import TensorBoardLogger
from lit_linreg.storage import runs
from lit_linreg.storage.checkpoints import AtomicCheckpointIO, data_config, load_checkpoint_file, task_hyperparameters
from lit_linreg.storage.config_files import check_config_files
from lit_linreg.task import LINKED_FROM_DATA, LinearRegressionTask

# The options that are groups of options, each set in a config file by a mapping (True: or by a class path). A
# section left null (`model:` with nothing below it) would silently drop the options an earlier config set in it.
CONFIG_SECTIONS = {
    "trainer": False,
    "model": False,
    "data": True,
    "checkpoint": False,
    "table": False,
    "figures": False,
    "divergence": False,
}


class LitLinregCLI(LightningCLI):
    """LightningCLI with the project's run layout: ``checkpoints/<run>/`` and ``lightning_logs/<run>/version_N/``.

    ``<run>`` is ``--run_name``, else the last ``--config`` file's stem, else the checkpoint's folder, else
    ``default``; both folders sit under ``--trainer.default_root_dir`` (the current directory by default).
    """

    version: int | None  # the fit's version_N (None: the logger picks the next one)

    def __init__(self, args: ArgsType = None, **kwargs: Any) -> None:
        self.interrupt = GracefulInterrupt()
        self.run_lock: IO[str] | None = None
        try:
            super().__init__(
                LinearRegressionTask,
                RegressionDataModule,
                trainer_class=LitLinregTrainer,
                subclass_mode_data=True,
                seed_everything_default=42,  # the tutorial's: a run without a config is reproducible too
                args=args,
                save_config_kwargs={"overwrite": True},
                # Checkpoints hold the task's plain init arguments (no class paths or instantiators to trust on load).
                load_from_checkpoint_support=False,
                **{"save_config_callback": SaveConfig, **kwargs},
            )
        finally:
            if self.run_lock is not None:  # the run's folder is free again once its command has run
                runs.release(self.run_lock)
                self.run_lock = None

    @staticmethod
    def subcommands() -> dict[str, set[str]]:
        """LightningCLI's commands and the method arguments that are no options: also ``verbose`` (``--verbose`` is
        lit-linreg's, for tracebacks) and ``return_predictions`` (``predict`` writes predictions.csv)."""
        skipped = {"validate": {"verbose"}, "test": {"verbose"}, "predict": {"return_predictions"}}
        return {name: args | skipped.get(name, set()) for name, args in LightningCLI.subcommands().items()}

    def add_default_arguments_to_parser(self, parser: LightningArgumentParser) -> None:
        parser.add_argument(
            "--seed_everything",
            type=bool | int,
            default=self.seed_everything_default,
            help="the seed of Python, NumPy and torch, set before the model is built (so its initial weights) and "
            "stored in the run's config; true: a random seed; false: no seeding",
        )

    def add_arguments_to_parser(self, parser: LightningArgumentParser) -> None:
        parser.add_argument(
            "--run_name",
            type=str | None,
            default=None,
            help="the run's name: its files go to checkpoints/<run_name>/version_N/ and "
            "lightning_logs/<run_name>/version_N/ (default: the last --config file's name, else the run of the "
            "--ckpt_path file, else 'default')",
        )
        parser.add_lightning_class_args(RunCheckpoint, "checkpoint")
        parser.add_lightning_class_args(EpochTable, "table")
        parser.add_lightning_class_args(FigureWriter, "figures")
        parser.add_lightning_class_args(DivergenceGuard, "divergence")
        parser.set_defaults({"data": {"class_path": f"{SyntheticRegressionData.__module__}.SyntheticRegressionData"}})
        for target, compute in LINKED_FROM_DATA.items():
            parser.link_arguments("data", f"model.{target}", compute_fn=compute, apply_on="instantiate")

    # Run layout.
    def _subcommand_config(self, config: Namespace | None = None) -> Namespace:
        """The part of ``config`` (default: the parsed config) that belongs to the subcommand being run."""
        config = self.config if config is None else config
        subcommand = self.config.get("subcommand")
        return config[subcommand] if subcommand else config

    @property
    def root_dir(self) -> Path:
        return Path(self._subcommand_config().trainer.default_root_dir or ".")

    @property
    def run_name(self) -> str:
        cfg = self._subcommand_config()
        return runs.run_name(cfg.get("run_name"), cfg.get("config") or (), cfg.get("ckpt_path"))

    @property
    def run_dir(self) -> Path:
        """``checkpoints/<run>/``: the run's checkpoint folders, one ``version_N`` per fit."""
        return runs.checkpoint_dir(self.root_dir, self.run_name)

    @property
    def log_root(self) -> Path:
        return self.root_dir / "lightning_logs"

    def before_instantiate_classes(self) -> None:
        cfg = self._subcommand_config()
        if self.subcommand == "fit" and not cfg.checkpoint.dirpath:
            resumed = Path(cfg.ckpt_path).resolve().parent if cfg.ckpt_path else None
            if (
                resumed is not None
                and resumed.parent == self.run_dir.resolve()
                and runs.version_of(resumed) is not None
            ):
                self.version, folder = runs.version_of(resumed), resumed  # a resume continues in its own folder
            else:
                self.version, folder = runs.claim_version(self.run_dir, self.log_root / self.run_name)
            self.run_lock = runs.lock(folder)  # held until the command has run (see __init__)
            cfg.checkpoint.dirpath = str(folder.resolve())
        if self.requested_model is not None:
            # Lightning re-applies the hyperparameters of --ckpt_path over the parsed model (explicit arguments
            # included); the model as parse_arguments built it has them first and explicit arguments over them.
            cfg.model = self.requested_model

    def instantiate_trainer(self, **kwargs: Any):
        cfg = self._subcommand_config()
        if cfg.trainer.logger in (None, True):
            kwargs["logger"] = TensorBoardLogger(save_dir=str(self.log_root), name=self.run_name, version=self.version)
        trainer_init = self._subcommand_config(self.config_init).trainer
        kwargs["plugins"] = [*_as_list(trainer_init.get("plugins")), AtomicCheckpointIO()]
        # Every callback costs a dispatch on every hook of every epoch: add each only where it does something.
        stage_callbacks: dict[str | None, list[L.Callback]] = {
            "fit": [self.interrupt, BaselineReport()],
            "test": [BaselineReport()],
            "predict": [PredictionWriter()],
        }
        kwargs["callbacks"] = [*_as_list(trainer_init.get("callbacks")), *stage_callbacks.get(self.subcommand, [])]
        try:
            return super().instantiate_trainer(**kwargs)
        except (MisconfigurationException, ValueError, TypeError, ImportError) as err:  # Trainer's checks of its args
            message = one_line(str(err)).rstrip(".")
            where, hint = "", ""
            if any(word in message.lower() for word in ("accelerator", "device", "gpu", "cuda", "mps", "backend")):
                accelerator, devices = trainer_init.get("accelerator"), trainer_init.get("devices")
                where = f" with trainer.accelerator={accelerator!r}, devices={devices!r}"
                hint = " (--trainer.accelerator auto uses what this machine has: CUDA, MPS or the CPU)"
            raise UserError(
                f"the trainer cannot be set up{where}: {message}; fix the --trainer option it names{hint}"
            ) from err

    # A checkpoint acts like a config file given before everything else.
    def parse_arguments(self, parser: LightningArgumentParser, args: ArgsType) -> None:
        """Parse the arguments, with the model and data of ``--ckpt_path`` (validated first) placed before them.

        Without ``--config``, a checkpoint thus rebuilds the model variant and the data it was trained on, while any
        explicit argument still wins; a conflicting variant or feature count is an error (after instantiation).
        ``--print_config`` prints only a config that a run would accept: its classes are built first.
        """
        self.checkpoint_hparams: dict[str, Any] | None = None
        self.requested_model: Namespace | None = None
        self.version = None
        if isinstance(args, (dict, Namespace)):
            self.config = parser.parse_object(args)
            return
        argv = [str(a) for a in (sys.argv[1:] if args is None else args)]
        printing = [a for a in argv if a.partition("=")[0] == "--print_config"]
        argv = [a for a in argv if a not in printing]
        injected = _option_value(argv, "--ckpt_path")
        if injected in runs.CHECKPOINT_ALIASES:
            injected = None
        check_config_files(argv, CONFIG_SECTIONS, self.subcommands())
        if injected:  # before the first parse too: the options of its data class (e.g. --data.predict_csv) need it
            argv = self._with_checkpoint(argv, injected)
        self.config = parser.parse_args(argv)
        self._check_sections()
        path = self._subcommand_config().get("ckpt_path")
        if path in runs.CHECKPOINT_ALIASES:
            alias = path
            folder = runs.checkpoint_dir(self.root_dir, self.run_name, self._subcommand_config().checkpoint.dirpath)
            path = runs.find_checkpoint(folder, alias, fitting=self.config.get("subcommand") == "fit")
            if path is None:
                _print(
                    f"--ckpt_path last: run '{self.run_name}' has no checkpoint yet, so this fit starts from scratch"
                )
            else:
                _print(f"--ckpt_path {alias}: {shown_path(path)}")
        if path and path != injected:  # an alias, or a checkpoint named in a config file
            argv = self._with_checkpoint(argv, path)
            self.config = parser.parse_args(argv)
        if self.config.get("subcommand"):
            self._subcommand_config().ckpt_path = path
            if path:
                self.requested_model = self._subcommand_config().model.clone()
        self._check_config(printing=bool(printing))
        if printing:
            parser.instantiate(self.config)
            parser.parse_args([*argv, *printing])  # prints and exits

    def _check_sections(self) -> None:
        """Each section parsed from a config given as a string rather than a file (``--config 'model: null'``), which
        :func:`check_config_files` cannot read, is a group of options too."""
        cfg, subcommand = self._subcommand_config(), self.config.get("subcommand")
        for name, class_path in CONFIG_SECTIONS.items():
            value = cfg.get(name)
            require(
                isinstance(value, Namespace) or (class_path and isinstance(value, str)),
                f"the {name} section is {value!r}, not a group of options; give it options (e.g. --{name}.<option> "
                f"<value>; `lit-linreg {subcommand or 'fit'} --help` lists them) or leave it out",
            )

    def _with_checkpoint(self, argv: list[str], path: str) -> list[str]:
        """``argv`` with ``--model``/``--data`` JSON of the checkpoint at ``path`` right after the subcommand."""
        checkpoint = load_checkpoint_file(path)
        self.checkpoint_hparams = task_hyperparameters(checkpoint, path)
        model = {k: v for k, v in self.checkpoint_hparams.items() if k not in LINKED_FROM_DATA}
        data = data_config(checkpoint, path)
        injected = ["--model", json.dumps(model), *(["--data", json.dumps(data)] if data else [])]
        at = next((i + 1 for i, a in enumerate(argv) if a in self.subcommands()), None)
        return argv if at is None else [*argv[:at], *injected, *argv[at:]]

    def _check_config(self, printing: bool = False) -> None:
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
        if subcommand != "fit":
            return
        epochs, steps = cfg.trainer.max_epochs, cfg.trainer.max_steps
        require(
            steps == -1 or steps > 0,
            f"trainer.max_steps must be a positive number of steps or -1 (no step limit), got {steps}",
        )
        require(
            epochs is None or epochs > 0 or (epochs == -1 and steps > 0),
            f"trainer.max_epochs must be a positive number of epochs, got {epochs}; e.g. --trainer.max_epochs 100 "
            f"(-1, no epoch limit, is accepted only with a positive --trainer.max_steps)",
        )

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

    # Reporting.
    def _announce(self) -> None:
        trainer = self.trainer
        devices = getattr(trainer.strategy, "parallel_devices", None) or [trainer.strategy.root_device]
        logs = trainer.log_dir if trainer.logger is not None else "none"
        _print(
            f"lit-linreg {self.subcommand}: run '{self.run_name}' on {trainer.accelerator.__class__.__name__} "
            f"({', '.join(str(d) for d in devices)}; {trainer.strategy.__class__.__name__}) | "
            f"checkpoints: {shown_path(self._subcommand_config().checkpoint.dirpath)} | logs: {logs}"
        )

    def after_fit(self) -> None:
        checkpoint = self.trainer.checkpoint_callback
        last = checkpoint.last_model_path if isinstance(checkpoint, RunCheckpoint) else ""
        if isinstance(checkpoint, RunCheckpoint) and last:
            _print(f"checkpoints: last {shown_path(last)} | best {shown_path(checkpoint.best_model_path)}")
        if self.interrupt.stopped_after_epoch is not None:
            raise Interrupted(
                f"interrupted by {self.interrupt.signal_name}: stopped after epoch "
                f"{self.interrupt.stopped_after_epoch} and saved {last}; resume with the same command plus "
                "--ckpt_path last",
                exit_code=self.interrupt.exit_code,
            )

    before_fit = before_validate = before_test = before_predict = _announce


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


_print = rank_zero_only(echo)


VERBOSE_ENV = "LIT_LINREG_VERBOSE"


def quiet_console() -> None:
    """What the lit-linreg command (not the package) changes in its own process: Lightning 2.6's cloud-logger tip
    and two warnings about Lightning's internals that no user can act on stay off its console."""

    def drop_tip(record: logging.LogRecord) -> bool:
        return not str(record.msg).startswith("💡 Tip")

    logging.getLogger("lightning.pytorch.utilities.rank_zero").addFilter(drop_tip)
    warnings.filterwarnings("ignore", message=r".*isinstance\(treespec, LeafSpec\)")
    warnings.filterwarnings("ignore", message=r"The number of training batches .* is smaller than the logging interval")


def main(args: ArgsType = None) -> None:
    """Entry point of ``lit-linreg``: ``main(["fit", "--config", "configs/base.yaml"])`` runs in-process.

    A problem the user can fix ends as one line, ``lit-linreg: error: <what is wrong, where>; <how to fix it>``, and
    exit status 2 (130 after Ctrl-C). ``--verbose`` anywhere on the command line, or ``LIT_LINREG_VERBOSE=1``, shows
    the full traceback instead. Any other exception is a bug and keeps its traceback.
    """
    quiet_console()
    verbose = os.environ.get(VERBOSE_ENV, "") not in ("", "0")
    argv: list[str] = []
    if args is None or isinstance(args, list):
        argv = [str(a) for a in (sys.argv[1:] if args is None else args)]
        verbose = verbose or "--verbose" in argv
        args = argv = [a for a in argv if a != "--verbose"]
    try:
        if isinstance(args, list):
            check_command(argv, list(LitLinregCLI.subcommands()))
        if argv and argv[0] in EXTRA_COMMANDS:
            run_extra_command(argv[0], argv[1:])
        else:
            LitLinregCLI(
                args=args,
                parser_kwargs={
                    "prog": "lit-linreg",
                    "description": description(),
                    "exit_on_error": False,
                    "formatter_class": HelpFormatter,
                },
            )
    except BaseException as err:
        error = None if verbose else as_user_error(err, argv)
        if error is None:
            raise
        print(f"lit-linreg: error: {one_line(str(error))}", file=sys.stderr, flush=True)
        raise SystemExit(error.exit_code) from None


if __name__ == "__main__":
    main()

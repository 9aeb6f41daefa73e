"""``lit-linreg lr-sweep``: train the regression once per learning rate, for the same budget, and compare the runs.

Every run is an ordinary ``fit`` of the same config (data, model, trainer, seed: the same initial weights), with
only ``model.lr`` changed, and writes nothing: no logger, checkpoint, table or figure per run.

Run: lit-linreg lr-sweep --config configs/base.yaml --lrs "[0.001, 0.01, 0.1, 0.5]"
"""

from __future__ import annotations

import itertools
import json
import logging
import math
import tempfile
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import NamedTuple

import numpy as np
from lightning.pytorch.cli import LightningCLI
from lightning.pytorch.tuner import Tuner
from lightning.pytorch.utilities.seed import isolate_rng

from lit_linreg.callbacks import LossHistory
from lit_linreg.commands import command_parser, option_help
from lit_linreg.errors import UserError, require
from lit_linreg.plots import LossPanel, Points, format_numbers, loss_figure, lr_finder_figure, save_png
from lit_linreg.report import least_absolute_deviations, regression_errors

DEFAULT_LRS = [0.001, 0.01, 0.1, 0.5]  # the tutorial's demonstrate_learning_rates
CONVERGED_GAP = 0.05  # converged: within 5 % of the initial gap above the lowest loss a linear model reaches
STATUS_COLORS = {"converged": "darkgreen", "not converged": "darkorange", "diverged": "firebrick"}
TABLE_ROW = "{:>10} | {:<22} | {:>10} | {:>10} | {:>6} | {:>6}{}"  # lr, status, train and val loss, weight, bias, note
QUIET_RUN = (  # every run writes and prints nothing of its own
    *("--trainer.logger", "false", "--trainer.enable_progress_bar", "false", "--trainer.enable_model_summary", "false"),
    *("--checkpoint.save_top_k", "0", "--report.baselines", "false"),
    *("--table.every_n_epochs", "0", "--figures.enabled", "false"),
    # the sweep reports divergence itself, as a status, and whether the loss fell
    *("--divergence.max_growth", "null", "--divergence.warn", "false"),
)


class Run(NamedTuple):
    """One training run of the sweep: its learning rate, loss curves, status and final weight and bias."""

    lr: float
    curves: dict[str, Points]
    status: str
    converged_epoch: int | None
    weight: str
    bias: str
    note: str = ""

    @property
    def status_text(self) -> str:
        return f"converged at epoch {self.converged_epoch}" if self.status == "converged" else self.status


def classify(losses: np.ndarray, lowest: float) -> tuple[str, int | None]:
    """``("converged", N)``, ``("not converged", None)`` or ``("diverged", None)`` for per-epoch training losses.

    ``lowest`` is the lowest loss a linear model reaches on the same rows (exact LAD's). With L0 the first epoch's loss,
    W the last tenth of the epochs (at least 2) and T = lowest + 5 % of (L0 - lowest):

    - diverged: a loss is NaN/inf, or mean(W) > L0 (the steps overshoot: training made the fit worse);
    - converged at epoch N: no loss of W exceeds T (the tutorial's |w - target| < tolerance, in terms of the loss);
      N is the first epoch from which the loss never again exceeds T;
    - not converged otherwise: too slow for the budget, or stuck above T (a too large lr swinging back and forth).
    """
    losses = np.asarray(losses, dtype=np.float64)
    window = max(2, len(losses) // 10)
    if not np.isfinite(losses).all() or (len(losses) and losses[-window:].mean() > losses[0]):
        return "diverged", None
    gap = max(losses[0] - lowest, 0.0)
    threshold = lowest + CONVERGED_GAP * gap + 1e-6 * abs(losses[0])  # (the 1e-6: float32 rounding)
    if len(losses) < window or losses[-window:].max() > threshold:
        return "not converged", None
    above = np.flatnonzero(losses > threshold)
    return "converged", int(above[-1]) + 1 if len(above) else 0


@contextmanager
def _quiet_and_isolated() -> Iterator[None]:
    """No per-run Lightning chatter, and the caller's RNG states as they were (each run seeds them)."""
    loggers = [logging.getLogger(name) for name in ("lightning.pytorch", "lightning.fabric")]
    levels = [logger.level for logger in loggers]
    for logger in loggers:
        logger.setLevel(logging.WARNING)
    try:
        with isolate_rng():
            yield
    finally:
        for logger, level in zip(loggers, levels):
            logger.setLevel(level)


class Sweep:
    """The runs of one sweep: ``lit-linreg fit <fit_args>``, all with one seed, writing only into ``scratch``."""

    def __init__(self, cli: type[LightningCLI], fit_args: list[str], scratch: str) -> None:
        self.cli = cli
        self.fit_args = [*fit_args, *QUIET_RUN, "--trainer.default_root_dir", scratch, "--checkpoint.dirpath", scratch]
        self.truth: tuple[str, str] | None = None  # the data's true (weight, bias), formatted, when known
        self.lowest: float | None = None  # the lowest training loss a linear model reaches (every run's data)

    def build(self, *args: str) -> LightningCLI:
        cli = self.cli(args=[*self.fit_args, *args], run=False, save_config_callback=None)
        seed = cli.config.seed_everything
        if seed is not False and "--seed_everything" not in self.fit_args:  # later runs start from the same weights
            self.fit_args += ["--seed_everything", str(seed)]
        return cli

    def train(self, lr: float, note: str = "") -> Run:
        """One run with ``model.lr = lr``, classified by its training loss."""
        cli = self.build("--model.lr", repr(lr), "--trainer.callbacks+=lit_linreg.callbacks.LossHistory")
        cli.trainer.fit(cli.model, cli.datamodule)
        # Trainer sets its public ``callbacks`` list from a connector, not in its class body: type checkers miss it.
        history = next(c for c in cli.trainer.callbacks if isinstance(c, LossHistory))  # type: ignore[attr-defined]
        curves = {name.replace("_", " "): curve for name, curve in history.curves().items() if len(curve[0])}
        require("train loss" in curves, "the sweep's runs trained no epoch: give them some (--trainer.max_epochs)")
        weight, bias = (format_numbers(t.tolist()) for t in cli.model.coefficients())
        truth = cli.datamodule.true_parameters()
        self.truth = None if truth is None else (format_numbers(truth[0].tolist()), format_numbers(truth[1].tolist()))
        if self.lowest is None:  # the exact LAD fit's L1 on the rows the report uses
            x, y = cli.datamodule.sample("train")
            self.lowest = regression_errors(least_absolute_deviations(x, y), x, y)["mae"]
        return Run(lr, curves, *classify(curves["train loss"][1], self.lowest), weight, bias, note)

    def find_lr(self, out: Path) -> float | None:
        """Lightning's learning-rate finder on the same run: prints its suggestion and draws its curve into ``out``."""
        cli = self.build("--trainer.max_epochs", "-1")  # the finder stops by itself after its 100 steps
        finder = Tuner(cli.trainer).lr_find(cli.model, datamodule=cli.datamodule, update_attr=False)
        if finder is None:  # Lightning skips the finder under fast_dev_run
            raise UserError("Lightning's learning-rate finder does not run with --trainer.fast_dev_run; drop it")
        suggestion = finder.suggestion()
        suggestion = None if suggestion is None else float(f"{suggestion:.3g}")
        lrs, losses = np.array(finder.results["lr"], dtype=float), np.array(unbiased(finder.results["loss"]))
        shown = np.isfinite(losses)  # the finder's last step can blow up: plot the steps with a loss to show
        lrs, losses = lrs[shown], losses[shown]
        save_png(lr_finder_figure(lrs, losses, suggestion, title="Lightning's learning-rate finder"), out)
        found = f"suggests lr={suggestion} (the steepest fall of its smoothed loss)" if suggestion else "found none"
        print(f"lr_find {found}; figure: {out}")
        if cli.trainer.num_training_batches == 1:
            print(
                "  caveat: with full-batch data each of its 100 steps is a whole epoch on the same rows at a larger "
                "lr, so its curve mixes in the progress made at earlier rates: a starting point, to check here"
            )
        return suggestion


def unbiased(smoothed: list[float], beta: float = 0.98) -> list[float]:
    """lr_find's smoothed losses with its running mean's bias corrected by the right step count.

    Lightning 2.6's finder divides its running mean (``beta`` 0.98, started at 0) after step k by ``1 - beta**(k + 2)``
    instead of ``1 - beta**(k + 1)`` (it reads ``global_step`` after the update): its first point is half the loss, and
    its curve rises before it falls. Only the figure uses the corrected values (tests/test_theory_sweep.py checks them,
    so a change of Lightning's formula shows there); the suggestion is Lightning's own.
    """
    return [loss * (1 - beta ** (k + 2)) / (1 - beta ** (k + 1)) for k, loss in enumerate(smoothed)]


def lr_sweep(
    cli: type[LightningCLI],
    fit_args: Sequence[str] = (),
    config: Sequence[str] = (),
    lrs: list[float] = DEFAULT_LRS,
    lr_find: bool = False,
    out: str = "figures/lr_sweep.png",
) -> list[Run]:
    """Train once per learning rate for the same number of epochs, from the same initial weights; print a summary
    table and draw the loss curves side by side with each run's status (converged at epoch N, not converged,
    diverged).

    Args:
        cli: the LightningCLI that ``lit-linreg fit`` runs, for every run
        fit_args: the other arguments, passed to every run as to `lit-linreg fit`
        config: config file, as for `lit-linreg fit` (repeatable)
        lrs: the learning rates, a list
        lr_find: first run Lightning's learning-rate finder, draw its curve (lr_find.png beside --out) and add its
            suggestion to the sweep
        out: where to write the figure
    """
    require(
        not any(arg.startswith("--model.lr") for arg in fit_args),
        'lr-sweep sets model.lr itself: give the learning rates with --lrs "[0.001, 0.01]"',
    )
    figure = Path(out)
    configs = [arg for path in config for arg in ("--config", str(path))]
    rates = [(float(lr), "") for lr in lrs]
    with tempfile.TemporaryDirectory(prefix="lit-linreg-lr-sweep-") as scratch, _quiet_and_isolated():
        sweep = Sweep(cli, [*configs, *fit_args], scratch)
        if lr_find:
            suggestion = sweep.find_lr(figure.parent / "lr_find.png")
            rates += [(suggestion, " (lr_find)")] if suggestion is not None else []
        runs = []
        for i, (lr, note) in enumerate(rates):
            print(f"[{i + 1}/{len(rates)}] lr={lr:g}{note}", flush=True)
            runs.append(sweep.train(lr, note))

    print("\n" + TABLE_ROW.format("lr", "status", "train_loss", "val_loss", "weight", "bias", ""))
    for run in runs:
        losses = (f"{run.curves[key][1][-1]:.6f}" if key in run.curves else "-" for key in ("train loss", "val loss"))
        print(TABLE_ROW.format(f"{run.lr:g}", run.status_text, *losses, run.weight, run.bias, run.note))
    if sweep.truth is not None:
        print(TABLE_ROW.format("true", "", "", "", *sweep.truth, ""))
    epochs = max(len(run.curves["train loss"][0]) for run in runs)
    source = ", ".join(Path(path).name for path in config) or "the default config"
    panels = [
        LossPanel(
            f"lr = {run.lr:g}{run.note}\n{run.status_text}", run.curves, STATUS_COLORS[run.status], run.converged_epoch
        )
        for run in runs
    ]
    fig = loss_figure(panels, title=f"Learning-rate sweep of {source}: {epochs} epochs per run", log_scale=True)
    save_png(fig, figure)
    print(f"figure: {figure}")
    return runs


EPILOG = (
    "Any other argument is passed to every run as to `lit-linreg fit` (e.g. --trainer.max_epochs 300 "
    "--data.noise_std 0.05). Status, from the training loss: diverged = NaN/inf, or the last tenth of the epochs "
    "averages above the first epoch's loss; converged at epoch N = over the last tenth of the epochs the loss stays "
    "within 5% of its initial gap above the lowest loss a linear model reaches (the exact LAD fit), N being the "
    "first epoch from which it never leaves that band; otherwise not converged."
)
# lr-sweep's own options: those that take a value (--lrs+ appends to the list, as jsonargparse allows), and flags.
OWN_OPTIONS = {"--config", "--lrs", "--lrs+", "--out"}
OWN_FLAGS = {"--lr_find", "--help", "-h"}


def split_argv(argv: Sequence[str]) -> tuple[list[str], list[str]]:
    """``argv`` split into lr-sweep's own options and flags and the rest, for every run's fit."""
    own: list[str] = []
    rest: list[str] = []
    args = iter(argv)
    for arg in args:
        name = arg.partition("=")[0]
        if name not in OWN_OPTIONS | OWN_FLAGS:
            rest.append(arg)
            continue
        own.append(arg)
        if name in OWN_OPTIONS and "=" not in arg:
            own += list(itertools.islice(args, 1))  # its value (a missing one is the parser's error)
    return own, rest


def learning_rates(text: str) -> list[float]:
    """The numbers of ``--lrs``: "[0.001, 0.01]", also "0.01" or "0.001, 0.01"; each positive and finite."""
    try:
        lrs = [float(value) for value in text.strip().strip("[]").split(",") if value.strip()]
    except ValueError:
        lrs = []
    require(
        bool(lrs) and all(math.isfinite(lr) and lr > 0 for lr in lrs),
        f'--lrs: expected positive numbers like "[0.001, 0.01, 0.1]", got {text!r}',
    )
    return lrs


def main(argv: list[str], cli: type[LightningCLI]) -> None:
    """``lit-linreg lr-sweep [options] [fit options]``: :func:`lr_sweep` with the options of ``argv``, each run a fit
    of ``cli`` (lit-linreg's; the command line passes it, so this module needs no import of it)."""
    parser = command_parser(
        "lit-linreg lr-sweep", lr_sweep, skip={"cli", "fit_args", "config", "lr_find"}, epilog=EPILOG
    )
    parser.add_argument("--config", action="append", default=[], help=option_help(lr_sweep, "config"))
    parser.add_argument("--lr_find", action="store_true", help=option_help(lr_sweep, "lr_find"))
    own, fit_args = split_argv(argv)
    for i, arg in enumerate(own):  # the parser gets --lrs as a JSON list
        name, equals, value = arg.partition("=")
        if name in ("--lrs", "--lrs+") and equals:
            own[i] = f"{name}={json.dumps(learning_rates(value))}"
        elif i and own[i - 1] in ("--lrs", "--lrs+"):
            own[i] = json.dumps(learning_rates(arg))
    lr_sweep(cli, fit_args, **parser.parse_args(own).as_dict())

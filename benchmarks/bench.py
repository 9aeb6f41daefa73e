"""Benchmark: lit-linreg against the tutorial's plain loop, a bare Lightning loop and the DataLoader recipe.

Run: make bench   (= .venv/bin/python benchmarks/bench.py [--rows 2000000] [--repeats 5])

Everything runs in this one process, on this machine, interleaved (a, b, c, a, b, c, ...) and reported as the median
of the repeats, because timings on a shared 2-core machine vary by ±20 % from run to run.
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import gc
import math
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

import lightning
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from recipes import (  # noqa: E402
    TrainEpochTimer,
    bare_lightning_epoch,
    bare_lightning_loop,
    dataloader_steps,
    idiomatic_tutorial,
    plain_loop,
    plain_minibatch_epoch,
    scale_data,
    scale_fit_args,
)

from lit_linreg.cli import LitLinregCLI  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]


@contextlib.contextmanager
def quiet():
    with open(os.devnull, "w") as devnull, contextlib.redirect_stdout(devnull), contextlib.redirect_stderr(devnull):
        yield


def litlinreg(*args: str) -> LitLinregCLI:
    """``lit-linreg <args>`` in-process (outputs under a temporary directory); returns the CLI object."""
    with tempfile.TemporaryDirectory() as tmp, quiet():
        return LitLinregCLI(args=[*args, "--trainer.default_root_dir", tmp])


def seed_recipe_fit(*extra: str) -> tuple[float, float]:
    cli = litlinreg("fit", "--config", str(ROOT / "configs" / "base.yaml"), *extra)
    weight, bias = cli.model.coefficients()
    return weight.item(), bias.item()


def interleaved(runs: dict[str, Callable[[], object]], repeats: int) -> dict[str, tuple[float, object]]:
    """Median wall-clock seconds of each run over ``repeats`` interleaved rounds, and its last result."""
    times: dict[str, list[float]] = {name: [] for name in runs}
    results: dict[str, object] = {}
    for _ in range(repeats):
        for name, run in runs.items():
            gc.collect()
            start = time.perf_counter()
            results[name] = run()
            times[name].append(time.perf_counter() - start)
    return {name: (statistics.median(t), results[name]) for name, t in times.items()}


def tutorial_section(repeats: int) -> None:
    print("\n1. Tutorial recipe: 500 epochs of 40 rows (full batch), the 10 test rows evaluated after every epoch")
    base = "lit-linreg fit --config configs/base.yaml"
    runs = {
        "plain PyTorch loop": plain_loop,
        "bare Lightning loop (Trainer defaults)": lambda: quietly(bare_lightning_loop),
        "bare Lightning loop, no bar and no summary": lambda: bare_lightning_loop(minimal=True),
        "idiomatic Lightning (metrics, logger, checkpoints)": lambda: in_temporary_folder(idiomatic_tutorial),
        base: seed_recipe_fit,
        "  the same, --figures.enabled false": lambda: seed_recipe_fit("--figures.enabled", "false"),
    }
    results = interleaved(runs, repeats)
    print(f"   {'method':<44} {'seconds':>8} {'weight':>7} {'bias':>7}")
    for name, (seconds, (weight, bias)) in results.items():
        print(f"   {name:<44} {seconds:8.3f} {weight:7.4f} {bias:7.4f}")
    plain = results["plain PyTorch loop"][0]
    idiomatic = results["idiomatic Lightning (metrics, logger, checkpoints)"][0]
    print(
        f"   lit-linreg, every default output / idiomatic Lightning = {results[base][0] / idiomatic:.2f} "
        "(target <= 1.25)"
    )
    bare = results["bare Lightning loop (Trainer defaults)"][0]
    minimal = results["bare Lightning loop, no bar and no summary"][0]
    for label, ours in (
        ("lit-linreg, every default output", results[base][0]),
        ("lit-linreg without figures", results["  the same, --figures.enabled false"][0]),
    ):
        print(
            f"   {label}: / minimal bare Lightning = {ours / minimal:.2f} (target <= 2.0), / bare Lightning = "
            f"{ours / bare:.2f}, / plain loop = {ours / plain:.2f}"
        )


def scale_section(rows: int, batch_size: int, dataloader_batches: int, repeats: int) -> None:
    print(f"\n2. Scale: one shuffled epoch over {rows:,} noisy training rows, batch {batch_size}, nn.Linear, CPU")
    x, y = scale_data(rows)
    dataloader_batches = min(dataloader_batches, math.ceil(rows / batch_size))  # the loader has no more

    added = 0  # the callbacks a lit-linreg fit has beyond the timer that bare Lightning has too

    def lit_epoch() -> tuple[float, torch.nn.Module]:
        nonlocal added
        cli = litlinreg(*scale_fit_args(rows, batch_size))
        timer = next(cb for cb in cli.trainer.callbacks if isinstance(cb, TrainEpochTimer))
        added = len(cli.trainer.callbacks) - 1
        return timer.seconds, cli.model

    def plain(gather_once: bool = False) -> tuple[float, torch.nn.Module]:
        start = time.perf_counter()
        model = plain_minibatch_epoch(x, y, batch_size, gather_once=gather_once)
        return time.perf_counter() - start, model

    def dataloader() -> tuple[float, torch.nn.Module]:
        start = time.perf_counter()
        model = dataloader_steps(x, y, batch_size, dataloader_batches)
        return (time.perf_counter() - start) * len(x) / min(len(x), batch_size * dataloader_batches), model

    runs = {
        "plain": plain,
        "plain_once": lambda: plain(gather_once=True),
        "dataloader": dataloader,
        "bare": lambda: quietly(lambda: bare_lightning_epoch(x, y, batch_size)),
        "lit": lit_epoch,
        "idle": lambda: quietly(lambda: bare_lightning_epoch(x, y, batch_size, idle_callbacks=added)),
    }
    measured: dict[str, list[float]] = {name: [] for name in runs}
    models = {}
    for _ in range(repeats):
        for name, run in runs.items():
            gc.collect()
            seconds, models[name] = run()
            measured[name].append(seconds)
    rate = {name: rows / statistics.median(seconds) for name, seconds in measured.items()}
    labels = {
        "plain": "plain loop over in-memory tensors",
        "plain_once": "  the same, one gather per epoch, then slices",
        "dataloader": f"DataLoader(TensorDataset) ({dataloader_batches} batches, extrapolated)",
        "bare": "bare Lightning loop over lit-linreg's batches",
        "lit": "lit-linreg fit (training epoch)",
        "idle": f"bare Lightning + {added} callbacks that do nothing",
    }
    print(f"   {'method':<52} {'rows/s':>12} {'weight':>7} {'bias':>7}")
    for name, label in labels.items():
        weight, bias = (t.item() for t in _coefficients(models[name]))
        print(f"   {label:<52} {rate[name]:12,.0f} {weight:7.4f} {bias:7.4f}")
    print(f"   lit-linreg / bare Lightning over the same data path = {rate['lit'] / rate['bare']:.2f} (target >= 0.95)")
    print(
        f"   lit-linreg / plain loop gathering each batch = {rate['lit'] / rate['plain']:.2f} (target >= 0.7); "
        f"/ plain loop, one gather per epoch = {rate['lit'] / rate['plain_once']:.2f}"
    )
    print(f"   bare Lightning / plain loop = {rate['bare'] / rate['plain']:.2f}")
    print(
        f"   bare Lightning + {added} idle callbacks (as many as lit-linreg's fit adds) / bare Lightning = "
        f"{rate['idle'] / rate['bare']:.2f}: what Lightning's per-step hook calls cost by themselves"
    )
    print(f"   lit-linreg / DataLoader = {rate['lit'] / rate['dataloader']:.0f} (target >= 50)")

    design = torch.cat([x.double(), torch.ones_like(x, dtype=torch.float64)], dim=1)
    solution = torch.linalg.lstsq(design, y.double()).solution[:, 0]
    print(
        f"\n3. Reference: float64 least squares on the plain loop's rows: weight {solution[0]:.4f}, "
        f"bias {solution[1]:.4f} (true: 0.7, 0.3)"
    )


def startup_section(repeats: int, also: Mapping[str, Sequence[str]] | None = None) -> None:
    """Wall seconds of fresh processes: lit-linreg's start-up against importing Lightning (and ``also``, e.g. another
    checkout's ``lit-linreg --help``)."""
    print(f"\n4. Start-up: a fresh process each, median of {repeats}")
    lit_linreg = str(Path(sys.executable).with_name("lit-linreg"))  # the console script beside this interpreter
    lightning_import = 'python -c "import lightning.pytorch"'
    commands = {
        "lit-linreg --help": [lit_linreg, "--help"],
        "lit-linreg fit --help": [lit_linreg, "fit", "--help"],
        lightning_import: [sys.executable, "-c", "import lightning.pytorch"],
        **(also or {}),
    }
    runs = {
        name: functools.partial(subprocess.run, args, capture_output=True, check=True)
        for name, args in commands.items()
    }
    results = interleaved(runs, repeats)
    print(f"   {'command':<44} {'seconds':>8} {'/ import lightning.pytorch':>27}")
    for name, (seconds, _) in results.items():
        print(f"   {name:<44} {seconds:8.3f} {seconds / results[lightning_import][0]:27.2f}")


def _coefficients(model: torch.nn.Module) -> tuple[torch.Tensor, torch.Tensor]:
    return model.coefficients() if hasattr(model, "coefficients") else model.model.coefficients()


def in_temporary_folder(function: Callable[[str], object]) -> object:
    with tempfile.TemporaryDirectory() as tmp, quiet():
        return function(tmp)


def quietly(function: Callable[[], object]) -> object:
    with quiet():
        return function()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=2_000_000, help="training rows for the scale section")
    parser.add_argument("--batch_size", type=int, default=8192)
    parser.add_argument("--dataloader_batches", type=int, default=100, help="DataLoader batches to time")
    parser.add_argument("--repeats", type=int, default=5, help="interleaved rounds per section (median reported)")
    parser.add_argument("--skip_scale", action="store_true")
    args = parser.parse_args()
    print(
        f"machine: {platform.processor() or platform.machine()} ({os.cpu_count()} cores), Python "
        f"{platform.python_version()}, torch {torch.__version__}, lightning {lightning.__version__}"
    )
    tutorial_section(args.repeats)
    if not args.skip_scale:
        scale_section(args.rows, args.batch_size, args.dataloader_batches, args.repeats)
    startup_section(args.repeats)


if __name__ == "__main__":
    main()

"""GPU check: lit-linreg on a CUDA machine, in one table, in under 5 minutes.

Run: python benchmarks/gpu_check.py            (a CUDA machine; --rows 20000000 --batch_size 65536 by default)
     python benchmarks/gpu_check.py --rows 200000 --batch_size 4096   (a dry run of the same code on a CPU)

1. ``fit --config configs/base.yaml`` with ``accelerator: auto``: which accelerator it picked, the time, the result.
2. Scale: one shuffled epoch over ``--rows`` noisy rows with batch ``--batch_size``, rows on the GPU: a plain loop vs
   lit-linreg's training epoch.
3. ``predict`` from step 1's checkpoint in a fresh Trainer.
"""

from __future__ import annotations

import argparse
import csv
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench import quiet  # noqa: E402
from recipes import TrainEpochTimer, plain_minibatch_epoch, scale_data, scale_fit_args  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]


def synchronized_seconds(function) -> tuple[float, object]:
    if torch.cuda.is_available():
        torch.cuda.synchronize()
    start = time.perf_counter()
    result = function()
    if torch.cuda.is_available():
        torch.cuda.synchronize()
    return time.perf_counter() - start, result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=20_000_000)
    parser.add_argument("--batch_size", type=int, default=65_536)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    device = "cuda" if torch.cuda.is_available() else "cpu"
    name = torch.cuda.get_device_name() if device == "cuda" else "no CUDA device: a CPU dry run"
    rows: list[tuple[str, str, str]] = []

    with tempfile.TemporaryDirectory() as root:
        seconds, cli = synchronized_seconds(lambda: _fit_base(root))
        weight, bias = (t.item() for t in cli.model.coefficients())
        rows.append(
            (
                "fit configs/base.yaml (accelerator: auto)",
                f"{type(cli.trainer.accelerator).__name__} {cli.trainer.strategy.root_device}",
                f"{seconds:.2f} s, w={weight:.4f} b={bias:.4f}",
            )
        )

        plain = _plain_epochs(args.rows, args.batch_size, device, args.repeats)
        lit = [_lit_epoch(args.rows, args.batch_size, device) for _ in range(args.repeats)]
        plain_rate, lit_rate = args.rows / statistics.median(plain), args.rows / statistics.median(lit)
        rows.append((f"plain loop, {args.rows:,} rows, batch {args.batch_size}", device, f"{plain_rate:,.0f} rows/s"))
        rows.append(
            (
                f"lit-linreg, {args.rows:,} rows, batch {args.batch_size}",
                device,
                f"{lit_rate:,.0f} rows/s ({lit_rate / plain_rate:.2f}x plain)",
            )
        )

        checkpoint = _written(root, "last.ckpt")  # the fit's, wherever the run layout puts it
        seconds, predict_cli = synchronized_seconds(lambda: _predict(checkpoint, root))
        with open(_written(root, "predictions.csv")) as file:
            predicted = list(csv.DictReader(file))
        rows.append(
            (
                f"predict --ckpt_path {checkpoint.relative_to(root)}",
                f"{type(predict_cli.trainer.accelerator).__name__}",
                f"{seconds:.2f} s, {len(predicted)} rows, first y_pred {float(predicted[0]['y_pred']):.4f}",
            )
        )

    print(f"\nGPU check on {name} (torch {torch.__version__})")
    width = max(len(r[0]) for r in rows)
    for label, where, result in rows:
        print(f"  {label:<{width}}  {where:<28}  {result}")


def _plain_epochs(rows: int, batch_size: int, device: str, repeats: int) -> list[float]:
    """Seconds of ``repeats`` plain-loop epochs over ``rows`` rows generated on the CPU and moved to ``device``."""
    x, y = scale_data(rows, device=device)
    return [synchronized_seconds(lambda: plain_minibatch_epoch(x, y, batch_size))[0] for _ in range(repeats)]


def _written(root: str, name: str) -> Path:
    """The one file called ``name`` that the commands so far wrote under ``root``."""
    found = list(Path(root).rglob(name))
    if len(found) != 1:
        raise SystemExit(f"gpu_check: expected one {name} under {root}, found {[str(p) for p in found]}")
    return found[0]


def _fit_base(root: str):
    return litlinreg_keep(root, "fit", "--config", str(ROOT / "configs" / "base.yaml"))


def _predict(checkpoint: Path, root: str):
    return litlinreg_keep(root, "predict", "--ckpt_path", str(checkpoint), "--trainer.enable_progress_bar", "false")


def _lit_epoch(rows: int, batch_size: int, device: str) -> float:
    with tempfile.TemporaryDirectory() as root:
        cli = litlinreg_keep(root, *scale_fit_args(rows, batch_size, "gpu" if device == "cuda" else "cpu"))
    return next(cb for cb in cli.trainer.callbacks if isinstance(cb, TrainEpochTimer)).seconds


def litlinreg_keep(root: str, *args: str):
    """``lit-linreg <args>`` in-process with outputs under ``root`` (kept for the next step)."""
    from lit_linreg.cli import LitLinregCLI

    with quiet():
        return LitLinregCLI(args=[*args, "--trainer.default_root_dir", root])


if __name__ == "__main__":
    main()

"""What each per-epoch habit costs on the tutorial recipe (500 epochs of 40 rows), measured, not guessed.

Run: .venv/bin/python benchmarks/overheads.py [--repeats 5]

Each line is one change to ``lit-linreg fit --config configs/base.yaml --figures.enabled false`` (or, for
``self.log``, to the bare Lightning loop), timed interleaved with its reference; the median difference is printed
in seconds per 500 epochs and in milliseconds per epoch.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench import ROOT, litlinreg, quiet  # noqa: E402
from recipes import bare_lightning_loop  # noqa: E402

BASE = ("fit", "--config", str(ROOT / "configs" / "base.yaml"), "--figures.enabled", "false")
CHANGES = {
    "progress bar redrawn every step (Lightning's default)": ("--trainer.enable_progress_bar", "true"),
    "last.ckpt every epoch (Lightning's default) instead of every 50": ("--last.every_n_epochs", "1"),
    "the best checkpoint checked every 50 epochs instead of every epoch": ("--checkpoint.every_n_epochs", "50"),
    "the four figures (drawn once, at the end)": ("--figures.enabled", "true"),
    "no TensorBoard logger at all": ("--trainer.logger", "false"),
}


def seconds(function) -> float:
    start = time.perf_counter()
    function()
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()

    print(f"{'change':<80} {'s/500 epochs':>13} {'ms/epoch':>9}")
    for label, extra in CHANGES.items():
        deltas = [
            seconds(lambda extra=extra: litlinreg(*BASE, *extra)) - seconds(lambda: litlinreg(*BASE))
            for _ in range(args.repeats)
        ]
        delta = statistics.median(deltas)
        print(f"{label:<80} {delta:+13.2f} {delta * 2:+9.2f}")

    for keys in (1, 12):
        deltas = []
        for _ in range(args.repeats):
            with quiet():
                deltas.append(
                    seconds(lambda keys=keys: bare_lightning_loop(minimal=True, log_keys=keys))
                    - seconds(lambda: bare_lightning_loop(minimal=True))
                )
        delta = statistics.median(deltas)
        label = f"self.log of {keys} epoch-level key{'s' if keys > 1 else ''} (in the bare Lightning loop)"
        print(f"{label:<80} {delta:+13.2f} {delta * 2:+9.2f}")


if __name__ == "__main__":
    main()

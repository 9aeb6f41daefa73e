"""Benchmark: the exact baselines (OLS and LAD in float64, what the report fits) against the training they judge.

Run: .venv/bin/python benchmarks/baselines_bench.py [--rows 200000] [--features 50] [--epochs 1000]

The training is the CSV config's work written as a plain loop, a lower bound on a fit's time: a linear model, the L1
loss, SGD at lr 0.05 on the full training split, 1000 epochs, each followed by a loss on a validation split of a
tenth of the rows. The baselines are ``build_report`` on the same rows: OLS by numpy's lstsq and LAD by HiGHS, plus
every model's errors. Timings on a shared machine vary; the ratio is what to read.
"""

from __future__ import annotations

import argparse
import time

import torch

from lit_linreg.report import LinearFit, build_report, least_absolute_deviations, ordinary_least_squares


def data(rows: int, features: int) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
    """Train and test splits in float64: a plane with Gaussian noise and 5 % one-sided outliers."""
    generator = torch.Generator().manual_seed(0)
    x = torch.randn(rows + rows // 10, features, generator=generator, dtype=torch.float64) * 3 + 10
    y = x @ torch.randn(features, 1, generator=generator, dtype=torch.float64) + 0.3
    y += torch.randn(y.shape, generator=generator, dtype=torch.float64)
    y[::20] += 5
    return {"train": (x[:rows], y[:rows]), "test": (x[rows:], y[rows:])}


def train(splits: dict[str, tuple[torch.Tensor, torch.Tensor]], epochs: int) -> tuple[float, LinearFit]:
    """Seconds for ``epochs`` full-batch epochs of L1 training (float32), and the learned line."""
    (x, y), (x_val, y_val) = ((x.float(), y.float()) for x, y in (splits["train"], splits["test"]))
    model = torch.nn.Linear(x.shape[1], 1)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.05)
    start = time.perf_counter()
    for _ in range(epochs):
        loss = torch.nn.functional.l1_loss(model(x), y)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        with torch.no_grad():
            torch.nn.functional.l1_loss(model(x_val), y_val)
    return time.perf_counter() - start, LinearFit(model.weight.detach()[0], model.bias.detach())


def seconds(function, *args) -> float:
    start = time.perf_counter()
    function(*args)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=200_000, help="training rows (the test split adds a tenth)")
    parser.add_argument("--features", type=int, default=50)
    parser.add_argument("--epochs", type=int, default=1000)
    args = parser.parse_args()
    splits = data(args.rows, args.features)
    training, learned = train(splits, args.epochs)
    report = seconds(build_report, learned, None, splits)
    lad, ols = (seconds(fit, *splits["train"]) for fit in (least_absolute_deviations, ordinary_least_squares))
    print(f"{args.rows:,} training rows x {args.features} features, torch on {torch.get_num_threads()} threads")
    print(f"training ({args.epochs} full-batch L1 epochs, a plain loop): {training:6.1f} s")
    print(f"baselines (build_report: OLS, LAD, errors): {report:6.1f} s  (alone: LAD {lad:.1f} s, OLS {ols:.1f} s)")
    print(f"baselines / training: {report / training:.2f}")


if __name__ == "__main__":
    main()

"""Benchmark: Parquet data streamed from disk against the same rows in memory (issue 21's numbers).

Run: .venv/bin/python benchmarks/parquet_bench.py [--rows 10000000] [--memory-rows 100000000] [--repeats 2]

1. Throughput: one training epoch (validation excluded) of the same rows and batch size, streamed by
   ParquetRegressionData with 0, 1 and 2 DataLoader workers, and held in memory (TensorBatches). Target >= 0.8x.
2. Memory: the peak RSS of `lit-linreg fit` on --memory-rows rows x 8 features, measured by `/usr/bin/time -v`
   (num_workers 0: all reading happens in the measured process). Target < 1.5 GB.
3. Accuracy: that fit's train MSE against the exact OLS fit's, both over every training row. Target within 1 %.

It prints ratios and never asserts a time. Datasets are written under --dir (default: a temporary folder) and deleted.
"""

from __future__ import annotations

import argparse
import gc
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import lightning as L
import numpy as np
import pyarrow.dataset as ds
import torch
from torch import Tensor

sys.path.insert(0, str(Path(__file__).resolve().parent))
from recipes import TrainEpochTimer  # noqa: E402

from lit_linreg.commands.make_data import write_parquet_dataset  # noqa: E402
from lit_linreg.data import RegressionDataModule  # noqa: E402
from lit_linreg.datasets.parquet import ParquetRegressionData  # noqa: E402
from lit_linreg.task import LinearRegressionTask  # noqa: E402

BATCH = 8192
CLASS_PATH = "lit_linreg.datasets.parquet.ParquetRegressionData"


class InMemory(RegressionDataModule):
    """The same rows as tensors: the in-memory path (TensorBatches, one gather per epoch, then slices)."""

    def __init__(self, x: Tensor, y: Tensor) -> None:
        super().__init__(batch_size=BATCH)
        self.x, self.y = x, y

    @property
    def num_features(self) -> int:
        return self.x.shape[1]

    def build_rows(self) -> tuple[Tensor, Tensor]:
        return self.x, self.y


def epoch_seconds(data: RegressionDataModule) -> float:
    """Seconds of one training epoch (validation off) of the linear task on ``data``."""
    torch.manual_seed(0)
    timer = TrainEpochTimer()
    trainer = L.Trainer(
        max_epochs=1,
        limit_val_batches=0,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        callbacks=[timer],
    )
    trainer.fit(LinearRegressionTask(in_features=data.num_features), data)
    return timer.seconds


def throughput(folder: Path, rows: int, repeats: int) -> None:
    print(f"1. Throughput: one training epoch over {int(0.8 * rows):,} rows x 8 features, batch {BATCH}, CPU")
    table = ds.dataset(folder, format="parquet").to_table()
    x = torch.from_numpy(np.column_stack([table.column(f"x{i}").to_numpy() for i in range(8)]))
    y = torch.from_numpy(table.column("y").to_numpy().reshape(-1, 1).copy())
    del table
    runs = {"memory": lambda: InMemory(x, y)}
    for workers in (0, 1, 2):
        runs[f"parquet{workers}"] = lambda w=workers: ParquetRegressionData(
            str(folder), "y", batch_size=BATCH, num_workers=w
        )
    seconds: dict[str, list[float]] = {name: [] for name in runs}
    for _ in range(repeats):  # interleaved, medians: a shared machine's timings vary from run to run
        for name, make in runs.items():
            gc.collect()
            seconds[name].append(epoch_seconds(make()))
    rate = {name: int(0.8 * rows) / statistics.median(values) for name, values in seconds.items()}
    print(f"   {'data path':<44} {'rows/s':>12} {'x memory':>9}")
    print(f"   {'in memory (TensorBatches)':<44} {rate['memory']:12,.0f} {1:9.2f}")
    for workers in (0, 1, 2):
        label = f"Parquet, streamed, num_workers={workers}"
        print(f"   {label:<44} {rate[f'parquet{workers}']:12,.0f} {rate[f'parquet{workers}'] / rate['memory']:9.2f}")
    print("   target: streamed / in memory >= 0.8 with 1 and with 2 workers")


def memory_and_accuracy(folder: Path, rows: int) -> None:
    size = sum(f.stat().st_size for f in folder.iterdir())
    print(
        f"\n2. Memory: lit-linreg fit, 1 epoch, on {rows:,} rows x 8 features ({size / 1e9:.2f} GB of Parquet on disk)"
    )
    time_binary = shutil.which("time", path="/usr/bin")
    if time_binary is None:
        print("   skipped: /usr/bin/time is missing (apt-get install time)")
        return
    root = folder.parent / "run"
    command = [
        sys.executable, "-m", "lit_linreg", "fit",
        "--data.class_path", CLASS_PATH, "--data.path", str(folder), "--data.target", "y",
        "--data.batch_size", str(BATCH), "--data.standardize", "true",
        "--trainer.max_epochs", "1", "--trainer.enable_progress_bar", "false", "--trainer.default_root_dir", str(root),
    ]  # fmt: skip
    print(f"   $ /usr/bin/time -v lit-linreg {' '.join(command[3:])}")
    start = time.perf_counter()
    result = subprocess.run([time_binary, "-v", *command], capture_output=True, text=True)
    if result.returncode:
        print(result.stdout[-3000:], result.stderr[-3000:])
        return
    peak = int(re.search(r"Maximum resident set size \(kbytes\): (\d+)", result.stderr).group(1)) * 1024  # type: ignore[union-attr]
    in_memory = rows * 9 * 4
    print(
        f"   peak RSS {peak / 1e9:.2f} GB (target < 1.5 GB) in {time.perf_counter() - start:.0f} s; the rows alone, "
        f"as float32 tensors, would take {in_memory / 1e9:.1f} GB ({in_memory / peak:.1f}x)"
    )
    print("\n3. Accuracy of that fit, over every training row (float64 moments of the training split)")
    checkpoint = next(root.rglob("last.ckpt"))
    task = LinearRegressionTask.load_from_checkpoint(checkpoint, map_location="cpu")
    data = ParquetRegressionData(str(folder), "y")
    learned = data.exact_mse(*task.coefficients())
    exact = data.exact_mse(*data.exact_ols())
    print(f"   train MSE: streamed fit {learned:.6f}, exact OLS {exact:.6f}: {learned / exact:.4f}x (target <= 1.01)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=10_000_000, help="rows of the throughput dataset (0: skip)")
    parser.add_argument("--memory-rows", type=int, default=100_000_000, help="rows of the memory dataset (0: skip)")
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--dir", default=None, help="where to write the datasets (default: a temporary folder)")
    args = parser.parse_args()
    print(f"torch {torch.__version__}, lightning {L.__version__}, {torch.get_num_threads()} CPU threads")
    work = Path(tempfile.mkdtemp(prefix="parquet_bench_", dir=args.dir))
    try:
        if args.rows:
            start = time.perf_counter()
            write_parquet_dataset(str(work / "small"), rows=args.rows, features=8)
            print(f"   (written in {time.perf_counter() - start:.0f} s)")
            throughput(work / "small", args.rows, args.repeats)
            shutil.rmtree(work / "small")
        if args.memory_rows:
            start = time.perf_counter()
            write_parquet_dataset(str(work / "large"), rows=args.memory_rows, features=8)
            print(f"   (written in {time.perf_counter() - start:.0f} s)")
            memory_and_accuracy(work / "large", args.memory_rows)
    finally:
        shutil.rmtree(work)


if __name__ == "__main__":
    main()

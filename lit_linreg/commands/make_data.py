"""``lit-linreg make-data``: example data to fit, an example CSV and rows to predict (the default) or a folder of
Parquet files larger than memory (``--format parquet``).

Run: lit-linreg make-data && lit-linreg fit --config configs/csv_example.yaml
"""

from __future__ import annotations

import math
import os
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from lit_linreg.commands import command_parser
from lit_linreg.errors import require
from lit_linreg.files import write_csv

# The example data of `lit-linreg make-data`: features on different scales, Gaussian noise and one-sided outliers.
EXAMPLE_FEATURES = {"x1": (0.0, 1.0, 0.7), "x2": (0.0, 10.0, -0.2), "x3": (-50.0, 50.0, 0.03)}  # low, high, weight
EXAMPLE_BIAS = 0.3


def make_data(
    out: str = "data/example.csv",
    new_rows_out: str = "data/new_rows.csv",
    rows: int = 1000,
    new_rows: int = 10,
    noise_std: float = 0.05,
    outliers: float = 0.05,
    seed: int = 0,
    scale: float = 1.0,
) -> None:
    """Write an example CSV, y = 0.7*x1 - 0.2*x2 + 0.03*x3 + 0.3 + noise with a few outliers, and a CSV of new rows
    (features only) to predict. Then: lit-linreg fit --config configs/csv_example.yaml

    Args:
        out: the training CSV
        new_rows_out: the CSV of new rows
        rows: rows in the training CSV
        new_rows: rows in the new-rows CSV
        noise_std: standard deviation of the Gaussian noise on y
        outliers: fraction of rows whose y is shifted up by 2 to 6
        seed: the data's seed
        scale: multiplies y (noise and outliers included): e.g. 200 for a target in the hundreds, as real tables have
    """
    require(rows > 0 and new_rows > 0, f"--rows and --new_rows must be > 0, got {rows}, {new_rows}")
    require(math.isfinite(noise_std) and noise_std >= 0, f"--noise_std must be >= 0, got {noise_std}")
    require(0 <= outliers <= 1, f"--outliers must be a fraction between 0 and 1, got {outliers}")
    require(
        math.isfinite(scale) and scale != 0 and abs(scale) <= 1e30, f"--scale must be a non-zero number, got {scale}"
    )
    for option, path in (("--out", out), ("--new_rows_out", new_rows_out)):
        require(
            not Path(path).is_dir(), f"{option} {path} is a folder; give a file path, e.g. {Path(path) / 'example.csv'}"
        )
    require(
        Path(out).resolve() != Path(new_rows_out).resolve(), f"--out and --new_rows_out are both {out}; give two files"
    )
    generator = torch.Generator().manual_seed(seed)
    lows, highs, weights = (torch.tensor(v, dtype=torch.float64) for v in zip(*EXAMPLE_FEATURES.values()))

    def features(count: int) -> Tensor:
        return lows + (highs - lows) * torch.rand(count, len(lows), generator=generator, dtype=torch.float64)

    x = features(rows)
    y = x @ weights + EXAMPLE_BIAS + noise_std * torch.randn(rows, generator=generator, dtype=torch.float64)
    shifted = torch.rand(rows, generator=generator, dtype=torch.float64) < outliers
    y += shifted * (2 + 4 * torch.rand(rows, generator=generator, dtype=torch.float64))
    y *= scale
    names = list(EXAMPLE_FEATURES)
    write_csv(out, [*names, "y"], [*x.T, y])
    write_csv(new_rows_out, names, list(features(new_rows).T))
    print(
        f"wrote {out} ({rows} rows: {', '.join(names)} -> y, {int(shifted.sum())} outliers) and {new_rows_out} "
        f"({new_rows} rows of {', '.join(names)})",
        flush=True,
    )


def write_parquet_dataset(
    out: str = "data/large",
    rows: int = 10_000_000,
    features: int = 8,
    noise_std: float = 0.1,
    weight: list[float] | None = None,
    bias: float = 0.3,
    seed: int = 0,
    rows_per_file: int = 10_000_000,
    row_group_rows: int = 131_072,
) -> Path:
    """Write y = x·weight + bias + noise as a folder of Parquet files (float32 columns x0, x1, ..., y), with x and
    the noise Gaussian, one file after another in bounded memory. Then: lit-linreg fit --data.class_path
    lit_linreg.datasets.parquet.ParquetRegressionData --data.path <out> --data.target y

    Args:
        out: the folder to create (it must not exist, or be empty)
        rows: rows in all
        features: columns of x
        noise_std: standard deviation of the Gaussian noise on y
        weight: one weight per feature; null: 0.7, 0.5, 0.3, ... (0.2 apart)
        bias: the bias
        seed: the data's seed (file i draws from (seed, i), so files can be written in any order)
        rows_per_file: rows per file
        row_group_rows: rows per row group: the unit that the loader reads and shuffles
    """
    for name, value in (("rows", rows), ("features", features), ("rows_per_file", rows_per_file)):
        require(isinstance(value, int) and value > 0, f"--{name} must be a positive integer, got {value!r}")
    require(
        isinstance(row_group_rows, int) and row_group_rows > 0, f"--row_group_rows must be > 0, got {row_group_rows}"
    )
    require(math.isfinite(noise_std) and noise_std >= 0, f"--noise_std must be >= 0, got {noise_std}")
    w = np.array([round(0.7 - 0.2 * i, 10) for i in range(features)] if weight is None else weight, np.float32)
    require(w.shape == (features,), f"--weight has {len(w)} values but --features is {features}")
    folder = Path(out)
    require(
        not folder.is_file() and not (folder.is_dir() and any(folder.iterdir())),
        f"{out} exists and is not empty; choose a new --out",
    )
    folder.mkdir(parents=True, exist_ok=True)
    import pyarrow as pa  # here: a CSV needs no pyarrow
    import pyarrow.parquet as pq

    names = [f"x{i}" for i in range(features)]
    schema = pa.schema([(name, pa.float32()) for name in [*names, "y"]])
    files = math.ceil(rows / rows_per_file)
    for index in range(files):
        rng = np.random.default_rng([seed % 2**64, index])
        path = folder / f"part-{index:05d}.parquet"
        tmp = folder / f".{path.name}.tmp"  # hidden, so a reader skips it until it is complete
        # Random floats never repeat and do not compress: a dictionary or a codec would only cost time (a dictionary
        # also 1.5x the size on disk).
        with pq.ParquetWriter(tmp, schema, use_dictionary=False, compression="none") as writer:
            left = min(rows_per_file, rows - index * rows_per_file)
            while left:
                n = min(row_group_rows, left)
                x = rng.standard_normal((features, n), dtype=np.float32)  # a row per column: no copy for pyarrow
                y = w @ x + np.float32(bias) + np.float32(noise_std) * rng.standard_normal(n, dtype=np.float32)
                writer.write_table(pa.Table.from_arrays([*x, y], schema=schema), row_group_size=n)
                left -= n
        os.replace(tmp, path)
    print(f"wrote {out}: {rows:,} rows of {', '.join(names)} -> y in {files} Parquet file(s)", flush=True)
    return folder


def main(argv: list[str]) -> None:
    """``lit-linreg make-data [--format csv|parquet] [options]``: the example CSV (the default), or a folder of Parquet
    files; the other options go to that writer."""
    options, data_format, args = [], "csv", iter(argv)
    for arg in args:
        name, equals, value = arg.partition("=")
        if name == "--format":
            data_format = value if equals else next(args, "")
        else:
            options.append(arg)
    require(data_format in ("csv", "parquet"), f"make-data --format must be csv or parquet, got {data_format!r}")
    write = write_parquet_dataset if data_format == "parquet" else make_data
    prog = "lit-linreg make-data" + (" --format parquet" if data_format == "parquet" else "")
    write(**command_parser(prog, write).parse_args(options).as_dict())


__all__ = ["main", "make_data", "write_parquet_dataset"]

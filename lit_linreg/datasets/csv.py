"""Your own data: a CSV file with a header, one target column and numeric feature columns.

Run: lit-linreg make-data && lit-linreg fit --config configs/csv_example.yaml
"""

from __future__ import annotations

import math
from typing import Literal

import torch
from jsonargparse.typing import ClosedUnitInterval, OpenUnitInterval, PositiveInt
from lightning.pytorch.utilities import rank_zero_warn
from torch import Tensor

from lit_linreg.data import RegressionDataModule, Seed
from lit_linreg.datasets.csv_reader import check_delimiter, decimal_comma, is_number, read_columns, read_head
from lit_linreg.errors import UserError, require
from lit_linreg.storage.files import write_csv


class CSVRegressionData(RegressionDataModule):
    """Rows of a CSV file with a header: ``target`` is y, ``features`` (default: every other numeric column) are x.

    A column counts as numeric when its first data row holds a number. Column names match without their surrounding
    spaces (`` x1`` in the header is ``x1``; ``x 1`` stays ``x 1``). ``delimiter`` separates the values (``,``, ``;``,
    ``|`` or a tab, written ``\t``), in ``csv_path`` and ``predict_csv`` alike. The file is read and checked at
    construction: a bad file, column or value stops with one line naming the file, line and column. ``standardize``
    makes the model scale each feature by the training split's mean and standard deviation (kept in every checkpoint,
    so ``predict`` applies the same transform to new rows). ``predict_csv`` names a CSV of new rows holding at least
    the feature columns (and the target, if known, for errors); without it ``predict`` predicts the test split.

    Args:
        csv_path: the CSV file, with a header row
        target: the column that holds y
        features: the columns that hold x; null: every other column whose first data row holds a number
        standardize: scale each feature by the training split's mean and std (kept in every checkpoint)
        train_split: fraction of the rows to train on, taken first (the tutorial's 0.8: 80 % train, 20 % test)
        val_split: fraction of the rows to validate on, taken after the training rows; 0: validate on the test split
        split: ``sequential`` (rows in order, as the tutorial) or ``random`` (shuffled once by ``seed``, then split)
        batch_size: rows per batch; null: each split is one batch (the tutorial's full-batch gradient descent)
        shuffle: shuffle the training rows every epoch (seeded by ``seed`` and the epoch) when there are several batches
        seed: seeds the random split and the shuffle (never the model's initialisation)
        delimiter: the character between values: ``,`` (default), ``;``, ``|`` or a tab (``\t``)
        predict_csv: a CSV of new rows for ``predict``, with the feature columns (and the target, if known); null: the
            test split
    """

    def __init__(
        self,
        csv_path: str,
        target: str,
        features: list[str] | None = None,
        standardize: bool = False,
        train_split: OpenUnitInterval = 0.8,
        val_split: ClosedUnitInterval = 0.0,
        split: Literal["sequential", "random"] = "sequential",
        batch_size: PositiveInt | None = None,
        shuffle: bool = True,
        seed: Seed = 0,
        predict_csv: str | None = None,
        delimiter: str = ",",
    ) -> None:
        super().__init__(train_split, val_split, split, batch_size, shuffle, seed)
        self.save_hyperparameters(logger=False)  # the report callback logs every run's settings
        self.standardize = standardize
        self.delimiter = delimiter = check_delimiter(delimiter)
        target, features = target.strip(), None if features is None else [name.strip() for name in features]
        header, first = read_head(csv_path, "data.csv_path", delimiter)
        columns = ", ".join(header)
        require(target in header, f"{csv_path} has no column {target!r} (columns: {columns}); set data.target")
        if features is None:
            features = [name for name, cell in zip(header, first) if name != target and is_number(cell)]
            skipped = [name for name in header if name != target and name not in features]
            for name, cell in zip(header, first):
                point = decimal_comma(cell) if name in skipped else None
                require(
                    not point,
                    f"{csv_path} line 2, column {name!r}: {cell!r} has a decimal comma; write numbers with a decimal "
                    f"point ({point})",
                )
            if skipped:
                rank_zero_warn(f"{csv_path}: not numeric in line 2, so not used as features: {', '.join(skipped)}")
        unknown = [name for name in features if name not in header]
        require(not unknown, f"data.features names {unknown} that {csv_path} lacks (columns: {columns})")
        require(len(features) > 0, f"{csv_path} has no numeric feature column besides the target {target!r}")
        require(target not in features, f"data.features must not include the target column {target!r}")
        require(len(set(features)) == len(features), f"data.features names a column twice: {features}")
        self._feature_names, self.target = list(features), target
        values = torch.from_numpy(read_columns(csv_path, header, [*features, target], delimiter))
        self.x, self.y = values[:, :-1].float(), values[:, -1:].float()
        try:
            self.check_split_sizes(len(self.x))
        except UserError as err:
            raise UserError(f"{csv_path}: {err}") from None
        self.predict_values = None if predict_csv is None else self._read_predict_rows(predict_csv)

    @property
    def num_features(self) -> int:
        return len(self._feature_names)

    @property
    def feature_names(self) -> list[str]:
        return self._feature_names

    def build_rows(self) -> tuple[Tensor, Tensor]:
        return self.x, self.y

    def build_predict_rows(self) -> tuple[Tensor, ...]:
        return super().build_predict_rows() if self.predict_values is None else self.predict_values

    def feature_stats(self) -> tuple[Tensor, Tensor] | None:
        """Mean and population standard deviation of each feature over the training split (None without standardize)."""
        if not self.standardize:
            return None
        x = self.splits["train"][0].cpu().double()
        mean, std = x.mean(0), x.std(0, correction=0)
        constant = [name for name, s in zip(self.feature_names, std.tolist()) if s == 0]
        require(
            not constant,
            f"data.standardize: feature(s) {', '.join(constant)} are constant on the training split (standard "
            f"deviation 0); leave them out of data.features or set data.standardize false",
        )
        return mean.float(), std.float()

    def _read_predict_rows(self, path: str) -> tuple[Tensor, ...]:
        header, _ = read_head(path, "data.predict_csv", self.delimiter)
        missing = [name for name in self.feature_names if name not in header]
        require(not missing, f"data.predict_csv {path} lacks the feature column(s) {', '.join(missing)}")
        names = [*self.feature_names, *([self.target] if self.target in header else [])]
        values = torch.from_numpy(read_columns(path, header, names, self.delimiter)).float()
        x = values[:, : self.num_features]
        return (x,) if len(names) == self.num_features else (x, values[:, -1:])


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
    """
    require(rows > 0 and new_rows > 0, f"--rows and --new_rows must be > 0, got {rows}, {new_rows}")
    require(math.isfinite(noise_std) and noise_std >= 0, f"--noise_std must be >= 0, got {noise_std}")
    require(0 <= outliers <= 1, f"--outliers must be a fraction between 0 and 1, got {outliers}")
    generator = torch.Generator().manual_seed(seed)
    lows, highs, weights = (torch.tensor(v, dtype=torch.float64) for v in zip(*EXAMPLE_FEATURES.values()))

    def features(count: int) -> Tensor:
        return lows + (highs - lows) * torch.rand(count, len(lows), generator=generator, dtype=torch.float64)

    x = features(rows)
    y = x @ weights + EXAMPLE_BIAS + noise_std * torch.randn(rows, generator=generator, dtype=torch.float64)
    shifted = torch.rand(rows, generator=generator, dtype=torch.float64) < outliers
    y += shifted * (2 + 4 * torch.rand(rows, generator=generator, dtype=torch.float64))
    names = list(EXAMPLE_FEATURES)
    write_csv(out, [*names, "y"], [*x.T, y])
    write_csv(new_rows_out, names, list(features(new_rows).T))
    print(
        f"wrote {out} ({rows} rows: {', '.join(names)} -> y, {int(shifted.sum())} outliers) and {new_rows_out} "
        f"({new_rows} rows of {', '.join(names)})",
        flush=True,
    )


def make_data_main(argv: list[str]) -> None:
    """``lit-linreg make-data [options]``: :func:`make_data` with the options of ``argv``."""
    from lit_linreg.commands import command_parser  # here: the data classes need no command-line parser

    make_data(**command_parser("lit-linreg make-data", make_data).parse_args(argv).as_dict())


__all__ = ["CSVRegressionData", "make_data", "make_data_main"]

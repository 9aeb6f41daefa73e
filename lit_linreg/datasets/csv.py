"""Your own data: a CSV file with a header, one target column and feature columns of numbers or categories.

Run: lit-linreg make-data && lit-linreg fit --config configs/csv_example.yaml
"""

from __future__ import annotations

import math
from typing import Literal

import numpy as np
import torch
from jsonargparse.typing import ClosedUnitInterval, OpenUnitInterval, PositiveInt
from lightning.pytorch.utilities import rank_zero_only
from torch import Tensor

from lit_linreg.data import FLOAT32_MAX, RegressionDataModule, Seed
from lit_linreg.datasets import check_columns, check_target
from lit_linreg.datasets.csv_reader import Cells, check_delimiter, decimal_comma, is_number, read_cells, read_head
from lit_linreg.errors import UserError, echo, require

UNWRITABLE = (",", '"', "\n", "\r")  # characters that a name in predictions.csv's header cannot hold


class CSVRegressionData(RegressionDataModule):
    """Rows of a CSV file with a header: ``target`` is y, ``features`` (default: every other column of numbers, and the
    ``categorical`` ones) are x.

    A column holds numbers when every cell that is not missing is a number; a column of text is used only when
    ``categorical`` names it, one-hot encoded without its first level (treatment coding: the model's bias stands for
    that level), so ``sex`` with levels F and M becomes the feature ``sex[M]``. Column names match without their
    surrounding spaces. The file is read and checked at construction: a bad file, column or value stops with one line
    naming the file, line and column. Its values are kept in float64 for the exact baselines; the model trains on them
    in float32.

    Args:
        csv_path: the CSV file, with a header row
        target: the column that holds y
        features: the columns that hold x; null: every other column of numbers, and the categorical ones
        standardize: scale each feature by the training split's mean and std (kept in every checkpoint)
        train_split: fraction of the rows to train on, taken first (the tutorial's 0.8: 80 % train, 20 % test)
        val_split: fraction of the rows to validate on, taken after the training rows; 0: validate on the test split
        split: ``sequential`` (rows in order, as the tutorial) or ``random`` (shuffled once by ``seed``, then split)
        batch_size: rows per batch; null: each split is one batch (the tutorial's full-batch gradient descent)
        shuffle: shuffle the training rows every epoch (seeded by ``seed`` and the epoch) when there are several batches
        seed: seeds the random split and the shuffle (never the model's initialisation)
        predict_csv: a CSV of new rows for ``predict``, with the feature columns (and the target, if known); null: the
            test split
        delimiter: the character between values: ``,`` (default), ``;``, ``|`` or a tab (``\t``)
        missing: a missing value in a used column: ``error`` (names the line and column) or ``drop`` (drops its row)
        categorical: columns of categories (text, or codes such as 1/2) to one-hot encode, without their first level
        levels: each categorical column's levels, the first one left out; null: the training file's, sorted (a
            checkpoint keeps them)
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
        missing: Literal["error", "drop"] = "error",
        categorical: list[str] | None = None,
        levels: dict[str, list[str]] | None = None,
    ) -> None:
        super().__init__(train_split, val_split, split, batch_size, shuffle, seed)
        self.save_hyperparameters(logger=False)  # the report callback logs every run's settings
        self.standardize, self.missing = standardize, missing
        self.delimiter = delimiter = check_delimiter(delimiter)
        self.target = target = target.strip()
        categorical = [name.strip() for name in categorical or []]
        header, _ = read_head(csv_path, "data.csv_path", delimiter)
        check_target(csv_path, header, target)
        check_columns("data.categorical", categorical, csv_path, header, target)
        cells = read_cells(csv_path, header, delimiter, [header.index(name) for name in categorical])
        if features is None:
            features = self._default_features(cells, categorical)
        else:
            features = [name.strip() for name in features]
            check_columns("data.features", features, csv_path, header, target)
            left_out = [name for name in categorical if name not in features]
            require(not left_out, f"data.categorical names {left_out}, which data.features leaves out; add them")
        require(
            len(features) > 0,
            f"{csv_path} has no feature column of numbers besides the target {target!r}; name a text column in "
            f"data.categorical to one-hot encode it",
        )
        self.feature_columns = features  # the file's columns that the features come from
        rows = self._rows_kept(cells, [*features, target])
        self.levels = self._levels(cells, rows, categorical, levels)
        if self.levels:
            self.hparams["levels"] = self.levels  # in every checkpoint, so predict encodes new rows alike
        self._feature_names: list[str] = []
        for column in features:
            coded = self.levels.get(column)
            self._feature_names += [f"{column}[{level}]" for level in coded[1:]] if coded else [column]
        for name in [*self._feature_names, target]:
            require(
                not any(c in name for c in UNWRITABLE),
                f"{csv_path}: the feature or target name {name!r} holds a comma, quote or line break, which the header "
                f"of predictions.csv cannot hold; rename that column (or recode that category) in the file",
            )
        x, y = self._encode(cells, rows, target=True)
        self.x64, self.y64 = torch.from_numpy(x), torch.from_numpy(y)
        self.x, self.y = self.x64.float(), self.y64.float()
        self.check_split_sizes(len(self.x), csv_path)
        self.predict_values = None if predict_csv is None else self._read_predict_rows(predict_csv)

    @property
    def num_features(self) -> int:
        return len(self._feature_names)

    @property
    def feature_names(self) -> list[str]:
        """The features' names: the columns of numbers, and ``column[level]`` for each one-hot encoded level."""
        return self._feature_names

    def build_rows(self) -> tuple[Tensor, Tensor]:
        return self.x, self.y

    def exact_rows(self) -> tuple[Tensor, Tensor]:
        """The file's values in float64, as the exact baselines need them (the model trains on them in float32)."""
        return self.x64, self.y64

    def build_predict_rows(self) -> tuple[Tensor, ...]:
        return super().build_predict_rows() if self.predict_values is None else self.predict_values

    def _default_features(self, cells: Cells, categorical: list[str]) -> list[str]:
        """Every column of numbers besides the target, and the categorical ones, in the file's order; one line names
        the columns left out (text or empty). A column mostly of numbers with a text cell is an error at that cell."""
        features, unused = [], []
        for i, name in enumerate(cells.header):
            if name == self.target:
                continue
            text = int(cells.text[:, i].sum())
            numbers = len(cells.text) - text - int(cells.missing[:, i].sum())
            first = int(np.argmax(cells.text[:, i]))  # the row of its first text cell, if it has one
            if name in categorical or (numbers and not text):
                features.append(name)
            elif text and (numbers >= text or decimal_comma(cells.cell(cells.line(first), i))):
                raise _not_a_number(cells, first, i, categories=False)
            else:
                unused.append(f"{name} ({'text' if text else 'empty'})")
        if unused:
            rank_zero_only(echo)(
                f"warning: {cells.path}: not used as features: {', '.join(unused)}; to one-hot encode a text column, "
                f"name it in data.categorical"
            )
        return features

    def _rows_kept(self, cells: Cells, names: list[str]) -> np.ndarray:
        """The rows to use: all of them, or with ``missing: drop`` those without a missing cell in the ``names``
        columns (one line counts the others)."""
        missing = np.any(cells.missing[:, [cells.header.index(name) for name in names]], axis=1)
        if self.missing == "error" or not missing.any():
            return np.arange(len(missing))
        dropped = np.flatnonzero(missing)
        lines = ", ".join(str(cells.line(row)) for row in dropped[:5]) + (", ..." if len(dropped) > 5 else "")
        rank_zero_only(echo)(
            f"{cells.path}: dropped {len(dropped):,} of {len(missing):,} rows for a missing value "
            f"(line{'s' if len(dropped) > 1 else ''} {lines}); {len(missing) - len(dropped):,} rows left"
        )
        return np.flatnonzero(~missing)

    def _levels(
        self, cells: Cells, rows: np.ndarray, categorical: list[str], given: dict[str, list[str]] | None
    ) -> dict[str, list[str]]:
        """Each categorical column's levels: the ``given`` ones, else those in its rows, sorted (numbers by value)."""
        given = given or {}
        unknown = [name for name in given if name not in categorical]
        require(not unknown, f"data.levels names {unknown}, which data.categorical does not; add them to it")
        levels = {}
        for name in categorical:
            i = cells.header.index(name)
            if name in given:
                found = [str(level).strip() for level in given[name]]
                require(len(set(found)) == len(found), f"data.levels[{name}] names a level twice: {given[name]}")
            else:
                seen = {cells.strings[i][row] for row in rows if not cells.missing[row, i]}
                found = sorted(seen, key=lambda level: (0, float(level), "") if is_number(level) else (1, 0, level))
            require(
                len(found) >= 2,
                f"{cells.path}: the categorical column {name!r} has {len(found)} level(s) {found}: without its first "
                f"level it adds no feature; leave it out of data.categorical and data.features",
            )
            levels[name] = found
        return levels

    def _encode(self, cells: Cells, rows: np.ndarray, target: bool) -> tuple[np.ndarray, np.ndarray]:
        """The features (rows, num_features) and the target (rows, 1; empty without ``target``) of ``rows``, in
        float64; a cell that is missing (with ``missing: error``), text, not finite, beyond float32 or an unknown
        level is an error at the first such cell."""
        names = [*self.feature_columns, *([self.target] if target else [])]
        bad = np.zeros((len(rows), len(names)), dtype=bool)
        for j, name in enumerate(names):
            i = cells.header.index(name)
            missing = cells.missing[rows, i]
            if name in self.levels:
                known = set(self.levels[name])
                bad[:, j] = [cells.strings[i][row] not in known for row in rows] & ~missing
            else:
                bad[:, j] = cells.text[rows, i] | ~(np.abs(cells.numbers[rows, i]) <= FLOAT32_MAX) & ~missing
            if self.missing == "error":
                bad[:, j] |= missing
        if bad.any():
            row, j = np.argwhere(bad)[0]
            raise self._cell_error(cells, int(rows[row]), names[j], cells.header.index(names[j]))
        parts = []
        for name in self.feature_columns:
            i = cells.header.index(name)
            if name in self.levels:
                code = {level: k for k, level in enumerate(self.levels[name])}
                codes = np.array([code[cells.strings[i][row]] for row in rows])
                parts.append(codes[:, None] == np.arange(1, len(code))[None, :])
            else:
                parts.append(cells.numbers[rows, i : i + 1])
        y = cells.numbers[rows, cells.header.index(self.target)] if target else np.zeros(0)
        return np.hstack(parts).astype(np.float64), y.reshape(-1, 1)

    def _cell_error(self, cells: Cells, row: int, name: str, i: int) -> UserError:
        where = f"{cells.path} line {cells.line(row)}, column {name!r}"
        if cells.missing[row, i]:
            return UserError(
                f"{where} is missing (empty, NA or NaN); fill or remove the row, or set data.missing drop to drop "
                f"the rows with a missing value"
            )
        if name in self.levels:
            return UserError(
                f"{where}: {cells.strings[i][row]!r} is not one of the levels {self.levels[name]} that the model "
                f"was trained with; fix the value, or retrain with data that hold it"
            )
        if cells.text[row, i]:  # a column mostly of text, named as a feature, is likely one of categories
            categories = name != self.target and 2 * cells.text[:, i].sum() > (~cells.missing[:, i]).sum()
            return _not_a_number(cells, row, i, categories)
        value = cells.numbers[row, i]
        if math.isfinite(value):
            return UserError(
                f"{where}: {value:g} is beyond float32's range (±{FLOAT32_MAX:.3g}), in which the model computes; "
                f"rescale the column (e.g. into thousands) or fix the row"
            )
        return UserError(f"{where}: '{value:g}' is not a finite number; fix or remove the row")

    def _read_predict_rows(self, path: str) -> tuple[Tensor, ...]:
        header, _ = read_head(path, "data.predict_csv", self.delimiter)
        lacking = [name for name in self.feature_columns if name not in header]
        require(not lacking, f"data.predict_csv {path} lacks the feature column(s) {', '.join(lacking)}")
        cells = read_cells(path, header, self.delimiter, [header.index(name) for name in self.levels])
        known = self.target in header and not cells.missing[:, header.index(self.target)].all()
        rows = self._rows_kept(cells, [*self.feature_columns, *([self.target] if known else [])])
        x, y = (torch.from_numpy(values).float() for values in self._encode(cells, rows, known))
        return (x, y) if known else (x,)


def _not_a_number(cells: Cells, row: int, i: int, categories: bool) -> UserError:
    """The error for a text cell used as a number (a column of ``categories`` gets that advice)."""
    line = cells.line(row)
    cell = cells.cell(line, i)
    where = f"{cells.path} line {line}, column {cells.header[i]!r}"
    point = decimal_comma(cell)
    if point:
        return UserError(f"{where}: {cell!r} has a decimal comma; write numbers with a decimal point ({point})")
    if not categories:
        return UserError(f"{where}: {cell!r} is not a number; fix or remove the row")
    return UserError(
        f"{where}: {cell!r} is text, not a number; to use a column of categories, name it in data.categorical "
        f"(one-hot encoded), else leave it out of data.features"
    )


__all__ = ["CSVRegressionData"]

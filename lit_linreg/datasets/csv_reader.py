"""Reading a CSV file with a header into float64 columns, every problem one line naming the file, line and column.

The numbers are parsed by numpy's C reader; only when it fails does a second, row-by-row pass find the first bad row
and say what is wrong with it.
"""

from __future__ import annotations

import csv
import math
from collections.abc import Generator
from pathlib import Path

import numpy as np

from lit_linreg.errors import UserError, require


def is_number(cell: str) -> bool:
    """Whether ``cell`` reads as a float (NaN and infinity included)."""
    try:
        float(cell)
    except ValueError:
        return False
    return True


def _csv_rows(path: str) -> Generator[tuple[int, list[str]], None, None]:
    """(line number, fields) of each non-blank line of the CSV file at ``path``, the header first."""
    reader = None
    try:
        with open(path, encoding="utf-8-sig", newline="") as file:
            reader = csv.reader(file)
            for row in reader:
                if row:
                    yield reader.line_num, row
    except UnicodeDecodeError as err:
        raise UserError(f"{path} is not a UTF-8 text file; save it as UTF-8 CSV") from err
    except csv.Error as err:
        raise UserError(f"{path} line {reader.line_num if reader else 1}: {err}; is it a CSV file?") from err


def read_head(path: str, option: str) -> tuple[list[str], list[str]]:
    """The header of the CSV file at ``path`` (given as ``option``) and its first data row (both required)."""
    require(
        Path(path).is_file(),
        f"{option} {path} does not exist or is not a file (a relative path starts at the current directory, "
        f"{Path.cwd()}); check the path",
    )
    rows = _csv_rows(path)
    _, header = next(rows, (1, []))
    _, first = next(rows, (2, None))
    rows.close()
    header = [name.strip() for name in header]
    require(bool(header), f"{path} is empty; it needs a header line naming the columns, e.g. x1,x2,y, then the rows")
    require(
        not all(is_number(name) for name in header),
        f"{path} line 1 must be a header naming the columns, e.g. x1,x2,y, but it holds numbers: {','.join(header)}",
    )
    for i, name in enumerate(header):
        require(bool(name), f"{path} line 1: column {i + 1} has no name; name it or remove the column")
        require(header.index(name) == i, f"{path} line 1: the column name {name!r} appears more than once")
    if first is None:
        raise UserError(f"{path} has a header but no data rows")
    return header, first


def read_columns(path: str, header: list[str], names: list[str]) -> np.ndarray:
    """The columns ``names`` of the CSV file as a float64 array (rows, len(names)), every value a finite number."""
    used = [header.index(name) for name in names]
    subset = len(used) < len(header)
    try:
        table = np.loadtxt(
            path,
            delimiter=",",
            skiprows=1,
            ndmin=2,
            comments=None,
            quotechar='"',
            encoding="utf-8-sig",
            usecols=used if subset else None,
        )
    except ValueError as err:
        _check_rows(path, header, used)  # raises with the line and column of the first bad row
        raise UserError(f"{path}: {err}") from err
    if subset:  # loadtxt checks the number of fields only when it reads them all
        _check_rows(path, header, [])
    else:
        table = table[:, used]
    if not np.isfinite(table).all():
        _check_rows(path, header, used)
    return table


def _check_rows(path: str, header: list[str], used: list[int]) -> None:
    """Raise UserError at the first row with a wrong number of fields or a used cell that is not a finite number."""
    rows = _csv_rows(path)
    next(rows)
    for line, row in rows:
        require(
            len(row) == len(header),
            f"{path} line {line} has {len(row)} values but the header names {len(header)} columns; give every row "
            f"one value per column",
        )
        for i in used:
            try:
                if math.isfinite(float(row[i])):
                    continue
            except ValueError:
                pass
            where = f"{path} line {line}, column {header[i]!r}"
            require(row[i].strip() != "", f"{where} is empty (a missing value); fill or remove the row")
            require(is_number(row[i]), f"{where}: {row[i]!r} is not a number; fix or remove the row")
            raise UserError(f"{where}: {row[i]!r} is not a finite number; fix or remove the row")


__all__ = ["is_number", "read_columns", "read_head"]

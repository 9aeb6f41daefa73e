"""Reading a CSV file with a header into float64 cells, every problem one line naming the file, line and column.

A clean numeric file is parsed by numpy's C reader; any other (a missing value, a text cell, a row of another length,
quotes after a space) by the csv module row by row, which marks each cell as a number, missing or text."""

from __future__ import annotations

import csv
import math
from collections.abc import Generator, Sequence
from pathlib import Path
from typing import NamedTuple

import numpy as np

from lit_linreg.errors import UserError, not_utf8, require

# Separators a CSV file may use, and how a message names them.
SEPARATORS = {",": "','", ";": "';'", "\t": "tabs", "|": "'|'", " ": "spaces"}
# Cells that mean "no value" (compared lowercased and stripped), as pandas reads them; "nan" also reads as a float NaN.
MISSING = frozenset({"", "na", "n/a", "nan", "-nan", "null", "none", "#n/a", "<na>"})
FLOAT32_MAX = float(np.finfo(np.float32).max)  # the model computes in float32: a larger value would be inf


def is_number(cell: str) -> bool:
    """Whether ``cell`` reads as a float (NaN and infinity included)."""
    try:
        float(cell)
    except ValueError:
        return False
    return True


def decimal_comma(cell: str) -> str | None:
    """``cell`` written with a decimal point, if it is a number written with a decimal comma (``0,5``), else None."""
    point = cell.replace(",", ".", 1).strip()
    return point if "," in cell and not is_number(cell) and is_number(point) else None


def check_delimiter(delimiter: str) -> str:
    """``delimiter`` as one character (the two characters ``\\t``, as typed on a command line, are a tab)."""
    delimiter = "\t" if delimiter == "\\t" else delimiter
    require(
        delimiter in (",", ";", "|", "\t"),
        f"data.delimiter must be one of ',', ';', '|' or a tab (written \\t), got {delimiter!r}",
    )
    return delimiter


def _csv_rows(path: str, delimiter: str = ",") -> Generator[tuple[int, list[str]], None, None]:
    """(line number, fields) of each non-blank line of the CSV file at ``path``, the header first."""
    reader = None
    try:
        with open(path, encoding="utf-8-sig", newline="") as file:
            reader = csv.reader(file, delimiter=delimiter, skipinitialspace=True)
            for row in reader:
                if row:
                    yield reader.line_num, row
    except UnicodeDecodeError as err:
        problem = not_utf8(Path(path).read_bytes()) or "is not UTF-8 text"
        source = "utf-16" if "UTF-16" in problem else "latin1"
        raise UserError(
            f"{path} {problem}; save it as UTF-8 (a spreadsheet's 'CSV UTF-8', or: iconv -f {source} -t utf-8 {path} "
            f"> utf8.csv)"
        ) from err
    except csv.Error as err:
        raise UserError(f"{path} line {reader.line_num if reader else 1}: {err}; is it a CSV file?") from err


def read_head(path: str, option: str, delimiter: str = ",") -> tuple[list[str], list[str]]:
    """The header of the CSV file at ``path`` (given as ``option``) and its first data row (both required)."""
    require(
        Path(path).is_file(),
        f"{option} {path} does not exist or is not a file (a relative path starts at the current directory, "
        f"{Path.cwd()}); check the path",
    )
    rows = _csv_rows(path, delimiter)
    _, header = next(rows, (1, []))
    _, first = next(rows, (2, None))
    rows.close()
    header = [name.strip() for name in header]
    require(bool(header), f"{path} is empty; it needs a header line naming the columns, e.g. x1,x2,y, then the rows")
    if len(header) == 1:  # a target and a feature take two columns: a single one means another separator
        found = next((s for s in SEPARATORS if s != delimiter and s in header[0]), None)
        if found == " " and not (first and len(first[0].split()) == len(header[0].split())):
            found = None  # one column whose name has a space, e.g. a predict_csv of the feature "x 1"
        if found is not None:
            resave = f"save it separated by {SEPARATORS[delimiter]}"
            raise UserError(
                f"{path} line 1 separates its columns with {SEPARATORS[found]}, not {SEPARATORS[delimiter]}; "
                + (resave if found == " " else f"set data.delimiter {found!r}, or {resave}")
            )
    require(
        not all(is_number(name) for name in header),
        f"{path} line 1 must be a header naming the columns, e.g. x1,x2,y, but it holds numbers: {','.join(header)}",
    )
    for i, name in enumerate(header):
        require(bool(name), f"{path} line 1: column {i + 1} has no name; name it or remove the column")
        require(header.index(name) == i, f"{path} line 1: the column name {name!r} appears more than once")
    if first is None:
        raise UserError(
            f"{path} has a header but no data rows; add the rows below the header, one value per column (or check "
            f"{option})"
        )
    return header, first


class Cells(NamedTuple):
    """The data rows of the CSV file at ``path``, cell by cell (arrays of shape (rows, columns), in ``header``'s order).

    ``numbers`` is NaN where a cell is ``missing`` (one of :data:`MISSING`) or ``text``; ``lines``, each row's line in
    the file, is None when numpy read a clean file; ``strings`` holds the requested columns' cells, stripped.
    """

    path: str
    header: list[str]
    delimiter: str
    numbers: np.ndarray
    missing: np.ndarray
    text: np.ndarray
    lines: np.ndarray | None
    strings: dict[int, list[str]]

    def line(self, row: int) -> int:
        """The file line of data row ``row`` (without ``lines``, the rows follow the header)."""
        return int(self.lines[row]) if self.lines is not None else row + 2

    def cell(self, line: int, column: int) -> str:
        """The cell in ``column`` of the row on ``line``, as written (for a message: it reads the file again)."""
        return next(row[column] for at, row in _csv_rows(self.path, self.delimiter) if at == line)


def read_cells(path: str, header: list[str], delimiter: str = ",", strings: Sequence[int] = ()) -> Cells:
    """The cells of the CSV file at ``path`` (whose ``header`` :func:`read_head` read), and the raw ``strings`` of the
    columns at those indices. A clean numeric file takes numpy's C reader; any other, the csv module row by row."""
    if not strings:
        try:
            table = np.loadtxt(
                path, delimiter=delimiter, skiprows=1, ndmin=2, comments=None, quotechar='"', encoding="utf-8-sig"
            )
        except ValueError:  # a text or missing cell, a row of another length, or quoting that only the csv module reads
            table = None
        if table is not None and table.shape[1] == len(header) and (np.abs(table) <= FLOAT32_MAX).all():
            empty = np.zeros(table.shape, dtype=bool)
            return Cells(path, header, delimiter, table, empty, empty, None, {})
    rows = _csv_rows(path, delimiter)
    next(rows)
    values: list[list[float]] = []
    lines, text_cells = [], []
    columns: dict[int, list[str]] = {i: [] for i in strings}
    for line, row in rows:
        if len(row) != len(header):
            other = next((SEPARATORS[s] for s in SEPARATORS if s not in (delimiter, " ") and s in "".join(row)), None)
            hint = f" (it holds {other}: another separator?)" if other and len(row) < len(header) else ""
            raise UserError(
                f"{path} line {line} has {len(row)} values but the header names {len(header)} columns{hint}; give "
                f"every row one value per column"
            )
        try:
            numbers = [float(cell) for cell in row]
        except ValueError:  # a text or missing cell: NaN, and a text cell is marked (each cell parsed once)
            numbers = []
            for i, cell in enumerate(row):
                try:
                    numbers.append(float(cell))
                except ValueError:
                    numbers.append(math.nan)
                    if cell.strip().lower() not in MISSING:
                        text_cells.append((len(values), i))
        values.append(numbers)
        lines.append(line)
        for i, column in columns.items():
            column.append(row[i].strip())
    table = np.array(values, dtype=np.float64).reshape(len(values), len(header))
    text = np.zeros(table.shape, dtype=bool)
    text[tuple(np.array(text_cells, dtype=np.int64).reshape(-1, 2).T)] = True
    return Cells(path, header, delimiter, table, np.isnan(table) & ~text, text, np.array(lines), columns)


__all__ = ["MISSING", "SEPARATORS", "Cells", "check_delimiter", "decimal_comma", "is_number", "read_cells", "read_head"]

"""Reading a CSV file with a header into float64 columns, every problem one line naming the file, line and column.

The file is UTF-8 (a BOM is fine), with any line endings; values are separated by ``delimiter`` (``,`` by default),
may be quoted (``"1.5"``) and may have spaces around them; the names in the header are stripped of surrounding spaces.
A file that uses another separator is named as such. The numbers are parsed by numpy's C reader; when it fails, the
csv module reads the file row by row: it either finds the first bad row and says what is wrong with it, or reads the
values itself (quotes after a space, which numpy does not take).
"""

from __future__ import annotations

import csv
import math
from collections.abc import Generator
from pathlib import Path

import numpy as np

from lit_linreg.errors import UserError, not_utf8, require

# Separators a CSV file may use, and how a message names them.
SEPARATORS = {",": "','", ";": "';'", "\t": "tabs", "|": "'|'", " ": "spaces"}


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


def check_delimiter(delimiter: str, option: str = "data.delimiter") -> str:
    """``delimiter`` as one character (the two characters ``\\t``, as typed on a command line, are a tab)."""
    delimiter = "\t" if delimiter == "\\t" else delimiter
    require(
        len(delimiter) == 1 and delimiter in SEPARATORS and delimiter != " ",
        f"{option} must be one of ',', ';', '|' or a tab (written \\t), got {delimiter!r}",
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


def read_columns(path: str, header: list[str], names: list[str], delimiter: str = ",") -> np.ndarray:
    """The columns ``names`` of the CSV file as a float64 array (rows, len(names)), every value a finite number."""
    used = [header.index(name) for name in names]
    subset = len(used) < len(header)
    try:
        table = np.loadtxt(
            path,
            delimiter=delimiter,
            skiprows=1,
            ndmin=2,
            comments=None,
            quotechar='"',
            encoding="utf-8-sig",
            usecols=used if subset else None,
        )
    except ValueError:  # a bad row, or quoting that only the csv module reads (e.g. a space before a quote)
        return _read_rows(path, header, used, delimiter)
    if subset:  # loadtxt checks the number of fields only when it reads them all
        _read_rows(path, header, [], delimiter)
    else:
        table = table[:, used]
    if not np.isfinite(table).all():
        _read_rows(path, header, used, delimiter)
    return table


def _read_rows(path: str, header: list[str], used: list[int], delimiter: str) -> np.ndarray:
    """The ``used`` columns, read row by row; UserError at the first row with a wrong number of fields or a used cell
    that is not a finite number."""
    rows = _csv_rows(path, delimiter)
    next(rows)
    values = []
    for line, row in rows:
        if len(row) != len(header):
            other = next((SEPARATORS[s] for s in SEPARATORS if s not in (delimiter, " ") and s in "".join(row)), None)
            hint = f" (it holds {other}: another separator?)" if other and len(row) < len(header) else ""
            raise UserError(
                f"{path} line {line} has {len(row)} values but the header names {len(header)} columns{hint}; give "
                f"every row one value per column"
            )
        numbers = []
        for i in used:
            try:
                number = float(row[i])
            except ValueError:
                number = None
            if number is not None and math.isfinite(number):
                numbers.append(number)
                continue
            where = f"{path} line {line}, column {header[i]!r}"
            require(row[i].strip() != "", f"{where} is empty (a missing value); fill or remove the row")
            point = decimal_comma(row[i])
            require(not point, f"{where}: {row[i]!r} has a decimal comma; write numbers with a decimal point ({point})")
            require(number is not None, f"{where}: {row[i]!r} is not a number; fix or remove the row")
            raise UserError(f"{where}: {row[i]!r} is not a finite number; fix or remove the row")
        values.append(numbers)
    return np.array(values, dtype=np.float64).reshape(len(values), len(used))


__all__ = ["SEPARATORS", "check_delimiter", "decimal_comma", "is_number", "read_columns", "read_head"]

"""The body of ``POST /predict``: strict JSON in (``{"x": [0.8, 0.98]}``, ``{"x": [[1, 2, 3], ...]}`` or, for named CSV
columns, ``{"x": [{"x1": 1, ...}, ...]}``), rows of float32-safe numbers out; each refusal a 4xx and one line."""

from __future__ import annotations

import json
import math
from typing import Any

MAX_BODY_BYTES = 1024 * 1024  # 1 MiB: about 40,000 rows of one feature, written out in full
MAX_ROWS = 10_000  # rows per request
FLOAT32_MAX = 3.4028234663852886e38
OVERFLOW_LIMIT = 1e38  # below float32's largest value, with room for rounding in the model's arithmetic
EXAMPLE = '{"x": [0.8, 0.98]}'


class RequestError(Exception):
    """A request the server refuses: an HTTP ``status`` and a one-line message naming the problem and the fix."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status, self.message = status, message


def _quoted(text: str, limit: int = 20) -> str:
    """``text`` as a JSON string (escaped, so a message stays one line), cut after ``limit`` characters."""
    quoted = json.dumps(text)
    return quoted if len(quoted) <= limit + 2 else quoted[: limit + 1] + '..."'


def _name(text: str) -> str:
    """A model's feature name as is, or quoted if it holds a line break or another unprintable character."""
    return text if text.isprintable() else json.dumps(text)


def _kind(value: Any) -> str:
    if isinstance(value, bool):
        return f"the boolean {json.dumps(value)}"
    if isinstance(value, str):
        return f"the text {_quoted(value)}"
    if value is None:
        return "null"
    kinds = {dict: "an object", list: "a list", int: "a number", float: "a number"}
    return kinds.get(type(value), type(value).__name__)


def _refuse_constant(name: str) -> float:
    raise RequestError(400, f"the body is not valid JSON: {name} is not a JSON number; send finite numbers only")


def parse_body(body: bytes) -> Any:
    """The JSON value of ``body``; NaN and Infinity are refused, as JSON (RFC 8259) has neither."""
    if len(body) > MAX_BODY_BYTES:
        raise too_large(len(body))
    if not body.strip():
        raise RequestError(400, f"the request body is empty; send a JSON object such as {EXAMPLE}")
    try:
        return json.loads(body, parse_constant=_refuse_constant)
    except RecursionError:
        raise RequestError(400, "the body is not valid JSON for this API: it is nested too deeply") from None
    except json.JSONDecodeError as err:
        reason = f"{err.msg} at line {err.lineno} column {err.colno}"
    except UnicodeDecodeError as err:
        reason = f"it is not UTF-8 text: {err.reason} at byte {err.start}"
    except ValueError:  # an integer beyond Python's digit limit
        reason = "a whole number has more than 4,300 digits"
    raise RequestError(400, f"the body is not valid JSON ({reason}); send a JSON object such as {EXAMPLE}")


def too_large(size: int | None = None) -> RequestError:
    given = f" ({size:,} bytes)" if size is not None else ""
    return RequestError(
        413,
        f"the request body is too large{given}: the cap is {MAX_BODY_BYTES:,} bytes and {MAX_ROWS:,} rows per "
        f"request; split the rows into several requests",
    )


class RowParser:
    """A parsed body as rows of ``in_features`` floats, refusing rows whose prediction would overflow ``bound``."""

    def __init__(
        self,
        in_features: int,
        feature_names: list[str] | None = None,
        bound: tuple[list[tuple[float, float, float]], float] | None = None,
        max_rows: int = MAX_ROWS,
    ) -> None:
        self.in_features, self.feature_names, self.bound, self.max_rows = in_features, feature_names, bound, max_rows

    def describe(self) -> str:
        """``3 features (x1, x2, x3)`` or ``1 feature``."""
        count = f"{self.in_features} feature{'s' if self.in_features > 1 else ''}"
        return f"{count} ({', '.join(map(_name, self.feature_names))})" if self.feature_names else count

    def rows(self, payload: Any) -> list[list[float]]:
        if not isinstance(payload, dict):
            raise RequestError(
                422, f"the body must be a JSON object such as {EXAMPLE}, not {_kind(payload)}; put the rows under x"
            )
        if "x" not in payload:
            keys = ", ".join(_quoted(k) for k in list(payload)[:5]) or "none"
            raise RequestError(422, f'the body has no "x" (its keys: {keys}); send the rows under x, e.g. {EXAMPLE}')
        x = payload["x"]
        if not isinstance(x, list):
            raise RequestError(
                422, f'"x" must be a list (one value or row per prediction), not {_kind(x)}; e.g. {EXAMPLE}'
            )
        if not x:
            raise RequestError(422, f'"x" is empty; send at least one value or row, e.g. {EXAMPLE}')
        if len(x) > self.max_rows:
            raise RequestError(
                413, f'"x" has {len(x):,} rows, over the cap of {self.max_rows:,} per request; split it into several'
            )
        first = x[0]
        if isinstance(first, dict):
            rows = self._named_rows(x)
        elif isinstance(first, list):
            rows = [self._row(row, i) for i, row in enumerate(x)]
        elif self.in_features == 1:
            rows = [[self._number(v, f"x[{i}]")] for i, v in enumerate(x)]
        elif _is_number(first):
            raise RequestError(
                422,
                f'"x" is a flat list of numbers, but the model takes {self.describe()}: send one row per '
                f'prediction, e.g. {{"x": [[{", ".join(["1.0"] * self.in_features)}]]}}',
            )
        else:
            raise RequestError(422, f"x[0] is {_kind(first)}, not a number or a row; send numbers, e.g. {EXAMPLE}")
        if self.bound is not None:
            _check_overflow(rows, *self.bound)
        return rows

    def _row(self, row: Any, i: int) -> list[float]:
        if not isinstance(row, list):
            raise RequestError(422, f"x[{i}] is {_kind(row)} but x[0] is a list: give every row as a list")
        if len(row) != self.in_features:
            raise RequestError(
                422,
                f"x[{i}] has {len(row)} value{'s' if len(row) != 1 else ''}, but the model takes {self.describe()}; "
                f"send {self.in_features} number{'s' if self.in_features > 1 else ''} per row",
            )
        return [self._number(v, f"x[{i}][{j}]") for j, v in enumerate(row)]

    def _named_rows(self, x: list) -> list[list[float]]:
        names = self.feature_names
        if not names:
            raise RequestError(
                422,
                "rows keyed by feature name need a model trained on named CSV columns; this model's features have "
                f"no names: send lists instead, e.g. {EXAMPLE}",
            )
        rows = []
        for i, row in enumerate(x):
            if not isinstance(row, dict):
                raise RequestError(422, f"x[{i}] is {_kind(row)} but x[0] is an object: give every row as an object")
            missing = [_name(n) for n in names if n not in row]
            unknown = [_quoted(k) for k in row if k not in names][:5]
            if missing or unknown:
                problem = "lacks " + ", ".join(missing) if missing else "has the unknown key(s) " + ", ".join(unknown)
                raise RequestError(422, f"x[{i}] {problem}; the model's features are {', '.join(map(_name, names))}")
            rows.append([self._number(row[n], f"x[{i}][{json.dumps(n)}]") for n in names])
        return rows

    @staticmethod
    def _number(value: Any, where: str) -> float:
        if not _is_number(value):
            raise RequestError(422, f"{where} is {_kind(value)}, not a number; send numbers unquoted, e.g. 0.8")
        try:
            number = float(value)
        except OverflowError:
            number = math.inf
        if not (math.isfinite(number) and abs(number) <= FLOAT32_MAX):
            shown = repr(value) if len(repr(value)) <= 24 else repr(value)[:20] + "..."
            raise RequestError(
                422,
                f"{where} is {shown}: beyond float32's range (magnitudes up to 3.4e38), which the model computes "
                f"in; send a smaller number",
            )
        return number


def _check_overflow(rows: list[list[float]], terms: list[tuple[float, float, float]], bias: float) -> None:
    """Refuse the first row whose ``(x - mean) / std * weight``, summed as the model does, could overflow float32."""
    for i, row in enumerate(rows):
        total = bias
        for value, (mean, std, weight) in zip(row, terms):
            shifted = abs(value - mean)
            total += weight * shifted / std
            if shifted > OVERFLOW_LIMIT or shifted / std > OVERFLOW_LIMIT or total > OVERFLOW_LIMIT:
                raise RequestError(
                    422,
                    f"x[{i}] is too large for this model: its prediction would overflow float32; send smaller values",
                )


def _is_number(value: Any) -> bool:
    return type(value) in (int, float)  # not bool, which JSON true/false become

"""The one error type for problems a user can fix: a bad config value, file or checkpoint."""

from __future__ import annotations

import math
from collections.abc import Iterable


class UserError(ValueError):
    """A problem the user can fix. ``main`` prints it as one line (what, where, how to fix) and exits with status 2."""


def require(condition: bool, message: str) -> None:
    """Raise :class:`UserError` with ``message`` unless ``condition`` holds."""
    if not condition:
        raise UserError(message)


def require_finite(name: str, value: float | Iterable[float]) -> None:
    """Every number in ``value`` must be finite (not NaN or ±inf)."""
    values = list(value) if isinstance(value, Iterable) else [value]
    require(
        all(isinstance(v, (int, float)) and math.isfinite(v) for v in values),
        f"{name} must be finite numbers, got {value!r}",
    )

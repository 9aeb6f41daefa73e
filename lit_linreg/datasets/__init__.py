"""Data sources beyond the tutorial's synthetic line."""

from lit_linreg.errors import require


def check_target(path: str, columns: list[str], target: str) -> None:
    """Refuse a ``target`` column that ``path`` lacks."""
    require(target in columns, f"{path} has no column {target!r} (columns: {', '.join(columns)}); set data.target")


def check_columns(option: str, names: list[str], path: str, columns: list[str], target: str) -> None:
    """Refuse columns ``names`` (given as ``option``) that ``path`` lacks, that include ``target`` or repeat one."""
    unknown = [name for name in names if name not in columns]
    require(not unknown, f"{option} names {unknown} that {path} lacks (columns: {', '.join(columns)})")
    require(target not in names, f"{option} must not include the target column {target!r}")
    require(len(set(names)) == len(names), f"{option} names a column twice: {names}")

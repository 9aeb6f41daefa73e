"""lit-linreg: the PyTorch linear-regression workflow as a Lightning project.

data (``SyntheticRegressionData``) -> models (``ManualLinearRegression``, ``LinearRegression``) -> task
(``LinearRegressionTask``) -> cli (``lit-linreg fit|validate|test|predict``).

The names below are imported on first use (PEP 562), so ``import lit_linreg`` (and ``lit-linreg --help``) imports
neither torch nor Lightning.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from lit_linreg.checkpoints import load_task
    from lit_linreg.data import RegressionDataModule, SyntheticRegressionData
    from lit_linreg.datasets.csv import CSVRegressionData
    from lit_linreg.errors import UserError
    from lit_linreg.models import LinearRegression, ManualLinearRegression, build_model
    from lit_linreg.task import LinearRegressionTask

__all__ = [
    "CSVRegressionData",
    "LinearRegression",
    "LinearRegressionTask",
    "ManualLinearRegression",
    "RegressionDataModule",
    "SyntheticRegressionData",
    "UserError",
    "build_model",
    "load_task",
]

# Each public name -> the module that defines it.
_MODULES = {
    "CSVRegressionData": "lit_linreg.datasets.csv",
    "LinearRegression": "lit_linreg.models",
    "LinearRegressionTask": "lit_linreg.task",
    "ManualLinearRegression": "lit_linreg.models",
    "RegressionDataModule": "lit_linreg.data",
    "SyntheticRegressionData": "lit_linreg.data",
    "UserError": "lit_linreg.errors",
    "build_model": "lit_linreg.models",
    "load_task": "lit_linreg.checkpoints",
}


def __getattr__(name: str) -> Any:
    """``lit_linreg.<name>``: imports its module on first use, then keeps it here."""
    if name not in _MODULES:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(_MODULES[name]), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})

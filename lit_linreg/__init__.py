"""lit-linreg: the PyTorch linear-regression workflow as a Lightning project.

data (``SyntheticRegressionData``) -> models (``ManualLinearRegression``, ``LinearRegression``) -> task
(``LinearRegressionTask``) -> cli (``lit-linreg fit|validate|test|predict``).
"""

from lit_linreg.data import RegressionDataModule, SyntheticRegressionData
from lit_linreg.datasets.csv import CSVRegressionData
from lit_linreg.errors import UserError
from lit_linreg.models import LinearRegression, ManualLinearRegression, build_model
from lit_linreg.storage.checkpoints import load_task
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

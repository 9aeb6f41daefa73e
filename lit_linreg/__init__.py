"""lit-linreg: the PyTorch linear-regression workflow as a Lightning project.

data (``SyntheticRegressionData``) -> models (``ManualLinearRegression``, ``LinearRegression``) -> task
(``LinearRegressionTask``) -> cli (``lit-linreg fit|validate|test|predict``).
"""

import warnings

from lit_linreg.csv_data import CSVRegressionData
from lit_linreg.data import RegressionDataModule, SyntheticRegressionData
from lit_linreg.errors import UserError
from lit_linreg.models import LinearRegression, ManualLinearRegression, build_model
from lit_linreg.task import LinearRegressionTask

# Lightning 2.6 on torch 2.13 warns about its own internals on every run, and hints at step-level logging, which
# lit-linreg does not use (it reports per epoch): nothing a user can act on.
warnings.filterwarnings("ignore", message=r".*isinstance\(treespec, LeafSpec\)")
warnings.filterwarnings("ignore", message=r"The number of training batches .* is smaller than the logging interval")

__all__ = [
    "CSVRegressionData",
    "LinearRegression",
    "LinearRegressionTask",
    "ManualLinearRegression",
    "RegressionDataModule",
    "SyntheticRegressionData",
    "UserError",
    "build_model",
]

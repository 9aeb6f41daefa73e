"""The plain model variants and the tutorial's seeded initial parameters."""

from __future__ import annotations

import lightning as L
import pytest
import torch

from lit_linreg.cli import LitLinregCLI
from lit_linreg.models import LinearRegression, ManualLinearRegression, build_model
from lit_linreg.task import LinearRegressionTask

from .helpers import CONFIGS

TUTORIAL_INITIAL = {"manual": (0.3367, 0.1288), "linear": (0.7645, 0.8300)}


@pytest.mark.parametrize("variant", ["manual", "linear"])
def test_seed_42_gives_the_tutorials_initial_parameters(variant: str) -> None:
    L.seed_everything(42)
    weight, bias = LinearRegressionTask(variant).model.coefficients()
    assert (round(weight.item(), 4), round(bias.item(), 4)) == TUTORIAL_INITIAL[variant]


@pytest.mark.parametrize(("config", "variant"), [("base.yaml", "manual"), ("linear.yaml", "linear")])
def test_cli_builds_the_tutorials_initial_parameters(config: str, variant: str) -> None:
    # Through the CLI the data module is instantiated before the model: it must not consume the global RNG.
    cli = LitLinregCLI(args=["--config", str(CONFIGS / config)], run=False)
    assert cli.model.hparams.variant == variant
    weight, bias = cli.model.model.coefficients()
    assert (round(weight.item(), 4), round(bias.item(), 4)) == TUTORIAL_INITIAL[variant]


def test_manual_model_is_the_tutorials_arithmetic() -> None:
    model = ManualLinearRegression()
    assert [name for name, _ in model.named_parameters()] == ["weights", "bias"]
    x = torch.rand(7, 1)
    assert torch.equal(model(x), model.weights * x + model.bias)


def test_linear_model_wraps_one_nn_linear() -> None:
    model = LinearRegression()
    assert isinstance(model.linear_layer, torch.nn.Linear)
    x = torch.rand(7, 1)
    assert torch.equal(model(x), model.linear_layer(x))


@pytest.mark.parametrize("variant", ["manual", "linear"])
def test_variants_handle_several_features(variant: str) -> None:
    model = build_model(variant, in_features=3)
    x = torch.rand(5, 3)
    weight, bias = model.coefficients()
    assert weight.shape == (3,) and bias.shape == (1,)
    torch.testing.assert_close(model(x), x @ weight.unsqueeze(1) + bias)

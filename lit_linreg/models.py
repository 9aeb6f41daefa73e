"""Models: the tutorial's two plain ``nn.Module`` variants, generalised to several input features."""

from __future__ import annotations

from typing import Literal

import torch
from torch import Tensor, nn

Variant = Literal["manual", "linear"]


class ManualLinearRegression(nn.Module):
    """The tutorial's hand-made model: ``weights`` and ``bias`` are ``nn.Parameter(torch.randn(...))``."""

    def __init__(self, in_features: int = 1) -> None:
        super().__init__()
        self.weights = nn.Parameter(torch.randn(in_features))
        self.bias = nn.Parameter(torch.randn(1))

    def forward(self, x: Tensor) -> Tensor:
        if self.weights.numel() == 1:  # the tutorial's broadcast product, bit for bit
            return self.weights * x + self.bias
        return x @ self.weights.unsqueeze(1) + self.bias

    def coefficients(self) -> tuple[Tensor, Tensor]:
        """(weight of shape (in_features,), bias of shape (1,))."""
        return self.weights.detach(), self.bias.detach()


class LinearRegression(nn.Module):
    """The tutorial's section 6 model: one ``nn.Linear`` layer."""

    def __init__(self, in_features: int = 1) -> None:
        super().__init__()
        self.linear_layer = nn.Linear(in_features=in_features, out_features=1)

    def forward(self, x: Tensor) -> Tensor:
        return self.linear_layer(x)

    def coefficients(self) -> tuple[Tensor, Tensor]:
        """(weight of shape (in_features,), bias of shape (1,))."""
        return self.linear_layer.weight.detach()[0], self.linear_layer.bias.detach()


RegressionModel = ManualLinearRegression | LinearRegression
VARIANTS: dict[str, type[RegressionModel]] = {"manual": ManualLinearRegression, "linear": LinearRegression}


def build_model(variant: Variant, in_features: int = 1) -> RegressionModel:
    """The plain model for ``variant``; consumes the global RNG exactly as the tutorial's constructor does."""
    return VARIANTS[variant](in_features)

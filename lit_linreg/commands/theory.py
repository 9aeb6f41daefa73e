"""``lit-linreg theory``: the tutorial's gradient figure, for one sample with fixed x, target t and bias b.

The MSE loss L(w) = (wx + b - t)², its derivative dL/dw = 2x(wx + b - t), and gradient descent from w0 toward the
analytic optimum w* = (t - b) / x. Each step multiplies the error w - w* by (1 - 2·lr·x²), so the descent converges
exactly when |1 - 2·lr·x²| < 1.

Run: lit-linreg theory            (the tutorial's x=2, t=5, b=1, w0=0.5, lr=0.1, 15 steps; writes figures/theory.png)
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import TypeVar

import numpy as np

from lit_linreg.commands import command_parser, option_help
from lit_linreg.errors import require
from lit_linreg.plots import gradient_figure, save_png

Weight = TypeVar("Weight", np.ndarray, float)  # one weight, or an array of them


def mse_loss(w: Weight, x: float, target: float, bias: float) -> Weight:
    return ((w * x + bias) - target) ** 2


def mse_gradient(w: Weight, x: float, target: float, bias: float) -> Weight:
    return 2 * x * (w * x + bias - target)


def gradient_descent(w0: float, lr: float, steps: int, x: float, target: float, bias: float) -> list[float]:
    """The weights w0, w1, ..., w_steps of plain gradient descent on the one-sample MSE loss."""
    history = [w0]
    for _ in range(steps):
        history.append(history[-1] - lr * mse_gradient(history[-1], x, target, bias))
    return history


def theory(
    x: float = 2.0,
    target: float = 5.0,
    bias: float = 1.0,
    w0: float = 0.5,
    lr: float = 0.1,
    steps: int = 15,
    out: str = "figures/theory.png",
    w_range: tuple[float, float] = (-1.0, 6.0),
) -> None:
    """The tutorial's gradient figure: the MSE loss of one sample as a function of w, its derivative dL/dw and
    gradient descent toward the analytic optimum. Prints the optimum, the final w and the error.

    Args:
        x: the sample's input
        target: the sample's target t
        bias: the fixed bias b
        w0: the initial weight
        lr: the learning rate
        steps: gradient-descent steps
        out: where to write the figure
        w_range: the range of w drawn (100 points)
    """
    numbers = [("--x", x), ("--target", target), ("--bias", bias), ("--w0", w0), ("--lr", lr)]
    for option, value in [*numbers, *(("--w_range", w) for w in w_range)]:
        require(math.isfinite(value), f"{option} must be a finite number, got {value}; give a plain number")
    require(x != 0, "--x must not be 0: with x = 0 the loss does not depend on w; the tutorial uses --x 2")
    require(lr > 0, f"--lr must be > 0, got {lr}; the tutorial uses --lr 0.1")
    require(steps >= 0, f"--steps must be >= 0, got {steps}; the tutorial uses --steps 15")
    require(
        w_range[0] < w_range[1],
        f"--w_range MIN must be below MAX, got {list(w_range)}; e.g. --w_range -1 6 (the default)",
    )
    sample = {"x": x, "target": target, "bias": bias}

    w = np.linspace(*w_range, 100)
    optimal_w = (target - bias) / x
    history = np.array(gradient_descent(w0, lr, steps, **sample))
    factor = 1 - 2 * lr * x**2
    # The descent panel's loss covers every step, also those that leave w_range (a diverging descent).
    reached = history[np.isfinite(history)]
    descent_w = np.linspace(min(w_range[0], reached.min()), max(w_range[1], reached.max()), 200)
    fig = gradient_figure(
        w,
        mse_loss(w, **sample),
        mse_gradient(w, **sample),
        (history, mse_loss(history, **sample)),
        optimal_w,
        title=f"x={x:g}, t={target:g}, b={bias:g}: {steps:,} steps of lr {lr:g} from w0={w0:g}",
        descent_curve=(descent_w, mse_loss(descent_w, **sample)),
    )
    save_png(fig, Path(out))

    error = abs(optimal_w - history[-1])
    print(f"optimal weight (analytic): {optimal_w:.4f}")
    print(f"gradient descent result:   {history[-1]:.4f} after {steps} steps of lr {lr:g}")
    print(f"convergence error:         {error:.6f} ({error:.2e})")
    print(
        f"each step multiplies the error by 1 - 2·lr·x² = {factor:g}: "
        + ("it converges" if abs(factor) < 1 else "it does not converge (use lr < 1/x²)")
    )
    print(f"figure: {out}")


def main(argv: list[str]) -> None:
    """``lit-linreg theory [options]``: :func:`theory` with the options of ``argv``."""
    parser = command_parser("lit-linreg theory", theory, skip={"w_range"})
    parser.add_argument(  # two numbers, as `--w_range -1 6`
        "--w_range",
        type=float,
        nargs=2,
        default=[-1.0, 6.0],
        metavar=("MIN", "MAX"),
        help=option_help(theory, "w_range"),
    )
    theory(**parser.parse_args(argv).as_dict())

"""``lit-linreg theory``: the tutorial's gradient figure, for one sample with fixed x, target t and bias b.

The MSE loss L(w) = (wx + b - t)², its derivative dL/dw = 2x(wx + b - t), and gradient descent from w0 toward the
analytic optimum w* = (t - b) / x. Each step multiplies the error w - w* by (1 - 2·lr·x²), so the descent converges
exactly when |1 - 2·lr·x²| < 1.

Run: lit-linreg theory            (the tutorial's x=2, t=5, b=1, w0=0.5, lr=0.1, 15 steps; writes figures/theory.png)
"""

from __future__ import annotations

import argparse
import math
from pathlib import Path

import numpy as np

from lit_linreg.analysis.plots import gradient_figure, save_png
from lit_linreg.errors import require


def mse_loss(w: np.ndarray | float, x: float, target: float, bias: float) -> np.ndarray | float:
    return ((w * x + bias) - target) ** 2


def mse_gradient(w: np.ndarray | float, x: float, target: float, bias: float) -> np.ndarray | float:
    return 2 * x * (w * x + bias - target)


def gradient_descent(w0: float, lr: float, steps: int, x: float, target: float, bias: float) -> list[float]:
    """The weights w0, w1, ..., w_steps of plain gradient descent on the one-sample MSE loss."""
    history = [w0]
    for _ in range(steps):
        history.append(history[-1] - lr * mse_gradient(history[-1], x, target, bias))
    return history


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="lit-linreg theory",
        description="The tutorial's gradient figure: the MSE loss of one sample as a function of w, its derivative "
        "dL/dw and gradient descent toward the analytic optimum. Prints the optimum, the final w and the error.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
        allow_abbrev=False,
    )
    parser.add_argument("--x", type=float, default=2.0, help="the sample's input")
    parser.add_argument("--target", type=float, default=5.0, help="the sample's target t")
    parser.add_argument("--bias", type=float, default=1.0, help="the fixed bias b")
    parser.add_argument("--w0", type=float, default=0.5, help="the initial weight")
    parser.add_argument("--lr", type=float, default=0.1, help="the learning rate")
    parser.add_argument("--steps", type=int, default=15, help="gradient-descent steps")
    parser.add_argument(
        "--w_range",
        type=float,
        nargs=2,
        default=[-1.0, 6.0],
        metavar=("MIN", "MAX"),
        help="the range of w drawn (100 points)",
    )
    parser.add_argument("--out", type=Path, default=Path("figures/theory.png"), help="where to write the figure")
    return parser


def main(argv: list[str]) -> None:
    args = _parser().parse_args(argv)
    numbers = [
        ("--x", args.x),
        ("--target", args.target),
        ("--bias", args.bias),
        ("--w0", args.w0),
        ("--lr", args.lr),
        *(("--w_range", w) for w in args.w_range),
    ]
    for option, value in numbers:
        require(math.isfinite(value), f"{option} must be a finite number, got {value}; give a plain number")
    require(args.x != 0, "--x must not be 0: with x = 0 the loss does not depend on w; the tutorial uses --x 2")
    require(args.lr > 0, f"--lr must be > 0, got {args.lr}; the tutorial uses --lr 0.1")
    require(args.steps >= 0, f"--steps must be >= 0, got {args.steps}; the tutorial uses --steps 15")
    require(
        args.w_range[0] < args.w_range[1],
        f"--w_range MIN must be below MAX, got {args.w_range}; e.g. --w_range -1 6 (the default)",
    )
    sample = {"x": args.x, "target": args.target, "bias": args.bias}

    w = np.linspace(*args.w_range, 100)
    optimal_w = (args.target - args.bias) / args.x
    history = np.array(gradient_descent(args.w0, args.lr, args.steps, **sample))
    factor = 1 - 2 * args.lr * args.x**2
    fig = gradient_figure(
        w,
        mse_loss(w, **sample),
        mse_gradient(w, **sample),
        (history, mse_loss(history, **sample)),
        optimal_w,
        title=f"x={args.x:g}, t={args.target:g}, b={args.bias:g}: {args.steps} steps of lr {args.lr:g} from "
        f"w0={args.w0:g}",
    )
    save_png(fig, args.out)

    error = abs(optimal_w - history[-1])
    print(f"optimal weight (analytic): {optimal_w:.4f}")
    print(f"gradient descent result:   {history[-1]:.4f} after {args.steps} steps of lr {args.lr:g}")
    print(f"convergence error:         {error:.6f} ({error:.2e})")
    print(
        f"each step multiplies the error by 1 - 2·lr·x² = {factor:g}: "
        + ("it converges" if abs(factor) < 1 else "it does not converge (use lr < 1/x²)")
    )
    print(f"figure: {args.out}")

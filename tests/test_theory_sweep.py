"""``lit-linreg theory`` (the tutorial's gradient figure) and ``lit-linreg lr-sweep`` (real runs per learning rate)."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
import torch
from matplotlib.figure import Figure
from matplotlib.text import Text

import lit_linreg.commands.sweep
import lit_linreg.commands.theory
from lit_linreg.commands.sweep import classify

from .helpers import CONFIGS, run


@pytest.fixture
def drawn(monkeypatch: pytest.MonkeyPatch) -> dict[str, Figure]:
    """The Figure behind each PNG the commands write, by file name (they are still written)."""
    figures: dict[str, Figure] = {}
    for module in (lit_linreg.commands.theory, lit_linreg.commands.sweep):

        def record(fig: Figure, path: Path, save_png=module.save_png) -> np.ndarray:
            figures[Path(path).name] = fig
            return save_png(fig, path)

        monkeypatch.setattr(module, "save_png", record)
    return figures


def test_theory_reproduces_the_tutorials_gradient_descent(drawn, capsys: pytest.CaptureFixture[str]) -> None:
    run("theory")
    out = capsys.readouterr().out
    assert "optimal weight (analytic): 2.0000" in out
    assert "gradient descent result:   2.0000 after 15 steps of lr 0.1" in out
    # The tutorial prints 0.000012, but its own code gives 1.5 * 0.2**15: the error shrinks 5x per step.
    assert "convergence error:         0.000000 (4.92e-11)" in out
    assert "1 - 2·lr·x² = 0.2: it converges" in out
    assert Path("figures/theory.png").is_file() and "figure: figures/theory.png" in out

    loss_ax, gradient_ax, descent_ax = drawn["theory.png"].axes
    np.testing.assert_allclose(loss_ax.lines[0].get_xdata(), np.linspace(-1, 6, 100))
    steps = next(line for line in descent_ax.lines if line.get_label() == "gradient-descent steps")
    w = steps.get_xdata()
    assert len(w) == 16 and w[0] == 0.5 and w[1] == pytest.approx(1.7)
    np.testing.assert_allclose(steps.get_ydata(), (2 * w + 1 - 5) ** 2)


@pytest.mark.parametrize(
    "options",
    [
        [],
        ["--lr", "0.3", "--steps", "8"],  # diverging: the steps leave w_range
        ["--lr", "0.01", "--steps", "100"],
        ["--w_range", "-100", "100"],
        ["--lr", "0.5", "--steps", "200"],  # the loss reaches 1e191
        ["--x", "0.123456789", "--target", "12345.678", "--w0", "-12345", "--lr", "0.003", "--steps", "1000"],
    ],
)
def test_theory_figure_legends_and_titles_never_overlap(drawn, options: list[str]) -> None:
    run("theory", *options)
    fig = drawn["theory.png"]
    renderer = fig.canvas.get_renderer()  # as last drawn, for the PNG
    axes_boxes = [ax.get_window_extent(renderer) for ax in fig.axes]
    legends = [ax.get_legend().get_window_extent(renderer) for ax in fig.axes]
    (suptitle,) = [t for t in fig.findobj(Text) if t.get_text() == fig.get_suptitle()]
    titles = [suptitle.get_window_extent(renderer), *(ax.title.get_window_extent(renderer) for ax in fig.axes)]
    texts = legends + titles
    for i, box in enumerate(texts):
        assert fig.bbox.x0 <= box.x0 and box.x1 <= fig.bbox.x1 and fig.bbox.y0 <= box.y0 and box.y1 <= fig.bbox.y1
        assert not any(box.overlaps(other) for other in texts[i + 1 :])
        assert not any(box.overlaps(ax_box) for ax_box in axes_boxes)  # no legend or title over a panel
    if "--lr" in options and options[options.index("--lr") + 1] == "0.3":  # the loss drawn where the steps go
        descent = fig.axes[2]
        steps = next(line for line in descent.lines if line.get_label() == "gradient-descent steps").get_xdata()
        assert descent.lines[0].get_xdata().min() <= steps.min() and descent.lines[0].get_xdata().max() >= steps.max()


def test_theory_options(drawn, capsys: pytest.CaptureFixture[str]) -> None:
    run("theory", "--lr", "0.3", "--steps", "4", "--out", "out/big_lr.png")
    out = capsys.readouterr().out
    assert "1 - 2·lr·x² = -1.4: it does not converge (use lr < 1/x²)" in out
    assert len(drawn["big_lr.png"].axes[2].lines[1].get_xdata()) == 5 and Path("out/big_lr.png").is_file()
    with pytest.raises(SystemExit) as exit_info:
        run("theory", "--x", "0")
    assert exit_info.value.code == 2 and "--x must not be 0" in capsys.readouterr().err


def test_help_lists_the_commands_one_per_line(capsys: pytest.CaptureFixture[str]) -> None:
    for args in (["--help"], ["theory", "--help"], ["lr-sweep", "--help"]):
        with pytest.raises(SystemExit) as exit_info:
            run(*args)
        assert exit_info.value.code == 0
    out = capsys.readouterr().out
    assert re.search(r"^  lit-linreg theory  +\S", out, re.MULTILINE)
    assert re.search(r"^  lit-linreg lr-sweep +\S", out, re.MULTILINE)
    assert "--lr_find" in out and "--w_range MIN MAX" in out


def test_classify() -> None:
    epochs = np.arange(100)
    settled = np.where(epochs < 40, 0.3 - 0.007 * epochs, 0.01 + 0.001 * (epochs % 2))  # then alternates
    assert classify(settled, lowest=0.0) == ("converged", 40)  # 0.011 <= 0.015, 5 % of the way from 0 to 0.3
    assert classify(settled, lowest=0.009) == ("converged", 40)  # noisy data: the optimum is not 0
    assert classify(settled + 0.1, lowest=0.0) == ("not converged", None)  # settled, but far above the optimum
    assert classify(np.linspace(0.3, 0.2, 100), lowest=0.0) == ("not converged", None)  # slow and steady
    assert classify(0.3 - 0.05 * (epochs % 2), lowest=0.0) == ("not converged", None)  # swings where it started
    assert classify(np.r_[settled[:50], np.nan, settled[51:]], lowest=0.0) == ("diverged", None)
    assert classify(0.3 + 10 * (epochs % 2), lowest=0.0) == ("diverged", None)  # overshoots: worse than at the start
    assert classify(np.array([0.3, 0.2, 0.1]), lowest=0.0) == ("not converged", None)
    assert classify(np.array([0.3, 0.01, 0.01]), lowest=0.0) == ("converged", 1)


def test_lr_sweep_classifies_real_runs(drawn, capsys: pytest.CaptureFixture[str]) -> None:
    torch.manual_seed(123)
    expected_draw = torch.rand(3)
    torch.manual_seed(123)
    lrs = "[0.0001, 0.02, 0.1, 10]"
    run("lr-sweep", "--config", CONFIGS / "base.yaml", "--lrs", lrs, "--trainer.max_epochs", "100")
    assert torch.equal(torch.rand(3), expected_draw)  # the caller's RNG is left as it was

    out = capsys.readouterr().out
    table = {float(row[0]): row[1].strip() for row in re.findall(r"^ +([\d.e-]+) \| ([^|]+)\|", out, re.MULTILINE)}
    assert table == {
        0.0001: "not converged",  # too slow for 100 epochs
        0.02: "converged at epoch 63",
        0.1: "not converged",  # settles at once, but swings between two states far above the optimum
        10.0: "diverged",
    }
    assert re.search(r"^ +true \|.*\| 0.7000 \| 0.3000$", out, re.MULTILINE)
    assert "final (epoch" not in out  # the runs print nothing of their own
    assert sorted(str(p) for p in Path().rglob("*") if p.is_file()) == ["figures/lr_sweep.png"]  # nothing else

    panels = drawn["lr_sweep.png"].axes
    assert [ax.get_title() for ax in panels] == [
        "lr = 0.0001\nnot converged",
        "lr = 0.02\nconverged at epoch 63",
        "lr = 0.1\nnot converged",
        "lr = 10\ndiverged",
    ]
    assert [ax.title.get_color() for ax in panels] == ["darkorange", "darkgreen", "darkorange", "firebrick"]
    assert all(len(line.get_xdata()) == 100 for line in panels[0].lines)
    # Every run starts from the config's seed-42 weights: the first epoch's train loss is the tutorial's 0.312881.
    assert [round(float(ax.lines[0].get_ydata()[0]), 6) for ax in panels] == [0.312881] * 4


def test_lr_sweep_with_the_lr_finder(drawn, capsys: pytest.CaptureFixture[str]) -> None:
    run(
        "lr-sweep",
        "--config",
        CONFIGS / "base.yaml",
        "--lrs",
        "[0.05]",
        "--lr_find",
        "--trainer.max_epochs",
        "30",
        "--out",
        "sweep/lrs.png",
    )
    out = capsys.readouterr().out
    suggestion = float(re.search(r"lr_find suggests lr=([\d.e-]+)", out).group(1))
    assert 1e-8 < suggestion < 1 and "caveat: with full-batch data" in out
    assert re.search(rf"^ +{suggestion:g} \| .* \(lr_find\)$", out, re.MULTILINE)
    assert {"lrs.png", "lr_find.png"} == {p.name for p in Path("sweep").iterdir()}
    assert drawn["lr_find.png"].axes[0].get_xscale() == "log" and len(drawn["lrs.png"].axes) == 2
    # The curve starts at the untrained loss (0.312881), not at the finder's biased 0.158, and falls from there.
    lrs, losses = drawn["lr_find.png"].axes[0].lines[0].get_data()
    assert abs(losses[0] - 0.312881) < 1e-4 and np.all(np.diff(losses[: np.searchsorted(lrs, suggestion)]) <= 1e-6)


def test_lr_sweep_refuses_model_lr(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        run("lr-sweep", "--model.lr", "0.1")
    assert exit_info.value.code == 2 and "give the learning rates with --lrs" in capsys.readouterr().err

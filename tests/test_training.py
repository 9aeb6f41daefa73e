"""Training reproduces the tutorial: its printed log, its final (loaded) model and its predictions."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from lit_linreg.task import LinearRegressionTask

from .helpers import CONFIGS, TUTORIAL_LOADED, TUTORIAL_PREDICTIONS, TUTORIAL_TABLE, run, table_rows


def test_base_yaml_reproduces_the_tutorial(capsys: pytest.CaptureFixture[str]) -> None:
    run("fit", "--config", CONFIGS / "base.yaml")
    output = capsys.readouterr().out
    assert table_rows(output) == TUTORIAL_TABLE
    assert "final (epoch 499): weight 0.6954, bias 0.2998 | true: weight 0.7000, bias 0.3000" in output
    assert "on CPUAccelerator" in output  # the chosen accelerator is printed

    task = LinearRegressionTask.load_from_checkpoint(Path("checkpoints/base/version_0/last.ckpt"))
    assert task.hparams.variant == "manual"
    state = task.model.state_dict()
    assert {k: round(v.item(), 4) for k, v in state.items()} == TUTORIAL_LOADED
    x_test = torch.arange(0, 1, 0.02).unsqueeze(dim=1)[40:]
    assert [round(p, 4) for p in task(x_test)[:, 0].tolist()] == TUTORIAL_PREDICTIONS


def test_linear_yaml_reproduces_section_6(capsys: pytest.CaptureFixture[str]) -> None:
    run("fit", "--config", CONFIGS / "linear.yaml")
    rows = table_rows(capsys.readouterr().out)
    # The tutorial prints epoch, train loss and test loss every 20 epochs for its nn.Linear model.
    assert [(e, tl, vl) for e, tl, vl, _, _ in rows] == [
        (0, "0.555178", "0.573976"),
        (20, "0.324758", "0.304557"),
        (40, "0.094338", "0.035137"),
        (60, "0.019957", "0.045803"),
        (80, "0.013089", "0.029945"),
        (100, "0.006216", "0.014087"),
        (120, "0.001265", "0.013802"),
        (140, "0.001265", "0.013802"),
        (160, "0.001265", "0.013802"),
        (180, "0.001265", "0.013802"),
    ]


@pytest.mark.parametrize(("variant", "lr", "epochs"), [("manual", 0.01, 300), ("linear", 0.01, 300)])
def test_both_variants_converge_to_the_true_line(variant: str, lr: float, epochs: int) -> None:
    run(
        "fit",
        "--model.variant",
        variant,
        "--model.lr",
        lr,
        "--trainer.max_epochs",
        epochs,
        "--seed_everything",
        1,
        "--trainer.enable_progress_bar",
        "false",
        "--run_name",
        variant,
    )
    task = LinearRegressionTask.load_from_checkpoint(f"checkpoints/{variant}/version_0/last.ckpt")
    weight, bias = task.model.coefficients()
    assert abs(weight.item() - 0.7) < 0.01 and abs(bias.item() - 0.3) < 0.01


def test_minibatches_with_noise_converge(capsys: pytest.CaptureFixture[str]) -> None:
    run(
        "fit",
        "--model.variant",
        "linear",
        "--model.lr",
        0.05,
        "--trainer.max_epochs",
        15,
        "--data.num_samples",
        4000,
        "--data.noise_std",
        0.05,
        "--data.batch_size",
        64,
        "--trainer.enable_progress_bar",
        "false",
        "--table.every_n_epochs",
        5,
        "--seed_everything",
        0,
    )
    task = LinearRegressionTask.load_from_checkpoint("checkpoints/default/version_0/last.ckpt")
    weight, bias = task.model.coefficients()
    assert abs(weight.item() - 0.7) < 0.02 and abs(bias.item() - 0.3) < 0.02

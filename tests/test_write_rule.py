"""The one write rule: no command writes onto a file it read, replaces a newer state with an older one, or shares an
output file with another command; and numbers are checked on the way out."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest
import torch

from .bad_inputs import error_line
from .helpers import CONFIGS, run

FIT = ("fit", "--config", CONFIGS / "base.yaml", "--table.every_n_epochs", "0", "--figures.enabled", "false")


def digests(folder: Path) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in folder.iterdir() if p.is_file()}


def test_resuming_from_best_never_replaces_the_newer_last(capsys: pytest.CaptureFixture[str]) -> None:
    run(*FIT, "--trainer.max_epochs", "400")
    first = Path("checkpoints/base/version_0")
    before = digests(first)
    assert torch.load(first / "last.ckpt", weights_only=True)["epoch"] == 399
    capsys.readouterr()
    run(*FIT, "--trainer.max_epochs", "420", "--ckpt_path", "best")  # best is older than last
    out = capsys.readouterr().out
    assert "resuming checkpoints/base/version_0/best-epoch=" in out
    assert digests(first) == before  # the folder of the newer state is untouched
    resumed = torch.load("checkpoints/base/version_1/last.ckpt", weights_only=True)
    assert resumed["epoch"] == 419  # it went on in a version of its own


def test_resuming_a_finished_run_changes_nothing(capsys: pytest.CaptureFixture[str]) -> None:
    run(*FIT, "--trainer.max_epochs", "30")
    checkpoints, logs = Path("checkpoints/base/version_0"), Path("lightning_logs/base/version_0")
    before = (digests(checkpoints), digests(logs))
    capsys.readouterr()
    run(*FIT, "--trainer.max_epochs", "30", "--ckpt_path", "last", "--model.lr", "0.5")
    out = capsys.readouterr().out
    assert "already trained 30 epochs (trainer.max_epochs=30): nothing to do" in out
    assert (digests(checkpoints), digests(logs)) == before  # config.yaml included
    assert sorted(p.name for p in Path("checkpoints/base").iterdir()) == ["version_0"]


def test_evaluations_never_share_an_output_file(capsys: pytest.CaptureFixture[str]) -> None:
    run(*FIT, "--trainer.max_epochs", "5")
    for _ in range(2):
        run("predict", "--ckpt_path", "checkpoints/base/version_0/last.ckpt")
        run("test", "--ckpt_path", "checkpoints/base/version_0/last.ckpt")
    logs = Path("lightning_logs/base/version_0")
    assert sorted(p.name for p in logs.iterdir() if p.is_dir()) == ["predict_0", "predict_1", "test_0", "test_1"]
    assert (logs / "predict_0/predictions.csv").is_file() and (logs / "predict_1/predictions.csv").is_file()
    assert not list(Path("checkpoints/base/version_0").glob("*.csv"))  # nothing written beside the checkpoints


def test_many_values_to_predict_and_non_finite_weights(capsys: pytest.CaptureFixture[str]) -> None:
    run(*FIT, "--trainer.max_epochs", "5")
    last = Path("checkpoints/base/version_0/last.ckpt")
    values = ", ".join(f"{i / 1000:.3f}" for i in range(5000))  # checked once, not element by element
    run("predict", "--ckpt_path", last, "--data.predict_x", f"[{values}]")
    assert "(5000 rows)" in capsys.readouterr().out
    checkpoint = torch.load(last, weights_only=True)
    checkpoint["state_dict"]["model.weights"].fill_(float("nan"))
    torch.save(checkpoint, "nan.ckpt")
    line = error_line(capsys, "predict", "--ckpt_path", "nan.ckpt")
    assert "checkpoint nan.ckpt holds unusable weights: model.weights has 1 NaN or infinite value(s)" in line

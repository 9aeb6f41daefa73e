"""Faults: a kill mid-write, a kill mid-run, a diverging run, a missing accelerator."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from lit_linreg.storage.checkpoints import AtomicCheckpointIO
from lit_linreg.task import LinearRegressionTask

from .bad_inputs import error_line
from .helpers import CONFIGS, run, table_rows

# Saves two payloads alternately through AtomicCheckpointIO until killed. It imports torch and Lightning once, then
# forks one saver per line read from stdin (torch.save needs no threads, so the forks are safe), prints the saver's
# pid after its first save, and prints "dead" once the test has killed it.
SAVER = """
import itertools, os, sys
import torch
from lit_linreg.storage.checkpoints import AtomicCheckpointIO

payloads = [{"hyper_parameters": {"variant": "linear", "lr": 0.1}, "state_dict": {"w": torch.full((2**20,), v)}}
            for v in (1.0, 2.0)]
for _ in sys.stdin:
    pid = os.fork()
    if pid == 0:
        for i in itertools.count():
            AtomicCheckpointIO().save_checkpoint(payloads[i % 2], sys.argv[1])
            if i == 0:
                print(os.getpid(), flush=True)
    os.waitpid(pid, 0)
    print("dead", flush=True)
"""


@pytest.mark.skipif(not hasattr(os, "fork"), reason="the saver forks")
def test_a_kill_during_checkpoint_writes_leaves_a_whole_checkpoint(tmp_path: Path) -> None:
    target = tmp_path / "last.ckpt"
    saver = subprocess.Popen(
        [sys.executable, "-c", SAVER, str(target)], text=True, stdin=subprocess.PIPE, stdout=subprocess.PIPE
    )
    moments = random.Random(0)
    try:
        for _ in range(8):
            saver.stdin.write("save\n")
            saver.stdin.flush()
            pid = int(saver.stdout.readline())
            time.sleep(moments.uniform(0, 0.1))  # a 4 MB save takes some milliseconds: kills land mid-write too
            os.kill(pid, signal.SIGKILL)
            assert saver.stdout.readline() == "dead\n"
            weights = AtomicCheckpointIO().load_checkpoint(str(target))["state_dict"]["w"]
            assert len(weights) == 2**20 and weights.unique().tolist() in ([1.0], [2.0])
            assert [p.name for p in tmp_path.glob("*.ckpt")] == ["last.ckpt"]  # leftovers are no *.ckpt
            leftovers = [p.name for p in tmp_path.iterdir() if p != target]
            assert all(name.startswith(".last.ckpt.") and name.endswith(".tmp") for name in leftovers)
    finally:
        saver.kill()
        saver.communicate()
    AtomicCheckpointIO().save_checkpoint({"state_dict": {}}, str(target))  # the next save removes the leftovers
    assert [p.name for p in tmp_path.iterdir()] == ["last.ckpt"]


# Shuffled minibatches of noisy data: 32 steps per epoch, a checkpoint after each.
RESUMABLE = [
    "fit",
    "--model.variant",
    "linear",
    "--model.lr",
    "0.05",
    "--data.num_samples",
    "10000",
    "--data.noise_std",
    "0.1",
    "--data.batch_size",
    "256",
    "--trainer.max_epochs",
    "8",
    "--checkpoint.every_n_epochs",
    "1",
    "--seed_everything",
    "3",
    "--trainer.enable_progress_bar",
    "false",
    "--table.every_n_epochs",
    "1",
]


def test_resume_after_sigkill_is_bit_identical_to_an_uninterrupted_run(tmp_path: Path, capsys) -> None:
    run(*RESUMABLE, "--run_name", "uninterrupted")
    log = tmp_path / "killed.log"
    with open(log, "w") as output:
        killed = subprocess.Popen(
            [sys.executable, "-m", "lit_linreg", *RESUMABLE, "--run_name", "resume"],
            stdout=output,
            stderr=subprocess.STDOUT,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )
    deadline = time.monotonic() + 300
    while "\n    3 |" not in log.read_text():  # epoch 2's checkpoint is written before epoch 3 starts
        assert killed.poll() is None and time.monotonic() < deadline, log.read_text()
        time.sleep(0.02)
    killed.send_signal(signal.SIGKILL)
    assert killed.wait() == -signal.SIGKILL
    saved_epoch = torch.load("checkpoints/resume/version_0/last.ckpt", weights_only=True)["epoch"]
    assert 2 <= saved_epoch < 7

    capsys.readouterr()
    run(*RESUMABLE, "--run_name", "resume", "--ckpt_path", "last")
    assert table_rows(capsys.readouterr().out)[0][0] == saved_epoch + 1  # it resumed, it did not start again
    resumed, uninterrupted = (
        torch.load(f"checkpoints/{name}/version_0/last.ckpt", weights_only=True) for name in ("resume", "uninterrupted")
    )
    assert resumed["epoch"] == uninterrupted["epoch"] == 7
    assert resumed["state_dict"].keys() == uninterrupted["state_dict"].keys()
    assert all(torch.equal(resumed["state_dict"][k], v) for k, v in uninterrupted["state_dict"].items())


def test_divergence_stops_at_once_and_keeps_the_last_good_checkpoint(capsys: pytest.CaptureFixture[str]) -> None:
    fit = ("fit", "--config", CONFIGS / "base.yaml", "--checkpoint.every_n_epochs", "1", "--table.every_n_epochs", "0")
    last = Path("checkpoints/base/version_0/last.ckpt").resolve()
    line = error_line(capsys, *fit, "--model.lr", "1e37")  # finite after epoch 0, the loss overflows in epoch 1
    assert (
        f"training diverged at epoch 1: the training loss became inf with model.lr=1e+37; use a smaller "
        f"learning rate, e.g. --model.lr 1e+36; last checkpoint before the divergence: {last}"
    ) in line
    good = torch.load(last, weights_only=True)
    assert good["epoch"] == 0 and all(torch.isfinite(t).all() for t in good["state_dict"].values())
    LinearRegressionTask.load_from_checkpoint(last)

    # Diverging in its first epoch, a rerun saves nothing: the earlier run's checkpoints stay as they were.
    before = {p: p.read_bytes() for p in last.parent.iterdir()}
    line = error_line(capsys, *fit, "--model.lr", "1e38")
    assert "diverged at epoch 0: the validation loss became inf" in line and "none was written yet" in line
    assert before == {p: p.read_bytes() for p in last.parent.iterdir()}


def test_accelerator_auto_always_works(capsys: pytest.CaptureFixture[str]) -> None:
    run("fit", "--config", CONFIGS / "base.yaml", "--trainer.accelerator", "auto", "--trainer.max_epochs", "2")
    assert "lit-linreg fit: run 'base' on " in capsys.readouterr().out
    assert Path("checkpoints/base/version_0/last.ckpt").is_file()

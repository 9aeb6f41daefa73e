"""Faults: kills mid-write and mid-run, SIGTERM, divergence, concurrent runs, full and read-only disks."""

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

from lit_linreg.checkpoints import AtomicCheckpointIO
from lit_linreg.task import LinearRegressionTask

from .bad_inputs import error_line
from .helpers import CONFIGS, run, table_rows

# Saves two payloads alternately through AtomicCheckpointIO until killed. It imports torch and Lightning once, then
# forks one saver per line read from stdin (torch.save needs no threads, so the forks are safe), prints the saver's
# pid after its first save, and prints "dead" once the test has killed it.
SAVER = """
import itertools, os, sys
import torch
from lit_linreg.checkpoints import AtomicCheckpointIO

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
    killed = _lit_linreg_process(*RESUMABLE, "--run_name", "resume", log=log)
    _wait_for(killed, log, "\n    3 |")  # epoch 2's checkpoint is written before epoch 3 starts
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
    # The README's order: a good run, then the divergence example, then a resume and a test of the good run.
    fit = ("fit", "--config", CONFIGS / "base.yaml", "--table.every_n_epochs", "0")
    run(*fit, "--trainer.max_epochs", "100")
    good = Path("checkpoints/base/version_0")
    before = {p: p.read_bytes() for p in good.iterdir()}
    line = error_line(capsys, *fit, "--model.lr", "1e37", "--checkpoint.every_n_epochs", "1")
    assert (
        "training diverged at epoch 0: the validation loss grew to 1.347e+37, over 1000 times the first epoch's "
        "training loss 0.3129 with model.lr=1e+37; use a smaller learning rate, e.g. --model.lr 0.005 (the "
        "tutorial's), or compare rates with lit-linreg lr-sweep; last checkpoint before the divergence: none was "
        "written yet"
    ) in line
    assert not list(Path("checkpoints/base").glob("version_1/*.ckpt"))  # no checkpoint holds a diverged state
    assert not Path("checkpoints/base/version_1").exists()  # and the fit that wrote nothing leaves no folder
    assert before == {p: p.read_bytes() for p in good.iterdir()}  # and the earlier run is untouched
    capsys.readouterr()
    run(*fit, "--trainer.max_epochs", "150", "--ckpt_path", "last")  # the suggestion works: resume the good run
    assert f"--ckpt_path last: {good / 'last.ckpt'}" in capsys.readouterr().out
    run("test", "--config", CONFIGS / "base.yaml", "--ckpt_path", "best")
    assert "test_loss" in capsys.readouterr().out


def test_a_fit_that_fails_at_set_up_leaves_no_version_folder(capsys: pytest.CaptureFixture[str]) -> None:
    line = error_line(capsys, "fit", "--config", CONFIGS / "base.yaml", "--data.end", "-1")
    assert "data.end must be greater than data.start" in line
    assert not Path("checkpoints/base").exists() or not list(Path("checkpoints/base").iterdir())
    run("fit", "--config", CONFIGS / "base.yaml", "--trainer.max_epochs", "2", "--table.every_n_epochs", "0")
    assert [p.name for p in Path("checkpoints/base").iterdir()] == ["version_0"]  # the failed fit used up no number


def test_a_finite_blow_up_is_divergence_too(capsys: pytest.CaptureFixture[str]) -> None:
    line = error_line(capsys, "fit", "--config", CONFIGS / "linear.yaml", "--model.lr", "1e30", "--run_name", "big")
    assert "training diverged at epoch 0: the validation loss grew to" in line
    assert "over 1000 times the first epoch's training loss" in line and "--model.lr 0.01 (the tutorial's)" in line
    assert not list(Path("checkpoints/big").rglob("*.ckpt"))


def test_resuming_from_a_blown_up_checkpoint_says_the_checkpoint_is_bad(capsys: pytest.CaptureFixture[str]) -> None:
    fit = ("fit", "--config", CONFIGS / "base.yaml", "--table.every_n_epochs", "0", "--trainer.max_epochs", "20")
    run(*fit)
    last = Path("checkpoints/base/version_0/last.ckpt")
    checkpoint = torch.load(last, weights_only=True)
    checkpoint["state_dict"]["model.weights"].fill_(3.9e36)  # what an older lit-linreg could save: finite, useless
    bad = Path("blown_up.ckpt")
    torch.save(checkpoint, bad)
    line = error_line(capsys, *fit[:-1], "40", "--ckpt_path", bad)
    assert f"the first after resuming from {bad}" in line
    assert "that checkpoint may itself hold a blown-up state" in line and "retrain without --ckpt_path" in line


def test_a_loss_that_does_not_fall_gets_a_warning(capsys: pytest.CaptureFixture[str]) -> None:
    run("fit", "--config", CONFIGS / "base.yaml", "--model.lr", "1e-9", "--trainer.max_epochs", "20")
    out = capsys.readouterr().out
    assert "warning: the training loss did not fall" in out and "model.lr=1e-09 is likely too small" in out


def test_the_table_stays_readable_for_any_value(capsys: pytest.CaptureFixture[str]) -> None:
    from lit_linreg.errors import fixed_width, format_weight

    assert fixed_width(0.312881, 10, 6) == "  0.312881"
    assert len(fixed_width(5.0e28, 10, 6)) == 10 and fixed_width(5.0e28, 10, 6) == "5.0000e+28"
    assert fixed_width(-3.9e36, 6, 4) == "-4e+36" and format_weight(torch.tensor([0.6954])) == "0.6954"
    assert format_weight(torch.tensor([0.6876, -0.2, 0.0302])) == "[0.6876, -0.2000, 0.0302]"  # no -2e-01
    assert format_weight(torch.tensor([-3.9e36])) == " -4e+36"  # a blown-up weight still fits its column
    assert all(len(fixed_width(v, 10, 6)) == 10 for v in (1e300, -1e300, 123456.0, float("inf"), 0.0))
    assert all(len(fixed_width(v, 6, 4)) == 6 for v in (1e30, -1e30, 12.5, -0.5, float("nan")))


def test_sigterm_saves_at_the_epoch_boundary_and_the_resume_is_bit_identical(tmp_path: Path, capsys) -> None:
    log = tmp_path / "terminated.log"
    args = (*RESUMABLE, "--last.every_n_epochs", "100")  # last.ckpt only from the epoch the fit stops at
    job = _lit_linreg_process(*args, "--run_name", "terminated", log=log)
    _wait_for(job, log, "\n    2 |")
    job.send_signal(signal.SIGTERM)
    assert job.wait(timeout=120) == 128 + signal.SIGTERM, log.read_text()
    text = log.read_text()
    assert "Traceback" not in text
    assert "lit-linreg: error: interrupted by SIGTERM: stopped after epoch" in text
    stopped = int(text.split("stopped after epoch ")[1].split()[0])
    saved = torch.load("checkpoints/terminated/version_0/last.ckpt", weights_only=True)
    assert saved["epoch"] == stopped and stopped < 7  # saved at the end of the epoch it was in

    run(*args, "--run_name", "uninterrupted")
    capsys.readouterr()
    run(*args, "--run_name", "terminated", "--ckpt_path", "last")
    assert table_rows(capsys.readouterr().out)[0][0] == stopped + 1
    resumed, uninterrupted = (
        torch.load(f"checkpoints/{name}/version_0/last.ckpt", weights_only=True)
        for name in ("terminated", "uninterrupted")
    )
    assert resumed["epoch"] == uninterrupted["epoch"] == 7
    assert all(torch.equal(resumed["state_dict"][k], v) for k, v in uninterrupted["state_dict"].items())


def _lit_linreg_process(*args: object, log: Path) -> subprocess.Popen:
    """``python -m lit_linreg <args>`` in the background, its stdout and stderr going to ``log``."""
    with open(log, "w") as output:
        return subprocess.Popen(
            [sys.executable, "-m", "lit_linreg", *map(str, args)],
            stdout=output,
            stderr=subprocess.STDOUT,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )


def _wait_for(process: subprocess.Popen, log: Path, text: str, timeout: float = 300) -> None:
    """Wait until ``text`` appears in ``log``, while ``process`` is still running."""
    deadline = time.monotonic() + timeout
    while text not in log.read_text():
        assert process.poll() is None and time.monotonic() < deadline, log.read_text()
        time.sleep(0.02)


def test_two_fits_of_one_run_at_once_both_finish_in_separate_folders(tmp_path: Path) -> None:
    args = ("--config", CONFIGS / "base.yaml", "--trainer.max_epochs", "200", "--figures.enabled", "false")
    jobs = [_lit_linreg_process("fit", *args, log=tmp_path / f"{i}.log") for i in range(2)]
    assert [job.wait(timeout=300) for job in jobs] == [0, 0], [(tmp_path / f"{i}.log").read_text() for i in range(2)]
    folders = sorted(p.name for p in Path("checkpoints/base").iterdir())
    assert folders == ["version_0", "version_1"]
    run("fit", *args, "--run_name", "alone")
    alone = torch.load("checkpoints/alone/version_0/last.ckpt", weights_only=True)["state_dict"]
    for folder in folders:
        together = torch.load(f"checkpoints/base/{folder}/last.ckpt", weights_only=True)["state_dict"]
        assert all(torch.equal(together[k], v) for k, v in alone.items())  # nothing interleaved
        assert Path(f"lightning_logs/base/{folder}").is_dir()


def test_a_second_resume_of_the_same_folder_refuses_at_once(tmp_path: Path) -> None:
    run("fit", "--config", CONFIGS / "base.yaml", "--trainer.max_epochs", "10", "--figures.enabled", "false")
    args = ("--config", CONFIGS / "base.yaml", "--ckpt_path", "last", "--trainer.max_epochs", "3000")
    first = _lit_linreg_process("fit", *args, "--table.every_n_epochs", "1", log=tmp_path / "first.log")
    _wait_for(first, tmp_path / "first.log", "\n   12 |")  # resumed and training
    second = _lit_linreg_process("fit", *args, log=tmp_path / "second.log")
    assert second.wait(timeout=120) == 2
    first.send_signal(signal.SIGTERM)
    first.wait(timeout=120)
    text = (tmp_path / "second.log").read_text()
    assert "Traceback" not in text
    assert "checkpoints/base/version_0 is in use by another lit-linreg fit; wait for it to finish" in text


def _storage_fit(root: Path, capsys: pytest.CaptureFixture[str], *extra: str) -> str:
    args = ("fit", "--config", CONFIGS / "base.yaml", "--trainer.default_root_dir", root, "--trainer.max_epochs", "60")
    return error_line(capsys, *args, "--checkpoint.every_n_epochs", "1", *extra)


def _mount(*args: str) -> None:
    result = subprocess.run(["mount", *args], capture_output=True, text=True)
    if result.returncode:
        pytest.skip(f"mounting is not allowed here: {result.stderr.strip()}")


def _unmount(path: Path) -> None:
    if subprocess.run(["umount", str(path)], capture_output=True).returncode:
        subprocess.run(["umount", "-l", str(path)], check=False)  # still busy: detach it now, free it when unused


def test_a_full_disk_ends_in_one_line_and_leaves_no_torn_checkpoint(tmp_path: Path, capsys) -> None:
    disk = tmp_path / "disk"
    disk.mkdir()
    _mount("-t", "tmpfs", "-o", "size=512k", "tmpfs", str(disk))
    try:
        run("fit", "--config", CONFIGS / "base.yaml", "--trainer.default_root_dir", disk, "--trainer.max_epochs", "5")
        first = {p: p.read_bytes() for p in disk.rglob("*.ckpt")}
        free = os.statvfs(disk).f_bavail * os.statvfs(disk).f_frsize
        (disk / "filler").write_bytes(b"\0" * max(0, free - 24_000))  # room for a few files, not for a whole fit
        line = _storage_fit(disk, capsys)
        assert "cannot write " in line and "the disk is full: free space there" in line
        for path in disk.rglob("*.ckpt"):  # every checkpoint left is whole and loads
            LinearRegressionTask.load_from_checkpoint(path)
        assert first == {p: p.read_bytes() for p in first}  # the earlier fit's are intact
    finally:
        _unmount(disk)


def test_a_read_only_folder_ends_in_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    source, folder = tmp_path / "source", tmp_path / "read_only"
    source.mkdir()
    folder.mkdir()
    _mount("--bind", "-o", "ro", str(source), str(folder))
    try:
        line = _storage_fit(folder, capsys)
        assert "cannot write " in line and str(folder) in line and "read-only" in line
    finally:
        _unmount(folder)


def test_enospc_at_a_checkpoint_write_keeps_the_earlier_checkpoints(capsys: pytest.CaptureFixture[str]) -> None:
    import lit_linreg.files as files

    run("fit", "--config", CONFIGS / "base.yaml", "--trainer.max_epochs", "50", "--table.every_n_epochs", "0")
    last = Path("checkpoints/base/version_0/last.ckpt")
    before = last.read_bytes()
    calls = {"n": 0}
    real_fsync = os.fsync

    def fsync(fd: int) -> None:
        calls["n"] += 1
        if calls["n"] > 2:  # one fsync a write: the third write hits a full disk
            raise OSError(28, "No space left on device")
        real_fsync(fd)

    resume = ("--ckpt_path", "last", "--last.every_n_epochs", "1", "--trainer.max_epochs", "60")
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(files.os, "fsync", fsync)
        line = error_line(capsys, "fit", "--config", CONFIGS / "base.yaml", *resume, "--figures.enabled", "false")
    assert "cannot write checkpoints/base/version_0/" in line and "the disk is full" in line
    assert calls["n"] == 3
    LinearRegressionTask.load_from_checkpoint(last)  # whole: each write replaced it whole, or not at all
    assert not [p.name for p in last.parent.iterdir() if p.name.endswith(".tmp")]  # no torn leftovers either
    assert last.read_bytes() != before  # the writes before the fault did land


def test_accelerator_auto_always_works(capsys: pytest.CaptureFixture[str]) -> None:
    run("fit", "--config", CONFIGS / "base.yaml", "--trainer.accelerator", "auto", "--trainer.max_epochs", "2")
    assert "lit-linreg fit: run 'base' on " in capsys.readouterr().out
    assert Path("checkpoints/base/version_0/last.ckpt").is_file()

"""Bad, foreign and malicious checkpoints are refused with one specific line, before anything in them is used."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import torch

from lit_linreg.checkpoints import FORMAT, FORMAT_KEY, load_task
from lit_linreg.errors import UserError
from lit_linreg.task import LinearRegressionTask

from .bad_inputs import crafted, error_line, fit_real_checkpoint, write_bad_checkpoints
from .helpers import CONFIGS

UNTRUSTED = "is not a trusted lit-linreg checkpoint"
EXPECTED = {  # bad checkpoint -> what the message says after "checkpoint <path> "
    "torch file that runs code": UNTRUSTED + ": it holds Python objects that would run code",
    "pickle that runs code": UNTRUSTED + ": it holds Python objects that would run code",
    "untrusted instantiator": UNTRUSTED + ": its hyperparameters name the instantiator 'os.system'",
    "foreign data class": UNTRUSTED + ": its data class 'os.system' is not a lit-linreg data module",
    "foreign class path": "was saved by tests.bad_inputs.ForeignModule, not by lit-linreg",
    "foreign module": "was saved by another LightningModule, not by lit-linreg",
    "random bytes": "is damaged or not a PyTorch checkpoint",
    "truncated copy": "is damaged or not a PyTorch checkpoint",
    "empty file": "is an empty file",
    "hyperparameters list": "is damaged: its hyper_parameters is no mapping",
    "data settings text": "is damaged: its datamodule_hyper_parameters is no mapping",
    "callbacks list": "is damaged: its callbacks is no mapping",
    "numeric data class": UNTRUSTED + ": its data class 5 is not a lit-linreg data module",
    "listed data class": UNTRUSTED + ": its data class ['x.Y'] is not a lit-linreg data module",
    "listed instantiator": UNTRUSTED + ": its hyperparameters name the instantiator ['x']",
}
RUNS_CODE = ["torch file that runs code", "untrusted instantiator"]
COMMANDS = [["predict"], ["test"], ["validate"], ["fit", "--trainer.max_epochs", "1"]]


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("checkpoints")
    paths = write_bad_checkpoints(fit_real_checkpoint(root / "real"), root / "bad", root / "code_ran")
    return {
        **paths,
        "real": next((root / "real").glob("checkpoints/*/version_*/last.ckpt")),
        "marker": root / "code_ran",
    }


@pytest.mark.parametrize("name", EXPECTED)
def test_every_bad_checkpoint_gets_its_own_message(name: str, files: dict[str, Path], capsys) -> None:
    path = files[name]
    assert f"checkpoint {path} {EXPECTED[name]}" in error_line(capsys, "predict", "--ckpt_path", path)
    with pytest.raises(UserError, match=re.escape(EXPECTED[name])):
        load_task(path)
    assert not files["marker"].exists()


@pytest.mark.parametrize("name", RUNS_CODE)
def test_code_running_checkpoints_are_refused_by_every_entry_point(name: str, files: dict[str, Path], capsys) -> None:
    for command, *options in COMMANDS:
        assert UNTRUSTED in error_line(capsys, command, "--ckpt_path", files[name], *options)
    # The same file as checkpoints/<run>/last.ckpt, reached through the aliases.
    last = Path("checkpoints/evil/version_0/last.ckpt")
    last.parent.mkdir(parents=True)
    last.write_bytes(files[name].read_bytes())
    assert UNTRUSTED in error_line(capsys, "fit", "--run_name", "evil", "--ckpt_path", "last")
    assert UNTRUSTED in error_line(capsys, "test", "--run_name", "evil", "--ckpt_path", "best")
    assert not files["marker"].exists()


def test_missing_checkpoint(capsys: pytest.CaptureFixture[str]) -> None:
    assert "checkpoint nowhere.ckpt does not exist" in error_line(capsys, "predict", "--ckpt_path", "nowhere.ckpt")
    assert "there is no checkpoints/base/version_*/last.ckpt" in error_line(
        capsys, "test", "--config", CONFIGS / "base.yaml", "--ckpt_path", "last"
    )


def test_weights_only_false_is_refused(files: dict[str, Path], capsys: pytest.CaptureFixture[str]) -> None:
    assert "--weights_only false is refused" in error_line(
        capsys, "predict", "--ckpt_path", files["real"], "--weights_only", "false"
    )
    with pytest.raises(UserError, match="weights_only=False is refused"):
        load_task(files["real"], weights_only=False)


def test_a_config_that_contradicts_the_checkpoint(tmp_path: Path, files: dict[str, Path], capsys) -> None:
    line = error_line(capsys, "predict", "--ckpt_path", files["real"], "--config", CONFIGS / "linear.yaml")
    assert "holds a model with variant='manual', but the config asks for model.variant='linear'" in line
    two_features = fit_real_checkpoint(
        tmp_path / "wide", "--data.num_samples", "100", "--data.num_features", "2", "--trainer.max_epochs", "1"
    )
    line = error_line(capsys, "test", "--ckpt_path", two_features, "--data.num_features", "1")
    assert "holds a model with in_features=2, but the config asks for model.in_features (set by the data)=1" in line
    # In Python, weights that do not fit the requested model are one line too, not a state-dict dump.
    with pytest.raises(UserError, match="do not fit this model .variant='linear'"):
        LinearRegressionTask.load_from_checkpoint(files["real"], variant="linear")


def test_load_from_checkpoint_still_loads_a_good_checkpoint(files: dict[str, Path]) -> None:
    task = LinearRegressionTask.load_from_checkpoint(files["real"])
    state = torch.load(files["real"], weights_only=True)["state_dict"]
    assert task.hparams.variant == "manual"
    assert all(torch.equal(task.state_dict()[k], v) for k, v in state.items())


def test_a_directory_names_the_checkpoints_in_it(files: dict[str, Path], capsys) -> None:
    run_dir = files["real"].parent.parent  # checkpoints/<run>/, holding version_0/
    line = error_line(capsys, "predict", "--ckpt_path", run_dir)
    assert f"checkpoint {run_dir} is a directory, not a checkpoint file; give one of its files, e.g. " in line
    assert str(files["real"]) in line and "(or --ckpt_path last (or best) for the newest fit" in line
    empty = Path("empty_folder")
    empty.mkdir()
    line = error_line(capsys, "fit", "--ckpt_path", empty, "--trainer.max_epochs", "1")
    assert (
        "checkpoint empty_folder is a directory, and it holds no checkpoint (*.ckpt) files; give a .ckpt file" in line
    )
    with pytest.raises(UserError, match="is a directory"):
        load_task(run_dir)


@pytest.mark.parametrize("entry", [{"format": 99, "data_class": None}, {"format": "2"}, "not a mapping"])
def test_a_checkpoint_of_another_lit_linreg_version(entry: object, files: dict[str, Path], capsys) -> None:
    assert torch.load(files["real"], weights_only=True)[FORMAT_KEY]["format"] == FORMAT  # what this version writes
    path = crafted(files["real"], "future.ckpt", lambda c: {**c, FORMAT_KEY: entry})
    shown = repr(entry["format"]) if isinstance(entry, dict) else "None"
    message = (
        f"checkpoint future.ckpt was written by another lit-linreg version (checkpoint format {shown}; this version "
        f"reads formats 1 to {FORMAT}); load it with the lit-linreg that wrote it, or retrain"
    )
    for command in ("predict", "test"):
        assert error_line(capsys, command, "--ckpt_path", path) == f"lit-linreg: error: {message}"
    with pytest.raises(UserError, match=re.escape(message)):
        load_task(path)


def test_weights_named_by_numbers_do_not_fit(files: dict[str, Path]) -> None:
    numbered = crafted(files["real"], "numbered.ckpt", lambda c: {**c, "state_dict": {0: torch.zeros(1)}})
    with pytest.raises(UserError, match="do not fit this model"):
        load_task(numbered)


def test_a_last_ckpt_with_odd_callback_states_has_no_best(files: dict[str, Path], capsys) -> None:
    last = "checkpoints/odd/version_0/last.ckpt"
    crafted(files["real"], last, lambda c: {**c, "callbacks": {1: "no state", "ModelCheckpoint{'val_loss'}": 3}})
    assert f"--ckpt_path best: {last} names no existing best checkpoint; use --ckpt_path last" in error_line(
        capsys, "test", "--run_name", "odd", "--ckpt_path", "best"
    )


@pytest.mark.parametrize("drop", ["loops", "optimizer_states"])
def test_a_file_without_training_state_cannot_resume(drop: str, files: dict[str, Path], capsys) -> None:
    path = crafted(files["real"], f"no_{drop}.ckpt", lambda c: {k: v for k, v in c.items() if k != drop})
    line = error_line(capsys, "fit", "--ckpt_path", path, "--trainer.max_epochs", "600")
    assert f"checkpoint {path} cannot resume a fit: it holds no training state" in line

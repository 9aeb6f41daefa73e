"""``lit-linreg export``: each format's file, reloaded by its own runtime, gives the checkpoint's predictions."""

from __future__ import annotations

import math
import os
import re
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from lit_linreg.deploy import load_for_inference
from lit_linreg.launch import main

from .deploy_helpers import poisoned, trained
from .helpers import CONFIGS, TUTORIAL_PREDICTIONS

TUTORIAL_X = torch.tensor([[round(0.8 + 0.02 * i, 2)] for i in range(10)])


@pytest.fixture(scope="module")
def tutorial_ckpt(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return trained("tutorial", tmp_path_factory)


def run_file(path: Path, format: str, x: torch.Tensor) -> torch.Tensor:
    """The exported file at ``path``, loaded by its own runtime (not by lit-linreg), applied to ``x``."""
    if format == "onnx":
        import onnxruntime

        session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        assert [(i.name, i.type) for i in session.get_inputs()] == [("x", "tensor(float)")]
        return torch.from_numpy(session.run(["y_pred"], {"x": x.numpy().astype(np.float32)})[0])
    module = torch.jit.load(str(path)) if format == "torchscript" else torch.export.load(str(path)).module()
    with torch.no_grad():
        return module(x)


def export(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[Path, float]:
    """Run ``lit-linreg export <args>``; the written path and the printed max |difference|."""
    main(["export", *args])
    out = capsys.readouterr().out
    written = Path(re.search(r"-> (\S+) \(", out).group(1))
    difference = float(re.search(r"max \|difference\| (\S+) ", out).group(1))
    return written, difference


@pytest.mark.parametrize("format", ["onnx", "torchscript", "exported"])
def test_each_format_gives_the_checkpoints_predictions(
    capsys: pytest.CaptureFixture[str], tutorial_ckpt: Path, tmp_path: Path, format: str
) -> None:
    out = tmp_path / "exports" / f"model.{format}"
    written, difference = export(capsys, "--ckpt_path", str(tutorial_ckpt), "--format", format, "--out", str(out))
    assert written == out and out.is_file() and difference <= 1e-6
    task, _ = load_for_inference(str(tutorial_ckpt))
    y = run_file(out, format, TUTORIAL_X)
    assert y.shape == (10, 1) and y.dtype == torch.float32
    assert [round(v, 4) for v in y[:, 0].tolist()] == TUTORIAL_PREDICTIONS
    assert (y - task(TUTORIAL_X)).abs().max().item() <= 1e-6
    for rows in (1, 7):  # any number of rows
        x = torch.rand(rows, 1)
        assert (run_file(out, format, x) - task(x)).abs().max().item() <= 1e-6
    assert not [p for p in out.parent.iterdir() if p != out]  # no temporary file left behind


def test_onnx_of_a_standardised_csv_model_takes_raw_rows(
    capsys: pytest.CaptureFixture[str], tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    ckpt = trained("csv", tmp_path_factory)
    monkeypatch.chdir(ckpt.parents[3])  # where the CSV is: the parity check rebuilds the test split from it
    written, difference = export(capsys, "--ckpt_path", "last", "--config", str(CONFIGS / "csv_example.yaml"))
    assert written == ckpt.with_name("last.onnx").relative_to(ckpt.parents[3]) and difference <= 1e-6
    task, _ = load_for_inference(str(ckpt))
    assert task.hparams["standardize"]
    x = torch.tensor([[0.5, 5.0, -10.0], [0.1, 9.0, 40.0]])
    assert (run_file(written, "onnx", x) - task(x)).abs().max().item() <= 1e-6


def test_default_output_is_beside_the_checkpoint_and_data_that_moved_still_get_a_parity_check(
    capsys: pytest.CaptureFixture[str], tmp_path_factory: pytest.TempPathFactory, tmp_path: Path
) -> None:
    ckpt = shutil.copy(trained("csv", tmp_path_factory), tmp_path / "model.ckpt")  # away from its data/example.csv
    main(["export", "--ckpt_path", str(ckpt), "--format", "exported"])
    out = capsys.readouterr().out
    assert f"-> {tmp_path / 'model.pt2'} (exported" in out
    assert "on 256 generated rows (the test split could not be rebuilt here: data.csv_path data/example.csv" in out


def fails(capsys: pytest.CaptureFixture[str], *args: str) -> str:
    with pytest.raises(SystemExit) as stopped:
        main(["export", *args])
    assert stopped.value.code == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("lit-linreg: error: "), lines
    return lines[0]


def test_errors_are_one_line(capsys: pytest.CaptureFixture[str], tutorial_ckpt: Path, tmp_path: Path) -> None:
    assert "checkpoint missing.ckpt does not exist" in fails(capsys, "--ckpt_path", "missing.ckpt")
    line = fails(capsys, "--ckpt_path", str(tutorial_ckpt), "--format", "tflite")
    assert "--format: expected one of 'onnx', 'torchscript', 'exported', got tflite" in line
    assert "is a folder" in fails(capsys, "--ckpt_path", str(tutorial_ckpt), "--out", str(tmp_path))
    os.mkfifo(tmp_path / "fifo")
    assert "is no regular file" in fails(capsys, "--ckpt_path", str(tutorial_ckpt), "--out", str(tmp_path / "fifo"))
    long = tmp_path / ("a" * 300 + ".onnx")
    assert "(File name too long); choose another --out" in fails(
        capsys, "--ckpt_path", str(tutorial_ckpt), "--out", str(long)
    )
    (tmp_path / "file").write_text("")
    line = fails(capsys, "--ckpt_path", str(tutorial_ckpt), "--out", str(tmp_path / "file" / "m.onnx"))
    assert f"cannot write --out {tmp_path / 'file' / 'm.onnx'} (" in line
    longest = tmp_path / ("a" * 250 + ".pt")  # a legal name: the temporary file beside it must be too
    export(capsys, "--ckpt_path", str(tutorial_ckpt), "--format", "torchscript", "--out", str(longest))
    assert longest.is_file() and (tmp_path / "fifo").exists()
    repeated = tmp_path / "repeated.yaml"
    repeated.write_text("run_name: a\nrun_name: b\n")  # checked as fit checks a --config file
    assert f"config file {repeated} line 2: run_name is set twice" in fails(
        capsys, "--ckpt_path", "last", "--config", str(repeated)
    )


def test_it_never_writes_onto_a_checkpoint(
    capsys: pytest.CaptureFixture[str], tutorial_ckpt: Path, tmp_path: Path
) -> None:
    ckpt = Path(shutil.copy(tutorial_ckpt, tmp_path / "last.ckpt"))
    other = Path(shutil.copy(tutorial_ckpt, tmp_path / "best.ckpt"))
    content = ckpt.read_bytes()
    for out in (ckpt, tmp_path / "." / "last.ckpt", other, tmp_path / "new.ckpt"):
        for format in ("onnx", "torchscript"):
            line = fails(capsys, "--ckpt_path", str(ckpt), "--format", format, "--out", str(out))
            assert f"--out {out} would overwrite a checkpoint; name the file to write" in line
    assert ckpt.read_bytes() == content == other.read_bytes()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["best.ckpt", "last.ckpt"]


@pytest.mark.parametrize(("name", "value"), [("weights", math.nan), ("bias", math.inf)])
def test_a_checkpoint_with_non_finite_weights_is_refused(
    capsys: pytest.CaptureFixture[str], tutorial_ckpt: Path, tmp_path: Path, name: str, value: float
) -> None:
    ckpt, key = poisoned(tutorial_ckpt, tmp_path, name, value)
    line = fails(capsys, "--ckpt_path", str(ckpt), "--format", "torchscript")
    assert f"checkpoint {ckpt} holds unusable weights: {key} has 1 " in line and "NaN or infinite value(s)" in line
    assert not list(tmp_path.glob("*.pt"))


def test_a_checkpoint_setting_the_task_refuses_names_the_checkpoint(
    capsys: pytest.CaptureFixture[str], tutorial_ckpt: Path, tmp_path: Path
) -> None:
    checkpoint = torch.load(tutorial_ckpt, weights_only=True)
    checkpoint["hyper_parameters"]["lr"] = "abc"
    bad = tmp_path / "bad.ckpt"
    torch.save(checkpoint, bad)
    line = fails(capsys, "--ckpt_path", str(bad))
    assert f"checkpoint {bad} holds a setting lit-linreg refuses (model.lr must be a positive finite number" in line


LAUGHS = "\n".join(["a0: &a0 [lol, lol, lol, lol, lol, lol, lol, lol, lol, lol]"] + [
    f"a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 10)}]" for i in range(1, 9)])  # fmt: skip


@pytest.mark.parametrize(
    ("text", "words"),
    [
        (LAUGHS, "line 7: it stands for more than 2,000,000 values once its aliases are expanded"),
        ("run_name: &a [*a]\n", "line 1: the alias *a stands for a node that contains it (a recursive alias)"),
        ("run_name: " + "[" * 10_000 + "]" * 10_000, "line 1: lists and mappings nest more than 100 levels deep"),
    ],
    ids=["billion-laughs", "recursive-alias", "10000-deep"],
)
def test_a_yaml_bomb_as_config_is_one_line(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, text: str, words: str
) -> None:
    bomb = tmp_path / "bomb.yaml"
    bomb.write_text(text)
    assert f"config file {bomb} {words}" in fails(capsys, "--ckpt_path", "last", "--config", str(bomb))


@pytest.mark.parametrize("missing", ["onnx", "onnxruntime", "onnxscript"])
def test_without_the_export_extra_onnx_names_the_install(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, tutorial_ckpt: Path, missing: str
) -> None:
    monkeypatch.setitem(__import__("sys").modules, missing, None)  # as if not installed: importing it fails
    line = fails(capsys, "--ckpt_path", str(tutorial_ckpt), "--format", "onnx")
    assert f"needs the optional package '{missing}'" in line and "pip install -e '.[export]'" in line

"""Bad input ends in one line ``lit-linreg: error: ...``, exit status 2 and no traceback; bugs keep theirs."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch

from lit_linreg.cli import LitLinregCLI
from lit_linreg.errors import UserError
from lit_linreg.task import LinearRegressionTask

from .bad_inputs import error_line, write_code_running_checkpoint
from .helpers import CONFIGS, run

BASE = CONFIGS / "base.yaml"
HAS_GPU = torch.cuda.is_available() or torch.backends.mps.is_available()
BAD_VALUES = [  # options added to `fit --config configs/base.yaml`, and what the error line says
    (["--data.step", "0"], 'Parser key "step": Not of type PositiveFloat32: 0 does not conform to restriction v>0'),
    (["--data.step", "nan"], 'Parser key "step": Not of type PositiveFloat32: nan does not conform'),
    (["--data.end", "-1"], "data.end must be greater than data.start, got start=0.0, end=-1.0"),
    (["--data.train_split", "1.5"], "Not of type OpenUnitInterval: 1.5 does not conform to restriction v>0 and v<1"),
    (["--data.train_split", "0.01"], "leaves train/val/test splits of 0/0/50 rows"),
    (["--data.batch_size", "0"], "Not of type PositiveInt: does not conform to restriction v>0"),
    (["--data.batch_size", "0.5"], "Not of type PositiveInt: invalid literal for int() with base 10: '0.5'"),
    (["--model.lr", "0"], 'Parser key "model.lr": Not of type PositiveFloat32: 0 does not conform to restriction v>0'),
    (["--model.lr", ".nan"], "Not of type PositiveFloat32: could not convert string to float: '.nan'"),
    (["--model.lr", "1e39"], "1e39 does not conform to restriction v>0 and v<=3.4028234663852886e+38"),
    (["--model.variant", "quadratic"], "Expected a typing.Literal['manual', 'linear']. Got value: quadratic"),
    (["--data.weight", ".inf"], "Not of type Float32: could not convert string to float: '.inf'"),
    (["--data.bias", ".nan"], "Parser key \"bias\": Not of type Float32: could not convert string to float: '.nan'"),
    (["--data.noise_std", ".inf"], "Not of type NonNegativeFloat32: could not convert string to float: '.inf'"),
    (["--data.noise_std", "-1"], "Not of type NonNegativeFloat32: -1 does not conform to restriction v>=0"),
    (["--data.predict_x", "[]"], "data.predict_x is empty"),
    (["--data.predict_x", "[0.5, .nan]"], "data.predict_x[1] holds nan: give finite numbers a float32 holds"),
    (["--data.predict_x", "[0.5, 1e39]"], "data.predict_x[1] holds 1e+39: give finite numbers a float32 holds"),
    (["--data.predict_x", "[0.5, abc]"], "data.predict_x[1] holds 'abc': give finite numbers"),
    (["--data.predict_x", "[true]"], "data.predict_x[0] holds True: give finite numbers"),
    (["--data.predict_x", "[0.5, , 2]"], "Given value: [0.5, , 2]"),
    (
        ["--data.num_samples", "99", "--data.num_features", "2", "--data.predict_x", "[[1, 2], [3]]"],
        "data.predict_x[1] has 1 values but the data have 2 features",
    ),
    (["--trainer.max_epochs", "0"], "trainer.max_epochs must be a positive number of epochs, got 0"),
    (["--trainer.max_epochs", "-1"], "(-1, no epoch limit, is accepted only with a positive --trainer.max_steps)"),
    (["--trainer.max_steps", "0"], "trainer.max_steps must be a positive number of steps or -1"),
    (["--trainer.accelerator", "quantum"], "You selected an invalid accelerator name: `accelerator='quantum'`"),
    (["--seed_everything", "99999999999"], "does not conform to restriction v>=0 and v<4294967296"),
    (["--seed_everything", "-1"], "Given value: -1"),
    (["--data.seed", str(2**70)], "does not conform to restriction v>=0 and v<4294967296"),
    *(
        []
        if HAS_GPU
        else [
            (
                ["--trainer.accelerator", "gpu"],
                "with trainer.accelerator='gpu', devices=1: No supported gpu backend found!; "
                "fix the --trainer option it names (--trainer.accelerator auto uses what this machine",
            )
        ]
    ),
    (["--model.lrr", "1"], "unrecognized arguments: --model.lrr 1; see `lit-linreg fit --help`"),
    (["--run_name", "r" * 300], "run_name must be a plain folder name of at most 200 bytes"),
]
CONFIG_FILES = {  # config file content (None: no such file) -> what the error line says ({config}: the file's path)
    None: "--config {config}: no such file; check the path",
    "model:\n  variant: [manual\n  lr: 0.01\n": "not valid YAML: expected ',' or ']', but got ':' at line 3, column 5",
    "model:\n\tlr: 0.01\n": "config file {config} is not valid YAML: a tab at line 2, column 1; YAML indents and "
    "separates with spaces only: use spaces",
    "model:\n  lr:\t0.01\n": "is not valid YAML: a tab at line 2, column 6",
    "": "config file {config} is empty: it sets no options; put options in it (e.g. `model: {lr: 0.01}`; "
    "`lit-linreg fit --print_config` prints every option) or drop --config {config}",
    "# model:\n#   lr: 0.01\n": "config file {config} is empty: it sets no options",
    "- fit\n- model\n": "config file {config} holds a list, but a config is a mapping of options (`name: value` "
    "lines, e.g. `model: {lr: 0.01}`); rewrite it as one",
    "fit\n": "config file {config} holds the single value 'fit', but a config is a mapping of options",
    "model: null\n": "config file {config} line 1: section 'model' has no options (it is null, which would drop every "
    "model option set before it); give it options (e.g. `model: {lr: 0.01}`) or delete the line",
    "model:\n# lr: 0.01\ntable:\n  every_n_epochs: 0\n": "config file {config} line 1: section 'model' has no options",
    "data: null\n": "config file {config} line 1: section 'data' has no options",
    "trainer:\n  max_epochs: 2\ntrainer: null\n": "config file {config} line 3: trainer is set twice (also at line 1)",
    "seed_everything: 1\ntrainer: null\n": "config file {config} line 2: section 'trainer' has no options",
    "fit:\n  table: null\n": "config file {config} line 2: section 'table' has no options",
    "model: 0.01\n": "config file {config} line 1: section 'model' must hold options (`name: value` lines indented "
    "below it), not '0.01'; e.g. `model: {lr: 0.01}`",
    "data:\n  class_path: lit_linreg.data.SyntheticRegressionData\n  init_args: [0.7, 0.3]\n": (
        "config file {config} line 3: data.init_args must hold the class's options"
    ),
    "model:\n  lr: 0.01\n  variant: linear\n  lr: 0.02\n": "config file {config} line 4: model.lr is set twice (also "
    "at line 2), and YAML would silently keep only the last; delete one of them",
    "model:\n  lr: 1e400\n": "config file {config} line 2: model.lr: 1e400 is too large for a number (it would become "
    "infinity; floats end near 1.8e308); use a smaller value",
    "data:\n  init_args:\n    weight: -1.5e+999\n": "config file {config} line 3: data.weight: -1.5e+999 is too large",
    "model:\n  lr: fast\n": 'Parser key "model.lr": Not of type PositiveFloat32: could not convert string to float: '
    "'fast'; see `lit-linreg fit --help`",
    "trainer:\n  max_epochs: many\n": 'Parser key "trainer.max_epochs"',
    "data:\n  init_args:\n    step: small\n": "Not of type PositiveFloat32: could not convert string to float: 'small'",
    b"# caf\xe9\nmodel:\n  lr: 0.01\n": "config file {config} is not UTF-8 text (byte 0xe9 at line 1, column 6: "
    "Latin-1 or Windows-1252?); save it as UTF-8",
    "model:\n  lrr: 0.01\n": "Subcommand 'fit' does not accept option 'model.lrr'",
    "data:\n  init_args:\n    stepp: 0.01\n": "SyntheticRegressionData': Option 'stepp' is not accepted",
}


@pytest.mark.parametrize(("options", "message"), BAD_VALUES)
def test_bad_values(options: list[str], message: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert message in error_line(capsys, "fit", "--config", BASE, *options)


@pytest.mark.parametrize(
    ("options", "message"),
    [
        (["--data.step", "0"], 'Parser key "step": Not of type PositiveFloat32: 0 does not conform'),
        (["--data.end", "-1"], "data.end must be greater than data.start"),
        (["--model.lr", "0"], 'Parser key "model.lr": Not of type PositiveFloat32: 0'),
        (["--trainer.max_epochs", "0"], "trainer.max_epochs must be a positive number of epochs"),
    ],
)
def test_print_config_checks_like_a_run(options: list[str], message: str, capsys) -> None:
    with pytest.raises(SystemExit) as exit_info:
        run("fit", "--config", BASE, *options, "--print_config")
    out, err = capsys.readouterr()
    assert exit_info.value.code == 2 and "Traceback" not in err and out == ""  # nothing printed
    assert err.strip().splitlines()[-1].startswith("lit-linreg: error: ") and message in err


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ["predict", "--config", BASE],
            "lit-linreg predict needs a trained model, or it would use freshly initialised",
        ),
        (["test", "--config", BASE], "lit-linreg test needs a trained model"),
        (["validate"], "lit-linreg validate needs a trained model"),
        (["fitt", "--config", BASE], "unknown command 'fitt': start with one of fit, validate, test, predict, theory"),
        ([], "no command given: start with one of fit, validate, test, predict, theory, lr-sweep, make-data"),
        (["theory", "--lr", "-1"], "--lr must be > 0, got -1.0; the tutorial uses --lr 0.1"),
    ],
)
def test_commands_that_cannot_run(args: list[object], message: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert message in error_line(capsys, *args)


@pytest.mark.parametrize(("content", "message"), CONFIG_FILES.items())
def test_bad_config_files(content: str | bytes | None, message: str, tmp_path: Path, capsys) -> None:
    config = tmp_path / "config.yaml"
    if content is not None:
        config.write_bytes(content if isinstance(content, bytes) else content.encode())
    line = error_line(capsys, "fit", "--config", config)
    assert message.replace("{config}", str(config)) in line
    if content is None or "YAML" in message:
        assert str(config) in line  # the file is named


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("model: null\n", "config file {config} line 1: section 'model' has no options"),
        ("data: null\n", "config file {config} line 1: section 'data' has no options"),
        ("model:\n  lr: 0.1\n  lr: 0.2\n", "config file {config} line 3: model.lr is set twice"),
    ],
)
def test_bad_config_files_over_another_config(content: str, message: str, tmp_path: Path, capsys) -> None:
    """A later config file that would silently undo an earlier one's section is refused, also with --ckpt_path (once
    an AttributeError from LightningCLI's model when the config set `model: null`)."""
    config = tmp_path / "override.yaml"
    config.write_text(content)
    line = error_line(capsys, "fit", "--config", BASE, "--config", config)
    assert message.replace("{config}", str(config)) in line
    checkpoint = tmp_path / "last.ckpt"
    torch.save({"state_dict": {}}, checkpoint)  # refused only after the config files
    assert message.replace("{config}", str(config)) in error_line(
        capsys, "fit", "--config", config, "--ckpt_path", checkpoint
    )


def test_a_config_folder(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert f"--config {tmp_path} is a folder, not a config file; check the path" in error_line(
        capsys, "fit", "--config", tmp_path
    )


def test_a_missing_config_is_named_as_typed(capsys: pytest.CaptureFixture[str]) -> None:
    for typed in ("configs/bsae.yaml", "./configs/../bsae.yaml"):
        assert f"--config {typed}: no such file; check the path" in error_line(capsys, "fit", "--config", typed)


def test_a_config_given_as_a_string_is_checked_too(capsys: pytest.CaptureFixture[str]) -> None:
    line = error_line(capsys, "fit", "--config", "model: null")
    assert "the model section is None, not a group of options; give it options (e.g. --model.<option> <value>" in line


@pytest.mark.parametrize(
    ("content", "printed"),
    [
        ("optimizer: null\nlr_scheduler: null\nckpt_path: null\nseed_everything: 7\n", "seed_everything: 7"),  # nulls
        ("data: lit_linreg.data.SyntheticRegressionData\n", "class_path: lit_linreg.data.SyntheticRegressionData"),
        ("model: {variant: linear, lr: 0.05}\n", "lr: 0.05"),  # flow style
        ("\ufeff# a BOM and Windows line endings\r\nmodel:\r\n  lr: 0.0123\r\n", "lr: 0.0123"),
    ],
)
def test_config_files_that_work(content: str, printed: str, capsys: pytest.CaptureFixture[str]) -> None:
    Path("ok.yaml").write_text(content, newline="")
    with pytest.raises(SystemExit) as exit_info:
        run("fit", "--config", "ok.yaml", "--print_config")
    assert exit_info.value.code == 0 and printed in capsys.readouterr().out


def test_python_users_get_the_same_errors() -> None:
    with pytest.raises(UserError, match="model.lr must be a positive finite number"):
        LinearRegressionTask(lr=float("nan"))
    with pytest.raises(UserError, match="model.variant must be one of"):
        LinearRegressionTask(variant="quadratic")  # type: ignore[arg-type]


@pytest.mark.parametrize("switch", ["flag", "environment"])
def test_verbose_shows_the_traceback(switch: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LIT_LINREG_VERBOSE", "1" if switch == "environment" else "0")
    flag = ["--verbose"] if switch == "flag" else []
    with pytest.raises(ValueError) as raised:  # the traceback's error: ours, or jsonargparse's raised from ours
        run(*flag, "fit", "--config", BASE, "--data.end", "-1")
    assert isinstance(raised.value, UserError) or isinstance(raised.value.__cause__, UserError)


def test_bugs_keep_their_traceback_and_ctrl_c_exits_130(monkeypatch, capsys) -> None:
    def bug(self: LitLinregCLI, *args, **kwargs) -> None:
        raise ZeroDivisionError("a bug")

    monkeypatch.setattr(LitLinregCLI, "fit", bug)
    with pytest.raises(ZeroDivisionError):
        run("fit", "--config", BASE)

    def ctrl_c(self: LitLinregCLI, *args, **kwargs) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(LitLinregCLI, "fit", ctrl_c)
    with pytest.raises(SystemExit) as exit_info:
        run("fit", "--config", BASE)
    assert exit_info.value.code == 130
    assert capsys.readouterr().err.strip().splitlines()[-1] == "lit-linreg: error: interrupted by Ctrl-C"


# End to end: the real program in fresh processes, for a value, checkpoints, a config file and a device error (the cases
# above share their path through main). They start with this module and run beside its other tests (each spends seconds
# importing torch); the last tests collect them.
END_TO_END = {
    "bad value": (["fit", "--config", BASE, "--data.step", "0"], "Not of type PositiveFloat32: 0 does not conform"),
    "code-running checkpoint": (
        ["predict", "--ckpt_path", "evil.ckpt"],
        "checkpoint evil.ckpt is not a trusted lit-linreg checkpoint",
    ),
    "unavailable accelerator": (["fit", "--config", BASE, "--trainer.accelerator", "gpu"], "accelerator='gpu'"),
    "null section over another config": (
        ["fit", "--config", BASE, "--config", "null.yaml"],
        "config file null.yaml line 2: section 'model' has no options",
    ),
    "checkpoint directory": (["test", "--ckpt_path", "."], "checkpoint . is a directory, not a checkpoint file"),
}
if HAS_GPU:
    del END_TO_END["unavailable accelerator"]


@pytest.fixture(scope="module", autouse=True)
def end_to_end(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, dict[str, subprocess.Popen]]]:
    root = tmp_path_factory.mktemp("end_to_end")
    write_code_running_checkpoint(root / "evil.ckpt", root / "code_ran")
    (root / "null.yaml").write_text("seed_everything: 1\nmodel:\n")
    env = {k: v for k, v in os.environ.items() if k != "LIT_LINREG_VERBOSE"}
    processes = {
        name: subprocess.Popen(
            [sys.executable, "-m", "lit_linreg", *map(str, args)],
            cwd=root,
            env=env,
            text=True,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        for name, (args, _) in END_TO_END.items()
    }
    yield root, processes
    for process in processes.values():
        process.kill()
        process.communicate()


@pytest.mark.parametrize("name", END_TO_END)
def test_end_to_end(name: str, end_to_end: tuple[Path, dict[str, subprocess.Popen]]) -> None:
    root, processes = end_to_end
    out, err = processes[name].communicate(timeout=300)
    assert processes[name].returncode == 2 and "Traceback" not in out + err, err
    last = err.strip().splitlines()[-1]
    assert last.startswith("lit-linreg: error: ") and END_TO_END[name][1] in last
    assert not (root / "code_ran").exists()

"""The command line: fit -> test -> predict round trips, files it writes, configs and help."""

from __future__ import annotations

import csv
import hashlib
import inspect
import re
import subprocess
import sys
from pathlib import Path

import lightning as L
import pytest
import torch
import yaml
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
from tensorboard.plugins.hparams import api_pb2, metadata

from lit_linreg.data import SyntheticRegressionData
from lit_linreg.report import DATA_SETTINGS, RESULTS, SETTINGS, RunReport
from lit_linreg.task import LinearRegressionTask

from .helpers import CONFIGS, TUTORIAL_PREDICTIONS, run, run_subprocess, table_rows

QUICK = ("--trainer.max_epochs", "60", "--table.every_n_epochs", "0")


def read_csv(path: Path) -> list[dict[str, float]]:
    with open(path) as file:
        return [{k: float(v) for k, v in row.items()} for row in csv.DictReader(file)]


def test_fit_test_predict_round_trip_in_a_fresh_process(capsys: pytest.CaptureFixture[str]) -> None:
    run("fit", "--config", CONFIGS / "base.yaml", "--table.every_n_epochs", "0")
    run("test", "--config", CONFIGS / "base.yaml", "--ckpt_path", "best")
    assert "test_loss" in capsys.readouterr().out

    # A fresh process, no --config: the checkpoint alone rebuilds the manual variant and its data.
    result = run_subprocess("predict", "--ckpt_path", "checkpoints/base/version_0/last.ckpt")
    path = Path(result.stdout.split("predictions: ")[1].split(" (")[0])
    # Beside the logs of the fit whose checkpoint it used: the run's name and version come from the checkpoint.
    assert path.parent == Path("lightning_logs/base/version_0/predict_0")
    rows = read_csv(path)
    assert list(rows[0]) == ["x", "y_pred", "y_true", "abs_error"]
    assert [round(r["x"], 2) for r in rows] == [round(0.8 + 0.02 * i, 2) for i in range(10)]
    assert [round(r["y_pred"], 4) for r in rows] == TUTORIAL_PREDICTIONS

    # The Python API in a fresh process: the checkpoint's primitive hyperparameters rebuild the manual variant.
    script = (
        "import sys; from lit_linreg import LinearRegressionTask as T; t = T.load_from_checkpoint(sys.argv[1]); "
        "w, b = t.coefficients(); print(t.hparams.variant, round(w.item(), 4), round(b.item(), 4))"
    )
    loaded = subprocess.run(
        [sys.executable, "-c", script, "checkpoints/base/version_0/last.ckpt"],
        capture_output=True,
        text=True,
        check=True,
    )
    assert loaded.stdout.split() == ["manual", "0.6954", "0.2998"]

    # The tutorial's allclose check: predictions after reload equal the in-memory model's.
    task = LinearRegressionTask.load_from_checkpoint("checkpoints/base/version_0/last.ckpt")
    x = torch.tensor([[r["x"]] for r in rows])
    in_memory = task(x)[:, 0]
    assert torch.allclose(in_memory, torch.tensor([r["y_pred"] for r in rows]))
    for row in rows:
        assert row["y_true"] == pytest.approx(0.7 * row["x"] + 0.3, abs=1e-6)
        assert row["abs_error"] == pytest.approx(abs(row["y_pred"] - row["y_true"]), abs=1e-6)


def test_predict_given_x_values(capsys: pytest.CaptureFixture[str]) -> None:
    run("fit", "--config", CONFIGS / "linear.yaml", *QUICK)
    capsys.readouterr()
    run("predict", "--ckpt_path", "checkpoints/linear/version_0/last.ckpt", "--data.predict_x", "[0.5, 2.0]")
    out = capsys.readouterr().out
    rows = read_csv(Path(out.split("predictions: ")[1].split(" (")[0]))
    assert [r["x"] for r in rows] == [0.5, 2.0]
    assert [r["y_true"] for r in rows] == pytest.approx([0.65, 1.7])


def test_checkpoints_are_per_run_and_last_is_never_stale() -> None:
    run(
        "fit",
        "--config",
        CONFIGS / "base.yaml",
        "--trainer.max_epochs",
        "437",
        "--table.every_n_epochs",
        "0",
        "--checkpoint.every_n_epochs",
        "1",
    )
    base_dir = Path("checkpoints/base/version_0")
    base_files = {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in base_dir.iterdir()}
    last = torch.load("checkpoints/base/version_0/last.ckpt", weights_only=True)
    # val_loss stops improving around epoch 350; last.ckpt still holds the final epoch.
    assert (last["epoch"], last["global_step"]) == (436, 437)
    assert any(name.startswith("best-epoch=") for name in base_files)

    run("fit", "--config", CONFIGS / "linear.yaml", *QUICK)
    assert {p.name for p in Path("checkpoints/linear/version_0").iterdir()} >= {"last.ckpt"}
    assert base_files == {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in base_dir.iterdir()}


def test_last_holds_the_final_epoch_when_validation_is_not_every_epoch() -> None:
    # Lightning then saves on its cadence only after a validation: here never (epochs 49 and 99 have none).
    run(
        "fit",
        "--config",
        CONFIGS / "base.yaml",
        "--trainer.max_epochs",
        "100",
        "--trainer.check_val_every_n_epoch",
        "3",
    )
    last = torch.load("checkpoints/base/version_0/last.ckpt", weights_only=True)
    assert (last["epoch"], last["global_step"]) == (99, 100)


def test_a_best_checkpoint_saved_at_the_end_is_named_after_the_last_epoch() -> None:
    run("fit", "--config", CONFIGS / "base.yaml", "--trainer.max_epochs", "30", "--table.every_n_epochs", "0")
    names = sorted(p.name for p in Path("checkpoints/base/version_0").glob("*.ckpt"))  # val_loss falls every epoch
    assert len(names) == 2 and names[0].startswith("best-epoch=29-val_loss=") and names[1] == "last.ckpt"


def test_resume_from_last_matches_an_uninterrupted_run(capsys: pytest.CaptureFixture[str]) -> None:
    run("fit", "--config", CONFIGS / "base.yaml", "--trainer.max_epochs", "300")
    first = Path("checkpoints/base/version_0")
    run("fit", "--config", CONFIGS / "base.yaml", "--ckpt_path", "last")
    out = capsys.readouterr().out
    assert f"--ckpt_path last: {first / 'last.ckpt'}" in out  # the output names the file it resolved to
    rows = table_rows(out)
    assert rows[-1] == (450, "0.001977", "0.002469", "0.6974", "0.3048")
    assert sorted(p.name for p in Path("checkpoints/base").iterdir()) == ["version_0"]  # it continued in its folder
    task = LinearRegressionTask.load_from_checkpoint(first / "last.ckpt")
    assert [round(p.item(), 4) for p in task.model.coefficients()] == [0.6954, 0.2998]


def test_last_and_best_look_in_the_configs_checkpoint_dirpath(capsys: pytest.CaptureFixture[str]) -> None:
    """A config that sets checkpoint.dirpath writes its checkpoints there, so last and best are found there too: a
    resume continues (it once started from scratch over them) and predict finds them, as serve and export do."""
    config = yaml.safe_load((CONFIGS / "base.yaml").read_text())
    config["checkpoint"] = {"dirpath": "my_checkpoints"}
    Path("mine.yaml").write_text(yaml.safe_dump(config))
    run("fit", "--config", "mine.yaml", "--trainer.max_epochs", "300", "--table.every_n_epochs", "50")
    assert Path("my_checkpoints/last.ckpt").is_file() and not Path("checkpoints").exists()
    capsys.readouterr()
    run("fit", "--config", "mine.yaml", "--ckpt_path", "last", "--table.every_n_epochs", "50")
    out = capsys.readouterr().out
    assert "--ckpt_path last: my_checkpoints/last.ckpt" in out
    assert table_rows(out)[0][0] == 300 and table_rows(out)[-1][0] == 450  # resumed at epoch 300, not from 0
    run("predict", "--config", "mine.yaml", "--ckpt_path", "best")
    assert "--ckpt_path best: my_checkpoints/best-epoch=" in capsys.readouterr().out


def test_a_new_fit_never_touches_an_earlier_fits_files(capsys: pytest.CaptureFixture[str]) -> None:
    run("fit", "--config", CONFIGS / "base.yaml", "--trainer.max_epochs", "60", "--table.every_n_epochs", "0")
    first = Path("checkpoints/base/version_0")
    before = {p: p.read_bytes() for p in first.iterdir()}
    run("fit", "--config", CONFIGS / "base.yaml", "--trainer.max_epochs", "1", "--table.every_n_epochs", "0")
    assert before == {p: p.read_bytes() for p in first.iterdir()}
    assert {p.name for p in Path("checkpoints/base/version_1").iterdir()} >= {"last.ckpt", "report.json"}
    assert Path("lightning_logs/base/version_1").is_dir()
    capsys.readouterr()
    run("test", "--config", CONFIGS / "base.yaml", "--ckpt_path", "best")  # the newest fit's best
    assert "--ckpt_path best: " + str(Path("checkpoints/base/version_1") / "best-epoch=0") in capsys.readouterr().out


def hparams_of(log_dir: Path) -> tuple[api_pb2.Experiment, dict[str, object], int]:
    """The HPARAMS entry a run wrote: its experiment (the columns), its session's settings and its end status."""
    events = EventAccumulator(str(log_dir), size_guidance={"tensors": 0}).Reload()
    content = events.PluginTagToContent(metadata.PLUGIN_NAME)
    experiment = metadata.parse_experiment_plugin_data(content[metadata.EXPERIMENT_TAG])
    start = metadata.parse_session_start_info_plugin_data(content[metadata.SESSION_START_INFO_TAG])
    end = metadata.parse_session_end_info_plugin_data(content[metadata.SESSION_END_INFO_TAG])
    settings = {name: getattr(value, value.WhichOneof("kind")) for name, value in start.hparams.items()}
    return experiment, settings, end.status


def test_tensorboard_scalars_hparams_and_config(capsys: pytest.CaptureFixture[str]) -> None:
    run("fit", "--config", CONFIGS / "base.yaml", "--trainer.max_epochs", "100", "--table.every_n_epochs", "0")
    log_dir = Path("lightning_logs/base/version_0")
    saved = yaml.safe_load((log_dir / "config.yaml").read_text())
    assert saved["model"] == {"variant": "manual", "lr": 0.005}  # in_features is linked from the data

    # TIME SERIES: what the task logged with self.log, under its own keys, grouped by their prefix.
    events = EventAccumulator(str(log_dir), size_guidance={"images": 0}).Reload()
    tags = set(events.Tags()["scalars"])
    metrics = {f"val/{metric}" for metric in ("mae", "mse", "r2")}
    summary = {f"hp/{key}" for key in RESULTS}
    assert tags == {"train_loss", "val_loss", "params/weight", "params/bias", *metrics, *summary, "epoch"}
    val_loss = [e.value for e in events.Scalars("val_loss")]
    assert len(val_loss) == 100 and len(events.Scalars("train_loss")) == 100
    assert events.Scalars("hp/val_loss")[-1].value == pytest.approx(val_loss[-1])  # the real final values
    assert events.Scalars("hp/baseline/lad_train_mae")[-1].value == pytest.approx(0, abs=1e-6)
    assert {"figures/1_data", "figures/4_loss_curves"} <= set(events.Tags()["images"])

    # HPARAMS: the settings by their plain names; no class paths or instantiators.
    experiment, settings, status = hparams_of(log_dir)
    assert status == api_pb2.STATUS_SUCCESS
    assert {
        "command": "fit",
        "variant": "manual",
        "lr": 0.005,
        "batch_size": "-",
        "max_epochs": 100,
        "seed_everything": 42,
        "data": "SyntheticRegressionData",
        "weight": 0.7,
        "bias": 0.3,
        "train_split": 0.8,
        "seed": 0,
        "shuffle": True,
        "in_features": 1,
    }.items() <= settings.items()
    names = [info.name for info in experiment.hparam_infos]
    assert set(SETTINGS) <= set(settings) == set(names) and {"csv_path", "target", "ckpt_path"} <= set(names)
    assert not [n for n in names if n.startswith("_") or "class_path" in n or "init_args" in n]
    assert not [v for v in settings.values() if isinstance(v, str) and "lit_linreg." in v]
    assert [info.name.tag for info in experiment.metric_infos] == [f"hp/{key}" for key in RESULTS]

    # test and predict runs are sessions of their own, with the same columns, beside the fit's logs.
    run("test", "--config", CONFIGS / "base.yaml", "--ckpt_path", "last")
    run("predict", "--config", CONFIGS / "base.yaml", "--ckpt_path", "last")
    assert "test_loss" in capsys.readouterr().out
    for command in ("test", "predict"):
        other, session, status = hparams_of(log_dir / f"{command}_0")
        assert [info.name for info in other.hparam_infos] == names and status == api_pb2.STATUS_SUCCESS
        assert other.metric_infos == experiment.metric_infos
        assert session["command"] == command and session["ckpt_path"] == "checkpoints/base/version_0/last.ckpt"
        assert session["variant"] == "manual" and session["max_epochs"] == "-"
    tested = EventAccumulator(str(log_dir / "test_0")).Reload()
    assert {"test_loss", "test/r2", "hp/test_loss"} <= set(tested.Tags()["scalars"])
    assert tested.Scalars("test_loss")[-1].value == pytest.approx(val_loss[-1])  # val is the test split


def test_print_config_round_trip(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        run("fit", "--config", CONFIGS / "linear.yaml", "--model.lr", "0.02", "--print_config")
    assert exit_info.value.code == 0
    printed = capsys.readouterr().out
    config = yaml.safe_load(printed)
    assert config["model"]["lr"] == 0.02 and config["data"]["class_path"].endswith("SyntheticRegressionData")
    (tmp_path / "printed.yaml").write_text(printed)
    run("fit", "--config", tmp_path / "printed.yaml", *QUICK)
    assert Path("checkpoints/printed/version_0/last.ckpt").is_file()
    assert LinearRegressionTask.load_from_checkpoint("checkpoints/printed/version_0/last.ckpt").hparams.lr == 0.02


@pytest.mark.parametrize("args", [["--help"], ["fit", "--help"], ["predict", "--help"]])
def test_help(args: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        run(*args)
    assert exit_info.value.code == 0
    out = capsys.readouterr().out
    assert "predict" in out if args == ["--help"] else "--data" in out and "--model.variant" in out


def test_an_lr_given_on_resume_replaces_the_checkpoints() -> None:
    run("fit", "--config", CONFIGS / "base.yaml", "--trainer.max_epochs", "50", "--table.every_n_epochs", "0")
    run(
        "fit",
        "--config",
        CONFIGS / "base.yaml",
        "--trainer.max_epochs",
        "51",
        "--table.every_n_epochs",
        "0",
        "--ckpt_path",
        "last",
        "--model.lr",
        "0.5",
    )
    checkpoint = torch.load("checkpoints/base/version_0/last.ckpt", weights_only=True)
    assert checkpoint["optimizer_states"][0]["param_groups"][0]["lr"] == 0.5
    assert checkpoint["hyper_parameters"]["lr"] == 0.5


def test_the_progress_bar_shows_numbers(capsys: pytest.CaptureFixture[str]) -> None:
    run("fit", "--config", CONFIGS / "base.yaml", "--trainer.max_epochs", "3", "--trainer.enable_progress_bar", "true")
    captured = capsys.readouterr()
    bar = captured.out + captured.err
    assert re.search(r"train_loss=0\.\d+", bar) and re.search(r"val_loss=0\.\d+", bar), bar[-500:]
    assert "tensor(" not in bar


def test_the_hparams_data_columns_are_every_setting_of_the_in_memory_data_classes() -> None:
    from lit_linreg.datasets.csv import CSVRegressionData

    classes = (SyntheticRegressionData, CSVRegressionData)
    assert DATA_SETTINGS == tuple(dict.fromkeys(p for cls in classes for p in inspect.signature(cls).parameters))


def test_a_plain_trainer_with_the_report_callback_shows_the_same_hparams_columns() -> None:
    run("fit", "--config", CONFIGS / "base.yaml", "--trainer.max_epochs", "3", "--table.every_n_epochs", "0")
    trainer = L.Trainer(
        max_epochs=3,
        logger=L.pytorch.loggers.TensorBoardLogger("logs", name="python"),
        callbacks=[RunReport()],
        enable_progress_bar=False,
        enable_checkpointing=False,
        enable_model_summary=False,
    )
    trainer.fit(LinearRegressionTask(lr=0.02), SyntheticRegressionData())
    experiment, settings, status = hparams_of(Path("logs/python/version_0"))
    cli_experiment, _, _ = hparams_of(Path("lightning_logs/base/version_0"))
    assert status == api_pb2.STATUS_SUCCESS and settings["command"] == "fit"
    assert {"variant": "linear", "lr": 0.02, "batch_size": "-", "weight": 0.7, "in_features": 1}.items() <= (
        settings.items()
    )
    assert [i.name for i in experiment.hparam_infos] == [i.name for i in cli_experiment.hparam_infos]
    assert experiment.metric_infos == cli_experiment.metric_infos

"""Parquet data streamed from disk: sharding, shuffle, resume, exact statistics, the CLI and bad input."""

from __future__ import annotations

import contextlib
import csv
import io
import json
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import lightning as L
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import torch
from matplotlib.figure import Figure
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
from torch import Tensor

import lit_linreg.callbacks
from lit_linreg.commands.make_data import main as make_data_main
from lit_linreg.commands.make_data import write_parquet_dataset
from lit_linreg.data import RegressionDataModule
from lit_linreg.datasets.parquet import ParquetBatches, ParquetRegressionData
from lit_linreg.deploy.model_io import held_out_rows
from lit_linreg.errors import UserError
from lit_linreg.launch import main
from lit_linreg.report import LinearFit, build_report
from lit_linreg.task import LinearRegressionTask

CLASS_PATH = "lit_linreg.datasets.parquet.ParquetRegressionData"
FIT_FIGURES = ["1_data", "2_predictions_before_training", "3_predictions_after_training", "4_loss_curves"]


def write_ids(folder: Path, rows: int, files: int = 3, row_group: int = 50) -> Path:
    """Rows whose feature ``id`` is their global index (files sorted by name), with a second feature and y."""
    folder.mkdir()
    x1 = np.random.default_rng(0).standard_normal(rows)
    bounds = np.linspace(0, rows, files + 1).astype(int)
    for i, (a, b) in enumerate(zip(bounds, bounds[1:])):
        ids = np.arange(a, b, dtype=np.float64)
        table = pa.table({"id": ids, "x1": x1[a:b], "y": 2 * x1[a:b] + 1})
        pq.write_table(table, folder / f"part-{i}.parquet", row_group_size=row_group)
    return folder


def ids(batches) -> list[np.ndarray]:
    return [x[:, 0].numpy().astype(np.int64) for x, _ in batches]


def epoch_ids(data: ParquetRegressionData, epoch: int, rank: int, world_size: int, workers: int) -> list[np.ndarray]:
    return ids(ParquetBatches(data.stream("train", rank, world_size), workers, epoch=lambda: epoch))


def test_every_training_row_once_per_epoch_over_2_ranks_x_2_workers(tmp_path: Path) -> None:
    data = ParquetRegressionData(str(write_ids(tmp_path / "d", 1004)), "y", batch_size=32, shuffle_buffer=100)
    train = 803  # int(0.8 * 1004), the first rows: an odd count, so one row a epoch is left out
    left_out = []
    for epoch in (0, 1):
        per_rank = [epoch_ids(data, epoch, rank, 2, workers=2) for rank in (0, 1)]
        assert len(per_rank[0]) == len(per_rank[1]) == len(data.stream("train", 0, 2)) == 13  # equal steps
        for batches in per_rank:
            assert [len(b) for b in batches] == [32] * 12 + [401 - 12 * 32]  # only the rank's last batch is short
        seen = np.concatenate([b for batches in per_rank for b in batches])
        assert len(seen) == len(set(seen)) == train - 1
        assert set(seen) <= set(range(train))
        left_out.append(set(range(train)) - set(seen))
    assert left_out[0] != left_out[1]  # the left-out row changes with the epoch's order


def test_random_split_partitions_the_rows_and_every_split_is_read_whole(tmp_path: Path) -> None:
    data = ParquetRegressionData(
        str(write_ids(tmp_path / "d", 1000)), "y", split="random", val_split=0.1, batch_size=64, seed=3
    )
    splits = {name: np.concatenate(ids(ParquetBatches(data.stream(name), 2))) for name in ("train", "val", "test")}
    assert sum(len(rows) for rows in splits.values()) == 1000
    assert set().union(*map(set, splits.values())) == set(range(1000))
    assert 740 < len(splits["train"]) < 860 and 50 < len(splits["val"]) < 150  # about 80 % / 10 % / 10 %
    assert list(splits["test"]) == sorted(splits["test"])  # evaluation reads in order


def test_shuffle_differs_per_epoch_and_repeats_for_the_same_seed_and_epoch(tmp_path: Path) -> None:
    path = str(write_ids(tmp_path / "d", 1000))
    data = ParquetRegressionData(path, "y", batch_size=50, shuffle_buffer=200)
    first = [np.concatenate(epoch_ids(data, epoch, 0, 1, workers=0)) for epoch in (0, 1)]
    assert not np.array_equal(first[0], first[1]) and set(first[0]) == set(first[1]) == set(range(800))
    again = ParquetRegressionData(path, "y", batch_size=50, shuffle_buffer=200)  # a new process, e.g. a resume
    assert np.array_equal(np.concatenate(epoch_ids(again, 1, 0, 1, workers=0)), first[1])
    two_workers = [np.concatenate(epoch_ids(data, 1, 0, 1, workers=2)) for _ in range(2)]
    assert np.array_equal(two_workers[0], two_workers[1])
    other_seed = ParquetRegressionData(path, "y", batch_size=50, shuffle_buffer=200, seed=1)
    assert not np.array_equal(np.concatenate(epoch_ids(other_seed, 1, 0, 1, workers=0)), first[1])
    # Counted iterations stand in for the trainer's epoch when there is none.
    counted = ParquetBatches(data.stream("train"))
    assert all(np.array_equal(np.concatenate(ids(counted)), epoch) for epoch in first)  # epochs 0, then 1


def test_statistics_and_streamed_ols_equal_numpy_in_float64(tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    x = (rng.standard_normal((5000, 3)) * [0.01, 1.0, 100.0] + [1000.0, -3.0, 0.0]).astype(np.float32)
    y = (x.astype(np.float64) @ [2.0, -1.0, 0.01] + 0.5 + rng.standard_normal(5000)).astype(np.float32)
    pq.write_table(pa.table({"a": x[:, 0], "b": x[:, 1], "c": x[:, 2], "y": y}), tmp_path / "f.parquet", 300)
    data = ParquetRegressionData(str(tmp_path / "f.parquet"), "y", standardize=True)
    xt, yt = x[:4000].astype(np.float64), y[:4000].astype(np.float64)  # the training split: the first 80 %
    mean, std = data.feature_stats() or (None, None)
    np.testing.assert_allclose(mean, xt.mean(0), rtol=1e-12)
    np.testing.assert_allclose(std, xt.std(0), rtol=1e-10)
    np.testing.assert_allclose(torch.cat(data.target_stats()), [yt.mean(), yt.std()], rtol=1e-12)
    coef = np.linalg.lstsq(np.column_stack([xt, np.ones(4000)]), yt, rcond=None)[0]
    weight, bias = data.exact_ols()
    np.testing.assert_allclose(torch.cat([weight, bias]), coef, rtol=1e-10)
    residual = yt - xt @ coef[:3] - coef[3]
    assert data.exact_mse(weight, bias) == pytest.approx((residual**2).mean(), rel=1e-10)
    xs, ys = x[4000:].astype(np.float64), y[4000:].astype(np.float64)
    assert data.exact_mse(weight, bias, "test") == pytest.approx(((ys - xs @ coef[:3] - coef[3]) ** 2).mean(), 1e-10)


def test_sample_is_seeded_uniform_and_from_its_split(tmp_path: Path) -> None:
    path = str(write_ids(tmp_path / "d", 1000))
    data = ParquetRegressionData(path, "y", sample_rows=100)
    x, y = data.sample("train")
    assert x.dtype == y.dtype == torch.float64 and x.shape == (100, 2) and y.shape == (100, 1)
    rows = x[:, 0].long().tolist()
    assert len(set(rows)) == 100 and max(rows) < 800 and rows != sorted(rows)  # distinct train rows, random order
    torch.testing.assert_close(y, 2 * x[:, 1:] + 1)  # whole rows, not columns of different rows
    assert torch.equal(ParquetRegressionData(path, "y", sample_rows=100).sample("train", 10)[0], x[:10])
    assert data.sample("test", 1000)[0].shape == (100, 2) and data.sample("val")[0][:, 0].min() >= 800  # val: test


def test_write_parquet_dataset(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = write_parquet_dataset(str(tmp_path / "d"), rows=2500, features=2, rows_per_file=1000, row_group_rows=300)
    assert sorted(p.name for p in out.iterdir()) == ["part-00000.parquet", "part-00001.parquet", "part-00002.parquet"]
    assert [pq.ParquetFile(p).metadata.num_row_groups for p in sorted(out.iterdir())] == [4, 4, 2]
    assert "2,500 rows of x0, x1 -> y in 3 Parquet file(s)" in capsys.readouterr().out
    weight, bias = ParquetRegressionData(str(out), "y").exact_ols()
    np.testing.assert_allclose(torch.cat([weight, bias]), [0.7, 0.5, 0.3], atol=0.02)
    with pytest.raises(UserError, match="exists and is not empty"):
        write_parquet_dataset(str(out), rows=10)
    make_data_main(
        [
            "--format",
            "parquet",
            "--out",
            str(tmp_path / "e"),
            "--rows",
            "10",
            "--features",
            "1",
            "--weight",
            "[2.0]",
            "--bias",
            "0",
        ]
    )
    x, y = (torch.from_numpy(pq.read_table(tmp_path / "e").column(name).to_numpy()) for name in ("x0", "y"))
    assert len(x) == 10 and torch.allclose(y, 2 * x, atol=0.5)  # noise_std 0.1


def fit(data: ParquetRegressionData, epochs: int, ckpt_path: str | None = None) -> L.Trainer:
    L.seed_everything(7)
    task = LinearRegressionTask(in_features=data.num_features, standardize=True, lr=0.05)
    trainer = L.Trainer(
        max_epochs=epochs,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        num_sanity_val_steps=0,
    )
    trainer.fit(task, data, ckpt_path=ckpt_path)
    return trainer


def test_a_resumed_fit_equals_an_uninterrupted_one_bit_for_bit(tmp_path: Path) -> None:
    path = str(write_parquet_dataset(str(tmp_path / "d"), rows=4000, features=3, row_group_rows=256))

    def data() -> ParquetRegressionData:
        return ParquetRegressionData(path, "y", standardize=True, batch_size=128, shuffle_buffer=600, num_workers=1)

    whole = fit(data(), 3).lightning_module.state_dict()
    fit(data(), 1).save_checkpoint(tmp_path / "epoch1.ckpt")
    resumed = fit(data(), 3, str(tmp_path / "epoch1.ckpt")).lightning_module.state_dict()
    assert whole.keys() == resumed.keys() and all(torch.equal(whole[k], resumed[k]) for k in whole)
    assert torch.equal(whole["feature_mean"], data().feature_stats()[0].float())  # type: ignore[index]


def test_fit_through_the_cli(tmp_path: Path) -> None:
    path = write_parquet_dataset(str(tmp_path / "d"), rows=3000, features=2, row_group_rows=500)
    args = ["--data.path", str(path), "--data.target", "y", "--data.batch_size", "256", "--data.num_workers", "2"]
    main(["fit", "--data.class_path", CLASS_PATH, *args, "--data.standardize", "true", "--trainer.max_epochs", "2"])
    checkpoint = torch.load(next(Path("checkpoints").rglob("last.ckpt")), weights_only=True)
    assert checkpoint["epoch"] == 1 and checkpoint["datamodule_hyper_parameters"]["path"] == str(path)
    stats = ParquetRegressionData(str(path), "y", standardize=True).feature_stats()
    assert torch.equal(checkpoint["state_dict"]["feature_mean"], stats[0].float())  # type: ignore[index]


def test_bad_input_from_the_cli_is_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["fit", "--data.class_path", CLASS_PATH, "--data.path", "missing", "--data.target", "y"])
    assert exit_info.value.code == 2
    assert capsys.readouterr().err == (
        "lit-linreg: error: data.path missing does not exist; give a Parquet file or a folder of them\n"
    )


def test_bad_datasets(tmp_path: Path) -> None:
    path = write_ids(tmp_path / "d", 100, files=2)
    with pytest.raises(UserError, match="has no column 'target'.*columns: id, x1, y"):
        ParquetRegressionData(str(path), "target")
    with pytest.raises(UserError, match=r"data.features names \['x9'\]"):
        ParquetRegressionData(str(path), "y", features=["x9"])
    (tmp_path / "e").mkdir()
    with pytest.raises(UserError, match="holds no files"):
        ParquetRegressionData(str(tmp_path / "e"), "y")
    pq.write_table(pa.table({"x": pa.array([], pa.float64()), "y": pa.array([], pa.float64())}), tmp_path / "0.pq")
    with pytest.raises(UserError, match="has no rows"):
        ParquetRegressionData(str(tmp_path / "0.pq"), "y")
    pq.write_table(pa.table({"id": [1.0], "x1": [1], "y": [1.0]}), path / "part-9.parquet")  # x1 is an integer
    with pytest.raises(UserError, match=r"part-9.parquet and .*part-0.parquet have different columns \(x1: double"):
        ParquetRegressionData(str(path), "y")
    pq.write_table(pa.table({"y": [1.0], "id": [1.0], "x1": [1.0]}), path / "part-9.parquet")
    with pytest.raises(UserError, match=r"different columns \(the same ones in another order\)"):
        ParquetRegressionData(str(path), "y")
    (path / "part-9.parquet").unlink()
    (path / "index.json").write_text('{"chunks": []}')  # sorted first: pyarrow would read the schema from it
    with pytest.raises(
        UserError, match=r"index.json is not a readable Parquet file \(.*magic bytes.*\); fix or remove it"
    ):
        ParquetRegressionData(str(path), "y")
    pq.write_table(pa.table({"x": ["a"], "y": [float("nan")]}), tmp_path / "nan.pq")
    with pytest.raises(UserError, match="no numeric feature column"):
        ParquetRegressionData(str(tmp_path / "nan.pq"), "y")
    pq.write_table(pa.table({"x": [1.0] * 10, "y": [1.0] * 9 + [None]}), tmp_path / "null.pq")
    with pytest.raises(UserError, match="null.pq, row group 0: a used column holds a null, NaN or infinite value"):
        list(ParquetBatches(ParquetRegressionData(str(tmp_path / "null.pq"), "y").stream("test")))


@pytest.mark.parametrize("workers", [0, 2])
@pytest.mark.parametrize("damage", ["delete", "truncate"])
def test_a_file_deleted_or_truncated_during_a_fit(tmp_path: Path, workers: int, damage: str) -> None:
    path = write_ids(tmp_path / "d", 1000)
    data = ParquetRegressionData(str(path), "y", batch_size=50, num_workers=workers)
    victim = path / "part-2.parquet"

    class Damage(L.Callback):
        def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
            victim.unlink() if damage == "delete" else os.truncate(victim, victim.stat().st_size // 2)

    trainer = L.Trainer(max_epochs=2, logger=False, enable_checkpointing=False, enable_progress_bar=False)
    trainer.callbacks.append(Damage())  # type: ignore[attr-defined]
    with pytest.raises(UserError) as err:
        trainer.fit(LinearRegressionTask(in_features=2), data)
    assert str(err.value).startswith(f"{victim} could not be read during the run (")
    assert "rewritten while in use" in str(err.value) and "Traceback" not in str(err.value)


DDP_SCRIPT = """
import json, sys
import lightning as L
from lit_linreg.datasets.parquet import ParquetRegressionData
from lit_linreg.task import LinearRegressionTask

class Record(L.Callback):
    def __init__(self):
        self.seen = []
    def on_train_epoch_start(self, trainer, pl_module):
        self.seen.append([])
    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
        self.seen[-1].append(batch[0][:, 0].long().tolist())
    def on_train_end(self, trainer, pl_module):
        with open(f"{sys.argv[2]}/rank{trainer.global_rank}.json", "w") as file:
            json.dump(self.seen, file)

data = ParquetRegressionData(sys.argv[1], "y", batch_size=32, shuffle_buffer=100, num_workers=2)
trainer = L.Trainer(
    strategy="ddp", accelerator="cpu", devices=2, max_epochs=2, callbacks=[Record()], logger=False,
    enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False, num_sanity_val_steps=0,
)
trainer.fit(LinearRegressionTask(in_features=2), data)
"""


@pytest.mark.slow
def test_ddp_on_2_processes_x_2_workers_uses_every_training_row_once_per_epoch(tmp_path: Path) -> None:
    path = write_ids(tmp_path / "d", 1004)
    (tmp_path / "ddp.py").write_text(DDP_SCRIPT)
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).parents[1])}
    subprocess.run([sys.executable, "ddp.py", str(path), str(tmp_path)], check=True, env=env, timeout=300)
    ranks = [json.loads((tmp_path / f"rank{r}.json").read_text()) for r in (0, 1)]
    for epoch in (0, 1):
        batches = [ranks[r][epoch] for r in (0, 1)]
        assert len(batches[0]) == len(batches[1]) == 13
        seen = [row for rank in batches for batch in rank for row in batch]
        assert len(seen) == len(set(seen)) == 802 and set(seen) <= set(range(803))
    assert ranks[0][0] != ranks[0][1]
    data = ParquetRegressionData(str(path), "y", batch_size=32, shuffle_buffer=100)
    for epoch in (0, 1):  # the batches that Lightning ran are those that the simulated ranks above read
        for rank in (0, 1):
            assert [b.tolist() for b in epoch_ids(data, epoch, rank, 2, workers=2)] == ranks[rank][epoch]


@dataclass
class StreamedFit:
    """A fit through the CLI on 3,000 streamed rows (2,400 train, 600 test), samples of 500 rows per split."""

    data: Path  # the Parquet folder
    folder: Path  # where the fit ran
    out: str  # what it printed
    figures: dict[str, Figure]  # the figure behind each PNG it wrote, by file stem

    @property
    def checkpoint(self) -> Path:
        return self.folder / "checkpoints/default/version_0/last.ckpt"

    def datamodule(self) -> ParquetRegressionData:
        return ParquetRegressionData(str(self.data), "y", standardize=True, sample_rows=500)

    def rows(self) -> tuple[np.ndarray, np.ndarray]:
        """Every row as float64 ``[x0, x1, y]``: the training split, then the test split."""
        table = pq.read_table(self.data)
        rows = np.column_stack([table.column(name).to_numpy() for name in ("x0", "x1", "y")]).astype(np.float64)
        return rows[:2400], rows[2400:]


@pytest.fixture(scope="module")
def streamed(tmp_path_factory: pytest.TempPathFactory) -> StreamedFit:
    folder = tmp_path_factory.mktemp("streamed")
    data = write_parquet_dataset(str(folder / "d"), rows=3000, features=2, row_group_rows=500)
    figures: dict[str, Figure] = {}
    save_png = lit_linreg.callbacks.save_png

    def record(fig: Figure, path: Path) -> np.ndarray:
        figures[Path(path).stem] = fig
        return save_png(fig, path)

    out = io.StringIO()
    with pytest.MonkeyPatch.context() as patch, contextlib.redirect_stdout(out):
        patch.chdir(folder)
        patch.setattr("sys.argv", ["lit-linreg"])
        patch.setattr(lit_linreg.callbacks, "save_png", record)
        main(
            ["fit", "--data.class_path", CLASS_PATH, "--data.path", str(data), "--data.target", "y"]
            + ["--data.standardize", "true", "--data.batch_size", "256", "--data.sample_rows", "500"]
            + ["--model.variant", "linear", "--model.lr", "0.05", "--seed_everything", "0"]
            + ["--trainer.max_epochs", "4", "--trainer.enable_progress_bar", "false", "--table.every_n_epochs", "0"]
        )
    return StreamedFit(data, folder, out.getvalue(), figures)


def test_a_streamed_fit_prints_and_writes_the_report(streamed: StreamedFit) -> None:
    assert (
        "baselines: OLS exact over all 2,400 training rows (float64 normal equations); LAD and L1 on a sample of 500 "
        "training and 500 test rows; L1 = mean absolute error, the training loss\n"
        "         |  learned |"
    ) in streamed.out
    assert "report: checkpoints/default/version_0/report.json\n" in streamed.out
    report = json.loads((streamed.checkpoint.parent / "report.json").read_text())
    assert report["rows"] == {"train": 2400, "test": 600, "baseline_fit": 500}
    assert report["sample"] == {"train": 500, "test": 500} and report["features"] == ["x0", "x1"]
    models = report["models"]
    assert models["true"] is None and all(models[name] for name in ("learned", "ols", "lad"))

    # OLS, MSE and R² over every row, as numpy computes them; L1 on the sample that LAD is fitted on.
    train, test = streamed.rows()
    coef = np.linalg.lstsq(np.column_stack([train[:, :2], np.ones(2400)]), train[:, 2], rcond=None)[0]
    np.testing.assert_allclose([*models["ols"]["weight"], models["ols"]["bias"]], coef, rtol=1e-9)
    sample = streamed.datamodule().sample("test")
    for model in models.values():
        if model is None:
            continue
        weight, bias = np.array(model["weight"]), model["bias"]
        for split, rows in (("train", train), ("test", test)):
            mse = ((rows[:, :2] @ weight + bias - rows[:, 2]) ** 2).mean()
            assert model[split]["mse"] == pytest.approx(mse, rel=1e-9)
            assert model[split]["r2"] == pytest.approx(1 - mse / rows[:, 2].var(), rel=1e-9)
        mae = np.abs(sample[0].numpy() @ weight + bias - sample[1].numpy()[:, 0]).mean()
        assert model["test"]["mae"] == pytest.approx(mae, rel=1e-9)
    train_l1 = {name: model["train"]["mae"] for name, model in models.items() if model}
    assert train_l1["lad"] <= min(train_l1["learned"], train_l1["ols"])  # LAD's optimum, on the rows it was fitted on

    verdict = report["convergence"]
    assert verdict["learned_train_l1"] == train_l1["learned"] and verdict["lad_train_l1"] == train_l1["lad"]
    assert verdict["converged"] and "warning: training stopped" not in streamed.out

    events = EventAccumulator(str(streamed.folder / "lightning_logs/default/version_0")).Reload()
    assert "report/text_summary" in events.Tags()["tensors"]
    (point,) = events.Scalars("hp/baseline/lad_train_mae")
    assert point.value == pytest.approx(train_l1["lad"], rel=1e-6)


def test_a_streamed_fit_draws_a_sample_and_says_so(streamed: StreamedFit) -> None:
    log_dir = streamed.folder / "lightning_logs/default/version_0"
    assert sorted(p.stem for p in log_dir.glob("*.png")) == sorted(streamed.figures) == FIT_FIGURES
    data = streamed.figures["1_data"]
    assert data.get_suptitle() == "The data: a sample of 500 of 2,400 train and 500 of 600 test rows"
    for ax in data.axes:  # y against each feature: the sample's rows
        assert {c.get_label(): len(c.get_offsets()) for c in ax.collections} == {"train data": 500, "test data": 500}
    x, y = streamed.datamodule().sample("train")
    np.testing.assert_allclose(data.axes[1].collections[0].get_offsets(), np.column_stack([x[:, 1], y[:, 0]]))


def test_predict_and_export_from_the_checkpoint_of_a_streamed_fit(
    streamed: StreamedFit, capsys: pytest.CaptureFixture[str]
) -> None:
    main(["predict", "--ckpt_path", str(streamed.checkpoint), "--trainer.enable_progress_bar", "false"])
    out = capsys.readouterr().out
    path = Path(out.split("predictions: ")[1].split(" (")[0])
    with open(path) as file:
        rows = list(csv.DictReader(file))
    assert list(rows[0]) == ["x0", "x1", "y_pred", "y_true", "abs_error"] and len(rows) == 600  # the test split
    x = torch.tensor([[float(row["x0"]), float(row["x1"])] for row in rows])
    torch.testing.assert_close(x, torch.from_numpy(streamed.rows()[1][:, :2]).float())
    task = LinearRegressionTask.load_from_checkpoint(streamed.checkpoint)
    torch.testing.assert_close(torch.tensor([float(row["y_pred"]) for row in rows]), task(x)[:, 0].detach())

    rows_x, source = held_out_rows(str(streamed.checkpoint))
    assert source == "a sample of 500 of the 600 rows of the test split of ParquetRegressionData"
    assert rows_x is not None and torch.equal(rows_x, streamed.datamodule().sample("test")[0].float())
    main(["export", "--ckpt_path", str(streamed.checkpoint), "--format", "exported", "--out", "model.pt2"])
    out = capsys.readouterr().out
    assert f"parity: torch.export.load vs the checkpoint on {source}: max |difference|" in out
    assert Path("model.pt2").is_file()


def test_build_report_is_the_same_for_the_same_rows_in_memory_and_streamed(tmp_path: Path) -> None:
    path = write_parquet_dataset(str(tmp_path / "d"), rows=1000, features=3, row_group_rows=128)
    streamed = ParquetRegressionData(str(path), "y")
    in_memory = InMemory(pq.read_table(path))
    in_memory.setup("fit")
    learned = LinearFit(torch.tensor([0.6, 0.5, 0.4]), torch.tensor([0.2]))
    reports = [build_report(learned, None, data) for data in (in_memory, streamed)]
    assert reports[0]["rows"] == reports[1]["rows"] == {"train": 800, "test": 200, "baseline_fit": 800}
    flat = [numbers(report["models"]) for report in reports]
    assert flat[0].keys() == flat[1].keys()
    for key, value in flat[0].items():  # float64 both ways: the same to rounding (L1 on rows in another order)
        assert flat[1][key] == pytest.approx(value, rel=1e-7, abs=1e-9), key

    # Larger splits, in memory as streamed: OLS, MSE and R² still over every row, LAD and L1 on a sample.
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr("lit_linreg.data.SAMPLE_ROWS", 300)
        small = build_report(learned, None, in_memory)
    assert small["rows"] == {"train": 800, "test": 200, "baseline_fit": 267} and small["sample"]["test"] == 200
    for split in ("train", "test"):
        assert small["models"]["ols"][split]["mse"] == reports[0]["models"]["ols"][split]["mse"]
        assert small["models"]["learned"][split]["r2"] == reports[0]["models"]["learned"][split]["r2"]
    assert small["models"]["ols"]["weight"] == reports[0]["models"]["ols"]["weight"]


class InMemory(RegressionDataModule):
    """The rows of a pyarrow table (columns x..., y) as tensors: the in-memory path."""

    def __init__(self, table: pa.Table) -> None:
        super().__init__()
        self.table = table

    @property
    def num_features(self) -> int:
        return self.table.num_columns - 1

    def build_rows(self) -> tuple[Tensor, Tensor]:
        columns = [torch.from_numpy(column.to_numpy()) for column in self.table.columns]
        return torch.stack(columns[:-1], 1), columns[-1].unsqueeze(1)


def numbers(models: dict) -> dict[str, float]:
    """Every number of a report's ``models``, by its path (``lad.test.mae``, ``ols.weight.0``)."""
    flat: dict[str, float] = {}
    for name, model in models.items():
        if model is None:
            continue
        flat.update({f"{name}.weight.{i}": w for i, w in enumerate(model["weight"])})
        flat[f"{name}.bias"] = model["bias"]
        flat.update({f"{name}.{split}.{m}": model[split][m] for split in ("train", "test") for m in model[split]})
    return flat


def test_make_data_writes_csv_or_parquet(capsys: pytest.CaptureFixture[str]) -> None:
    main(["make-data", "--format", "parquet", "--out", "p", "--rows", "300", "--features", "2"])
    assert capsys.readouterr().out == "wrote p: 300 rows of x0, x1 -> y in 1 Parquet file(s)\n"
    assert pq.read_table("p").column_names == ["x0", "x1", "y"]
    for fmt in ([], ["--format=csv"]):
        main(["make-data", *fmt, "--rows", "20", "--out", "a.csv", "--new_rows_out", "b.csv"])
        assert capsys.readouterr().out.startswith("wrote a.csv (20 rows: x1, x2, x3 -> y")
    for args, given in ((["--format", "json"], "'json'"), (["--rows", "5", "--format"], "''")):
        with pytest.raises(SystemExit) as exit_info:
            main(["make-data", *args])
        assert exit_info.value.code == 2
        assert capsys.readouterr().err == f"lit-linreg: error: make-data --format must be csv or parquet, got {given}\n"

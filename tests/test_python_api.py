"""The README's "Use it from Python" block, run as a script: a plain lightning.Trainer with the project's parts."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import torch

from .helpers import ROOT, TUTORIAL_TABLE, table_rows


def readme_python_block() -> str:
    section = (ROOT / "README.md").read_text().split("## Use it from Python", 1)[1].split("\n## ", 1)[0]
    blocks = re.findall(r"```python\n(.*?)```", section, re.DOTALL)
    assert len(blocks) == 1, "the section holds one complete python block"
    return blocks[0]


def test_the_readme_python_block_trains_the_tutorial(tmp_path: Path) -> None:
    script = tmp_path / "train.py"
    script.write_text(readme_python_block())
    result = subprocess.run(
        [sys.executable, "-W", "default", str(script)], capture_output=True, text=True, cwd=tmp_path, timeout=300
    )
    assert result.returncode == 0, result.stderr
    assert table_rows(result.stdout) == TUTORIAL_TABLE
    assert "final (epoch 499): weight 0.6954, bias 0.2998" in result.stdout
    assert "learned: weight 0.6954, bias 0.2998" in result.stdout
    folder = tmp_path / "checkpoints" / "python"
    assert (folder / "last.ckpt").is_file() and len(list(folder.glob("best-epoch=*.ckpt"))) == 1
    assert torch.load(folder / "last.ckpt", weights_only=True)["epoch"] == 499
    # No warning that the project causes: each warning Python printed points into Lightning or torch, none at
    # lit_linreg, and none of the ones plain-Trainer use of the project used to cause.
    warnings = [line for line in result.stderr.splitlines() if "Warning" in line or "warn" in line.lower()]
    assert not [w for w in warnings if "lit_linreg" in w], warnings
    for caused in ("weights_only", "logging interval", "hp_metric"):
        assert caused not in result.stderr


def test_lightnings_own_monitoring_callbacks_see_the_losses(tmp_path: Path) -> None:
    import lightning as L
    from lightning.pytorch.callbacks import EarlyStopping, ModelCheckpoint

    from lit_linreg import LinearRegressionTask, SyntheticRegressionData

    L.seed_everything(42)
    stopper = EarlyStopping(monitor="val_loss", patience=3)
    checkpoint = ModelCheckpoint(dirpath=tmp_path, monitor="train_loss")
    trainer = L.Trainer(
        max_epochs=400, callbacks=[stopper, checkpoint], logger=False, enable_progress_bar=False, log_every_n_steps=1
    )
    trainer.fit(LinearRegressionTask(variant="manual", lr=0.005), datamodule=SyntheticRegressionData())
    assert {"val_loss", "train_loss"} <= trainer.callback_metrics.keys()
    assert 300 < stopper.stopped_epoch < 399  # the tutorial's val loss stops improving near epoch 350
    assert checkpoint.best_model_score is not None

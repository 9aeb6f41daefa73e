"""``benchmarks/gpu_check.py``: its CPU dry run, at a small size, so that the script is known to run before a GPU is."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from .helpers import ROOT, TUTORIAL_LOADED, TUTORIAL_PREDICTIONS


@pytest.mark.slow
def test_the_cpu_dry_run_prints_its_table() -> None:
    done = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "gpu_check.py"), "--rows", "20000", "--batch_size", "4096",
         "--repeats", "1"],
        capture_output=True, text=True, timeout=300, env={**os.environ, "CUDA_VISIBLE_DEVICES": ""},
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    table = done.stdout[done.stdout.index("GPU check on no CUDA device: a CPU dry run") :].splitlines()
    assert len(table) == 5, table
    fit, plain, lit, predict = table[1:]
    w, b = TUTORIAL_LOADED["weights"], TUTORIAL_LOADED["bias"]
    assert "fit configs/base.yaml (accelerator: auto)" in fit and "CPUAccelerator cpu" in fit
    assert f"w={w:.4f} b={b:.4f}" in fit
    assert "plain loop, 20,000 rows, batch 4096" in plain and plain.endswith(" rows/s")
    assert "lit-linreg, 20,000 rows, batch 4096" in lit and "x plain)" in lit
    assert "predict --ckpt_path checkpoints/" in predict and "/last.ckpt" in predict
    assert f"10 rows, first y_pred {TUTORIAL_PREDICTIONS[0]:.4f}" in predict

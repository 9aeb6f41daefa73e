"""Helpers shared by the tests: paths, the tutorial's printed numbers, running the CLI."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

from lit_linreg.launch import main

ROOT = Path(__file__).resolve().parents[1]
CONFIGS = ROOT / "configs"

# The tutorial's printed log for its first model (epoch, train loss, test loss, weight, bias) and its loaded model.
TUTORIAL_TABLE = [
    (0, "0.312881", "0.487801", "0.3386", "0.1338"),
    (50, "0.064309", "0.178070", "0.4344", "0.3583"),
    (100, "0.041652", "0.100242", "0.4929", "0.3841"),
    (150, "0.033003", "0.076814", "0.5367", "0.3686"),
    (200, "0.024416", "0.056821", "0.5793", "0.3506"),
    (250, "0.015829", "0.036484", "0.6221", "0.3328"),
    (300, "0.007245", "0.016491", "0.6648", "0.3148"),
    (350, "0.001977", "0.002469", "0.6974", "0.3048"),
    (400, "0.001977", "0.002469", "0.6974", "0.3048"),
    (450, "0.001977", "0.002469", "0.6974", "0.3048"),
]
TUTORIAL_LOADED = {"weights": 0.6954, "bias": 0.2998}
TUTORIAL_PREDICTIONS = [0.8561, 0.8701, 0.8840, 0.8979, 0.9118, 0.9257, 0.9396, 0.9535, 0.9674, 0.9813]


def run(*args: str) -> None:
    """``lit-linreg <args>`` in-process."""
    main([str(a) for a in args])


def run_subprocess(*args: str, check: bool = True, timeout: float = 300) -> subprocess.CompletedProcess:
    """``python -m lit_linreg <args>`` in a fresh process (the cwd is the test's tmp_path)."""
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    result = subprocess.run(
        [sys.executable, "-m", "lit_linreg", *map(str, args)],
        capture_output=True,
        text=True,
        env=env,
        timeout=timeout,
    )
    if check and result.returncode != 0:
        raise AssertionError(f"exit {result.returncode}\nstdout:\n{result.stdout}\nstderr:\n{result.stderr}")
    return result


def table_rows(output: str) -> list[tuple[int, str, str, str, str]]:
    """Rows of the training table printed by EpochTable."""
    rows = re.findall(r"^\s*(\d+) \|\s+([\d.]+) \|\s+([\d.]+) \| ([\d.-]+) \| ([\d.-]+)$", output, re.MULTILINE)
    return [(int(e), tl, vl, w, b) for e, tl, vl, w, b in rows]

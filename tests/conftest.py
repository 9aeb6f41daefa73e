"""Every test runs in its own temporary directory, so checkpoints/ and lightning_logs/ never land in the repository."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture(autouse=True)
def _isolated_cwd(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr("sys.argv", ["lit-linreg"])  # main(args) is the command line, not pytest's

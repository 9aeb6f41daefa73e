"""Bad inputs for the error tests: checkpoint files lit-linreg must refuse, and running the CLI to its error line."""

from __future__ import annotations

import os
import pickle
from collections.abc import Callable
from pathlib import Path
from typing import Any

import lightning as L
import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from .helpers import CONFIGS, run


def error_line(capsys: pytest.CaptureFixture[str], *args: object) -> str:
    """Run the CLI in-process, expect exit status 2 and one error line without a traceback; return that line."""
    with pytest.raises(SystemExit) as exit_info:
        run(*args)
    err = capsys.readouterr().err
    assert exit_info.value.code == 2 and "Traceback" not in err
    line = err.strip().splitlines()[-1]
    assert line.startswith("lit-linreg: error: ")
    return line


class CreatesFile:
    """Unpickling this object creates ``path``: the marker that shows whether a load ran code from the file."""

    def __init__(self, path: Path) -> None:
        self.path = str(path)

    def __reduce__(self) -> tuple[Any, ...]:
        return (open, (self.path, "w"))


class ForeignModule(L.LightningModule):
    """A LightningModule that is not lit-linreg's."""

    def __init__(self, hidden: int = 3) -> None:
        super().__init__()
        self.save_hyperparameters()
        self.layer = nn.Linear(2, hidden)

    def training_step(self, batch: list[torch.Tensor], batch_idx: int) -> torch.Tensor:
        return self.layer(batch[0]).sum()

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.SGD(self.parameters(), lr=0.1)


def fit_real_checkpoint(root: Path, *args: str) -> Path:
    """``last.ckpt`` of a short base.yaml run under ``root`` (extra CLI ``args`` allowed)."""
    run(
        "fit",
        "--config",
        CONFIGS / "base.yaml",
        "--trainer.max_epochs",
        "3",
        "--table.every_n_epochs",
        "0",
        "--trainer.default_root_dir",
        root,
        *args,
    )
    return next(root.glob("checkpoints/*/version_*/last.ckpt"))


def write_code_running_checkpoint(path: Path, marker: Path) -> Path:
    """A torch.save file whose pickle, if loaded without weights_only, creates ``marker``."""
    torch.save({"state_dict": {}, "payload": CreatesFile(marker)}, path)
    return path


def write_foreign_checkpoint(path: Path) -> Path:
    """A real Lightning checkpoint of :class:`ForeignModule`, saved by a Trainer after one step."""
    trainer = L.Trainer(
        max_steps=1,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        default_root_dir=path.parent,
    )
    trainer.fit(ForeignModule(), DataLoader(TensorDataset(torch.randn(4, 2)), batch_size=2))
    trainer.save_checkpoint(path)
    return path


def write_bad_checkpoints(real: Path, directory: Path, marker: Path) -> dict[str, Path]:
    """Every kind of bad checkpoint file, in ``directory``; loading the code-running ones would create ``marker``."""
    directory.mkdir(parents=True, exist_ok=True)
    real_checkpoint = torch.load(real, weights_only=True)
    data = real.read_bytes()
    files = {
        "torch file that runs code": lambda p: write_code_running_checkpoint(p, marker),
        "pickle that runs code": lambda p: p.write_bytes(pickle.dumps({"state_dict": CreatesFile(marker)})),
        "random bytes": lambda p: p.write_bytes(bytes(range(256)) * 8 + os.urandom(1000)),
        "empty file": lambda p: p.write_bytes(b""),
        "truncated copy": lambda p: p.write_bytes(data[: len(data) // 2]),
        "untrusted instantiator": lambda p: torch.save(_with(real_checkpoint, _instantiator="os.system"), p),
        "foreign class path": lambda p: torch.save(_with(real_checkpoint, _class_path=f"{__name__}.ForeignModule"), p),
        "foreign data class": lambda p: torch.save(
            _with(real_checkpoint, "datamodule_hyper_parameters", _class_path="os.system"), p
        ),
        "foreign module": write_foreign_checkpoint,
        "hyperparameters list": lambda p: torch.save({**real_checkpoint, "hyper_parameters": [1, 2]}, p),
        "data settings text": lambda p: torch.save({**real_checkpoint, "datamodule_hyper_parameters": "text"}, p),
        "callbacks list": lambda p: torch.save({**real_checkpoint, "callbacks": ["a list"]}, p),
        "numeric data class": lambda p: torch.save(_with(real_checkpoint, "lit_linreg", data_class=5), p),
        "listed data class": lambda p: torch.save(_with(real_checkpoint, "lit_linreg", data_class=["x.Y"]), p),
        "listed instantiator": lambda p: torch.save(_with(real_checkpoint, _instantiator=["x"]), p),
    }
    paths = {}
    for name, write in files.items():
        paths[name] = directory / (name.replace(" ", "_") + ".ckpt")
        write(paths[name])
    return paths


def crafted(real: Path, path: str | Path, change: Callable[[dict[str, Any]], dict[str, Any]]) -> Path:
    """The checkpoint ``real`` as ``change`` returns it, saved as ``path`` (its folders made)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(change(torch.load(real, weights_only=True)), path)
    return path


def _with(checkpoint: dict[str, Any], key: str = "hyper_parameters", **changes: Any) -> dict[str, Any]:
    return {**checkpoint, key: {**checkpoint[key], **changes}}

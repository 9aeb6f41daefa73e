"""Scale: distributed training on two CPU processes, and the large config (shrunk)."""

from __future__ import annotations

import pytest
import torch

from lit_linreg.task import LinearRegressionTask

from .helpers import CONFIGS, run, run_subprocess

QUIET = ("--table.every_n_epochs", "0", "--trainer.max_epochs", "120")


@pytest.mark.slow
def test_ddp_on_two_cpu_processes_equals_one_process() -> None:
    # Full-batch data: each rank trains on its own 20-row half, DDP averages the two gradients, which is exactly the
    # gradient of the 40-row batch, so two processes must end where one does.
    run("fit", "--config", CONFIGS / "base.yaml", *QUIET, "--run_name", "single")
    run_subprocess(
        "fit",
        "--config",
        CONFIGS / "base.yaml",
        *QUIET,
        "--run_name",
        "ddp",
        "--trainer.strategy",
        "ddp",
        "--trainer.devices",
        "2",
        "--trainer.accelerator",
        "cpu",
        timeout=600,
    )
    single = LinearRegressionTask.load_from_checkpoint("checkpoints/single/version_0/last.ckpt").state_dict()
    ddp = LinearRegressionTask.load_from_checkpoint("checkpoints/ddp/version_0/last.ckpt").state_dict()
    assert single.keys() == ddp.keys()
    for key in single:
        torch.testing.assert_close(ddp[key], single[key], rtol=0, atol=1e-6)


@pytest.mark.slow
def test_large_config_converges_when_shrunk() -> None:
    run(
        "fit",
        "--config",
        CONFIGS / "large.yaml",
        "--data.num_samples",
        "400000",
        "--data.batch_size",
        "1024",
        "--trainer.max_epochs",
        "2",
    )
    weight, bias = LinearRegressionTask.load_from_checkpoint("checkpoints/large/version_0/last.ckpt").coefficients()
    assert abs(weight.item() - 0.7) < 0.01 and abs(bias.item() - 0.3) < 0.01

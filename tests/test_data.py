"""The synthetic data module and the in-memory batches."""

from __future__ import annotations

import pytest
import torch

from lit_linreg.data import SyntheticRegressionData, TensorBatches
from lit_linreg.errors import UserError


def test_tutorial_grid_and_sequential_split() -> None:
    data = SyntheticRegressionData()
    data.setup("fit")
    x_train, y_train = data.splits["train"]
    x_test, y_test = data.splits["test"]
    x = torch.arange(0, 1, 0.02).unsqueeze(dim=1)
    assert torch.equal(torch.cat([x_train, x_test]), x)
    assert torch.equal(torch.cat([y_train, y_test]), 0.7 * x + 0.3)
    assert (len(x_train), len(x_test)) == (40, 10)
    # validation is the tutorial's per-epoch test evaluation: the same rows, not a copy
    assert data.splits["val"][0].data_ptr() == x_test.data_ptr()


def test_full_batch_loader_is_one_batch_of_views() -> None:
    data = SyntheticRegressionData()
    data.setup("fit")
    loader = data.train_dataloader()
    assert not isinstance(loader, list) and len(loader) == 1
    ((x, y),) = list(loader)
    assert x.data_ptr() == data.splits["train"][0].data_ptr()  # a view, no copy


def test_minibatches_shuffle_once_per_epoch_and_reproducibly() -> None:
    x = torch.arange(10.0).unsqueeze(1)
    epoch = [0]
    loader = TensorBatches((x, x * 2), batch_size=4, shuffle=True, seed=3, epoch=lambda: epoch[0])
    assert len(loader) == 3
    epoch0 = torch.cat([b[0] for b in loader])
    assert sorted(epoch0[:, 0].tolist()) == list(range(10))
    assert torch.equal(epoch0, torch.cat([b[0] for b in loader]))  # the same epoch: the same order
    epoch[0] = 1
    assert not torch.equal(epoch0, torch.cat([b[0] for b in loader]))
    counted = TensorBatches((x, x * 2), batch_size=4, shuffle=True, seed=3)  # no epoch given: iterations count
    assert torch.equal(epoch0, torch.cat([b[0] for b in counted]))
    assert not torch.equal(epoch0, torch.cat([b[0] for b in counted]))
    assert all(torch.equal(bx * 2, by) for bx, by in loader)  # rows stay paired
    # One gather per epoch, then slices: every batch is a contiguous view of the same shuffled copy.
    batches = [b[0] for b in loader]
    assert all(b.is_contiguous() for b in batches)
    assert len({b.untyped_storage().data_ptr() for b in batches}) == 1


@pytest.mark.parametrize("shuffle", [False, True])
def test_ranks_get_disjoint_equal_shards(shuffle: bool) -> None:
    x = torch.arange(11.0).unsqueeze(1)
    shards = [torch.cat([b[0] for b in TensorBatches((x,), 2, shuffle, seed=0, rank=r, world_size=2)]) for r in (0, 1)]
    assert len(shards[0]) == len(shards[1]) == 5
    assert not set(shards[0][:, 0].tolist()) & set(shards[1][:, 0].tolist())


def test_random_samples_features_noise_and_seed() -> None:
    data = SyntheticRegressionData(weight=[1.0, -2.0, 0.5], bias=0.1, num_samples=1000, noise_std=0.0, seed=7)
    data.setup("fit")
    x, y = data.splits["train"]
    assert x.shape == (800, 3) and data.num_features == 3
    torch.testing.assert_close(y, x @ torch.tensor([[1.0], [-2.0], [0.5]]) + 0.1)
    again = SyntheticRegressionData(weight=[1.0, -2.0, 0.5], bias=0.1, num_samples=1000, seed=7)
    again.setup("fit")
    assert torch.equal(again.splits["train"][0], x)
    noisy = SyntheticRegressionData(num_samples=1000, noise_std=0.1, seed=7)
    noisy.setup("fit")
    residual = noisy.splits["train"][1] - (0.7 * noisy.splits["train"][0] + 0.3)
    assert 0.08 < residual.std().item() < 0.12


def test_data_generation_leaves_the_global_rng_alone() -> None:
    torch.manual_seed(42)
    expected = torch.randn(1)
    torch.manual_seed(42)
    data = SyntheticRegressionData(num_samples=100, noise_std=0.5)
    data.setup("fit")
    assert torch.equal(torch.randn(1), expected)


def test_predict_rows() -> None:
    data = SyntheticRegressionData(predict_x=[0.5, 2.0])
    data.setup("predict")
    x, y_true = data.predict_rows
    assert x[:, 0].tolist() == [0.5, 2.0]
    torch.testing.assert_close(y_true, 0.7 * x + 0.3)
    default = SyntheticRegressionData()
    default.setup("predict")
    assert torch.equal(default.predict_rows[0], default.splits["test"][0])


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        # What one option's type says (step > 0, 0 < train_split < 1, ...) is checked where options are parsed
        # (tests/test_errors.py); these need several options, or the data, to check.
        ({"end": 0.0}, "data.end must be greater than data.start"),
        ({"train_split": 0.9, "val_split": 0.2}, "data.val_split must leave rows for the test split"),
        ({"predict_x": []}, "data.predict_x is empty"),
        ({"num_features": 2}, "several features need random x"),
    ],
)
def test_bad_values_fail_at_construction(kwargs: dict, message: str) -> None:
    with pytest.raises(UserError, match=message):
        SyntheticRegressionData(**kwargs)

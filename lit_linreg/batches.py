"""Batches: slices of tensors already on the training device, with no Dataset, sampler or collate."""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import Tensor


class EpochSampler:
    """Lightning calls ``set_epoch`` on it at each epoch start (it looks for ``loader.sampler``): seeds the shuffle."""

    def __init__(self) -> None:
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch


class TensorBatches:
    """Batches sliced from tensors that already live on the training device.

    One iterable object, not a list (Lightning reads a list from a ``*_dataloader`` hook as several loaders). No
    Dataset, sampler or collate: a batch is a view, and shuffling is one permutation and one gather per tensor per
    epoch, seeded by (seed, epoch) so a resumed run sees the same batches. Under DDP every rank takes a disjoint,
    equal-sized shard (the remainder rows are left out).
    """

    batch_sampler = None  # Lightning inspects ``loader.batch_sampler`` once it finds ``loader.sampler``

    def __init__(
        self,
        tensors: Sequence[Tensor],
        batch_size: int | None = None,
        shuffle: bool = False,
        seed: int = 0,
        rank: int = 0,
        world_size: int = 1,
    ) -> None:
        self.tensors = tuple(tensors)
        self.rows = len(self.tensors[0])
        self.shard_size = self.rows // world_size
        self.offset = rank * self.shard_size
        self.batch_size = max(1, min(batch_size or self.shard_size, self.shard_size))
        self.shuffle = shuffle and self.batch_size < self.shard_size
        self.seed = seed
        self.sampler = EpochSampler()

    def __len__(self) -> int:
        return math.ceil(self.shard_size / self.batch_size)

    def __iter__(self):
        size, step = self.shard_size, self.batch_size
        if not self.shuffle:
            for start in range(self.offset, self.offset + size, step):
                stop = min(start + step, self.offset + size)
                yield tuple(t[start:stop] for t in self.tensors)
            return
        device = self.tensors[0].device  # permute where the rows live: no host round trip per epoch
        generator = torch.Generator(device=device).manual_seed((self.seed << 32) + self.sampler.epoch)
        order = torch.randperm(self.rows, generator=generator, device=device)[self.offset : self.offset + size]
        # One gather of the whole shard per epoch, then views: a gather per batch of random rows is bound by memory
        # latency and costs about 2.5x more (bench.py). The copy lives only while this epoch's iterator does.
        shuffled = tuple(t.index_select(0, order) for t in self.tensors)
        del order
        for start in range(0, size, step):
            yield tuple(t[start : start + step] for t in shuffled)

"""Data larger than memory: Parquet files streamed in shuffled batches, sharded over processes and loader workers.

Run: lit-linreg make-data --format parquet --out data/large --rows 10000000
     lit-linreg fit --data.class_path lit_linreg.datasets.parquet.ParquetRegressionData --data.path data/large \
         --data.target y
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Iterator
from typing import Literal, NamedTuple

import numpy as np
import pyarrow as pa
import pyarrow.dataset as ds
import pyarrow.parquet as pq
import torch
from jsonargparse.typing import ClosedUnitInterval, NonNegativeInt, OpenUnitInterval, PositiveInt
from lightning.pytorch.utilities import rank_zero_warn
from torch import Tensor
from torch.utils.data import DataLoader, IterableDataset, get_worker_info

from lit_linreg.data import Moments, RegressionDataModule, Seed
from lit_linreg.datasets import check_columns, check_target
from lit_linreg.errors import UserError, one_line, require

SPLITS = ("train", "val", "test")
# Batches per block that a worker sends: a tensor from a worker costs about the same whatever its size. One epoch of
# 8M rows, batch 8192, on 2 shared cores ran at 0.75x (1 worker) and 0.57x (2 workers) of the in-memory rate with 1
# batch per block, 0.80x and 0.72x with 16.
BLOCK_BATCHES = 16


class _Piece(NamedTuple):
    """A row group: the unit that is read, shuffled and dealt out."""

    path: str
    size: int  # its file's size in bytes when the data module was built
    row_group: int
    start: int  # the global index of its first row (files sorted by path, row groups in order)
    rows: int


class ParquetRows:
    """The Parquet files under ``path``, scanned from their footers; the used columns are read by row group."""

    def __init__(self, path: str, target: str, features: list[str] | None = None) -> None:
        require(os.path.exists(path), f"data.path {path} does not exist; give a Parquet file or a folder of them")
        # Lists the files, skipping names that start with "." or "_" (_SUCCESS, .crc). The empty schema stops pyarrow
        # from inferring one from the first file, which would fail with its own traceback if that file were bad.
        dataset = ds.dataset(path, format="parquet", schema=pa.schema([]))
        self.filesystem, files = dataset.filesystem, sorted(dataset.files)
        require(bool(files), f"data.path {path} holds no files; write some with lit-linreg make-data --format parquet")
        self.pieces: list[_Piece] = []
        self.rows = 0
        schema = None
        for file in files:
            try:
                metadata = pq.read_metadata(file, filesystem=self.filesystem)
            except (OSError, pa.ArrowException) as err:
                raise UserError(
                    f"{file} is not a readable Parquet file ({one_line(str(err))}); fix or remove it"
                ) from None
            file_schema = metadata.schema.to_arrow_schema()
            schema = file_schema if schema is None else schema
            if not file_schema.equals(schema):
                fields = [{f"{f.name}: {f.type}" for f in s} for s in (file_schema, schema)]
                changed = sorted(fields[0] ^ fields[1]) or ["the same ones in another order"]
                raise UserError(
                    f"{file} and {files[0]} have different columns ({', '.join(changed)}); every file of a dataset "
                    f"needs the same column names and types"
                )
            size = self.filesystem.get_file_info(file).size
            for group in range(metadata.num_row_groups):
                rows = metadata.row_group(group).num_rows
                self.pieces.append(_Piece(file, size, group, self.rows, rows))
                self.rows += rows
        assert schema is not None
        numeric = {f.name for f in schema if pa.types.is_integer(f.type) or pa.types.is_floating(f.type)}
        check_target(path, schema.names, target)
        require(target in numeric, f"{path}: the target column {target!r} is {schema.field(target).type}, not numeric")
        if features is None:
            features = [name for name in schema.names if name != target and name in numeric]
            skipped = [name for name in schema.names if name != target and name not in numeric]
            if skipped:
                rank_zero_warn(f"{path}: not numeric, so not used as features: {', '.join(skipped)}")
        check_columns("data.features", features, path, schema.names, target)
        require(len(features) > 0, f"{path} has no numeric feature column besides the target {target!r}")
        other = [name for name in features if name not in numeric]
        require(not other, f"{path}: data.features {other} are not numeric columns")
        require(self.rows > 0, f"{path} has no rows")
        self.features, self.target = list(features), target

    def read(self, piece: int, select: slice | np.ndarray, threads: bool = True) -> np.ndarray:
        """The ``select``-ed rows of row group ``piece`` as one float32 array (rows, features + 1): x, then y."""
        path, size, group, _, _ = self.pieces[piece]
        try:
            now = self.filesystem.get_file_info(path).size
            require(now == size, f"its size changed from {size:,} to {now or 0:,} bytes")
            # pyarrow.parquet reads a row group in about 60 % of the time that a pyarrow.dataset fragment of it takes.
            with pq.ParquetFile(path, filesystem=self.filesystem) as parquet:
                table = parquet.read_row_group(group, columns=[*self.features, self.target], use_threads=threads)
        except (OSError, pa.ArrowException, UserError) as err:
            raise UserError(
                f"{path} could not be read during the run ({one_line(str(err))}); it was deleted, truncated or "
                f"rewritten while in use: restore it, then rerun (a fit resumes with --ckpt_path last)"
            ) from None
        block = np.empty((table.num_rows, len(self.features) + 1), np.float32)
        for j, name in enumerate([*self.features, self.target]):
            block[:, j] = table.column(name).to_numpy()  # one copy, casting to float32 (nulls become NaN)
        block = block[select]
        if not np.isfinite(block).all():
            raise UserError(
                f"{path}, row group {group}: a used column holds a null, NaN or infinite value; fix or drop those rows"
            )
        return block


def _uniform(seed: int, index: np.ndarray) -> np.ndarray:
    """A uniform number in [0, 1) per row index, fixed by ``seed``: SplitMix64 (Steele et al., 2014) of the index."""
    with np.errstate(over="ignore"):  # uint64 arithmetic wraps, as the hash intends
        z = index.astype(np.uint64) + np.uint64(seed % 2**64) * np.uint64(0x9E3779B97F4A7C15)
        z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        z ^= z >> np.uint64(31)
    return (z >> np.uint64(11)).astype(np.float64) * 2.0**-53


class SplitRule:
    """Which rows of each row group are in train, val and test (``ParquetRegressionData`` describes the splits)."""

    def __init__(self, data: ParquetRegressionData) -> None:
        self.split, self.seed = data.split, data.seed
        self.train_split, self.val_split = data.train_split, data.val_split
        train, val, test = data.split_sizes(data.table.rows)
        self.ranges = {"train": (0, train), "val": (train, train + val), "test": (train + val, train + val + test)}

    def name(self, split: str) -> str:
        """The split that ``split`` reads: ``val`` is ``test`` when ``val_split`` is 0."""
        require(split in SPLITS, f"split must be train, val or test, got {split!r}")
        return "test" if split == "val" and not self.val_split else split

    def select(self, piece: _Piece, split: str) -> slice | np.ndarray:
        """The rows of ``piece`` in ``split``: a slice (sequential) or a boolean mask (random)."""
        split = self.name(split)
        if self.split == "random":
            u = _uniform(self.seed, np.arange(piece.start, piece.start + piece.rows))
            code = (u >= self.train_split).astype(np.int8) + (u >= self.train_split + self.val_split)
            return code == SPLITS.index(split)
        low, high = self.ranges[split]
        start = min(max(low - piece.start, 0), piece.rows)
        return slice(start, max(min(high - piece.start, piece.rows), start))

    def counts(self, pieces: list[_Piece], split: str) -> np.ndarray:
        """The number of ``split`` rows in each piece."""
        selected = [self.select(piece, split) for piece in pieces]
        return np.array([s.stop - s.start if isinstance(s, slice) else s.sum() for s in selected], dtype=np.int64)


class ParquetStream(IterableDataset):
    """One split's rows for process ``rank`` of ``world_size``, in blocks of float32 ``[x, y]`` rows per loader worker.

    Each rank takes an equal, contiguous part of the epoch's rows, each worker a part of that cut at batch boundaries.
    """

    def __init__(self, data: ParquetRegressionData, split: str, rank: int = 0, world_size: int = 1) -> None:
        self.table, self.rule, self.split, self.rank, self.seed = data.table, data.rule, split, rank, data.seed
        self.batch_size, self.shuffle_buffer = data.batch_size or 1, data.shuffle_buffer
        self.shuffle = split == "train" and data.shuffle
        self.counts = self.rule.counts(self.table.pieces, split)
        self.rows = int(self.counts.sum()) // world_size  # this rank's rows
        self.epoch = 0  # set before each epoch's iteration (ParquetBatches); workers get a copy of it

    def __len__(self) -> int:
        return math.ceil(self.rows / self.batch_size)

    def __iter__(self) -> Iterator[Tensor | UserError]:
        info = get_worker_info()
        worker, workers = (0, 1) if info is None else (info.id, info.num_workers)
        low, high = (
            self.rank * self.rows + min(b * self.batch_size, self.rows)
            for b in (worker * len(self) // workers, (worker + 1) * len(self) // workers)
        )
        try:
            rng = np.random.default_rng([self.seed % 2**64, self.epoch, 1 + self.rank * workers + worker])
            buffer = self.shuffle_buffer if self.shuffle else 0
            chunks = self._chunks(low, high, threads=info is None)
            yield from shuffled_blocks(chunks, self.batch_size * BLOCK_BATCHES, buffer, rng, shared=info is not None)
        except UserError as err:
            if info is None:
                raise
            yield err  # a worker's exception would reach the main process with its traceback in the message

    def _chunks(self, low: int, high: int, threads: bool) -> Iterator[np.ndarray]:
        """Rows ``[low, high)`` of the epoch's row groups (in a random order with ``shuffle``), one at a time."""
        order = np.flatnonzero(self.counts)
        if self.shuffle:
            order = np.random.default_rng([self.seed % 2**64, self.epoch]).permutation(order)
        ends = np.cumsum(self.counts[order])
        for k in range(int(np.searchsorted(ends, low, side="right")), len(order)):
            start = int(ends[k] - self.counts[order[k]])
            if start >= high:
                return
            piece = int(order[k])
            block = self.table.read(piece, self.rule.select(self.table.pieces[piece], self.split), threads)
            yield block[max(low - start, 0) : min(high - start, len(block))]


def shuffled_blocks(
    chunks: Iterator[np.ndarray], block_rows: int, buffer: int, rng: np.random.Generator, shared: bool = False
) -> Iterator[Tensor]:
    """The rows of ``chunks`` in blocks of ``block_rows``, all full but the last, through a shuffle buffer.

    With ``buffer`` > 0, at least that many rows are permuted together and the whole blocks given out; the leftover
    rows mix with the next ones. ``shared``: blocks in shared memory, which a DataLoader worker sends without a copy.
    """
    held: list[np.ndarray] = []
    count = 0
    for chunk in chunks:
        held.append(chunk)
        count += len(chunk)
        if count >= max(buffer, block_rows):
            out = count // block_rows * block_rows
            rows = _gather(held, count, buffer, rng, shared)
            yield from (rows[start : start + block_rows] for start in range(0, out, block_rows))
            held, count = [rows[out:].numpy()], count - out
    if count:
        yield _gather(held, count, buffer, rng, shared)


def _gather(held: list[np.ndarray], count: int, buffer: int, rng: np.random.Generator, shared: bool) -> Tensor:
    rows = torch.empty(count, held[0].shape[1])
    if shared:
        rows.share_memory_()
    if buffer:  # np.take is 2.5x faster than fancy indexing (rows[order]) on (n, 9) float32 arrays
        np.take(np.concatenate(held), rng.permutation(count), axis=0, out=rows.numpy())
    else:
        np.concatenate(held, out=rows.numpy())
    return rows


class ParquetBatches:
    """The batches of a :class:`ParquetStream` read by ``num_workers`` DataLoader workers, epoch by epoch."""

    def __init__(
        self,
        stream: ParquetStream,
        num_workers: int = 0,
        epoch: Callable[[], int] | None = None,
        pin_memory: bool = False,
    ) -> None:
        self.stream, self.num_workers, self.epoch, self.pin_memory = stream, num_workers, epoch, pin_memory
        self.iterations = 0

    def __len__(self) -> int:
        return len(self.stream)

    def __iter__(self) -> Iterator[tuple[Tensor, Tensor]]:
        self.stream.epoch = self.epoch() if self.epoch is not None else self.iterations
        self.iterations += 1
        loader = DataLoader(self.stream, batch_size=None, num_workers=self.num_workers, pin_memory=self.pin_memory)
        size = self.stream.batch_size
        for block in loader:
            if isinstance(block, UserError):
                raise UserError(str(block)) from None
            for start in range(0, len(block), size):  # views: x is every column but the last
                yield block[start : start + size, :-1], block[start : start + size, -1:]


class ParquetRegressionData(RegressionDataModule):
    """Rows of Parquet files, streamed: ``target`` is y, ``features`` (default: every other numeric column) are x.

    ``path`` is one Parquet file or a folder of them (searched recursively; names starting with ``.`` or ``_`` are
    skipped), all with the same schema. Construction reads only the footers; rows are read by row group while training,
    so memory stays bounded whatever the data's size (see ``shuffle_buffer``).

    - **Splits** need no pass over the data: ``sequential`` takes the rows in order (files sorted by path), as in
      memory; ``random`` assigns each row by a seeded hash of its index, so the splits hold about their fractions.
    - **Shuffle**, each epoch, seeded by (``seed``, epoch): the row groups in a random order, then a shuffle buffer, so
      a batch mixes a few row groups, not the whole data: write sorted files shuffled, or enlarge the buffer.
    - **Sharding**: every DDP rank takes an equal, contiguous part of the epoch's rows, each DataLoader worker a part of
      that; up to ``world_size - 1`` rows (different ones each epoch) are left out so that every rank runs the same
      number of steps. Validation and test read the whole split on every rank, so synced metrics are exact.
    - **Statistics** and samples come from one pass over the data in float64, on first use.

    Args:
        path: a Parquet file, or a folder of Parquet files with the same columns
        target: the column that holds y
        features: the columns that hold x; null: every other numeric column
        standardize: scale each feature by the training split's mean and std (kept in every checkpoint)
        train_split: fraction of the rows to train on (the tutorial's 0.8: 80 % train, 20 % test)
        val_split: fraction of the rows to validate on; 0: validate on the test split
        split: ``sequential`` (rows in file order) or ``random`` (each row by a seeded hash of its index)
        batch_size: rows per batch
        shuffle: shuffle the training rows every epoch (seeded by ``seed`` and the epoch)
        seed: seeds the random split, the shuffle and the samples (never the model's initialisation)
        num_workers: DataLoader worker processes that read and shuffle (0: the training process reads)
        shuffle_buffer: rows each reading process shuffles together; it holds up to about three times this many rows
            while it shuffles, at 4 bytes per column (features + 1): 108 MB with 8 features at the default
        sample_rows: rows per split of the seeded random sample that ``sample`` returns (the report's LAD fit and
            the figures use it)
    """

    def __init__(
        self,
        path: str,
        target: str,
        features: list[str] | None = None,
        standardize: bool = False,
        train_split: OpenUnitInterval = 0.8,
        val_split: ClosedUnitInterval = 0.0,
        split: Literal["sequential", "random"] = "sequential",
        batch_size: PositiveInt = 8192,
        shuffle: bool = True,
        seed: Seed = 0,
        num_workers: NonNegativeInt = 0,
        shuffle_buffer: NonNegativeInt = 1_000_000,
        sample_rows: PositiveInt = 200_000,
    ) -> None:
        super().__init__(train_split, val_split, split, batch_size, shuffle, seed)
        self.save_hyperparameters(logger=False)  # the report callback logs every run's settings
        self.standardize = standardize
        self.table = ParquetRows(path, target, features)
        self.rule = SplitRule(self)
        self.num_workers, self.shuffle_buffer, self.sample_rows = num_workers, shuffle_buffer, sample_rows
        self._summary: tuple[dict[str, Moments], dict[str, np.ndarray]] | None = None
        if split == "sequential":
            self.check_split_sizes(self.table.rows, path)

    @property
    def num_features(self) -> int:
        return len(self.table.features)

    @property
    def feature_names(self) -> list[str]:
        return self.table.features

    def setup(self, stage: str) -> None:
        """Nothing to load: the loaders read the rows."""

    def stream(self, split: str, rank: int = 0, world_size: int = 1) -> ParquetStream:
        """The rows of ``split`` (train, val or test) for process ``rank`` of ``world_size``."""
        return ParquetStream(self, split, rank, world_size)

    def _batches(self, split: str) -> ParquetBatches:
        trainer = self.trainer
        rank, world_size = (trainer.global_rank, trainer.world_size) if trainer and split == "train" else (0, 1)
        stream = self.stream(split, rank, world_size)
        require(
            stream.rows > 0, f"the {split} split of {self.hparams['path']} has no rows; add rows or change the split"
        )
        return ParquetBatches(
            stream,
            self.num_workers,
            epoch=None if trainer is None else lambda: trainer.current_epoch,  # a resumed fit reads alike
            pin_memory=trainer is not None and trainer.strategy.root_device.type == "cuda",
        )

    def train_dataloader(self) -> ParquetBatches:  # type: ignore[override]
        return self._batches("train")

    def val_dataloader(self) -> ParquetBatches:  # type: ignore[override]
        return self._batches("val")

    def test_dataloader(self) -> ParquetBatches:  # type: ignore[override]
        return self._batches("test")

    def predict_dataloader(self) -> ParquetBatches:  # type: ignore[override]
        return self._batches("test")

    # Statistics: one pass over every row group, in file order, on first use.
    def summary(self) -> tuple[dict[str, Moments], dict[str, np.ndarray]]:
        """Each split's :class:`Moments` and its seeded sample (float64 rows of ``[x, y]``, in random order)."""
        if self._summary is not None:
            return self._summary
        table, splits = self.table, [name for name in SPLITS if self.rule.name(name) == name]
        moments = {split: Moments(self.num_features + 1) for split in splits}
        samples, wanted, seen = {}, {}, dict.fromkeys(splits, 0)
        for number, split in enumerate(splits):
            total = int(self.rule.counts(table.pieces, split).sum())
            rng = np.random.default_rng([self.seed % 2**64, 2**32 + number])
            picked = rng.choice(total, size=min(total, self.sample_rows), replace=False)  # random order
            wanted[split] = (np.sort(picked), np.argsort(picked))
            samples[split] = np.empty((len(picked), self.num_features + 1))
        for index, piece in enumerate(table.pieces):
            rows = table.read(index, slice(0, piece.rows))
            for split in splits:
                block = rows[self.rule.select(piece, split)]
                moments[split].update(block)
                positions, slots = wanted[split]
                low, high = np.searchsorted(positions, [seen[split], seen[split] + len(block)])
                samples[split][slots[low:high]] = block[positions[low:high] - seen[split]]
                seen[split] += len(block)
        self._summary = moments, samples
        return self._summary

    def moments(self, split: str = "train") -> Moments:
        return self.summary()[0][self.rule.name(split)]

    def train_stats(self, target: bool) -> tuple[Tensor, Tensor]:
        """From the training split's moments, in float64."""
        moments = self.moments("train")
        columns = slice(-1, None) if target else slice(None, -1)
        return torch.tensor(moments.mean[columns]), torch.tensor(np.sqrt(np.diag(moments.cov)[columns]))

    def exact_mse(self, weight: Tensor, bias: Tensor, split: str = "train") -> float:
        """The mean squared error of the line (weight, bias) over all rows of ``split``, from its moments."""
        return self.moments(split).mse(weight.double().cpu().numpy().reshape(-1), float(bias.reshape(-1)[0]))

    def sample(self, split: str = "train", rows: int | None = None) -> tuple[Tensor, Tensor]:
        """A uniform random sample of ``split`` without replacement, seeded by ``seed``: float64 ``x`` (n, features)
        and ``y`` (n, 1), n = min(``rows``, ``sample_rows``, the split's rows)."""
        block = torch.from_numpy(self.summary()[1][self.rule.name(split)][:rows])
        return block[:, :-1], block[:, -1:]


__all__ = ["ParquetBatches", "ParquetRegressionData", "ParquetRows", "ParquetStream"]

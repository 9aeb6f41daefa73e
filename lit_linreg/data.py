"""Data: ``RegressionDataModule`` (what every source shares: splits, device, sharding, loaders, statistics) and
``SyntheticRegressionData``, the tutorial's y = weight·x + bias (+ noise)."""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator, Sequence
from typing import Literal

import lightning as L
import numpy as np
import torch
from jsonargparse.typing import ClosedUnitInterval, OpenUnitInterval, PositiveInt, restricted_number_type
from lightning.pytorch.utilities import rank_zero_warn
from torch import Tensor

from lit_linreg.errors import require

MAX_ROWS = 500_000_000
SAMPLE_ROWS = 200_000  # the most rows per split that ``sample`` returns: the report fits LAD and measures L1 on them
CHUNK_ROWS = 262_144  # rows converted to float64 at a time for the statistics
FLOAT32_MAX = float(torch.finfo(torch.float32).max)
# Option types that jsonargparse checks where a value enters (command line, config file, checkpoint): a number the
# model's float32 arithmetic can hold, a positive one, and a seed torch's generators accept. To a type checker they
# are plain numbers (mypy's `always_true`); not `if TYPE_CHECKING:`, whose blocks jsonargparse reads too (no checks).
STATIC_TYPING = False
if STATIC_TYPING:
    Float32 = float
    PositiveFloat32 = float
    NonNegativeFloat32 = float
    Seed = int
else:
    Float32 = restricted_number_type("Float32", float, [(">=", -FLOAT32_MAX), ("<=", FLOAT32_MAX)], join="and")
    PositiveFloat32 = restricted_number_type("PositiveFloat32", float, [(">", 0), ("<=", FLOAT32_MAX)], join="and")
    NonNegativeFloat32 = restricted_number_type(
        "NonNegativeFloat32", float, [(">=", 0), ("<=", FLOAT32_MAX)], join="and"
    )
    Seed = restricted_number_type("Seed", int, [(">=", 0), ("<", 2**32)], join="and")


class TensorBatches:
    """Batches sliced from tensors that already live on the training device: a measured shortcut.

    Poor man's data loader: no Dataset, sampler or collate. A batch is a view, and shuffling is one permutation and one
    gather per tensor per epoch. Measured here (benchmarks/bench.py), ``DataLoader(TensorDataset)`` with a
    ``BatchSampler`` (``batch_size=None``, one gather per batch) trained at 0.16 M rows/s against 2.1 M rows/s for
    these slices: 13x slower. The shuffle is seeded by (seed, epoch), so a resumed run sees the same batches. Under
    DDP every rank takes a disjoint, equal-sized shard (the remainder rows are left out). One iterable object, not a
    list: Lightning reads a list from a ``*_dataloader`` hook as several loaders.
    """

    def __init__(
        self,
        tensors: Sequence[Tensor],
        batch_size: int | None = None,
        shuffle: bool = False,
        seed: int = 0,
        rank: int = 0,
        world_size: int = 1,
        epoch: Callable[[], int] | None = None,
    ) -> None:
        self.tensors = tuple(tensors)
        self.rows = len(self.tensors[0])
        self.shard_size = self.rows // world_size
        self.offset = rank * self.shard_size
        self.batch_size = max(1, min(batch_size or self.shard_size, self.shard_size))
        self.shuffle = shuffle and self.batch_size < self.shard_size
        self.seed = seed
        self.epoch = epoch  # the training epoch an iteration belongs to; without it, iterations are counted
        self.iterations = 0

    def __len__(self) -> int:
        return math.ceil(self.shard_size / self.batch_size)

    def __iter__(self) -> Iterator[tuple[Tensor, ...]]:
        shard = slice(self.offset, self.offset + self.shard_size)
        tensors = tuple(t[shard] for t in self.tensors)
        if self.shuffle:
            device = self.tensors[0].device  # permute where the rows live: no host round trip per epoch
            epoch = self.epoch() if self.epoch is not None else self.iterations
            self.iterations += 1
            generator = torch.Generator(device=device).manual_seed((self.seed << 32) + epoch)
            order = torch.randperm(self.rows, generator=generator, device=device)[shard]
            # One gather of the whole shard per epoch, then views: a gather per batch of random rows is bound by
            # memory latency and costs about 2.5x more (bench.py). The copy lives only while this epoch's iterator does.
            tensors = tuple(t.index_select(0, order) for t in self.tensors)
            del order
        for start in range(0, self.shard_size, self.batch_size):
            yield tuple(t[start : start + self.batch_size] for t in tensors)


class Moments:
    """Row count, mean and centred cross-products of the columns ``[x, y]`` in float64, one chunk at a time.

    Chunks merge by the pairwise update of Chan, Golub and LeVeque (1979): each chunk is centred on its own mean
    first, so nothing cancels the way raw sums of squares do when the mean is large against the spread.
    """

    def __init__(self, columns: int) -> None:
        self.count = 0
        self.mean = np.zeros(columns)
        self.m2 = np.zeros((columns, columns))

    def update(self, block: np.ndarray) -> None:
        """Add the rows of ``block`` (rows, columns)."""
        if not len(block):
            return
        block = block.astype(np.float64)
        mean = block.mean(0)
        centred = block - mean
        delta, total = mean - self.mean, self.count + len(block)
        self.m2 += centred.T @ centred + np.outer(delta, delta) * (self.count * len(block) / total)
        self.mean += delta * (len(block) / total)
        self.count = total

    @property
    def cov(self) -> np.ndarray:
        """The population covariance of the columns."""
        return self.m2 / self.count

    def ols(self) -> tuple[np.ndarray, float]:
        """The least-squares (weight, bias) of the last column on the others, from the normal equations.

        They are solved in correlation form (scaled to unit variances), which keeps their condition number that of
        the features' correlation matrix; constant features get weight 0.
        """
        cov = self.cov
        scale = np.sqrt(np.diag(cov)[:-1])
        varying = scale > 0
        weight = np.zeros(len(scale))
        if not varying.any():
            return weight, float(self.mean[-1])
        s = scale[varying]
        corr = cov[:-1, :-1][np.ix_(varying, varying)] / np.outer(s, s)
        weight[varying] = np.linalg.lstsq(corr, cov[:-1, -1][varying] / s, rcond=None)[0] / s
        return weight, float(self.mean[-1] - self.mean[:-1] @ weight)

    def mse(self, weight: np.ndarray, bias: float) -> float:
        """The mean squared error of y ≈ x·weight + bias over these rows: the residual's variance plus its mean²."""
        v = np.append(-weight, 1.0)
        mean = float(self.mean @ v) - bias
        return float(v @ self.cov @ v) + mean**2


def default_feature_names(count: int) -> list[str]:
    """``["x"]`` for one feature, else ``["x0", "x1", ...]``."""
    return ["x"] if count == 1 else [f"x{i}" for i in range(count)]


class RegressionDataModule(L.LightningDataModule):
    """Splits, device placement, loaders and statistics shared by every data source.

    A subclass provides all rows through :meth:`build_rows` and the rows to predict through :meth:`build_predict_rows`.
    A source that streams its rows instead (``ParquetRegressionData``) leaves ``splits`` empty and provides the
    statistics (``moments``, ``train_stats``, ``exact_mse``, ``sample``) from a pass over them.
    ``val_split=0`` validates on the test split, as the tutorial evaluates its held-out 20 % after every epoch.

    Args:
        train_split: fraction of the rows to train on, taken first (the tutorial's 0.8: 80 % train, 20 % test)
        val_split: fraction of the rows to validate on, taken after the training rows; 0: validate on the test split
        split: ``sequential`` (rows in order, as the tutorial) or ``random`` (shuffled once by ``seed``, then split)
        batch_size: rows per batch; null: each split is one batch (the tutorial's full-batch gradient descent)
        shuffle: shuffle the training rows every epoch (seeded by ``seed`` and the epoch) when there are several batches
        seed: seeds the random split and the shuffle (never the model's initialisation)
    """

    standardize = False  # a source that sets it gets feature_stats() and target_stats(); the CLI links it to the model

    def __init__(
        self,
        train_split: OpenUnitInterval = 0.8,
        val_split: ClosedUnitInterval = 0.0,
        split: Literal["sequential", "random"] = "sequential",
        batch_size: PositiveInt | None = None,
        shuffle: bool = True,
        seed: Seed = 0,
    ) -> None:
        super().__init__()
        require(
            val_split < 1 - train_split,
            f"data.val_split must leave rows for the test split (train_split + val_split < 1), "
            f"got train_split={train_split}, val_split={val_split}",
        )
        self.train_split, self.val_split, self.split = train_split, val_split, split
        self.batch_size, self.shuffle, self.seed = batch_size, shuffle, seed
        self.splits: dict[str, tuple[Tensor, Tensor]] = {}
        self.predict_rows: tuple[Tensor, ...] = ()
        self._moments: dict[str, tuple[Tensor, Moments]] = {}  # per split: its y tensor, and the moments of its rows
        self._exact: dict[str, tuple[Tensor, Tensor]] | None = None  # exact_rows() split, when the source has them

    # What a data source provides.
    @property
    def num_features(self) -> int:
        raise NotImplementedError

    def build_rows(self) -> tuple[Tensor, Tensor]:
        """All rows as float32 ``x`` of shape (rows, num_features) and ``y`` of shape (rows, 1)."""
        raise NotImplementedError

    def build_predict_rows(self) -> tuple[Tensor, ...]:
        """Rows to predict: ``(x,)``, or ``(x, y_true)`` when the targets are known. Default: the test split."""
        return self.splits["test"]

    @property
    def feature_names(self) -> list[str]:
        """The features' names, for predictions.csv, figures and the report (default: ``x``, or ``x0``, ``x1``...)."""
        return default_feature_names(self.num_features)

    def true_parameters(self) -> tuple[Tensor, Tensor] | None:
        """The (weight, bias) that generated the data, when known."""
        return None

    def feature_stats(self) -> tuple[Tensor, Tensor] | None:
        """Per-feature (mean, std) of the training split, for sources with ``standardize``; None otherwise."""
        if not self.standardize:
            return None
        mean, std = self.train_stats(target=False)
        constant = [name for name, s in zip(self.feature_names, std.tolist()) if s == 0]
        require(
            not constant,
            f"data.standardize: feature(s) {', '.join(constant)} are constant on the training split (standard "
            f"deviation 0); leave them out of data.features or set data.standardize false",
        )
        return mean, std

    def target_stats(self) -> tuple[Tensor, Tensor] | None:
        """(mean, std) of the training split's targets, for sources with ``standardize``; None otherwise.

        The model then learns the standardised target: the L1 gradient is bounded, so with a raw target of mean 150 the
        bias would move at most ``lr`` per epoch. A constant target keeps std 1.
        """
        if not self.standardize:
            return None
        mean, std = self.train_stats(target=True)
        return mean, torch.where(std > 0, std, 1.0)

    def train_stats(self, target: bool) -> tuple[Tensor, Tensor]:
        """The mean and population std of the training split's features (or, with ``target``, its target)."""
        values = self.splits["train"][int(target)].cpu().double()
        return values.mean(0).float(), values.std(0, correction=0).float()

    def exact_rows(self) -> tuple[Tensor, Tensor] | None:
        """All rows in float64 as the source holds them (a CSV file's values), for the exact baselines; None: the
        float32 rows are the data."""
        return None

    # Statistics for the report, the figures and export. A streamed source has the same methods, from one pass.
    def _rows64(self, split: str) -> tuple[Tensor, Tensor]:
        """``split``'s rows as the statistics read them: the source's float64 values when it keeps them (a CSV file's
        own numbers, not their float32 rounding), else the float32 rows, converted a chunk at a time by the caller."""
        rows = self.exact_rows()
        if rows is None:
            return self.splits[split]
        if self._exact is None:  # split once, exactly as the float32 rows were
            self._exact = self._split(*rows)
        return self._exact[split]

    def moments(self, split: str = "train") -> Moments:
        """The :class:`Moments` of ``split``'s ``[x, y]`` in float64, kept until the split's tensors change."""
        x, y = self._rows64(split)
        cached = self._moments.get(split)
        if cached is None or cached[0] is not y:
            moments = Moments(x.shape[1] + 1)
            for start in range(0, len(x), CHUNK_ROWS):
                chunk = torch.cat([x[start : start + CHUNK_ROWS], y[start : start + CHUNK_ROWS]], 1)
                moments.update(chunk.cpu().double().numpy())
            cached = self._moments[split] = (y, moments)
        return cached[1]

    def exact_ols(self) -> tuple[Tensor, Tensor]:
        """The least-squares (weight, bias) of every training row, exact in float64 (normal equations)."""
        weight, bias = self.moments("train").ols()
        return torch.from_numpy(weight), torch.tensor([bias], dtype=torch.float64)

    def exact_mse(self, weight: Tensor, bias: Tensor, split: str = "train") -> float:
        """The mean squared error of the line (weight, bias) over every row of ``split``, in float64."""
        x, y = self._rows64(split)
        weight, bias = weight.cpu().double().reshape(-1), bias.cpu().double().reshape(-1)
        squares = 0.0
        for start in range(0, len(x), CHUNK_ROWS):
            rows = slice(start, start + CHUNK_ROWS)
            error = x[rows].cpu().double() @ weight + bias - y[rows].cpu().double().reshape(-1)
            squares += float(error.square().sum())
        return squares / len(x)

    def sample(self, split: str = "train", rows: int | None = None) -> tuple[Tensor, Tensor]:
        """At most ``rows`` and ``SAMPLE_ROWS`` evenly spaced rows of ``split`` (all of them if that many): float64
        ``x`` (n, features) and ``y`` (n, 1) on the CPU. Evenly spaced rows are fair to sorted data too."""
        x, y = self._rows64(split)
        stride = max(1, math.ceil(len(x) / min(rows or SAMPLE_ROWS, SAMPLE_ROWS)))
        return x[::stride].cpu().double(), y[::stride].cpu().double()

    # Shared machinery.
    def split_sizes(self, rows: int) -> tuple[int, int, int]:
        """(train, val, test) row counts for ``rows`` rows; val is 0 when validation reuses the test split."""
        train, val = int(self.train_split * rows), int(self.val_split * rows)
        return train, val, rows - train - val

    def check_split_sizes(self, rows: int, source: str | None = None) -> None:
        """Refuse ``rows`` rows that leave a split empty; the message names ``source`` (e.g. the file), if given."""
        train, val, test = self.split_sizes(rows)
        where = f"{source}: " if source else ""
        require(
            train > 0 and test > 0 and (val > 0 or self.val_split == 0),
            f"{where}the data have {rows} rows, which leaves train/val/test splits of {train}/{val}/{test} rows; "
            f"every split needs at least one row (add rows or change data.train_split / data.val_split)",
        )

    def setup(self, stage: str) -> None:
        if not self.splits:
            self.splits = self._split(*self.build_rows())
        if stage == "predict" and not self.predict_rows:
            self.predict_rows = self.build_predict_rows()
        device = self.trainer.strategy.root_device if self.trainer is not None else torch.device("cpu")
        self.splits = {name: (x.to(device), y.to(device)) for name, (x, y) in self.splits.items()}
        self.predict_rows = tuple(t.to(device) for t in self.predict_rows)

    def _split(self, x: Tensor, y: Tensor) -> dict[str, tuple[Tensor, Tensor]]:
        rows = len(x)
        self.check_split_sizes(rows)
        if self.split == "random":
            order = torch.randperm(rows, generator=torch.Generator().manual_seed(self.seed))
            x, y = x[order], y[order]
        train, val, _ = self.split_sizes(rows)
        splits = {"train": (x[:train], y[:train]), "test": (x[train + val :], y[train + val :])}
        splits["val"] = (x[train : train + val], y[train : train + val]) if val else splits["test"]
        return splits

    def _loader(self, tensors: Sequence[Tensor], train: bool = False) -> TensorBatches:
        trainer, rows = self.trainer, len(tensors[0])
        # Only training is sharded: every rank evaluates the whole split, so synced metrics are exact.
        rank, world_size = (trainer.global_rank, trainer.world_size) if trainer and train else (0, 1)
        if rows % world_size:
            rank_zero_warn(
                f"{rows} training rows do not split evenly over {world_size} processes: "
                f"each trains on {rows // world_size} rows and {rows % world_size} are left out"
            )
        return TensorBatches(
            tensors,
            self.batch_size,
            shuffle=train and self.shuffle,
            seed=self.seed,
            rank=rank,
            world_size=world_size,
            epoch=None if trainer is None else lambda: trainer.current_epoch,  # a resumed fit reshuffles alike
        )

    def train_dataloader(self) -> TensorBatches:
        return self._loader(self.splits["train"], train=True)

    def val_dataloader(self) -> TensorBatches:
        return self._loader(self.splits["val"])

    def test_dataloader(self) -> TensorBatches:
        return self._loader(self.splits["test"])

    def predict_dataloader(self) -> TensorBatches:
        return self._loader(self.predict_rows)


def attached_datamodule(trainer: L.Trainer) -> RegressionDataModule | None:
    """The datamodule ``trainer`` runs with (its public ``trainer.datamodule``) if it is a RegressionDataModule."""
    datamodule = trainer.datamodule  # type: ignore[attr-defined]  # set at run time, unseen by type checkers
    return datamodule if isinstance(datamodule, RegressionDataModule) else None


class SyntheticRegressionData(RegressionDataModule):
    """The tutorial's data: y = weight·x + bias on the grid arange(start, end, step), split 80/20 in order.

    For real workloads: ``num_samples`` draws x uniformly from [start, end) instead of the grid, ``num_features``
    (or a list ``weight``) makes x a matrix, ``noise_std`` adds Gaussian noise, ``batch_size`` gives shuffled
    minibatches. ``seed`` seeds the data alone, never the model's initialisation.

    Args:
        weight: the true weight, or a list of one weight per feature (the tutorial: 0.7)
        bias: the true bias (the tutorial: 0.3)
        start: the smallest x
        end: x stays below it: the grid is arange(start, end, step), random x are uniform in [start, end)
        step: the grid's spacing (the tutorial: 0.02, so 50 rows); unused with num_samples
        train_split: fraction of the rows to train on, taken first (the tutorial's 0.8: 80 % train, 20 % test)
        batch_size: rows per batch; null: each split is one batch (the tutorial's full-batch gradient descent)
        predict_x: the x that ``predict`` predicts: numbers, or lists of one value per feature; null: the test split
        num_samples: draw this many random x instead of the grid; null: the grid
        num_features: features per row (default: one per weight); more than one needs num_samples
        noise_std: standard deviation of the Gaussian noise added to y (0: the exact line)
        val_split: fraction of the rows to validate on, taken after the training rows; 0: validate on the test split
        split: ``sequential`` (rows in order, as the tutorial) or ``random`` (shuffled once by ``seed``, then split)
        shuffle: shuffle the training rows every epoch (seeded by ``seed`` and the epoch) when there are several batches
        seed: seeds the data alone (random x, noise, random split, shuffle), never the model's initialisation
    """

    def __init__(
        self,
        weight: Float32 | list[Float32] = 0.7,
        bias: Float32 = 0.3,
        start: Float32 = 0.0,
        end: Float32 = 1.0,
        step: PositiveFloat32 = 0.02,
        train_split: OpenUnitInterval = 0.8,
        batch_size: PositiveInt | None = None,
        predict_x: list | None = None,
        num_samples: PositiveInt | None = None,
        num_features: PositiveInt | None = None,
        noise_std: NonNegativeFloat32 = 0.0,
        val_split: ClosedUnitInterval = 0.0,
        split: Literal["sequential", "random"] = "sequential",
        shuffle: bool = True,
        seed: Seed = 0,
    ) -> None:
        super().__init__(train_split, val_split, split, batch_size, shuffle, seed)
        self.save_hyperparameters(logger=False)
        weights = weight if isinstance(weight, list) else [weight]
        require(len(weights) > 0, "data.weight must be a number or a non-empty list of numbers")
        require(end > start, f"data.end must be greater than data.start, got start={start}, end={end}")
        num_features = len(weights) if num_features is None else num_features
        require(
            len(weights) in (1, num_features),
            f"data.weight has {len(weights)} values but data.num_features is {num_features}; give one weight per "
            f"feature or a single number",
        )
        require(
            num_samples is not None or num_features == 1,
            "several features need random x: set data.num_samples (the arange grid has one feature)",
        )
        rows = math.ceil((end - start) / step) if num_samples is None else num_samples
        require(rows <= MAX_ROWS, f"the data would have {rows:,} rows, more than {MAX_ROWS:,}; use fewer rows")
        self.check_split_sizes(rows)
        self._weight_values = [float(w) for w in weights]  # python floats: the tutorial's exact arithmetic
        self.weight = torch.tensor(weights * num_features if len(weights) == 1 else weights)
        self.bias = float(bias)
        self.predict_x = None if predict_x is None else self._predict_tensor(predict_x, num_features)
        self._num_features = num_features

    @property
    def num_features(self) -> int:
        return self._num_features

    def true_parameters(self) -> tuple[Tensor, Tensor]:
        return self.weight, torch.tensor([self.bias])

    def line(self, x: Tensor) -> Tensor:
        """The noise-free truth at ``x``; one feature uses the tutorial's own arithmetic (weight * X + bias)."""
        if self.num_features == 1:
            return self._weight_values[0] * x + self.bias
        return x @ self.weight.unsqueeze(1) + self.bias

    def build_rows(self) -> tuple[Tensor, Tensor]:
        hp = self.hparams
        generator = torch.Generator().manual_seed(hp["seed"])
        if hp["num_samples"] is None:
            x = torch.arange(hp["start"], hp["end"], hp["step"]).unsqueeze(dim=1)
        else:
            x = torch.rand(hp["num_samples"], self.num_features, generator=generator)
            x.mul_(hp["end"] - hp["start"]).add_(hp["start"])
        y = self.line(x)
        if hp["noise_std"]:
            y.add_(torch.randn(y.shape, generator=generator), alpha=hp["noise_std"])
        return x, y

    def build_predict_rows(self) -> tuple[Tensor, ...]:
        if self.predict_x is None:
            return super().build_predict_rows()
        return self.predict_x, self.line(self.predict_x)

    @staticmethod
    def _predict_tensor(predict_x: list, num_features: int) -> Tensor:
        """``predict_x`` as a (rows, num_features) float32 tensor. Checked here, once: jsonargparse checks a list of a
        checked type element by element, copying the list each time, which took minutes for 5,000 values."""
        require(len(predict_x) > 0, "data.predict_x is empty; give at least one x, e.g. --data.predict_x '[0.5, 2.0]'")
        rows = [row if isinstance(row, list) else [row] for row in predict_x]
        for i, row in enumerate(rows):
            require(
                len(row) == num_features,
                f"data.predict_x[{i}] has {len(row)} values but the data have {num_features} features",
            )
            for value in row:
                require(
                    isinstance(value, (int, float)) and not isinstance(value, bool) and abs(value) <= FLOAT32_MAX,
                    f"data.predict_x[{i}] holds {value!r}: give finite numbers a float32 holds (|x| <= 3.4e38)",
                )  # NaN fails the comparison
        return torch.tensor(rows, dtype=torch.float32)


__all__ = ["RegressionDataModule", "SyntheticRegressionData", "attached_datamodule"]

"""Logging: TensorBoard, written in batches, with one event per step, grouped tags and a real HPARAMS entry."""

from __future__ import annotations

import re
import time
from collections.abc import Iterable, Mapping, Sequence
from enum import Enum
from typing import Any

from lightning.pytorch.loggers import TensorBoardLogger as _TensorBoardLogger
from lightning.pytorch.utilities import rank_zero_only
from tensorboard.compat.proto.summary_pb2 import Summary
from tensorboard.plugins.hparams import api_pb2, metadata, plugin_data_pb2
from torch import Tensor

from lit_linreg.errors import require

# How the keys the task and the callbacks log become TensorBoard tags (see tensorboard_tag). TIME SERIES orders its
# groups (a tag's part before the first "/") by name, upper case first, and opens the first two: the losses, then the
# learned parameters beside their true values.
LOSS_TAGS = {"train_loss": "Loss/train", "val_loss": "Loss/val"}
ERROR_TAGS = {"weight_abs_error": "abs_error/weight", "bias_abs_error": "abs_error/bias"}
PARAMETER_KEY = re.compile(r"(weight|weight_\d+|bias)(_true)?")
METRIC_KEY = re.compile(r"(train|val|test)_(mae|mse|r2)|test_loss")  # a test run's loss: one point, HPARAMS shows it

# The metric columns of HPARAMS, in order (it ticks the first five): each run's last value of the key's tag.
HPARAMS_METRICS = (
    "hp_metric",
    "train_loss",
    "val_loss",
    "test_loss",
    "baseline/lad_train_mae",
    "baseline/lad_test_mae",
    "baseline/ols_train_mae",
    "baseline/ols_test_mae",
    "train_mse",
    "val_mse",
    "test_mse",
    "train_r2",
    "val_r2",
    "test_r2",
    "weight_abs_error",
    "bias_abs_error",
)
SESSION_STATUS = {"success": api_pb2.STATUS_SUCCESS, "failed": api_pb2.STATUS_FAILURE}


def tensorboard_tag(key: str) -> str:
    """The TensorBoard tag of a logged key; keys the table does not name keep their name (``epoch``, ``hp_metric``).

    ============================================  ==============================================
    key                                           tag
    ============================================  ==============================================
    ``train_loss``, ``val_loss``                  ``Loss/train``, ``Loss/val``
    ``weight`` (``weight_<i>``), ``bias``         ``Parameters/weight``, ``Parameters/bias``
    ``weight_true``, ``bias_true``                ``Parameters/weight_true``, ``Parameters/bias_true``
    ``weight_abs_error``, ``bias_abs_error``      ``abs_error/weight``, ``abs_error/bias``
    ``{train,val,test}_{mae,mse,r2}``             ``metrics/<key>``
    ``test_loss`` (one point per test run)        ``metrics/test_loss``
    ============================================  ==============================================
    """
    if key in LOSS_TAGS:
        return LOSS_TAGS[key]
    if key in ERROR_TAGS:
        return ERROR_TAGS[key]
    if PARAMETER_KEY.fullmatch(key):
        return f"Parameters/{key}"
    if METRIC_KEY.fullmatch(key):
        return f"metrics/{key}"
    return key


def hparam_value(value: Any) -> bool | float | str:
    """A setting as HPARAMS holds it: booleans, numbers and strings (an enum's value) as they are, anything else
    (None, lists) as text."""
    if isinstance(value, Enum):
        value = value.value
    if isinstance(value, bool):
        return value
    if isinstance(value, str):
        return str.__str__(value)
    if isinstance(value, (int, float)):
        return float(value)
    return str(value)


class TensorBoardLogger(_TensorBoardLogger):
    """Lightning's TensorBoardLogger, cheap enough for hundreds of tiny epochs, and laid out for a person to read.

    - Tags: the loss curves come first in TIME SERIES, then the learned parameters beside their true values; the
      logged keys keep their names everywhere else (callbacks, the checkpoint monitor). :func:`tensorboard_tag`
      has the table.
    - HPARAMS: each run (fit, validate, test or predict) becomes a session when it ends, with the settings given to
      :meth:`log_session_hparams` (the CLI gives its plain settings; without them: the hyperparameters Lightning
      logs, which ``hparams.yaml`` keeps in either case) and the metric columns of ``HPARAMS_METRICS``, among them
      ``hp_metric``: the run's last ``val_loss`` (Lightning writes a placeholder -1 at the start; here none).
    - All scalars of a step go into one event: TensorBoard checksums every event in pure Python, so a dozen events
      per epoch cost more than the tutorial's whole training step.
    - Events are kept in memory and written every ``write_every_s`` seconds (and when the run ends or Lightning
      saves the logger), with training paused: written one by one, TensorBoard's writer thread and the training
      loop hand the interpreter back and forth at every event, which measured 1 ms per epoch here. TensorBoard
      itself flushes its files only every ``flush_secs`` (120 s), so this adds no delay you could see.
    """

    def __init__(
        self,
        save_dir: str,
        name: str | None = "lightning_logs",
        version: int | str | None = None,
        write_every_s: float = 10.0,
        **kwargs: Any,
    ) -> None:
        require(not kwargs.get("prefix"), "lit-linreg's TensorBoardLogger takes no prefix; name the run instead")
        kwargs["default_hp_metric"] = False
        super().__init__(save_dir, name=name, version=version, **kwargs)
        self.write_every_s = write_every_s
        self._pending: list[tuple[Summary, int | None]] = []
        self._next_write = time.monotonic() + write_every_s
        self._final_val_loss: float | None = None
        self._last_step = 0
        self._tags: dict[str, str] = {}
        self.session_hparams: dict[str, bool | float | str] | None = None
        self.session_headline: tuple[str, ...] = ()
        self.session_names: tuple[str, ...] = ()
        self.session_written = False

    @rank_zero_only
    def log_metrics(self, metrics: Mapping[str, float | Tensor], step: int | None = None) -> None:
        values = {k: v.item() if isinstance(v, Tensor) else v for k, v in metrics.items()}
        if any(isinstance(v, dict) for v in values.values()):
            return super().log_metrics({self.tag(k): v for k, v in values.items()}, step)
        summary = Summary(value=[Summary.Value(tag=self.tag(k), simple_value=float(v)) for k, v in values.items()])
        self._pending.append((summary, step))
        self._last_step = step if step is not None else self._last_step
        if "val_loss" in values:
            self._final_val_loss = float(values["val_loss"])
        if time.monotonic() >= self._next_write:
            self.write_pending()

    def tag(self, key: str) -> str:
        """:func:`tensorboard_tag`, remembered per key (it runs for every scalar of every epoch)."""
        tag = self._tags.get(key)
        if tag is None:
            tag = self._tags[key] = tensorboard_tag(key)
        return tag

    def log_session_hparams(
        self, hparams: Mapping[str, Any], headline: Sequence[str] = (), names: Iterable[str] = ()
    ) -> None:
        """The settings HPARAMS shows for this run, written when it ends (in place of Lightning's hyperparameters).

        Args:
            hparams: plain setting names and values (None and lists are shown as text)
            headline: the settings ticked in HPARAMS (it shows five at first)
            names: settings other runs may have: columns every run declares, whichever run's TensorBoard reads
        """
        self.session_hparams = {name: hparam_value(value) for name, value in hparams.items()}
        self.session_headline = tuple(headline)
        self.session_names = tuple(names)

    def write_session(self, status: str) -> None:
        """Write this run's HPARAMS session: the experiment (its columns), the session's settings and its end."""
        if self.session_hparams is not None:
            hparams, headline = self.session_hparams, self.session_headline
        else:
            hparams = {k: hparam_value(v) for k, v in self.hparams.items() if not str(k).startswith("_")}
            headline = tuple(name for name in ("variant", "lr", "batch_size") if name in hparams)
        if not hparams:
            return
        kinds = {bool: api_pb2.DATA_TYPE_BOOL, float: api_pb2.DATA_TYPE_FLOAT64, str: api_pb2.DATA_TYPE_STRING}
        infos = [
            # TensorBoard orders the columns by `differs` (set on the headline settings), then by name.
            api_pb2.HParamInfo(
                name=name,
                type=kinds[type(hparams[name])] if name in hparams else api_pb2.DATA_TYPE_UNSET,
                differs=name in headline,
            )
            for name in dict.fromkeys([*headline, *hparams, *self.session_names])
        ]
        metrics = [
            api_pb2.MetricInfo(name=api_pb2.MetricName(tag=tensorboard_tag(key)), display_name=key)
            for key in HPARAMS_METRICS
        ]
        start = plugin_data_pb2.SessionStartInfo(start_time_secs=time.time())
        for name, value in hparams.items():
            if isinstance(value, bool):
                start.hparams[name].bool_value = value
            elif isinstance(value, float):
                start.hparams[name].number_value = value
            else:
                start.hparams[name].string_value = value
        end = plugin_data_pb2.SessionEndInfo(
            status=SESSION_STATUS.get(status, api_pb2.STATUS_UNKNOWN), end_time_secs=time.time()
        )
        parts = [
            (
                metadata.EXPERIMENT_TAG,
                plugin_data_pb2.HParamsPluginData(
                    experiment=api_pb2.Experiment(hparam_infos=infos, metric_infos=metrics)
                ),
            ),
            (metadata.SESSION_START_INFO_TAG, plugin_data_pb2.HParamsPluginData(session_start_info=start)),
            (metadata.SESSION_END_INFO_TAG, plugin_data_pb2.HParamsPluginData(session_end_info=end)),
        ]
        for tag, data in parts:
            value = Summary.Value(tag=tag, metadata=metadata.create_summary_metadata(data), tensor=metadata.NULL_TENSOR)
            self._pending.append((Summary(value=[value]), self._last_step))

    def write_pending(self) -> None:
        """Write the events held in memory now."""
        if self._pending:
            writer = self.experiment.file_writer  # SummaryWriter's public FileWriter: one event for many scalars
            for summary, step in self._pending:
                writer.add_summary(summary, step)
            self.experiment.flush()  # let the writer thread finish now rather than compete with training
            self._pending = []
        self._next_write = time.monotonic() + self.write_every_s

    @rank_zero_only
    def save(self) -> None:
        """Lightning asks after every logging step; written every ``write_every_s`` seconds and at the end instead
        (each write waits for TensorBoard's writer thread: four times an epoch, that cost more than the epoch)."""
        if time.monotonic() >= self._next_write:
            self.write_pending()
            super().save()

    @rank_zero_only
    def finalize(self, status: str) -> None:
        """At the end of each run: ``hp_metric`` and the HPARAMS session (once per logger), then everything held."""
        if not self.session_written:
            if status == "success" and self._final_val_loss is not None:
                self.log_metrics({"hp_metric": self._final_val_loss}, step=self._last_step)
            self.write_session(status)
            self.session_written = True
        self.write_pending()
        super().save()
        super().finalize(status)

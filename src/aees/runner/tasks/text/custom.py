"""``aees train text``: any ``AutoModelForSequenceClassification`` checkpoint on your own text
data (docs/protocols.md §4.7).

The flags say what :mod:`.sst2` and :mod:`.agnews` hard-code; the implementation is theirs
(:class:`~aees.runner.tasks.text.task.TextClassificationTask`):

* data: ``--data-dir`` (a ``save_to_disk`` dataset, or a folder of ``train`` / ``validation`` /
  ``test`` files in CSV, JSON Lines or Parquet, read offline with the ``datasets`` packaged
  builders) or ``--dataset HUB_ID[:CONFIG]``; ``--text-column``, optional
  ``--text-pair-column``, ``--label-column``;
* labels: strings map to ids in sorted order, integers stay (a ``ClassLabel``'s names are kept);
  the class names are recorded in the result (``label_names``);
* splits: the data's own validation / test splits, otherwise a seeded training holdout
  (``--val-split N``, default 10 %, split seed 42 as AG News);
* model: ``--model-name`` (a local directory or a Hub id) with a head of the data's class count,
  re-initialised when the checkpoint's differs (the log says so);
* label noise: AG News's symmetric protocol with the data's class count.

The result names what was used: ``dataset_name`` = the Hub id (``HUB_ID[:CONFIG]``) or the data
directory's name, ``model_name`` = ``--model-name`` as given (a Hub id or the checkpoint's path;
``checkpoint_name`` in the config is the directory's name alone). A run without ``--data-dir`` or
``--dataset`` (a preset not yet pointed at data) stops with one line before anything loads.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, ClassVar

import torch

from aees.runner.config import ConfigError, RunConfig, UserError, flag_of
from aees.runner.tasks import TaskSetup
from aees.runner.tasks.text.data import TextData
from aees.runner.tasks.text.model import DEFAULT_MODEL_NAME
from aees.runner.tasks.text.task import TextClassificationTask

__all__ = ["TextTask", "model_display_name"]

_COLUMNS = ("text_column", "text_pair_column", "label_column")


def model_display_name(name: str) -> str:
    """A checkpoint's name in results: the directory's name, or the Hub id as given."""
    path = Path(name)
    if os.path.isdir(name):
        return path.resolve().name or name
    return name


class TextTask(TextClassificationTask):
    """Any sequence classifier on your own text data (docs/protocols.md §4.7)."""

    name: ClassVar[str] = "text"
    dataset_name = "your text data"  # a run names its data in TaskSetup.dataset_name
    display_name: ClassVar[str] = "text"
    model_name = DEFAULT_MODEL_NAME
    num_labels: ClassVar[int | None] = None
    text_column: ClassVar[str] = "text"
    raw_splits: ClassVar[tuple[str, ...] | None] = None
    default_tokenized_dir: ClassVar[str] = "data/text_tokenized"
    ignore_mismatched_sizes: ClassVar[bool] = True
    has_label_noise_flags: ClassVar[bool] = True

    def validate(self, config: RunConfig) -> None:
        super().validate(config)
        dataset = self._opt(config, "dataset")
        if config.data_dir is not None and dataset is not None:
            raise ConfigError("dataset", "pass one of --data-dir and --dataset, not both")
        if dataset is not None:
            hub, _, conf = str(dataset).partition(":")
            if not hub.strip() or (":" in dataset and not conf.strip()):
                raise ConfigError(
                    "dataset", f"--dataset must be HUB_ID or HUB_ID:CONFIG, got {dataset!r}"
                )
        for name in ("text_column", "label_column", "text_pair_column"):
            value = self._opt(config, name)
            if value is not None and not str(value).strip():
                raise ConfigError(name, f"{flag_of(name)} must not be empty")
        columns = [self._opt(config, name) for name in _COLUMNS]
        named = [c for c in columns if c is not None]
        if len(set(named)) != len(named):
            raise ConfigError(
                "text_column",
                "--text-column, --text-pair-column and --label-column must name different "
                f"columns, got {', '.join(named)}",
            )

    def data_spec(self, config: RunConfig) -> TextData:
        dataset = self._opt(config, "dataset")
        hub, conf = (None, None)
        if dataset and not config.data_dir:
            hub, _, rest = str(dataset).partition(":")
            conf = rest or None
        return TextData(
            text_column=str(self._opt(config, "text_column", "text")),
            label_column=str(self._opt(config, "label_column", "label")),
            text_pair_column=self._opt(config, "text_pair_column"),
            hub_path=hub,
            hub_config=conf,
        )

    def display(self, config: RunConfig) -> str:
        if config.data_dir:
            return Path(config.data_dir).resolve().name or str(config.data_dir)
        return str(self._opt(config, "dataset") or "text")

    def source_flags(self, config: RunConfig) -> list[str]:
        spec = self.data_spec(config)
        flags = super().source_flags(config)
        if not config.data_dir and self._opt(config, "dataset"):
            flags += ["--dataset", str(self._opt(config, "dataset"))]
        flags += ["--text-column", spec.text_column, "--label-column", spec.label_column]
        if spec.text_pair_column:
            flags += ["--text-pair-column", spec.text_pair_column]
        return flags

    def _require_data(self, config: RunConfig) -> None:
        if not config.data_dir and not self._opt(config, "dataset"):
            raise UserError(
                "no data: pass --data-dir DIR (a save_to_disk dataset, or train / validation / "
                "test CSV, JSON Lines or Parquet files) or --dataset HUB_ID[:CONFIG]"
            )

    def pretokenize(self, config: RunConfig) -> None:
        self._require_data(config)
        super().pretokenize(config)

    def build(self, config: RunConfig, device: torch.device) -> TaskSetup:
        self._require_data(config)
        setup = super().build(config, device)
        setup.dataset_name = self.display(config)  # RunResult.dataset_name: the data used
        return setup

    def extra_info(self, config: RunConfig, label_names: list[str] | None) -> dict[str, Any]:
        spec = self.data_spec(config)
        return {
            "checkpoint_name": model_display_name(self._model(config)),
            "label_names": list(label_names or ()),
            "num_labels": len(label_names or ()),
            "text_columns": list(spec.columns),
            "label_column": spec.label_column,
        }

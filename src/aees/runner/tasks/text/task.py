"""The one text-classification implementation: ``sst2``, ``agnews`` and ``text``
(docs/protocols.md §4.3-§4.5 and §4.7): the checks across options (``validate``) and ``build``;
the options themselves are declared in :mod:`.options`.

:mod:`.sst2` and :mod:`.agnews` only set the class attributes of :class:`TextClassificationTask`
(their thesis configurations); :mod:`.custom` (the ``text`` task) takes the same things from flags
(:meth:`TextClassificationTask.data_spec`): the columns, the source, the splits read and the class
count (from the data, with string labels mapped to ids in sorted order). The concerns live beside
it: :mod:`.data` (raw reading, columns, labels, seeded splits), :mod:`.cache` (the tokenized
cache), :mod:`.model` (model and tokenizer loading), :mod:`.hub` (offline rules, the token),
:mod:`.batches` (rows, padding, loss). Splits follow one rule
(:meth:`TextClassificationTask.build`).

**Splits** (the held-out split is drawn at load time, so one cache serves every ``--val-split``;
the train-split order is that of ``Dataset.train_test_split(seed=42)``, as in the thesis, so the
AG News label noise hits the same examples as the thesis runner's):

* SST-2, default: train = GLUE train (67,349), validation = GLUE validation (872), no test.
  With ``--val-split N``: N training examples (``train_test_split(test_size=N, seed=42)``) are the
  validation set and the GLUE validation split becomes ``test_data`` (evaluated at the final and
  best-validation epochs).
* AG News, default: validation = 10 % of the official train split
  (``train_test_split(test_size=0.1, seed=42)``: 108,000 / 12,000); with ``--val-split N``, N
  examples instead. The official test split (7,600) is always ``test_data``: the validation set is
  a training holdout here, so the test accuracy at the best-validation epoch is a clean estimate
  (the thesis tokenized it but never evaluated it).

**Offline.** ``--local-files-only`` applies to the tokenizer, the model *and* the dataset (the Hub
dataset is then read from ``--cache-dir`` only; docs/protocols.md §4.5). The datasets library is not
touched at all when the tokenized cache is valid. Whatever is missing is reported as one line
naming the exact command that fetches it (:class:`~aees.runner.config.UserError`).
``--hf-token`` (default: ``$HF_TOKEN``) is passed as ``token=`` and never stored (docs/protocols.md
§4.5): it travels in ``RunConfig.hf_token`` (never written) and, per run, in a
:class:`~aees.runner.tasks.text.hub.HubAccess` passed down the loading calls; the registered task
keeps nothing between ``validate`` and ``build``.
"""

from __future__ import annotations

import os
import shlex
from pathlib import Path
from typing import Any, ClassVar

import torch

from aees.runner.config import (
    ConfigError,
    RunConfig,
    UserError,
    flag_of,
    writable_location_problem,
)
from aees.runner.label_noise import LabelCorruption, agnews_label_noise
from aees.runner.tasks import TaskSetup
from aees.runner.tasks.text.batches import (
    PadCollate,
    TokenizedTextDataset,
    logits_cross_entropy,
    logits_of,
)
from aees.runner.tasks.text.cache import TokenCaching
from aees.runner.tasks.text.data import SPLIT_SEED, RawReading, TextData, split_indices
from aees.runner.tasks.text.hub import HubAccess, hf_quiet
from aees.runner.tasks.text.model import DEFAULT_MODEL_NAME, ModelLoading, model_dir_problem

__all__ = ["TextClassificationTask"]


class TextClassificationTask(ModelLoading, RawReading, TokenCaching):
    """Fine-tuning a sequence classifier on a text-classification dataset.

    The class attributes are the thesis tasks' configurations (:mod:`.sst2`, :mod:`.agnews`);
    :class:`~aees.runner.tasks.text.custom.TextTask` takes the same things from flags
    (:meth:`data_spec`). Everything else is this one implementation.
    """

    name: ClassVar[str]
    dataset_name: str
    display_name: ClassVar[str]  # "SST-2": used in messages
    model_name: str = DEFAULT_MODEL_NAME
    num_labels: ClassVar[int | None]
    text_column: ClassVar[str]
    hub_path: ClassVar[str | None] = None
    hub_config: ClassVar[str | None] = None
    #: Raw splits read and cached: ``(train, other)``; ``other`` is SST-2's validation split or
    #: AG News's test split (validation, else a training holdout; docs/protocols.md §4.3).
    raw_splits: ClassVar[tuple[str, ...] | None]
    default_holdout_fraction: ClassVar[float] = 0.1
    default_tokenized_dir: ClassVar[str]
    ignore_mismatched_sizes: ClassVar[bool] = False
    has_label_noise_flags: ClassVar[bool] = False

    # -- checks (each option's own kind and bound: its OptionSpec, text/options.py)
    def validate(self, config: RunConfig) -> None:
        """The checks of a text run that involve the file system or several values
        (:class:`ConfigError` naming the flag)."""
        options = config.task_options
        if not str(options.get("tokenized_dataset_dir") or "").strip():
            raise ConfigError("tokenized_dataset_dir", "--tokenized-dataset-dir must not be empty")
        if options.get("cache_dir") is None:
            # the default resolves where the run starts, and the result records the path used
            options["cache_dir"] = str(Path.cwd() / ".hf_cache")  # type: ignore[index]
        elif not str(options["cache_dir"]).strip():
            raise ConfigError("cache_dir", "--cache-dir must not be empty")
        for name in ("cache_dir", "tokenized_dataset_dir"):
            target = Path(options[name])
            if target.exists() and not target.is_dir():
                raise ConfigError(
                    name, f"{flag_of(name)} {options[name]!r} exists and is not a directory"
                )
        if options.get("pretokenize_only"):
            where = options["tokenized_dataset_dir"]
            why = writable_location_problem(where, is_dir=True)
            if why is not None:
                raise ConfigError(
                    "tokenized_dataset_dir", f"--tokenized-dataset-dir {where!r}: {why}"
                )
        self._validate_sources(config)

    def _validate_sources(self, config: RunConfig) -> None:
        if config.data_dir is not None and not Path(config.data_dir).is_dir():
            raise ConfigError("data_dir", f"--data-dir {config.data_dir!r} is not a directory")
        if config.model_name is not None and not str(config.model_name).strip():
            raise ConfigError("model_name", "--model-name must not be empty")
        why = model_dir_problem(str(config.model_name or self.model_name))
        if why is not None:
            raise ConfigError("model_name", f"--model-name {config.model_name}: {why}")
        rate = config.label_noise_rate
        if self.has_label_noise_flags and not 0.0 <= rate < 1.0:
            raise ConfigError(
                "label_noise_rate", f"--label-noise-rate must be in [0, 1), got {rate}"
            )
        if config.resume and config.task_options.get("pretokenize_only"):
            raise ConfigError("resume", "--resume cannot be combined with --pretokenize-only")

    # -- what this run reads (the generic task overrides these from its flags)
    def data_spec(self, config: RunConfig) -> TextData:
        """The columns, source and splits of this run's data."""
        return TextData(
            text_column=self.text_column,
            hub_path=self.hub_path,
            hub_config=self.hub_config,
            splits=self.raw_splits,
            num_labels=self.num_labels,
        )

    def display(self, config: RunConfig) -> str:
        """The data's name in messages ("SST-2")."""
        return self.display_name

    def source_flags(self, config: RunConfig) -> list[str]:
        """The flags naming this run's raw data (for the commands printed in errors)."""
        return ["--data-dir", config.data_dir] if config.data_dir else []

    # -- helpers on the run configuration
    def _opt(self, config: RunConfig, key: str, default: Any = None) -> Any:
        return config.task_options.get(key, default)

    def _model(self, config: RunConfig) -> str:
        return config.model_name or self.model_name

    def _cache_dir(self, config: RunConfig) -> str:
        return str(self._opt(config, "cache_dir") or Path.cwd() / ".hf_cache")

    def hub_access(self, config: RunConfig) -> HubAccess:
        """How this run reaches the Hub (made per run: the token and the reachability probe's
        answer live on it, never on the task). The token: ``--hf-token``, else ``$HF_TOKEN``."""
        token = config.hf_token or os.environ.get("HF_TOKEN") or None  # never written
        return HubAccess(
            cache_dir=self._cache_dir(config),
            local_files_only=bool(self._opt(config, "local_files_only", False)),
            token=token,
            quiet=config.quiet,
        )

    def pretokenize_command(self, config: RunConfig) -> str:
        """The exact command that (online) fetches tokenizer + dataset and writes the cache."""
        parts = [
            "aees",
            "train",
            self.name,
            "--pretokenize-only",
            "--cache-dir",
            self._cache_dir(config),
            "--tokenized-dataset-dir",
            str(self._opt(config, "tokenized_dataset_dir", self.default_tokenized_dir)),
            "--max-length",
            str(self._opt(config, "max_length", 128)),
        ]
        if config.model_name:
            parts += ["--model-name", config.model_name]
        parts += self.source_flags(config)
        return shlex.join(parts)

    def _log(self, config: RunConfig, line: str) -> None:
        if not config.quiet:
            print(line, flush=True)

    # -- the interface the CLI and engine call
    def pretokenize(self, config: RunConfig) -> None:
        """``--pretokenize-only``: build (or verify) the tokenized cache and print where it is."""
        hub = self.hub_access(config)
        tokenizer = self.load_tokenizer(config, hub)
        _, path, built, _ = self.tokenized_splits(config, hub, tokenizer)
        note = "" if built else " (already up to date)"
        print(f"Saved tokenized {self.display(config)} dataset to {path}{note}", flush=True)

    def _noise_seed(self, config: RunConfig) -> int:
        return int(config.task_options.get("label_noise_seed", 42))

    def label_noise(
        self, config: RunConfig, labels: list[int], num_labels: int
    ) -> LabelCorruption | None:
        """The AG News protocol (docs/protocols.md §4.4) with ``num_labels`` classes, for a task
        with label-noise flags (None: no noise)."""
        rate = config.label_noise_rate
        if not self.has_label_noise_flags or rate <= 0:
            return None
        seed = self._noise_seed(config)
        corruption = agnews_label_noise(labels, rate, seed, num_classes=num_labels)
        self._log(
            config,
            f"Applied symmetric label noise to {corruption.count} / {len(labels)} "
            f"{self.display(config)} training examples (rate={rate}, seed={seed}).",
        )
        return corruption

    def _load(
        self, config: RunConfig, hub: HubAccess
    ) -> tuple[Any, torch.nn.Module, dict[str, Any], Path, list[str] | None]:
        """The tokenizer, the model (with the data's class count), the tokenized splits, the
        cache path and the class names (None for a task with fixed labels)."""
        spec = self.data_spec(config)
        with hf_quiet(config.quiet):
            tokenizer = self.load_tokenizer(config, hub)
            model = None
            if spec.num_labels is not None:  # first: a bad --max-length fails before tokenizing
                model = self.load_model(config, hub, spec.num_labels)
            else:
                self.check_model_config(config, hub)
            splits, cache_path, built, names = self.tokenized_splits(config, hub, tokenizer)
            if model is None:
                model = self.load_model(config, hub, len(names or ()), names)
        if built:
            self._log(config, f"Saved tokenized {self.display(config)} dataset to {cache_path}")
        return tokenizer, model, splits, cache_path, names

    def build(self, config: RunConfig, device: torch.device) -> TaskSetup:
        spec = self.data_spec(config)
        display = self.display(config)
        tokenizer, model, splits, cache_path, names = self._load(config, self.hub_access(config))
        num_labels = spec.num_labels if spec.num_labels is not None else len(names or ())
        labels = {split: self._labels(table, split, num_labels) for split, table in splits.items()}
        train_table, train_labels = splits["train"], labels["train"]
        n = len(train_labels)

        # docs/protocols.md §4.3-§4.7: the data's validation split unless --val-split (or there
        # is none: a seeded training holdout); the test split, else the displaced validation one.
        if config.val_split is not None or "validation" not in splits:
            held: float | int = (
                config.val_split if config.val_split is not None else self.default_holdout_fraction
            )
            if isinstance(held, int) and held >= n:
                raise UserError(
                    f"--val-split {held} must be smaller than the {n} {display} training examples"
                )
            train_idx, val_idx = split_indices(n, held, SPLIT_SEED)
            val_data = TokenizedTextDataset(
                train_table, [train_labels[i] for i in val_idx], val_idx
            )
            val_desc = f"{len(val_idx)} of train (train_test_split seed 42)"
            test_name = next((s for s in ("test", "validation") if s in splits), None)
        else:
            train_idx = list(range(n))
            val_data = TokenizedTextDataset(splits["validation"], labels["validation"])
            val_desc = "validation"
            test_name = "test" if "test" in splits else None
        test_data = (
            TokenizedTextDataset(splits[test_name], labels[test_name]) if test_name else None
        )

        clean = [train_labels[i] for i in train_idx]
        corruption = self.label_noise(config, clean, num_labels)
        noisy = corruption.apply(clean) if corruption is not None else clean
        train_data = TokenizedTextDataset(train_table, noisy, train_idx)
        model = model.to(device)

        info: dict[str, Any] = {
            "split": {
                "seed": SPLIT_SEED,
                "train": len(train_data),
                "val": len(val_data),
                "test": len(test_data) if test_data is not None else 0,
                "validation_source": val_desc,
                "test_source": test_name,
            },
            "max_length": int(self._opt(config, "max_length", 128)),
            "tokenized_dataset_path": str(cache_path),
            "label_noise_seed": 42,
        }
        if self.has_label_noise_flags:
            info["label_noise_seed"] = self._noise_seed(config)
        info.update(self.extra_info(config, names))
        enabled = corruption is not None and corruption.enabled
        return TaskSetup(
            model=model,
            train_data=train_data,
            val_data=val_data,
            test_data=test_data,
            train_eval_data=train_data if enabled else None,
            loss_fn=logits_cross_entropy,
            logits_fn=logits_of,
            collate_fn=PadCollate(tokenizer),
            corruption=corruption if enabled else None,
            clean_train_targets=clean if enabled else None,
            info=info,
        )

    def extra_info(self, config: RunConfig, label_names: list[str] | None) -> dict[str, Any]:
        """Task-specific entries of the result config (merged last)."""
        return {}

    def _labels(self, table: Any, split: str, num_labels: int) -> list[int]:
        labels = [int(v) for v in table.with_format(None)["label"]]
        bad = [v for v in labels if not 0 <= v < num_labels]
        if bad:
            raise UserError(
                f"{self.display_name} split {split!r} has labels outside 0..{num_labels - 1} "
                f"(e.g. {bad[0]}); an unlabelled split cannot be used"
            )
        return labels

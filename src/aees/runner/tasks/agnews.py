"""``aees train agnews``: DistilBERT on AG News (docs/protocols.md §4.4).

Everything lives in :mod:`aees.runner.tasks.nlp`; this module sets the AG News specifics:
``fancyzhx/ag_news`` (column ``text``, 4 labels; the model head is re-initialised with
``ignore_mismatched_sizes=True``), validation = 10 % of the official training split
(``train_test_split(test_size=0.1, seed=42)``: 108,000 / 12,000; ``--val-split N`` holds out N
instead), the official test split (7,600) as the test set, tokenized cache under
``data/agnews_tokenized``.

Label noise (``--label-noise-rate`` in [0, 1), ``--label-noise-seed``, default 42): the thesis
protocol, :func:`aees.runner.label_noise.agnews_label_noise` -- ``random.Random(noise_seed)``
samples ``round(rate * N)`` training examples and relabels them, in sorted index order, uniformly
to one of the 3 other classes. The noise seed is independent of ``--seed``, so every training seed
sees the same corrupted set (the thesis policy for AG News, recorded as ``label_noise_seed``).
The validation and test sets stay clean. The engine reports the label-noise diagnostics.
"""

from __future__ import annotations

from typing import Any, ClassVar

from aees.runner.config import RunConfig
from aees.runner.label_noise import AGNEWS_NUM_CLASSES, LabelCorruption, agnews_label_noise
from aees.runner.tasks.nlp import TextClassificationTask

__all__ = ["AGNewsTask"]


class AGNewsTask(TextClassificationTask):
    """DistilBERT on AG News (4-class topic), optional symmetric label noise (docs/protocols.md
    §4.4)."""

    name: ClassVar[str] = "agnews"
    dataset_name: ClassVar[str] = "AG News"
    display_name: ClassVar[str] = "AG News"
    num_labels: ClassVar[int] = AGNEWS_NUM_CLASSES
    text_column: ClassVar[str] = "text"
    hub_path: ClassVar[str] = "fancyzhx/ag_news"
    hub_config: ClassVar[str | None] = None
    raw_splits: ClassVar[tuple[str, str]] = ("train", "test")
    holdout_validation: ClassVar[bool] = True
    default_holdout_fraction: ClassVar[float] = 0.1
    default_tokenized_dir: ClassVar[str] = "data/agnews_tokenized"
    ignore_mismatched_sizes: ClassVar[bool] = True
    has_label_noise_flags: ClassVar[bool] = True
    option_names: ClassVar[tuple[str, ...]] = (
        *TextClassificationTask.option_names,
        "label_noise_seed",
    )

    def _noise_seed(self, config: RunConfig) -> int:
        return int(config.task_options.get("label_noise_seed", 42))

    def label_noise(self, config: RunConfig, labels: list[int]) -> LabelCorruption | None:
        rate = config.label_noise_rate
        if rate <= 0:
            return None
        seed = self._noise_seed(config)
        corruption = agnews_label_noise(labels, rate, seed, num_classes=self.num_labels)
        self._log(
            config,
            f"Applied symmetric label noise to {corruption.count} / {len(labels)} AG News "
            f"training examples (rate={rate}, seed={seed}).",
        )
        return corruption

    def extra_info(self, config: RunConfig) -> dict[str, Any]:
        return {"label_noise_seed": self._noise_seed(config)}

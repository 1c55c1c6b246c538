"""``aees train agnews``: DistilBERT on AG News (docs/protocols.md §4.4).

A configuration of the one text-classification implementation (:mod:`aees.runner.tasks.text.task`,
the ``text`` task's code): ``fancyzhx/ag_news`` (column ``text``, 4 labels; the model head is
re-initialised with ``ignore_mismatched_sizes=True``), no validation split, so validation = 10 %
of the official training split (``train_test_split(test_size=0.1, seed=42)``: 108,000 / 12,000;
``--val-split N`` holds out N instead), the official test split (7,600) as the test set,
tokenized cache under ``data/agnews_tokenized``.

Label noise (``--label-noise-rate`` in [0, 1), ``--label-noise-seed``, default 42): the thesis
protocol, :func:`aees.runner.label_noise.agnews_label_noise` -- ``random.Random(noise_seed)``
samples ``round(rate * N)`` training examples and relabels them, in sorted index order, uniformly
to one of the 3 other classes. The noise seed is independent of ``--seed``, so every training seed
sees the same corrupted set (the thesis policy for AG News, recorded as ``label_noise_seed``).
The validation and test sets stay clean. The engine reports the label-noise diagnostics.
"""

from __future__ import annotations

from typing import ClassVar

from aees.runner.label_noise import AGNEWS_NUM_CLASSES
from aees.runner.tasks.text.task import TextClassificationTask

__all__ = ["AGNewsTask"]


class AGNewsTask(TextClassificationTask):
    """DistilBERT on AG News (4-class topic), optional symmetric label noise (docs/protocols.md
    §4.4)."""

    name: ClassVar[str] = "agnews"
    dataset_name = "AG News"
    display_name: ClassVar[str] = "AG News"
    num_labels: ClassVar[int | None] = AGNEWS_NUM_CLASSES
    text_column: ClassVar[str] = "text"
    hub_path: ClassVar[str | None] = "fancyzhx/ag_news"
    raw_splits: ClassVar[tuple[str, ...] | None] = ("train", "test")
    default_holdout_fraction: ClassVar[float] = 0.1
    default_tokenized_dir: ClassVar[str] = "data/agnews_tokenized"
    ignore_mismatched_sizes: ClassVar[bool] = True
    has_label_noise_flags: ClassVar[bool] = True

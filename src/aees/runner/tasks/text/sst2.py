"""``aees train sst2``: DistilBERT on GLUE SST-2 (docs/protocols.md §4.3).

A configuration of the one text-classification implementation (:mod:`aees.runner.tasks.text.task`,
the ``text`` task's code): ``nyu-mll/glue`` config ``sst2`` (column ``sentence``, 2 labels),
validation = the GLUE validation split (872; with ``--val-split N``: N training examples, and the
GLUE validation split becomes the test set), tokenized cache under ``data/sst2_tokenized``. No
label noise (the result still records ``label_noise_rate`` 0.0 and the thesis's
``label_noise_seed`` 42).
"""

from __future__ import annotations

from typing import ClassVar

from aees.runner.tasks.text.task import TextClassificationTask

__all__ = ["SST2Task"]


class SST2Task(TextClassificationTask):
    """DistilBERT on GLUE SST-2 (binary sentiment): docs/protocols.md §4.3."""

    name: ClassVar[str] = "sst2"
    dataset_name = "GLUE SST-2"
    display_name: ClassVar[str] = "SST-2"
    num_labels: ClassVar[int | None] = 2
    text_column: ClassVar[str] = "sentence"
    hub_path: ClassVar[str | None] = "nyu-mll/glue"
    hub_config: ClassVar[str | None] = "sst2"
    raw_splits: ClassVar[tuple[str, ...] | None] = ("train", "validation")
    default_tokenized_dir: ClassVar[str] = "data/sst2_tokenized"

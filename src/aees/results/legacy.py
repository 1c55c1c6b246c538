"""What a result written before it carried its own report facts is (standard library only).

A run's result ``config`` names its report family (``report_family``: ``"cifar"``, ``"nlp"`` or
``"other"``), the task's label (``task_label``) and the optimizer's label (``optimizer_label``),
written from the task's and the optimizer's registry records (docs/results-schema.md §3).
Reporting reads those keys and keeps no task list of its own. Results written before those keys
existed (the thesis's files and every run before issue 20) lack them; for those, and only for
those, the tables below name the thesis's tasks and optimizers. They are the one place outside the
task registry that names tasks, and they never grow: a new task or optimizer writes its facts
into its results.

The table also gives the thesis tasks' order in reports (CIFAR-100, digits, SST-2, AG News); every
other task comes after them, by name (:func:`task_order`).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

__all__ = [
    "LEGACY_OPTIMIZER_LABELS",
    "LEGACY_TASKS",
    "REPORT_FAMILIES",
    "THESIS_CLEAN_CAPTIONS",
    "optimizer_label",
    "report_family",
    "task_label",
    "task_order",
]

REPORT_FAMILIES = ("cifar", "nlp", "other")
"""The report families a result may name: the CIFAR tables and figures, the NLP ones, and the
generic-task tables (runs grouped by dataset and model)."""

#: The thesis's tasks, in report order: name -> (report family, label).
LEGACY_TASKS: dict[str, tuple[str, str]] = {
    "cifar100": ("cifar", "CIFAR-100"),
    "digits": ("cifar", "Digits"),  # the offline demo task, reported like CIFAR
    "sst2": ("nlp", "SST-2"),
    "agnews": ("nlp", "AG News"),
    "image": ("other", "Image"),
    "text": ("other", "Text"),
}

#: The thesis's optimizers (normalised names) -> label; SGD runs used momentum.
LEGACY_OPTIMIZER_LABELS: dict[str, str] = {
    "adamw": "AdamW",
    "sgd": "SGD+M",
    "adamwschedulefree": "AdamW schedule-free",
    "sgdschedulefree": "SGD schedule-free",
    "prodigy": "Prodigy",
    "dadaptadam": "D-Adapt Adam",
}

#: Report order of the thesis tasks with a family of their own; every other task comes after.
#: The thesis's captions of the clean-label NLP main tables, by task (the report's pinned tables
#: keep them; every other table is captioned from the task's label).
THESIS_CLEAN_CAPTIONS: dict[str, str] = {"sst2": "SST-2", "agnews": "AG News (clean)"}

_ORDER = {
    name: i for i, (name, (family, _)) in enumerate(LEGACY_TASKS.items()) if family != "other"
}
_AFTER = 99


def _text(config: Mapping[str, Any], key: str) -> str | None:
    value = config.get(key)
    return value.strip() if isinstance(value, str) and value.strip() else None


def report_family(config: Mapping[str, Any], task: str) -> str:
    """``config["report_family"]`` when it names a family, else the legacy table's, else
    ``"other"``."""
    family = _text(config, "report_family")
    if family in REPORT_FAMILIES:
        return family
    return LEGACY_TASKS.get(task, ("other", task))[0]


def task_label(config: Mapping[str, Any], task: str) -> str:
    """``config["task_label"]``, else the legacy table's (``cifar100`` -> ``CIFAR-100``), else
    the task as written."""
    return _text(config, "task_label") or LEGACY_TASKS.get(task, ("other", task))[1]


def optimizer_label(config: Mapping[str, Any], optimizer: str) -> str:
    """``config["optimizer_label"]``, else the legacy table's (``sgd`` -> ``SGD+M``), else the
    optimizer as written."""
    return _text(config, "optimizer_label") or LEGACY_OPTIMIZER_LABELS.get(optimizer, optimizer)


def task_order(task: str) -> int:
    """A task's place in reports: CIFAR-100, digits, SST-2, AG News (:data:`LEGACY_TASKS`
    order), then every other task (reports sort those by name)."""
    return _ORDER.get(task, _AFTER)

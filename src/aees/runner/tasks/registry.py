"""The task registry: one frozen :class:`TaskInfo` record per task (docs/protocols.md §2).

The record holds a task's facts, read by the CLI, the engine, the sweep and (through the result's
``config``, :func:`result_labels`) reporting: its names and label, its report family, whether it
runs on the CPU only, its flag style and scheduler unit, its defaults of the shared options and
its own options (:class:`~aees.runner.config.OptionSpec`), and where its implementation lives
(``impl``, ``"module:attribute"``, imported on first use so heavy dependencies load only for the
task that runs). Imports only :mod:`aees.runner.config.options` (no torch), so
:class:`~aees.runner.config.RunConfig` reads a task's defaults from here.

"""

from __future__ import annotations

import importlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from aees.runner.config.options import FLAG_STYLES, OPTIMIZER_INFO, OptionSpec
from aees.runner.tasks.image.options import IMAGE_OPTIONS
from aees.runner.tasks.text.options import NLP_DEFAULTS, text_options

__all__ = [
    "REPORT_FAMILIES",
    "TASKS",
    "TaskInfo",
    "get_task",
    "register_task",
    "result_labels",
    "task_info",
    "task_names",
]

#: ``report_family``: the report's table and figure families (docs/reporting.md).
REPORT_FAMILIES = ("cifar", "nlp", "other")


@dataclass(frozen=True)
class TaskInfo:
    """The facts of one task. ``defaults`` override the shared options' defaults (e.g. digits'
    ``episode_length`` 20); ``options`` are the task's own options, in ``-h`` order, whose values
    a run keeps in ``RunConfig.task_options``."""

    name: str
    label: str
    report_family: str
    impl: str
    dataset_name: str = ""
    model_name: str = ""
    description: str = ""
    cpu_only: bool = False
    flag_style: str = "cifar"
    scheduler_unit: str = "epoch"
    defaults: Mapping[str, Any] = field(default_factory=dict)
    options: tuple[OptionSpec, ...] = ()

    def __post_init__(self) -> None:
        if self.report_family not in REPORT_FAMILIES:
            raise ValueError(f"report_family must be one of {REPORT_FAMILIES}")
        if self.flag_style not in FLAG_STYLES:
            raise ValueError(f"flag_style must be one of {FLAG_STYLES}")
        object.__setattr__(self, "defaults", MappingProxyType(dict(self.defaults)))


TASKS: dict[str, TaskInfo] = {}
_IMPLEMENTATIONS: dict[str, Any] = {}


def register_task(info: TaskInfo, implementation: Any = None) -> None:
    """Register ``info`` (``implementation``: an object to use instead of importing
    ``info.impl``)."""
    TASKS[info.name] = info
    _IMPLEMENTATIONS.pop(info.name, None)
    if implementation is not None:
        _IMPLEMENTATIONS[info.name] = implementation


def task_names() -> list[str]:
    return sorted(TASKS)


def get_task(name: str) -> Any:
    """The implementation of task ``name`` (``KeyError`` listing the known names otherwise)."""
    if name not in TASKS:
        raise KeyError(f"unknown task {name!r}; known tasks: {', '.join(task_names())}")
    if name not in _IMPLEMENTATIONS:
        module_name, _, attr = TASKS[name].impl.partition(":")
        obj = getattr(importlib.import_module(module_name), attr)
        _IMPLEMENTATIONS[name] = obj() if isinstance(obj, type) else obj
    return _IMPLEMENTATIONS[name]


def task_info(name: str) -> TaskInfo:
    """The record of task ``name`` (``KeyError`` listing the known names otherwise)."""
    if name not in TASKS:
        raise KeyError(f"unknown task {name!r}; known tasks: {', '.join(task_names())}")
    return TASKS[name]


def result_labels(config: Any) -> dict[str, str]:
    """The result ``config`` keys reporting reads instead of keeping task lists
    (docs/results-schema.md §3): ``report_family`` and ``task_label`` from the task's record,
    ``optimizer_label`` from the optimizer's (:data:`~aees.runner.config.OPTIMIZER_INFO`)."""
    info = task_info(config.task_name)
    return {
        "report_family": info.report_family,
        "task_label": info.label,
        "optimizer_label": OPTIMIZER_INFO[config.optimizer].label,
    }


for _info in (
    TaskInfo(
        "cifar100",
        "CIFAR-100",
        "cifar",
        "aees.runner.tasks.cifar.task:Cifar100Task",
        dataset_name="CIFAR-100",
        model_name="resnet18",
        description="``aees train cifar100``: CIFAR-100, ResNet-18 (CIFAR stem), thesis flags "
        "and protocols.",
    ),
    TaskInfo(
        "digits",
        "Digits",
        "cifar",
        "aees.runner.tasks.digits:DigitsTask",
        dataset_name="sklearn-digits",
        model_name="digits_cnn",
        description="aees train digits: the embedded, offline default task.",
        cpu_only=True,
        defaults={"epochs": 10, "batch_size": 64, "episode_length": 20},
    ),
    TaskInfo(
        "sst2",
        "SST-2",
        "nlp",
        "aees.runner.tasks.text.sst2:SST2Task",
        dataset_name="GLUE SST-2",
        model_name="distilbert-base-uncased",
        description="DistilBERT on GLUE SST-2 (binary sentiment): docs/protocols.md §4.3.",
        flag_style="nlp",
        scheduler_unit="step",
        defaults=NLP_DEFAULTS,
        options=text_options("SST-2", "data/sst2_tokenized"),
    ),
    TaskInfo(
        "agnews",
        "AG News",
        "nlp",
        "aees.runner.tasks.text.agnews:AGNewsTask",
        dataset_name="AG News",
        model_name="distilbert-base-uncased",
        description="DistilBERT on AG News (4-class topic), optional symmetric label noise "
        "(docs/protocols.md §4.4).",
        flag_style="nlp",
        scheduler_unit="step",
        defaults=NLP_DEFAULTS,
        options=text_options("AG News", "data/agnews_tokenized", label_noise=True),
    ),
    TaskInfo(
        "image",
        "Image",
        "other",
        "aees.runner.tasks.image.task:ImageTask",
        dataset_name="image-folder",
        model_name="resnet18",
        description="``aees train image``: your own image data and a torchvision/timm classifier.",
        options=IMAGE_OPTIONS,
    ),
    TaskInfo(
        "text",
        "Text",
        "other",
        "aees.runner.tasks.text.custom:TextTask",
        dataset_name="your text data",
        model_name="distilbert-base-uncased",
        description="Any sequence classifier on your own text data (docs/protocols.md §4.7).",
        flag_style="nlp",
        scheduler_unit="step",
        defaults=NLP_DEFAULTS,
        options=text_options("text", "data/text_tokenized", data=True, label_noise=True),
    ),
):
    register_task(_info)

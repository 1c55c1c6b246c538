"""The task registry: one frozen :class:`TaskInfo` record per task, and what a task builds.

The record holds a task's facts, read by the CLI, the engine, the sweep and (through the result's
``config``) reporting: its names and label, its report family, whether it runs on the CPU only,
its flag style and scheduler unit, its defaults of the shared options and its own options
(:class:`~aees.runner.config.OptionSpec`), and where its implementation lives (``impl``,
``"module:attribute"``, imported on first use so heavy dependencies load only for the task that
runs). The engine (:mod:`aees.runner.engine`) owns everything else: the loop, evaluation, timing,
FLOPs, checkpoints, progress and the result. An implementation keeps no per-run state::

    name, dataset_name, model_name            # as in its record (written to the result)
    def validate(config) -> None              # its cross-field checks; raises ConfigError
    def build(config, device) -> TaskSetup    # data, model, loss; called after seeding
    def pretokenize(config) -> None           # optional: what --pretokenize-only does

Adding a task: its module and one :func:`register_task` call (tests/experiments/test_config.py
registers a tiny one). Tasks not converted yet (``legacy=True``) keep the older interface
(``add_arguments(parser)`` / ``validate(parser, args)``, facts as class attributes); their
records are completed from the object on first use.
"""

from __future__ import annotations

import argparse
import importlib
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from types import MappingProxyType
from typing import Any, Protocol

import torch
from torch import nn
from torch.utils.data import Dataset

from aees.console import OneLineArgumentParser
from aees.runner.config import (
    FLAG_STYLES,
    OPTIMIZER_INFO,
    OptionSpec,
    RunConfig,
    add_options,
    option_specs,
)
from aees.runner.label_noise import LabelCorruption
from aees.runner.tasks.text.options import NLP_DEFAULTS, text_options

__all__ = [
    "REPORT_FAMILIES",
    "TASKS",
    "Task",
    "TaskInfo",
    "TaskSetup",
    "TrainFlag",
    "add_task_arguments",
    "call_model",
    "get_task",
    "register_task",
    "result_labels",
    "task_info",
    "task_names",
    "task_parser",
    "train_flags",
]


@dataclass
class TaskSetup:
    """What a task builds for one run.

    Datasets yield ``(inputs, target)`` pairs; ``inputs`` is a tensor (``model(x)``) or a dict of
    tensors (``model(**x)``). ``loss_fn(outputs, targets)`` returns the mean loss and
    ``logits_fn(outputs)`` the ``[B, C]`` logits (identity by default).

    Label noise: ``corruption`` is the realised corruption of ``train_data``'s targets,
    ``clean_train_targets`` the original labels (dataset index order), and ``train_eval_data`` the
    training set without augmentation, with the noisy targets, in dataset index order; the engine
    computes the four label-noise accuracies on it. ``test_data`` (optional) is evaluated at the
    final epoch and with the best-validation weights.
    """

    model: nn.Module
    train_data: Dataset | None
    val_data: Dataset | None
    loss_fn: Callable[[Any, torch.Tensor], torch.Tensor]
    test_data: Dataset | None = None
    train_eval_data: Dataset | None = None
    logits_fn: Callable[[Any], torch.Tensor] = field(default=lambda out: out)
    collate_fn: Callable[[list[Any]], Any] | None = None
    corruption: LabelCorruption | None = None
    clean_train_targets: Sequence[int] | None = None
    info: dict[str, Any] = field(default_factory=dict)  # merged into the result config
    # The data this run used, where the task names it only when it builds (``aees train text``,
    # ``image``); None: the task's record's ``dataset_name``.
    dataset_name: str | None = None
    # Ready-made loaders (e.g. device-resident batches with on-device augmentation) replace the
    # engine's ``DataLoader`` over the matching dataset. Each yields ``(inputs, targets)`` and has
    # ``len()``; a train loader with ``state_dict`` / ``load_state_dict`` is checkpointed.
    train_loader: Iterable[Any] | None = None
    val_loader: Iterable[Any] | None = None
    test_loader: Iterable[Any] | None = None
    train_eval_loader: Iterable[Any] | None = None


def call_model(model: nn.Module, inputs: Any) -> Any:
    """``model`` applied to one batch's ``inputs`` as every pass calls it: training, evaluation
    and the FLOP count (:mod:`aees.runner.flops`), so FLOPs are counted on the call training makes.

    A mapping is passed as keyword arguments (``model(**inputs)``); anything else, a tuple or
    list included, as the one positional argument (``model(inputs)``).
    """
    if isinstance(inputs, Mapping):
        return model(**inputs)
    return model(inputs)


class Task(Protocol):
    """A task's implementation (see the module docstring); legacy tasks differ in ``validate``."""

    name: str
    dataset_name: str
    model_name: str

    def validate(self, config: RunConfig) -> None: ...

    def build(self, config: RunConfig, device: torch.device) -> TaskSetup: ...


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
    legacy: bool = False

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
    """The record of task ``name`` (``KeyError`` listing the known names otherwise); a legacy
    task's record is completed from its object."""
    info = TASKS.get(name)
    if info is None:
        get_task(name)  # raises the KeyError
    assert info is not None
    if info.legacy:
        if _COMPLETED.get(name, (None,))[0] is not info:
            _COMPLETED[name] = (info, _completed_legacy(info, get_task(name)))
        return _COMPLETED[name][1]
    return info


def result_labels(config: RunConfig) -> dict[str, str]:
    """The result ``config`` keys reporting reads instead of keeping task lists
    (docs/results-schema.md §3): ``report_family`` and ``task_label`` from the task's record,
    ``optimizer_label`` from the optimizer's (:data:`~aees.runner.config.OPTIMIZER_INFO`)."""
    info = task_info(config.task_name)
    return {
        "report_family": info.report_family,
        "task_label": info.label,
        "optimizer_label": OPTIMIZER_INFO[config.optimizer].label,
    }


# Transitional: what the sweep listed for the text tasks' options until they declare them.
_LEGACY_WHERE_OPTIONS = (
    "cache_dir",
    "tokenized_dataset_dir",
    "local_files_only",
    "hf_token",
    "pretokenize_only",
)
_LEGACY_RESUMABLE_OPTIONS = (
    "cache_dir",
    "local_files_only",
    "pretokenize_only",
    "tokenized_dataset_dir",
)
_COMPLETED: dict[str, tuple[TaskInfo, TaskInfo]] = {}


def _completed_legacy(info: TaskInfo, task: Any) -> TaskInfo:
    """``info`` with the facts a legacy task object holds; its options read from the flags its
    ``add_arguments`` adds (removed once every task declares its options)."""
    parser = argparse.ArgumentParser(add_help=False)
    task.add_arguments(parser)
    writes = tuple(getattr(task, "write_options", ()))
    options = []
    for action in parser._actions:
        if not action.option_strings or action.dest == argparse.SUPPRESS:
            continue
        switch = action.nargs == 0 and isinstance(action.const, bool)
        kind = "bool" if switch else {int: "int", float: "float"}.get(action.type, "str")
        choices = tuple(str(c) for c in action.choices) if action.choices is not None else None
        options.append(
            OptionSpec(
                name=action.dest,
                kind=kind,
                default=action.default,
                help=action.help,
                choices=choices,
                writes=action.dest in writes,
                identity=action.dest not in _LEGACY_WHERE_OPTIONS,
                resumable=action.dest in _LEGACY_RESUMABLE_OPTIONS,
                group="task",
            )
        )
    return replace(
        info,
        dataset_name=task.dataset_name,
        model_name=task.model_name,
        description=task.__doc__ or "",
        flag_style=getattr(task, "flag_style", "cifar"),
        scheduler_unit=getattr(task, "scheduler_unit", "epoch"),
        defaults=dict(task.defaults),
        options=tuple(options),
    )


def add_task_arguments(parser: argparse.ArgumentParser, name: str) -> list[argparse.Action]:
    """Add every ``aees train <name>`` flag to ``parser``, generated from
    :func:`~aees.runner.config.option_specs` (a legacy task adds its own flags itself); returns
    the added flags' actions in ``-h`` order."""
    info = task_info(name)
    specs = option_specs(name)
    if not info.legacy:
        return add_options(parser, specs, info.flag_style)
    own = {spec.name for spec in info.options}
    shared = {key: spec for key, spec in specs.items() if key not in own}
    actions = add_options(parser, shared, info.flag_style)
    before = len(parser._actions)
    get_task(name).add_arguments(parser)
    return actions + parser._actions[before:]


def task_parser(name: str, *, prog: str | None = None) -> argparse.ArgumentParser:
    """A stand-alone parser of ``aees train <name>`` (``KeyError`` for an unknown task)."""
    info = task_info(name)
    parser = OneLineArgumentParser(prog=prog or f"aees train {name}", description=info.description)
    add_task_arguments(parser, name)
    return parser


@dataclass(frozen=True)
class TrainFlag:
    """One ``aees train <task>`` flag as the planner type-checks it (read from
    :func:`~aees.runner.config.option_specs`; goes once the sweep reads the specs).

    ``switch`` is a bare ``--flag``; otherwise ``type`` is the argparse type (``int``,
    ``float``, or None for a string) and ``choices`` the allowed values.
    """

    dest: str
    type: Any
    choices: tuple[str, ...] | None
    switch: bool


def train_flags(name: str) -> dict[str, TrainFlag]:
    """The flags of ``aees train <name>`` by dest, in ``-h`` order (``KeyError`` for an
    unknown task)."""
    flags: dict[str, TrainFlag] = {}
    for dest, spec in option_specs(name).items():
        kind = {"int": int, "float": float}.get(spec.kind)
        flags[dest] = TrainFlag(dest, kind, spec.choices, spec.kind == "bool")
    return flags


for _info in (
    TaskInfo(
        "cifar100",
        "CIFAR-100",
        "cifar",
        "aees.runner.tasks.cifar.task:Cifar100Task",
        dataset_name="CIFAR-100",
        model_name="resnet18",
        legacy=True,
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
        legacy=True,
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

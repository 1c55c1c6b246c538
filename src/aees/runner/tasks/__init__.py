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

Adding a task: its module and one :func:`register_task` call (tests/runner/test_config.py
registers a tiny one).
"""

from __future__ import annotations

import argparse
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import torch
from torch import nn
from torch.utils.data import Dataset

from aees.console import OneLineArgumentParser
from aees.runner.config import RunConfig, add_options, option_specs
from aees.runner.label_noise import LabelCorruption
from aees.runner.tasks.registry import (
    REPORT_FAMILIES,
    TASKS,
    TaskInfo,
    get_task,
    register_task,
    result_labels,
    task_info,
    task_names,
)

__all__ = [
    "REPORT_FAMILIES",
    "TASKS",
    "Task",
    "TaskInfo",
    "TaskSetup",
    "add_task_arguments",
    "call_model",
    "get_task",
    "register_task",
    "result_labels",
    "task_info",
    "task_names",
    "task_parser",
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


def add_task_arguments(parser: argparse.ArgumentParser, name: str) -> list[argparse.Action]:
    """Add every ``aees train <name>`` flag to ``parser``, generated from
    :func:`~aees.runner.config.option_specs`; returns the added flags' actions in ``-h``
    order."""
    return add_options(parser, option_specs(name), task_info(name).flag_style)


def task_parser(name: str, *, prog: str | None = None) -> argparse.ArgumentParser:
    """A stand-alone parser of ``aees train <name>`` (``KeyError`` for an unknown task)."""
    info = task_info(name)
    parser = OneLineArgumentParser(prog=prog or f"aees train {name}", description=info.description)
    add_task_arguments(parser, name)
    return parser

"""The task registry: ``name -> Task``. A task supplies data, model, loss and its own flags.

The engine (:mod:`aees.experiments.engine`) owns everything else: the loop, evaluation, timing,
FLOPs, checkpoints, progress and the result. A task is any object with this interface
(:class:`Task`)::

    name: str                         # "digits", the CLI subcommand and result task_name
    dataset_name: str                 # written to RunResult.dataset_name
    model_name: str                   # written to RunResult.model_name (unless --model-name)
    defaults: dict[str, Any]          # overrides of the shared flag defaults (parser.set_defaults)
    option_names: tuple[str, ...]     # dests of its extra flags, copied to RunConfig.task_options
    flag_style: str = "cifar"         # optional: "nlp" for --method instead of --control-mode
    scheduler_unit: str = "epoch"     # optional: "step" steps the LR scheduler every step
    def pretokenize(config) -> None   # optional: what --pretokenize-only does
    def add_arguments(parser) -> None         # its extra flags
    def validate(parser, args) -> None        # extra checks; report with parser.error(...)
    def build(config, device) -> TaskSetup    # data, model, loss; called after seeding

Register a task with :func:`register_task` (``"module:attribute"`` strings are imported lazily, on
first use, so heavy dependencies load only for the task that runs).
"""

from __future__ import annotations

import argparse
import importlib
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import torch
from torch import nn
from torch.utils.data import Dataset

from aees.experiments.config import RunConfig
from aees.experiments.label_noise import LabelCorruption

__all__ = ["TASKS", "Task", "TaskSetup", "get_task", "register_task", "task_names"]


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
    # Ready-made loaders (e.g. device-resident batches with on-device augmentation) replace the
    # engine's ``DataLoader`` over the matching dataset. Each yields ``(inputs, targets)`` and has
    # ``len()``; a train loader with ``state_dict`` / ``load_state_dict`` is checkpointed.
    train_loader: Iterable[Any] | None = None
    val_loader: Iterable[Any] | None = None
    test_loader: Iterable[Any] | None = None
    train_eval_loader: Iterable[Any] | None = None


class Task(Protocol):
    name: str
    dataset_name: str
    model_name: str
    defaults: dict[str, Any]
    option_names: tuple[str, ...]

    def add_arguments(self, parser: argparse.ArgumentParser) -> None: ...

    def validate(self, parser: argparse.ArgumentParser, args: argparse.Namespace) -> None: ...

    def build(self, config: RunConfig, device: torch.device) -> TaskSetup: ...


TASKS: dict[str, str | Task] = {
    "cifar100": "aees.experiments.tasks.cifar100:Cifar100Task",
    "digits": "aees.experiments.tasks.digits:DigitsTask",
    "sst2": "aees.experiments.tasks.sst2:SST2Task",
    "agnews": "aees.experiments.tasks.agnews:AGNewsTask",
}


def register_task(name: str, task: str | Task) -> None:
    """Register ``task`` (an instance, or ``"module:Class"`` instantiated on first use)."""
    TASKS[name] = task


def task_names() -> list[str]:
    return sorted(TASKS)


def get_task(name: str) -> Task:
    """The task registered as ``name`` (``KeyError`` listing the known names otherwise)."""
    if name not in TASKS:
        raise KeyError(f"unknown task {name!r}; known tasks: {', '.join(task_names())}")
    entry = TASKS[name]
    if isinstance(entry, str):
        module_name, _, attr = entry.partition(":")
        obj = getattr(importlib.import_module(module_name), attr)
        entry = obj() if isinstance(obj, type) else obj
        TASKS[name] = entry
    return entry

"""The task registry: ``name -> Task``. A task supplies data, model, loss and its own flags.

The engine (:mod:`aees.runner.engine`) owns everything else: the loop, evaluation, timing,
FLOPs, checkpoints, progress and the result. A task is any object with this interface
(:class:`Task`)::

    name: str                         # "digits", the CLI subcommand and result task_name
    dataset_name: str                 # written to RunResult.dataset_name
    model_name: str                   # written to RunResult.model_name (unless --model-name)
    defaults: dict[str, Any]          # overrides of the shared flag defaults (parser.set_defaults)
    option_names: tuple[str, ...]     # dests of its extra flags, copied to RunConfig.task_options
    flag_style: str = "cifar"         # optional: "nlp" for --method instead of --control-mode
    scheduler_unit: str = "epoch"     # optional: "step" steps the LR scheduler every step
    write_options: tuple[str, ...]    # optional: dests of its flags naming a place it writes
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
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import torch
from torch import nn
from torch.utils.data import Dataset

from aees.console import OneLineArgumentParser
from aees.runner.config import RunConfig, add_common_arguments
from aees.runner.label_noise import LabelCorruption

__all__ = [
    "TASKS",
    "Task",
    "TaskSetup",
    "TrainFlag",
    "add_task_arguments",
    "call_model",
    "get_task",
    "register_task",
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
    name: str
    dataset_name: str
    model_name: str
    defaults: dict[str, Any]
    option_names: tuple[str, ...]

    def add_arguments(self, parser: argparse.ArgumentParser) -> None: ...

    def validate(self, parser: argparse.ArgumentParser, args: argparse.Namespace) -> None: ...

    def build(self, config: RunConfig, device: torch.device) -> TaskSetup: ...


TASKS: dict[str, str | Task] = {
    "cifar100": "aees.runner.tasks.cifar100:Cifar100Task",
    "digits": "aees.runner.tasks.digits:DigitsTask",
    "sst2": "aees.runner.tasks.sst2:SST2Task",
    "agnews": "aees.runner.tasks.agnews:AGNewsTask",
    "image": "aees.runner.tasks.image:ImageTask",
    "text": "aees.runner.tasks.text:TextTask",
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


def add_task_arguments(parser: argparse.ArgumentParser, task: Task) -> list[argparse.Action]:
    """Add every ``aees train <task>`` flag of ``task`` to ``parser`` (the shared flags in the
    task's style, then its own) and its defaults; returns the added flags' actions in order."""
    actions: list[argparse.Action] = []
    recording = _Recorder(parser, actions)
    add_common_arguments(recording, style=getattr(task, "flag_style", "cifar"))
    task.add_arguments(recording)
    parser.set_defaults(**task.defaults)
    return actions


class _Recorder:
    """Stands in for a parser (or one of its groups) while flags are added, and keeps the
    :class:`argparse.Action` each public ``add_argument`` call returns."""

    def __init__(self, target: Any, actions: list[argparse.Action]) -> None:
        self._target = target
        self._kept = actions

    def add_argument(self, *args: Any, **kwargs: Any) -> argparse.Action:
        action = self._target.add_argument(*args, **kwargs)
        self._kept.append(action)
        return action

    def add_argument_group(self, *args: Any, **kwargs: Any) -> _Recorder:
        return _Recorder(self._target.add_argument_group(*args, **kwargs), self._kept)

    def add_mutually_exclusive_group(self, *args: Any, **kwargs: Any) -> _Recorder:
        return _Recorder(self._target.add_mutually_exclusive_group(*args, **kwargs), self._kept)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._target, name)


def task_parser(name: str, *, prog: str | None = None) -> argparse.ArgumentParser:
    """A stand-alone parser of ``aees train <name>`` (``KeyError`` for an unknown task)."""
    task = get_task(name)
    parser = OneLineArgumentParser(prog=prog or f"aees train {name}", description=task.__doc__)
    add_task_arguments(parser, task)
    return parser


@dataclass(frozen=True)
class TrainFlag:
    """One ``aees train <task>`` flag as the planner type-checks it.

    ``switch`` is a bare ``--flag`` (``store_true`` / ``store_false``); otherwise ``type`` is the
    argparse type (``int``, ``float``, or None for a string) and ``choices`` the allowed values.
    """

    dest: str
    type: Any
    choices: tuple[str, ...] | None
    switch: bool


def train_flags(name: str) -> dict[str, TrainFlag]:
    """The flags of ``aees train <name>`` by dest, in the order they are added (``KeyError``
    for an unknown task)."""
    task = get_task(name)
    parser = OneLineArgumentParser(prog=f"aees train {name}", add_help=False)
    flags: dict[str, TrainFlag] = {}
    for action in add_task_arguments(parser, task):
        if action.dest == argparse.SUPPRESS or not action.option_strings:
            continue
        switch = action.nargs == 0 and isinstance(action.const, bool)
        choices = tuple(str(c) for c in action.choices) if action.choices is not None else None
        flags[action.dest] = TrainFlag(action.dest, action.type, choices, switch)
    return flags

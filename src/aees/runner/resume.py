"""Writing a training checkpoint and deciding whether a run may resume from one.

:mod:`aees.runner.checkpoint` reads a checkpoint back (data only, checked); this module holds
what the engine writes into one and compares on ``--resume``:

* :func:`config_fingerprint`: the run's configuration minus the options that may differ between
  the run that wrote the checkpoint and the one resuming it. Which those are is field metadata,
  declared beside each option (``OptionSpec.resumable``, :func:`aees.runner.config.option_specs`:
  ``--output``, ``--checkpoint-dir``, ``--resume``, ``--quiet``, ``--num-workers``, ``--run-tag``,
  the trackers, and a task's where-things-are-fetched-from options such as ``--cache-dir``).
* :func:`check_resumable`: one line naming the first option that differs.
* :func:`rng_state` / :func:`load_rng_state`: the torch / CUDA / Python RNG states and the
  data-order generator.
* :func:`save_checkpoint_file`: ``torch.save`` written atomically (a run killed mid-write keeps
  the previous checkpoint).
"""

from __future__ import annotations

import random
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch

from aees.results.io import atomic_write
from aees.runner.checkpoint import CHECKPOINT_VERSION
from aees.runner.config import RunConfig, flag_of, option_specs
from aees.runner.summary import EngineError

__all__ = [
    "check_resumable",
    "config_fingerprint",
    "load_rng_state",
    "resumable_options",
    "rng_state",
    "save_checkpoint_file",
]


def resumable_options(task_name: str) -> frozenset[str]:
    """The options of ``task_name`` that may change on ``--resume`` (``OptionSpec.resumable``);
    none for a task the registry does not know."""
    try:
        specs = option_specs(task_name)
    except KeyError:
        return frozenset()
    return frozenset(name for name, spec in specs.items() if spec.resumable)


def config_fingerprint(config: RunConfig) -> dict[str, Any]:
    """``config.to_dict()`` without the options that may change on ``--resume``."""
    free = resumable_options(config.task_name)
    data = {k: v for k, v in config.to_dict().items() if k not in free}
    data["task_options"] = {k: v for k, v in data["task_options"].items() if k not in free}
    return data


def check_resumable(saved: Mapping[str, Any], config: RunConfig, path: Path) -> None:
    """Refuse (one line) a checkpoint of another version or another configuration."""
    if saved.get("version") != CHECKPOINT_VERSION:
        raise EngineError(f"--resume: {path} is not an aees checkpoint of version 1")
    mine = config_fingerprint(config)
    theirs = saved.get("config", {})
    for key in sorted(set(mine) | set(theirs)):
        if mine.get(key) != theirs.get(key):
            raise EngineError(
                f"--resume: {path} was written with {flag_of(key)}={theirs.get(key)!r}, "
                f"this run has {flag_of(key)}={mine.get(key)!r}"
            )


def rng_state(data_generator: torch.Generator) -> dict[str, Any]:
    state: dict[str, Any] = {
        "torch": torch.get_rng_state(),
        "python": random.getstate(),
        "data_order": data_generator.get_state(),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def load_rng_state(state: Mapping[str, Any], data_generator: torch.Generator) -> None:
    torch.set_rng_state(state["torch"])
    random.setstate(state["python"])
    data_generator.set_state(state["data_order"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def save_checkpoint_file(state: Mapping[str, Any], path: Path) -> None:
    atomic_write(path, lambda handle: torch.save(dict(state), handle))

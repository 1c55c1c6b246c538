"""Whether a result file is the result of a planned run (:func:`check_result`): it parses, its
values can be reported (:func:`aees.results.checks.value_problems`, the checks reporting applies),
and its task, seed, epochs and every planned flag that is part of the run's identity match
(numbers within :func:`aees.results.traces.close_to`, the one closeness rule of results).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

from aees.results import RunResult, RunResultError, load_run_result
from aees.results.checks import value_problems
from aees.results.traces import close_to
from aees.sweep.flags import identity_keys

if TYPE_CHECKING:
    from aees.sweep.manifest import PlannedRun

__all__ = ["check_result", "result_problem"]


def _same(expected: Any, actual: Any) -> bool:
    if isinstance(expected, bool) or isinstance(actual, bool):
        return expected is actual or expected == actual
    if isinstance(expected, (int, float)) and isinstance(actual, (int, float)):
        return close_to(actual, float(expected))
    if isinstance(expected, (list, tuple)) and isinstance(actual, (list, tuple)):
        return len(expected) == len(actual) and all(
            _same(e, a) for e, a in zip(expected, actual, strict=True)
        )
    return expected == actual


def result_problem(run: PlannedRun, result: RunResult) -> str | None:
    """Why ``result`` is not the planned ``run`` (a short phrase), or None if it matches.

    Checked: task, seed (top level and config), ``total_epochs`` = the planned epochs and one
    validation accuracy per epoch, and every planned flag recorded in the config (or its
    ``task_options``) that is part of the run's identity (:func:`~aees.sweep.flags.identity_keys`,
    ``OptionSpec.identity``); numbers compare with
    :func:`~aees.results.traces.close_to`.
    """
    config = result.config
    if result.task_name != run.task:
        return f"task_name is {result.task_name!r}, plan says {run.task!r}"
    if result.seed != run.seed or config.get("seed", run.seed) != run.seed:
        return f"seed is {result.seed}, plan says {run.seed}"
    epochs = run.flags.get("epochs")
    if epochs is not None and result.total_epochs != epochs:
        return f"total_epochs is {result.total_epochs}, plan says {epochs}"
    # a diverged run (``--nonfinite raise``) holds the epochs completed before it stopped
    expected_epochs = (
        (result.diverged_at_epoch or 1) - 1 if result.diverged else result.total_epochs
    )
    if len(result.val_accuracies) != expected_epochs:
        return (
            f"{len(result.val_accuracies)} validation accuracies for "
            f"{result.total_epochs} epochs (an unfinished run?)"
        )
    options = config.get("task_options") if isinstance(config.get("task_options"), dict) else {}
    identity = identity_keys(run.task)
    for key, expected in run.flags.items():
        if key not in identity or expected is None:
            continue
        if key in config:
            actual = config[key]
        elif key in options:
            actual = options[key]
        else:
            continue  # not recorded by this task's results
        if not _same(expected, actual):
            return f"config.{key} is {actual!r}, plan says {expected!r}"
    return None


def check_result(run: PlannedRun, path: str | os.PathLike[str]) -> str | None:
    """None if ``path`` holds a valid result of ``run``; else the problem, one line.

    A missing file gives ``"no result file"``; an unreadable or malformed one the
    :class:`~aees.results.RunResultError` message; a result whose values cannot be reported
    (an accuracy outside [0, 1], a negative time, ...) the first of
    :func:`~aees.results.checks.value_problems`; a result of another run what differs
    (:func:`result_problem`).
    """
    target = Path(path)
    if not target.exists():
        return "no result file"
    try:
        result = load_run_result(target)
    except RunResultError as err:
        return err.problem
    problems = value_problems(result)
    if problems:
        return problems[0]
    return result_problem(run, result)

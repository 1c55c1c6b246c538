"""What a planned study asked for (docs/reporting.md §8): the run plan that ``aees plan`` /
``aees sweep`` leave in the results directory, read as untrusted JSON through
:mod:`aees.results` (never through the sweep package: reporting depends on results only).

A report of a planned study lists as *missing* only what its plan asked for: planned runs
without a valid result, and the table cells and figures that those runs would have filled.
Everything else the families could show but nobody planned (the fixed ×1.0 row of a study
without one, a timing configuration nobody ran) is listed apart as *not planned*, not as
missing. :func:`planned_runset` builds the runs of the study as planned: the results that exist,
and for each planned run without one a stand-in (a finished sibling seed of the same method
with its seed changed, else a result built from the planned flags), so the family builders
themselves say which cells and figures the plan covers.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from aees.reporting.runs import Run, RunSet, identify
from aees.results import RunResult, RunResultError
from aees.results.io import display_path, read_regular_file

__all__ = ["PLAN_KIND", "PlannedRun", "StudyPlan", "find_plans", "planned_runset"]

PLAN_KIND = "aees-run-plan"
"""``kind`` of the manifests ``aees plan`` writes."""
_MAX_PLAN_BYTES = 64 * 2**20


@dataclass(frozen=True)
class PlannedRun:
    """One planned run: its id, task, seed, the flags it was planned with, its result path."""

    run_id: str
    task: str
    seed: int
    flags: dict[str, Any]
    output: Path
    status: str
    levels: tuple[tuple[str, str], ...]


@dataclass
class StudyPlan:
    """The plans found in a results directory (usually one ``manifest.json``)."""

    paths: list[Path] = field(default_factory=list)
    presets: list[str] = field(default_factory=list)
    runs: list[PlannedRun] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    """Plan files that could not be used (one line each: path and reason)."""

    def __bool__(self) -> bool:
        return bool(self.runs)

    def describe(self) -> str:
        names = ", ".join(display_path(p) for p in self.paths)
        presets = ", ".join(p for p in self.presets if p) or "no preset"
        return f"{names} ({presets}; {len(self.runs)} planned runs)"


def _plan_files(root: Path) -> list[Path]:
    try:
        names = sorted(p for p in root.iterdir() if not p.name.startswith("."))
    except OSError:
        return []
    return [p for p in names if p.name == "manifest.json" or p.name.endswith(".manifest.json")]


def _planned(raw: Any, base: Path, where: str) -> PlannedRun:
    if not isinstance(raw, dict):
        raise ValueError(f"{where} is not an object")
    run_id, task, seed = raw.get("run_id"), raw.get("task"), raw.get("seed")
    flags, output = raw.get("flags"), raw.get("output")
    if not isinstance(run_id, str) or not isinstance(task, str) or not isinstance(output, str):
        raise ValueError(f"{where}: run_id, task and output must be strings")
    if isinstance(seed, bool) or not isinstance(seed, int) or not isinstance(flags, dict):
        raise ValueError(f"{where} ({run_id}): seed must be an integer and flags an object")
    levels = raw.get("levels") if isinstance(raw.get("levels"), dict) else {}
    return PlannedRun(
        run_id,
        task.lower(),
        seed,
        dict(flags),
        # only compared with discovered paths, never opened
        (base / output).resolve(),
        str(raw.get("status", "")),
        tuple(sorted((str(k), str(v)) for k, v in levels.items())),
    )


def find_plans(root: str | Path) -> StudyPlan:
    """The plan files at the top of ``root`` (``manifest.json``, ``*.manifest.json``): regular
    files of at most 64 MiB, JSON of ``kind`` ``aees-run-plan``; one that fails is listed in
    ``problems`` and ignored. Result paths are taken relative to the directory holding the plan
    (a study moved or copied elsewhere keeps its plan)."""
    plan = StudyPlan()
    for path in _plan_files(Path(root)):
        try:
            data = json.loads(read_regular_file(path, max_bytes=_MAX_PLAN_BYTES).decode("utf-8"))
            if not isinstance(data, dict) or data.get("kind") != PLAN_KIND:
                raise ValueError(f"not a run plan (kind is not {PLAN_KIND!r})")
            if not isinstance(data.get("runs"), list):
                raise ValueError("runs is not a list")
            runs = [_planned(r, path.parent, f"runs[{i}]") for i, r in enumerate(data["runs"])]
        except RunResultError as err:
            plan.problems.append(f"plan {err}")
            continue
        except (ValueError, UnicodeDecodeError, RecursionError) as err:
            message = " ".join(str(err).split())[:200]
            plan.problems.append(f"plan {display_path(path)}: {message}; not used")
            continue
        plan.paths.append(path)
        plan.presets.append(str(data.get("preset") or ""))
        plan.runs += runs
    return plan


def _stand_in_from_flags(run: PlannedRun, epochs: int) -> RunResult:
    """A placeholder result with the planned method and a flat curve (never shown)."""
    flags = run.flags
    epochs = int(flags["epochs"]) if isinstance(flags.get("epochs"), int) else epochs
    epochs = max(epochs, 2)
    config = {**flags, "task_name": run.task, "seed": run.seed, "epochs": epochs}
    logs = None
    if str(flags.get("control_mode", "baseline")) != "baseline":
        lr = flags.get("lr_candidates") or [1.0]
        noise = flags.get("noise_candidates") or [0.0]
        lr = lr if isinstance(lr, list) and lr else [1.0]
        noise = noise if isinstance(noise, list) and noise else [0.0]
        norms = [1.0] * epochs if flags.get("track_update_norm") else None
        logs = {
            "selected_lr_values": [lr[e % len(lr)] for e in range(epochs)],
            "selected_noise_values": [noise[e % len(noise)] for e in range(epochs)],
            "selected_lr_indices": [e % len(lr) for e in range(epochs)],
            "selected_noise_indices": [e % len(noise) for e in range(epochs)],
            "episode_rewards": [0.0] * epochs,
            "episode_start_steps": list(range(epochs)),
            "episode_end_steps": list(range(epochs)),
            "mean_update_norms": norms,
        }
    return RunResult(
        method_name="planned",
        task_name=run.task,
        seed=run.seed,
        model_name=str(flags.get("model_name") or ""),
        dataset_name=str(flags.get("dataset_name") or flags.get("data_dir") or ""),
        config=config,
        best_val_accuracy=0.5,
        final_val_accuracy=0.5,
        final_train_loss=1.0,
        total_steps=epochs,
        total_epochs=epochs,
        wall_clock_seconds=float(epochs),
        estimated_flops=None,
        accuracy_per_tflop=None,
        train_losses=[1.0] * epochs,
        train_accuracies=None,
        val_accuracies=[0.5] * epochs,
        epoch_wall_clock_seconds=[1.0] * epochs,
        epoch_tflops=None,
        episode_logs=logs,
        controller_logs=None,
        diagnostics={},
    )


def planned_runset(plan: StudyPlan, runs: list[Run]) -> tuple[RunSet, list[PlannedRun]]:
    """The runs of the study as planned (results present, stand-ins for the planned runs
    without one) and the planned runs without a result."""
    by_path = {run.path.resolve(): run for run in runs}
    present = {r.run_id: by_path[r.output] for r in plan.runs if r.output in by_path}
    absent = [r for r in plan.runs if r.run_id not in present]
    planned = list(present.values())
    epochs_of: dict[str, int] = {}
    for run in planned:
        epochs_of.setdefault(run.info.task, run.info.epochs)
    for run in absent:
        sibling = next(
            (
                present[p.run_id]
                for p in plan.runs
                if p.run_id in present and (p.task, p.levels) == (run.task, run.levels)
            ),
            None,
        )
        if sibling is not None:
            result = replace(sibling.result, seed=run.seed, run_tag=run.run_id)
        else:
            result = _stand_in_from_flags(run, epochs_of.get(run.task, 2))
        if not math.isfinite(result.best_val_accuracy):
            continue
        planned.append(Run(run.output, result, identify(result, run.output)))
    return RunSet(planned), absent

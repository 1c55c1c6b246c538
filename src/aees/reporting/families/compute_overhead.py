"""Table family: docs/reporting.md §5.6 compute overhead."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from aees.reporting.families.common import Builder, FamilyOutput, text_column
from aees.reporting.render import Column, TableSpec, fmt_num, fmt_pm, fmt_signed
from aees.reporting.runs import RunInfo, RunSet
from aees.reporting.select import WL
from aees.reporting.stats import Summary, mean_sd, steady_state
from aees.results import legacy

# --------------------------------------------------------------------------------------------
# docs/reporting.md §5.6 compute overhead
# --------------------------------------------------------------------------------------------

_AXIS_CONFIG = {"lr": "aees_lr_only", "noise": "aees_noise_only", "dual": "aees_both"}
_AXIS_LABEL = {"lr": "AEES-LR", "noise": "AEES-Noise", "dual": "AEES-Dual"}
SCHED_LABEL = {
    "none": "",
    "cosine": " + Cosine",
    "linear": " + Linear",
    WL: " + Warmup-linear",
}


def overhead_config(info: RunInfo) -> tuple[str, str] | None:
    """``(config id, label)`` of a timing run: ``baseline_<sched>`` or
    ``aees_{lr_only,noise_only,both}_<sched>`` (AEES without context or penalty); None for
    other runs."""
    sched = info.scheduler
    suffix = SCHED_LABEL.get(sched, f" + {sched}")
    if info.kind == "baseline":
        return f"baseline_{sched}", ("Baseline" + suffix)
    if info.kind == "aees" and (info.context_mode != "none" or info.instability_lambda):
        return None  # ablation variants are not timing configurations
    if info.kind == "aees" and info.axes in _AXIS_CONFIG:
        return f"{_AXIS_CONFIG[info.axes]}_{sched}", _AXIS_LABEL[info.axes] + suffix
    return None


def _config_order(config: str) -> tuple[int, int, str]:
    scheds = ["none", "cosine", "linear", WL]
    for i, head in enumerate(("baseline", "aees_lr_only", "aees_noise_only", "aees_both")):
        if config.startswith(head + "_"):
            sched = config[len(head) + 1 :]
            return (scheds.index(sched) if sched in scheds else 9, i, config)
    return (99, 99, config)


def device_name(run_result: Any) -> str | None:
    """The accelerator or CPU a run was timed on (provenance, then runtime metrics)."""
    for block in (
        (run_result.provenance or {}).get("hardware"),
        (run_result.runtime_metrics or {}).get("hardware"),
    ):
        if isinstance(block, dict):
            for key in ("current_device_name", "device_name"):
                if isinstance(block.get(key), str) and block[key]:
                    return block[key]
            names = block.get("gpu_names")
            if isinstance(names, list) and names:
                return str(names[0])
    return None


def _hardware_value(run_result: Any, key: str) -> Any:
    for block in (
        (run_result.provenance or {}).get("hardware"),
        (run_result.runtime_metrics or {}).get("hardware"),
    ):
        if isinstance(block, dict) and block.get(key) not in (None, ""):
            return block[key]
    return None


def _interval(run_result: Any) -> tuple[str, float, float] | None:
    """(host, start, end) in POSIX seconds from ``provenance.started_at`` and the wall clock;
    None when the result does not record them."""
    started = (run_result.provenance or {}).get("started_at")
    if not isinstance(started, str):
        return None
    try:
        start = datetime.fromisoformat(started).timestamp()
    except (ValueError, OverflowError, OSError):
        return None
    host = _hardware_value(run_result, "hostname")
    wall = run_result.wall_clock_seconds
    if not math.isfinite(wall) or wall < 0:
        return None
    return (str(host) if host is not None else "?", start, start + wall)


def concurrent_paths(runs: Sequence[Any]) -> tuple[set[str], set[str]]:
    """(paths of runs that overlapped another run on the same host, paths of runs that do not
    record when they ran). A result records no worker count or load; its start
    (``provenance.started_at``), wall clock and host (``hardware.hostname``) show whether it
    shared the machine with another run, as the runs of a sweep with several workers do."""
    unknown: set[str] = set()
    by_host: dict[str, list[tuple[float, float, str]]] = {}
    for run in runs:
        found = _interval(run.result)
        if found is None:
            unknown.add(str(run.path))
        else:
            by_host.setdefault(found[0], []).append((found[1], found[2], str(run.path)))
    overlapped: set[str] = set()
    for intervals in by_host.values():
        intervals.sort()
        longest: tuple[float, str] | None = None  # the latest end so far, and its run
        for start, end, path in intervals:
            if longest is not None and start < longest[0]:
                overlapped.update((path, longest[1]))
            if longest is None or end > longest[0]:
                longest = (end, path)
    return overlapped, unknown


@dataclass
class OverheadCell:
    """Timing of one (task, optimizer, config) over its repeats (all runs, seeds may repeat)."""

    task: str
    optimizer: str
    config: str
    label: str
    sec_per_epoch: Summary
    steps_per_second: Summary
    sec_per_step: Summary
    tflops_per_second: Summary
    wall_minutes: Summary
    total_epochs: list[int]
    total_steps: list[int]
    devices: list[str]
    paths: list[str]
    overhead_pct: float | None = None
    hosts: list[str] = field(default_factory=list)
    concurrent: int = 0
    """Runs of this cell that ran at the same time as another run on the same host."""
    unrecorded: int = 0
    """Runs of this cell that do not record when they ran (concurrency unknown)."""
    family: str = "other"
    """The report family of its runs (:attr:`RunInfo.family`)."""
    task_label: str = ""
    """The task's label from its runs; a generic task's ``task (dataset · model)`` as is."""
    optimizer_label: str = ""
    """The optimizer's label from its runs (:attr:`RunInfo.optimizer_label`)."""


def lr_schedule_for(family: str) -> str:
    """The scheduler baseline of the overhead decomposition for a report family: WL (NLP),
    else cosine."""
    return WL if family == "nlp" else "cosine"


def overhead_cells(runset: RunSet, notes: list[str] | None = None) -> list[OverheadCell]:
    """Steady-state timing per (task, optimizer, config); overhead % = 100·(s/ep(config) /
    s/ep(baseline_none of the same task and optimizer) − 1). Runs with fewer than two epochs
    (no steady state) are left out with a note."""
    groups: dict[tuple[str, str, str], list[Any]] = {}
    labels: dict[str, str] = {}
    overlapped, unknown = concurrent_paths(runset.runs)
    for run in runset.runs:
        found = overhead_config(run.info)
        if found is None:
            continue
        ss = steady_state(run.result)
        if ss is None:
            if notes is not None:
                notes.append(f"{run.path}: fewer than 2 epochs, no steady-state timing; left out")
            continue
        labels[found[0]] = found[1]
        # a generic task's runs are timed per dataset and model (docs/reporting.md §3)
        i = run.info
        task = f"{i.task} ({i.group})" if i.group else i.task
        groups.setdefault((task, i.optimizer, found[0]), []).append((run, ss))
    out: list[OverheadCell] = []
    for (task, opt, config), members in sorted(
        groups.items(),
        key=lambda kv: (
            legacy.task_order(kv[0][0]),
            {"sgd": 0, "adamw": 1}.get(kv[0][1], 2),
            _config_order(kv[0][2]),
        ),
    ):
        members.sort(key=lambda m: str(m[0].path))
        first = members[0][0].info
        out.append(
            OverheadCell(
                task=task,
                optimizer=opt,
                config=config,
                label=labels[config],
                sec_per_epoch=mean_sd([ss.seconds_per_epoch for _, ss in members]),
                steps_per_second=mean_sd([ss.steps_per_second for _, ss in members]),
                sec_per_step=mean_sd(
                    [1 / ss.steps_per_second for _, ss in members if ss.steps_per_second]
                ),
                tflops_per_second=mean_sd([ss.tflops_per_second for _, ss in members]),
                wall_minutes=mean_sd([r.result.wall_clock_seconds / 60 for r, _ in members]),
                total_epochs=sorted({r.result.total_epochs for r, _ in members}),
                total_steps=sorted({r.result.total_steps for r, _ in members}),
                devices=sorted({device_name(r.result) or "unknown" for r, _ in members}),
                paths=[str(r.path) for r, _ in members],
                hosts=sorted(
                    {str(_hardware_value(r.result, "hostname") or "?") for r, _ in members}
                ),
                concurrent=sum(1 for r, _ in members if str(r.path) in overlapped),
                unrecorded=sum(1 for r, _ in members if str(r.path) in unknown),
                family=first.family,
                task_label=task if first.group else first.task_label,
                optimizer_label=first.optimizer_label,
            )
        )
    base = {(c.task, c.optimizer): c for c in out if c.config == "baseline_none"}
    for c in out:
        ref = base.get((c.task, c.optimizer))
        if ref is not None and ref.sec_per_epoch.mean > 0:
            c.overhead_pct = 100 * (c.sec_per_epoch.mean / ref.sec_per_epoch.mean - 1)
        if notes is not None and len(c.devices) > 1:
            notes.append(
                f"{c.task_label} {c.optimizer_label} {c.label}: timings from "
                f"different devices ({', '.join(c.devices)})"
            )
        if notes is not None and len(set(c.total_epochs)) > 1:
            notes.append(
                f"{c.task_label} {c.optimizer_label} {c.label}: runs with "
                f"different epoch counts {c.total_epochs}"
            )
    return out


DECOMPOSITION_COLUMNS = (
    ("LR sched.", None),
    ("AEES-LR", "aees_lr_only_none"),
    ("AEES-Noise", "aees_noise_only_none"),
    ("AEES-Dual", "aees_both_none"),
)
"""Columns of the overhead decomposition (and the wall-clock figure): the LR-schedule
baseline (cosine or warmup-linear, :func:`lr_schedule_for`) and AEES without a scheduler."""


def decomposition_config(family: str, column: str | None) -> str:
    """The config of a decomposition column for a report family (the LR-schedule baseline for
    ``None``)."""
    return column if column is not None else f"baseline_{lr_schedule_for(family)}"


@dataclass(frozen=True)
class DecompositionRow:
    """One (task, optimizer) row of the overhead decomposition."""

    task: str
    opt: str
    base: OverheadCell | None
    overheads: tuple[float | None, ...]
    task_label: str
    opt_label: str


DECOMPOSITION_SPEC = TableSpec(
    (
        text_column("Task", None, lambda r: r.task_label),
        text_column("Optimizer", None, lambda r: r.opt_label),
        Column(
            "Baseline (s/epoch)",
            lambda r: fmt_num(r.base.sec_per_epoch.mean if r.base else None, 2),
        ),
        *(
            Column(name, lambda r, j=j: fmt_signed(r.overheads[j], 1))
            for j, (name, _) in enumerate(DECOMPOSITION_COLUMNS)
        ),
    )
)
"""Task | Optimizer | Baseline (s/epoch) | overhead (%) per decomposition column (no CSV)."""

_TIMINGS = ("wall_minutes", "sec_per_epoch", "sec_per_step", "steps_per_second")
_TIMINGS += ("tflops_per_second",)


def _timing(header: str | None, key: str, digits: int) -> Column:
    return Column(
        header,
        lambda c: fmt_pm(getattr(c, key), digits),
        (f"{key}_mean", f"{key}_std"),
        lambda c: (getattr(c, key).mean, getattr(c, key).sd),
    )


OVERHEAD_DETAILED_SPEC = TableSpec(
    (
        text_column("Task", "task", lambda c: c.task_label),
        text_column("Optimizer", "optimizer", lambda c: c.optimizer_label),
        text_column(None, "config", lambda c: c.config),
        text_column("Configuration", "label", lambda c: c.label),
        Column("n", lambda c: str(c.sec_per_epoch.n), ("n",), lambda c: (c.sec_per_epoch.n,)),
        _timing(None, "wall_minutes", 2),
        _timing("Time/epoch (s)", "sec_per_epoch", 2),
        _timing(None, "sec_per_step", 2),
        Column(
            "Overhead (%)",
            lambda c: fmt_signed(c.overhead_pct, 1),
            ("overhead_vs_baseline_none_pct",),
            lambda c: (c.overhead_pct,),
        ),
        _timing("Steps/s", "steps_per_second", 1),
        _timing("TFLOP/s", "tflops_per_second", 3),
        Column(
            None,
            csv=("total_epochs", "total_steps", "devices", "paths"),
            values=lambda c: (
                " ".join(map(str, c.total_epochs)),
                " ".join(map(str, c.total_steps)),
                ";".join(c.devices),
                ";".join(c.paths),
            ),
        ),
    ),
    csv_order=(
        "task",
        "optimizer",
        "config",
        "label",
        "n",
        *(f"{m}_{s}" for m in _TIMINGS for s in ("mean", "std")),
        "overhead_vs_baseline_none_pct",
        "total_epochs",
        "total_steps",
        "devices",
        "paths",
    ),
)
"""Task | Optimizer | Configuration | n | Time/epoch | Overhead | Steps/s | TFLOP/s; the
summary CSV adds the config id, wall minutes, s/step, epoch and step counts, devices and
paths (timings before the overhead)."""


def build_compute_overhead(runset: RunSet) -> FamilyOutput:
    """docs/reporting.md §5.6 with the first epoch excluded everywhere: time/epoch = mean(epoch
    times[1:]) per
    run, mean ± sample SD over repeats (SD 0 for one repeat), steps/s and TFLOP/s over the same
    epochs; overhead % vs the no-scheduler baseline of the same task and optimizer."""
    b = Builder("compute_overhead", "Compute overhead", runset)
    cells = overhead_cells(runset, b.out.notes)
    if not cells:
        return b.out
    devices = sorted({d for c in cells for d in c.devices})
    where = f"measured on {', '.join(devices)}"
    concurrent = sum(c.concurrent for c in cells)
    if concurrent:
        timed = sum(c.sec_per_epoch.n for c in cells)
        b.out.notes.append(
            f"timings not comparable: {concurrent} of {timed} timed runs ran at the same time "
            "as another run on the same host (a sweep with several workers shares the cores); "
            "time the configurations one at a time (aees sweep --workers 1)"
        )
    decomposition = DECOMPOSITION_SPEC.table(
        "compute_overhead_decomposition_table",
        "Steady-state time per epoch (first epoch excluded) of the baseline and "
        f"overhead (%) of an LR schedule and of AEES without a schedule; {where}",
        "tab:compute-overhead",
    )
    by_key = {(c.task, c.optimizer, c.config): c for c in cells}
    firsts: dict[tuple[str, str], OverheadCell] = {}
    for c in cells:
        firsts.setdefault((c.task, c.optimizer), c)
    for (task, opt), first in firsts.items():
        base = by_key.get((task, opt, "baseline_none"))
        b.count(base.sec_per_epoch.n if base else 0, f"{first.task_label} {opt}: baseline")
        overheads = []
        for name, col in DECOMPOSITION_COLUMNS:
            cell = by_key.get((task, opt, decomposition_config(first.family, col)))
            if cell is None:
                b.out.missing.append(f"{first.task_label} {opt}: {name}: no timing runs")
            overheads.append(cell.overhead_pct if cell else None)
        row = DecompositionRow(
            task, opt, base, tuple(overheads), first.task_label, first.optimizer_label
        )
        DECOMPOSITION_SPEC.add(decomposition, row)
    detailed = OVERHEAD_DETAILED_SPEC.table(
        "compute_overhead_detailed_table",
        f"Steady-state timing of every configuration (first epoch excluded); {where}",
        "tab:compute_overhead_detailed",
        merge=2,
    )
    for c in cells:
        OVERHEAD_DETAILED_SPEC.add(detailed, c)
    b.out.tables += [decomposition, detailed]
    b.out.all_tex["compute_overhead_tables_all"] = [decomposition.name, detailed.name]
    b.out.csvs.append(OVERHEAD_DETAILED_SPEC.csv_table("compute_overhead_summary", cells))
    return b.out

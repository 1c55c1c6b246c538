"""Figure family `compute`: wall-clock overhead bars."""

from __future__ import annotations

import os
from pathlib import Path

from aees.reporting.families.compute_overhead import (
    DECOMPOSITION_COLUMNS,
    decomposition_config,
    overhead_cells,
)
from aees.reporting.figures.common import (
    PALETTE,
    FigureResult,
    missing_figure,
    new_figure,
    save_figure,
)
from aees.reporting.runs import RunSet, optimizer_label, task_label

# Compute
# --------------------------------------------------------------------------------------------


def compute_figures(runset: RunSet, out_dir: str | os.PathLike[str]) -> list[FigureResult]:
    """Wall-clock overhead bars: the configurations of the overhead decomposition table (LR
    schedule, AEES-LR/-Noise/-Dual without a schedule) vs the no-scheduler baseline."""
    out = Path(out_dir)
    name = "wallclock_overhead"
    cells = overhead_cells(runset)
    by_key = {(c.task, c.optimizer, c.config): c for c in cells}
    bars, missing = [], []
    for task, opt in dict.fromkeys((c.task, c.optimizer) for c in cells):
        group = f"{task_label(task)} ({optimizer_label(opt)})"
        if (task, opt, "baseline_none") not in by_key:
            missing.append(f"{group}: no baseline (no scheduler) timing runs")
            continue
        for label, column in DECOMPOSITION_COLUMNS:
            c = by_key.get((task, opt, decomposition_config(task, column)))
            if c is None or c.overhead_pct is None:
                missing.append(f"{group}: {label}: no timing runs")
            else:
                bars.append((group, label, c))
    if not bars:
        return [missing_figure(out, name, missing or ["no runs with at least 2 timed epochs"])]
    fig, (ax,) = new_figure(1, left=0.4)
    y = list(range(len(bars)))[::-1]
    summary = [
        "overhead % = 100·(s/epoch(config) / s/epoch(baseline, no scheduler) − 1)",
        "s/epoch = mean(epoch_wall_clock_seconds[1:]) per run, mean over repeats",
    ]
    for yi, (group, label, c) in zip(y, bars, strict=True):
        color = PALETTE["cosine"] if label == "LR sched." else PALETTE["aees_lr"]
        ax.barh(yi, c.overhead_pct, color=color, alpha=0.85)
        ax.annotate(
            f"{c.overhead_pct:+.1f}%",
            (c.overhead_pct, yi),
            va="center",
            fontsize=7,
            xytext=(3 if c.overhead_pct >= 0 else -3, 0),
            textcoords="offset points",
            ha="left" if c.overhead_pct >= 0 else "right",
        )
        summary.append(
            f"{group} | {label} ({c.config}): n={c.sec_per_epoch.n} "
            f"s/epoch={c.sec_per_epoch.mean:.4f}±{c.sec_per_epoch.sd:.4f} "
            f"overhead={c.overhead_pct:+.2f}% devices={','.join(c.devices)}"
        )
    ax.set_yticks(y)
    ax.set_yticklabels([f"{g}: {lab}" for g, lab, _ in bars], fontsize=7)
    ax.axvline(0, color="#444444", linewidth=0.8)
    ax.set_xlabel("Overhead vs baseline without scheduler (%)")
    ax.margins(x=0.18)
    ax.set_title("Steady-state time per epoch vs the no-scheduler baseline")
    summary += [f"missing: {m}" for m in missing]
    result = save_figure(fig, out, name, summary)
    result.partial = missing
    return [result]

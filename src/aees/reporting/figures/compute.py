"""Figure family `compute`: wall-clock overhead bars."""

from __future__ import annotations

import os
from pathlib import Path

from aees.reporting.families.compute_overhead import (
    DECOMPOSITION_COLUMNS,
    OverheadCell,
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
from aees.reporting.runs import RunSet

# Compute
# --------------------------------------------------------------------------------------------


def _measured(cells: list[OverheadCell]) -> tuple[str, str | None]:
    """Where and how the timings (the plotted ones and their baselines) were measured, and a
    warning when they are not comparable (runs that shared their host with other runs) or
    their concurrency is unknown."""
    devices = sorted({d for c in cells for d in c.devices})
    hosts = sorted({h for c in cells for h in c.hosts if h != "?"})
    runs = sum(c.sec_per_epoch.n for c in cells)
    concurrent = sum(c.concurrent for c in cells)
    unrecorded = sum(c.unrecorded for c in cells)
    on = ", ".join(devices) + (f" (host {', '.join(hosts)})" if hosts else "")
    caption = f"Measured on {on}: wall-clock s/epoch, epoch 1 excluded, mean over {runs} runs."
    if concurrent:
        return caption, (
            f"NOT COMPARABLE: {concurrent} of {runs} runs ran at the same time as other runs "
            "on the same host (a sweep with several workers)."
        )
    if unrecorded:
        return (
            caption,
            f"Concurrency unknown: {unrecorded} of {runs} runs do not record their start.",
        )
    return caption, None


def compute_figures(runset: RunSet, out_dir: str | os.PathLike[str]) -> list[FigureResult]:
    """Wall-clock overhead bars: the configurations of the overhead decomposition table (LR
    schedule, AEES-LR/-Noise/-Dual without a schedule) vs the no-scheduler baseline."""
    out = Path(out_dir)
    name = "wallclock_overhead"
    cells = overhead_cells(runset)
    by_key = {(c.task, c.optimizer, c.config): c for c in cells}
    bars, missing = [], []
    firsts: dict[tuple[str, str], OverheadCell] = {}
    for cell in cells:
        firsts.setdefault((cell.task, cell.optimizer), cell)
    for (task, opt), first in firsts.items():
        group = f"{first.task_label} ({first.optimizer_label})"
        if (task, opt, "baseline_none") not in by_key:
            missing.append(f"{group}: no baseline (no scheduler) timing runs")
            continue
        for label, column in DECOMPOSITION_COLUMNS:
            c = by_key.get((task, opt, decomposition_config(first.family, column)))
            if c is None or c.overhead_pct is None:
                missing.append(f"{group}: {label}: no timing runs")
            else:
                bars.append((group, label, c))
    if not bars:
        return [missing_figure(out, name, missing or ["no runs with at least 2 timed epochs"])]
    fig, (ax,) = new_figure(1, left=0.4, bottom=0.27)
    fig.subplots_adjust(top=0.9)
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
    # centred on the figure, not on the axes (which start at 40 % of the width for the labels)
    fig.suptitle("Steady-state time per epoch vs the no-scheduler baseline", x=0.5, y=0.98)
    caption, warning = _measured(cells)
    fig.text(0.01, 0.075, caption, fontsize=6.5, ha="left", va="bottom", wrap=True)
    if warning:
        fig.text(0.01, 0.01, warning, fontsize=6.5, ha="left", va="bottom", color="#a00000")
    summary += [f"measured: {caption}"] + ([f"warning: {warning}"] if warning else [])
    summary += [f"missing: {m}" for m in missing]
    result = save_figure(fig, out, name, summary)
    result.partial = missing
    return [result]

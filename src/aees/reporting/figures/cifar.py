"""Figure family `cifar`: validation curves, clean bar plot, gradient-noise ablation."""

from __future__ import annotations

import os
from pathlib import Path

from aees.reporting.families.ablation import noise_ablation_pairs
from aees.reporting.families.cifar_clean import CLEAN_METHODS
from aees.reporting.families.cifar_noisy import NOISY_METHODS
from aees.reporting.figures.common import (
    FigureResult,
    bars_figure,
    curves_figure,
    nothing_to_plot,
    series_for,
)
from aees.reporting.runs import RunSet, setting_label
from aees.reporting.select import acc_stats, prefix


def cifar_figures(runset: RunSet, out_dir: str | os.PathLike[str]) -> list[FigureResult]:
    """Clean and noisy validation curves, clean bar plot, gradient-noise ablation bars and
    curves, for CIFAR-100 and digits."""
    out = Path(out_dir)
    results: list[FigureResult] = []
    for task in runset.family_tasks("cifar"):
        if not runset.select(task):
            continue
        p, tl = prefix(task), runset.task_label(task)
        clean = runset.select(task, "clean")
        if clean:
            main = [CLEAN_METHODS[k] for k in CLEAN_METHODS if not k.startswith("Fixed")]
            series = series_for(clean, main, "adamw")
            results.append(
                curves_figure(
                    out,
                    f"{p}_clean_curves",
                    f"{tl}, clean labels (AdamW)",
                    [("", series)],
                    what=f"{tl} clean",
                )
            )
            results.append(
                bars_figure(
                    out,
                    f"{p}_clean_barplot",
                    f"{tl}, clean labels: peak and final",
                    [("", series)],
                    what=f"{tl} clean",
                )
            )
        for setting in runset.settings(task):
            if setting == "clean":
                continue
            cells = runset.select(task, setting)
            optimizers = [o for o in ("adamw", "sgd") if any(c.info.optimizer == o for c in cells)]
            panels = [
                (runset.optimizer_label(o), series_for(cells, NOISY_METHODS, o)) for o in optimizers
            ]
            epochs = max((c.epochs for c in cells), default=0)
            results.append(
                curves_figure(
                    out,
                    f"{p}_{setting}_curves",
                    f"{tl}, {setting_label(setting)} label noise",
                    panels,
                    smooth=5 if epochs >= 20 else 1,
                    what=f"{tl} {setting}",
                )
            )
        pairs = [(a, b) for a, b in noise_ablation_pairs(runset) if a.task == task]
        if pairs:
            groups = [
                (
                    f"{setting_label(b.setting)}, {b.epochs} ep",
                    [("No gradient noise", acc_stats(a)), ("Gradient noise", acc_stats(b))],
                )
                for a, b in pairs
            ]
            results.append(
                bars_figure(
                    out,
                    f"{p}_noise_ablation_barplot",
                    f"{tl}: gradient-noise injection in AEES",
                    groups,
                    what=f"{tl} noise ablation",
                )
            )
            results.append(
                curves_figure(
                    out,
                    f"{p}_noise_ablation_curves",
                    f"{tl}: gradient-noise injection",
                    groups[:3],
                    what=f"{tl} noise ablation",
                )
            )
    if not results:
        return nothing_to_plot(out, "cifar", "no CIFAR-100 or digits runs")
    return results

"""Figure family `nlp`: SST-2 / AG News validation curves, the σ-ablation bar plot."""

from __future__ import annotations

import os
from pathlib import Path

from aees.reporting.families.nlp import NLP_AXIS, NLP_MAIN, nlp_groups, nlp_key
from aees.reporting.families.nlp_noise_ablation import sigma_ablation_rows
from aees.reporting.figures.common import (
    FigureResult,
    bars_figure,
    curves_figure,
    nothing_to_plot,
    series_for,
)
from aees.reporting.runs import RunSet, setting_label


def nlp_figures(runset: RunSet, out_dir: str | os.PathLike[str]) -> list[FigureResult]:
    """Validation curves per NLP task and setting; σ-ablation bar plots."""
    out = Path(out_dir)
    results: list[FigureResult] = []
    for task, setting, cells in nlp_groups(runset):
        key = nlp_key(task, setting)
        title = f"{runset.task_label(task)}, {setting_label(setting)} labels"
        series = series_for(cells, NLP_MAIN, None)
        series += [s for s in series_for(cells, NLP_AXIS[1:3], None) if s[1].n]
        results.append(curves_figure(out, f"{key}_curves", title, [("", series)], what=title))
        sels = sigma_ablation_rows(cells)
        if sels is not None:
            results.append(
                bars_figure(
                    out,
                    f"{key}_noise_ablation_barplot",
                    f"{title}: gradient-noise ablation",
                    [("", series_for(cells, sels, None))],
                    what=f"{title} σ ablation",
                )
            )
    if not results:
        return nothing_to_plot(out, "nlp", "no SST-2 or AG News runs")
    return results


# --------------------------------------------------------------------------------------------

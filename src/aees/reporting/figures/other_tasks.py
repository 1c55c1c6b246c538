"""Figure family `other_tasks` (docs/reporting.md §6): per group of docs/reporting.md §5.12
(a generic task's dataset · model, setting and epochs), the validation curves of every
variant (mean ± SD band)."""

from __future__ import annotations

import os
from pathlib import Path

from aees.reporting.families.other_tasks import group_rows, other_task_groups
from aees.reporting.figures.common import FigureResult, curves_figure, nothing_to_plot
from aees.reporting.runs import RunSet, setting_label


def other_task_figures(runset: RunSet, out_dir: str | os.PathLike[str]) -> list[FigureResult]:
    """``<stem>_curves`` per group (the rows of its table, same order and labels)."""
    out = Path(out_dir)
    results = []
    for stem, (task, group, setting, epochs), rows in group_rows(runset, other_task_groups(runset)):
        where = f" ({group})" if group else ""
        title = f"{runset.task_label(task)}{where}, {setting_label(setting)}, {epochs} ep"
        series = [(r.label, r.st) for r in rows]
        results.append(
            curves_figure(
                out,
                f"{stem}_curves",
                title,
                [("", series)],
                smooth=5 if epochs >= 20 else 1,
                what=title,
            )
        )
    if not results:
        return nothing_to_plot(out, "other_tasks", "no runs of a task outside the thesis families")
    return results

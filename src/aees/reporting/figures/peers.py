"""Figure family `peers` (docs/reporting.md §6): per group of docs/reporting.md §5.11, the
validation curves (mean ± SD band per method) of the rows of the peers table."""

from __future__ import annotations

import os
from pathlib import Path

from aees.reporting.families.peers import peer_groups, peer_rows
from aees.reporting.figures.common import FigureResult, curves_figure, nothing_to_plot
from aees.reporting.runs import RunSet


def peers_figures(runset: RunSet, out_dir: str | os.PathLike[str]) -> list[FigureResult]:
    """``<key>_peers_curves`` per group with peer runs (the table's rows, same order)."""
    out = Path(out_dir)
    results = []
    for group in peer_groups(runset):
        series = [(r.label, r.st) for r in peer_rows(group)]
        smooth = 5 if group.epochs >= 20 else 1
        results.append(
            curves_figure(
                out,
                f"{group.key}_peers_curves",
                f"{group.title}: AEES vs peers",
                [("", series)],
                smooth=smooth,
                what=group.title,
            )
        )
    if not results:
        return nothing_to_plot(out, "peers", "no runs of a schedule-free or LR-free optimizer")
    return results

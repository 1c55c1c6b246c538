"""Figure family `peers` (docs/reporting.md §6): per group of docs/reporting.md §5.11, the
validation curves (mean ± SD band per method) of the rows of the peers table."""

from __future__ import annotations

import os
import re
from pathlib import Path

from aees.reporting.families.peers import peer_groups, peer_rows
from aees.reporting.figures.common import FigureResult, curves_figure, nothing_to_plot
from aees.reporting.runs import RunSet


def _short(label: str) -> str:
    """``AEES-LR on Prodigy (d_coef=1) + cosine`` -> ``AEES-LR on Prodigy + cosine``."""
    return re.sub(r" \([^()]*\)", "", label)


def peers_figures(runset: RunSet, out_dir: str | os.PathLike[str]) -> list[FigureResult]:
    """``<key>_peers_curves`` per group with peer runs (the table's rows, same order)."""
    out = Path(out_dir)
    results = []
    for group in peer_groups(runset):
        rows = peer_rows(group)
        # the legend without the peers' settings when that leaves every label distinct (the
        # summary names each line's variant id either way)
        short = [_short(r.label) for r in rows]
        labels = short if len(set(short)) == len(short) else [r.label for r in rows]
        series = [(label, r.st) for label, r in zip(labels, rows, strict=True)]
        smooth = 5 if group.epochs >= 20 else 1
        results.append(
            curves_figure(
                out,
                f"{group.key}_peers_curves",
                f"{group.title}: AEES vs peers",
                [("", series)],
                smooth=smooth,
                what=group.title,
                ncol=3,
            )
        )
    if not results:
        return nothing_to_plot(out, "peers", "no runs of a schedule-free or LR-free optimizer")
    return results

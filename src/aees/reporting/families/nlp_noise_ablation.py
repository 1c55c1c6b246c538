"""Table family `nlp_noise_ablation` (docs/reporting.md §5.9): NLP gradient noise with and without
the bandit."""

from __future__ import annotations

from collections.abc import Sequence

from aees.reporting.families.common import (
    ACC_COLUMNS,
    AccRow,
    Builder,
    FamilyOutput,
    label_column,
)
from aees.reporting.families.nlp import nlp_groups, nlp_key
from aees.reporting.render import Column, TableSpec
from aees.reporting.runs import Cell, RunSet, setting_label
from aees.reporting.select import WL, Sel, aees_sel, num_token, same_values


def sigma_ablation_rows(cells: Sequence[Cell]) -> list[Sel] | None:
    """The σ-ablation rows for the cells of one NLP task and setting, or None when there is
    no fixed-σ or random-σ run (the ablation was not run there)."""
    sigmas = sorted(
        {
            c.info.noise_candidates[0]
            for c in cells
            if c.info.kind == "fixed"
            and c.info.scheduler == WL
            and same_values(c.info.lr_candidates, (1.0,))
            and c.info.noise_candidates[0] > 0
        }
    )
    has_random = any(c.info.kind == "random" and c.info.axes == "noise" for c in cells)
    if not sigmas and not has_random:
        return None
    return [
        Sel("AdamW (Flat, σ=0)", "baseline"),
        Sel("AdamW + WL (σ=0)", "baseline", WL),
        *(Sel(f"Fixed σ={num_token(s)} + WL", "fixed", WL, lr=(1.0,), noise=(s,)) for s in sigmas),
        Sel("Random σ + WL", "random", WL, axes="noise", lr=(1.0,), context=None),
        aees_sel("AEES-Noise + WL", WL, axes="noise", context=None),
        aees_sel("AEES-Dual + WL", WL, axes="dual", context=None),
    ]


NOISE_ABLATION_SPEC = TableSpec(
    (
        label_column("Condition", "condition"),
        Column(None, csv=("variant",), values=lambda r: (r.st.cell.variant if r.st.cell else "",)),
        *ACC_COLUMNS,
    )
)
"""Condition | n | Best | Final | Drop | Peak epoch; the summary CSV adds the variant id."""


def build_nlp_noise_ablation(runset: RunSet) -> FamilyOutput:
    """docs/reporting.md §5.9 (σ-axis falsification): per NLP task and setting that has fixed-σ or
    random-σ runs:
    AdamW (σ = 0), AdamW + WL, every Fixed σ + WL, Random σ + WL, AEES-Noise + WL and
    AEES-Dual + WL; 2 decimals; midrule after the baselines; ranked per column."""
    b = Builder("nlp_noise_ablation", "NLP gradient-noise (σ) ablation", runset)
    for task, setting, cells in nlp_groups(runset):
        sels = sigma_ablation_rows(cells)
        if sels is None:
            continue
        key = nlp_key(task, setting)
        table = NOISE_ABLATION_SPEC.table(
            f"{key}_noise_ablation_table",
            f"{runset.task_label(task)}, {setting_label(setting)} labels: gradient noise "
            "with and without the bandit",
            f"tab:{key.replace('_', '-')}-noise-ablation",
            midrule_before={2},
        )
        where = f"{runset.task_label(task)} {setting_label(setting)}"
        stats = [b.row(cells, s, optimizer=None, where=where) for s in sels]
        items = [AccRow(s.label, st) for s, st in zip(sels, stats, strict=True)]
        NOISE_ABLATION_SPEC.block(table, items)
        b.out.tables.append(table)
        b.out.csvs.append(
            NOISE_ABLATION_SPEC.csv_table(
                f"{key}_noise_ablation_summary", [r for r in items if r.st.n]
            )
        )
    return b.out

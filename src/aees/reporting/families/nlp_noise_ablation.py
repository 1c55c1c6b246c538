"""Table family: families.nlp_noise_ablation."""

from __future__ import annotations

from collections.abc import Sequence

from aees.reporting.families.common import (
    ACC_HEADER,
    SUMMARY_HEADER,
    Builder,
    FamilyOutput,
    acc_cells,
    rank_acc,
    summary_fields,
)
from aees.reporting.families.nlp import nlp_groups, nlp_key
from aees.reporting.render import CsvTable, Table
from aees.reporting.runs import Cell, RunSet, setting_label, task_label
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


def build_nlp_noise_ablation(runset: RunSet) -> FamilyOutput:
    """§5.9 (σ-axis falsification): per NLP task and setting that has fixed-σ or random-σ runs:
    AdamW (σ = 0), AdamW + WL, every Fixed σ + WL, Random σ + WL, AEES-Noise + WL and
    AEES-Dual + WL; 2 decimals; midrule after the baselines; ranked per column."""
    b = Builder("nlp_noise_ablation", "NLP gradient-noise (σ) ablation", runset)
    for task, setting, cells in nlp_groups(runset):
        sels = sigma_ablation_rows(cells)
        if sels is None:
            continue
        key = nlp_key(task, setting)
        table = Table(
            name=f"{key}_noise_ablation_table",
            caption=f"{task_label(task)}, {setting_label(setting)} labels: gradient noise "
            "with and without the bandit",
            label=f"tab:{key.replace('_', '-')}-noise-ablation",
            header=["Condition", "n", *ACC_HEADER],
            align="lrrrrr",
            midrule_before={2},
        )
        where = f"{task_label(task)} {setting_label(setting)}"
        stats = [b.row(cells, s, optimizer=None, where=where) for s in sels]
        rows = [table.add(s.label, *acc_cells(st)) for s, st in zip(sels, stats, strict=True)]
        rank_acc(rows, stats, 2)
        b.out.tables.append(table)
        b.out.csvs.append(
            CsvTable(
                f"{key}_noise_ablation_summary",
                ["condition", "variant", *SUMMARY_HEADER],
                [
                    [s.label, st.cell.variant if st.cell else "", *summary_fields(st)]
                    for s, st in zip(sels, stats, strict=True)
                    if st.n
                ],
            )
        )
    return b.out

"""Table family: docs/reporting.md §5.1 clean CIFAR."""

from __future__ import annotations

from aees.reporting.families.common import (
    ACC_COLUMNS,
    AccRow,
    Builder,
    FamilyOutput,
    datasets_title,
    label_column,
)
from aees.reporting.render import TableSpec
from aees.reporting.runs import RunSet
from aees.reporting.select import Sel, aees_sel, fixed_sel, prefix

# --------------------------------------------------------------------------------------------
# docs/reporting.md §5.1 clean CIFAR
# --------------------------------------------------------------------------------------------

CLEAN_METHODS = {
    "AdamW": Sel("AdamW", "baseline"),
    "AdamW + Cosine": Sel("AdamW + Cosine", "baseline", "cosine"),
    "AdamW + Linear": Sel("AdamW + Linear", "baseline", "linear"),
    "AEES": aees_sel("AEES"),
    "AEES + Cosine": aees_sel("AEES + Cosine", "cosine"),
    "AEES + Linear": aees_sel("AEES + Linear", "linear"),
    "Fixed ×1.0": fixed_sel(1.0),
    "Fixed ×0.5": fixed_sel(0.5),
    "Fixed ×2.0": fixed_sel(2.0),
}
CLEAN_TABLES: tuple[tuple[str, str, list[list[str]]], ...] = (
    (
        "main",
        "{T}, clean labels: AdamW and AEES with and without LR schedules",
        [["AdamW", "AdamW + Cosine", "AdamW + Linear", "AEES", "AEES + Cosine", "AEES + Linear"]],
    ),
    (
        "fixed_lr_ablation",
        "{T}, clean labels: fixed LR multipliers vs AEES",
        [["Fixed ×1.0", "Fixed ×0.5", "Fixed ×2.0", "AEES"]],
    ),
    (
        "compact_appendix",
        "{T}, clean labels: all configurations",
        [
            ["AdamW", "Fixed ×0.5", "Fixed ×2.0", "AEES"],
            ["AdamW + Cosine", "AEES + Cosine"],
            ["AdamW + Linear", "AEES + Linear"],
        ],
    ),
)


CLEAN_SPEC = TableSpec((label_column("Method", "method"), *ACC_COLUMNS))
"""Method | n | Best | Final | Drop | Peak epoch (the three tables and the summary CSV)."""


def build_cifar_clean(runset: RunSet) -> FamilyOutput:
    """docs/reporting.md §5.1: per CIFAR-style task, the clean AdamW runs: main, fixed-LR ablation
    and compact
    appendix tables (Method | n | Best | Final | Drop | Peak epoch) and the summary CSV.
    "Fixed ×1.0" comes only from real fixed-multiplier runs (no baseline duplication)."""
    b = Builder("cifar_clean", datasets_title("Clean labels", runset), runset)
    for task in runset.family_tasks("cifar"):
        cells = runset.select(task, "clean")
        if not cells:
            continue
        p, where = prefix(task), f"{runset.task_label(task)} clean"
        stats = {
            label: b.row(cells, sel, optimizer="adamw", where=where)
            for label, sel in CLEAN_METHODS.items()
        }
        names = []
        for key, caption, blocks in CLEAN_TABLES:
            table = CLEAN_SPEC.table(
                f"{p}_clean_{key}_table",
                caption.format(T=runset.task_label(task)),
                f"tab:{p}_clean_{key}",
            )
            for block in blocks:
                if table.rows:
                    table.midrule_before.add(len(table.rows))
                CLEAN_SPEC.block(table, [AccRow(m, stats[m]) for m in block])
            b.out.tables.append(table)
            names.append(table.name)
        b.out.all_tex[f"{p}_clean_tables_all"] = names
        rows = [AccRow(label, stats[label]) for label in sorted(stats) if stats[label].n]
        b.out.csvs.append(CLEAN_SPEC.csv_table(f"{p}_clean_summary", rows))
    return b.out

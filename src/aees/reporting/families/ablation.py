"""Paired ablations (§5.5 noise injection, §5.7 penalty and trend context): a variant against
its counterpart, and the shared paired-difference table.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from aees.reporting.families.common import Builder
from aees.reporting.render import CsvTable, Table, fmt_num, fmt_signed
from aees.reporting.runs import (
    CIFAR_LIKE_TASKS,
    Cell,
    RunInfo,
    RunSet,
    optimizer_label,
    setting_label,
    task_label,
)
from aees.reporting.select import acc_stats, counterpart

# --------------------------------------------------------------------------------------------
# Paired ablations: §5.5 noise injection, §5.7 penalty and trend context
# --------------------------------------------------------------------------------------------


def ablation_pairs(
    runset: RunSet,
    tasks: Sequence[str],
    is_variant: Callable[[RunInfo], bool],
    changes: dict[str, Any],
    ignore: Sequence[str] = (),
    *,
    notes: list[str] | None = None,
    missing: list[str] | None = None,
) -> list[tuple[Cell, Cell]]:
    """(reference cell A, ablated cell B) pairs: every cell B of ``tasks`` with ``is_variant``
    and its counterpart A = B's method spec with ``changes`` (``ignore`` keys not compared)."""
    notes = notes if notes is not None else []
    pairs = []
    for cell in runset.cells:
        if cell.task not in tasks or not is_variant(cell.info):
            continue
        where = f"{cell.describe()}: counterpart"
        ref = counterpart(runset, cell, changes, ignore=ignore, where=where, notes=notes)
        if ref is None:
            if missing is not None:
                missing.append(f"{cell.describe()}: no reference runs (counterpart) found")
            continue
        pairs.append((ref, cell))
    return pairs


def noise_ablation_pairs(
    runset: RunSet, notes: list[str] | None = None, missing: list[str] | None = None
) -> list[tuple[Cell, Cell]]:
    """CIFAR-style AEES cells with more than one noise candidate, each with the same AEES at
    noise candidates [0]."""
    return ablation_pairs(
        runset,
        CIFAR_LIKE_TASKS,
        lambda i: i.kind == "aees" and len(i.noise_candidates) > 1,
        {"noise_candidates": ["0"]},
        notes=notes,
        missing=missing,
    )


def where_label(cell: Cell) -> str:
    text = f"{task_label(cell.task)}, {setting_label(cell.setting)}"
    return f"{text}, {optimizer_label(cell.info.optimizer)}, {cell.epochs} ep"


def delta_table(
    b: Builder,
    name: str,
    caption: str,
    label: str,
    names: tuple[str, str],
    pairs: list[tuple[Cell, Cell]],
) -> None:
    """Setting | A: best, final, drop | B: best, final, drop | Δ (B − A, signed, 1 decimal)."""
    groups = [("", 1), (names[0], 3), (names[1], 3), ("Δ", 3)]
    table = Table(
        name=name,
        caption=caption,
        label=label,
        header=["Setting", *(["Best", "Final", "Drop"] * 3)],
        align="l" + "r" * 9,
    )
    table.groups = groups
    csv = CsvTable(
        name.replace("_table", "_summary"),
        [
            "setting",
            "variant",
            "n",
            "best_mean",
            "best_std",
            "final_mean",
            "final_std",
            "drop_mean",
            "drop_std",
            "variant_id",
        ],
    )
    for ref, abl in pairs:
        where = where_label(abl)
        sa, sb = acc_stats(ref), acc_stats(abl)
        b.count(sa.n, f"{where}: {names[0]}")
        b.count(sb.n, f"{where}: {names[1]}")
        means = [fmt_num(s.mean, 2, 100) for st in (sa, sb) for s in (st.best, st.final, st.drop)]
        deltas = [
            fmt_signed((y.mean - x.mean) * 100, 1)
            for x, y in ((sa.best, sb.best), (sa.final, sb.final), (sa.drop, sb.drop))
        ]
        table.add(where, *means, *deltas)
        for variant, st, cell in ((names[0], sa, ref), (names[1], sb, abl)):
            csv.rows.append(
                [where, variant, st.n]
                + [v for s in (st.best, st.final, st.drop) for v in (s.mean, s.sd)]
                + [cell.variant]
            )
    if pairs:
        b.out.tables.append(table)
        b.out.csvs.append(csv)

"""Paired ablations (docs/reporting.md §5.5 noise injection, docs/reporting.md §5.7 penalty and
trend context): a variant against
its counterpart, and the shared paired-difference table.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from aees.reporting.families.common import Builder, text_column
from aees.reporting.render import Column, TableSpec, fmt_num, fmt_signed
from aees.reporting.runs import (
    Cell,
    RunInfo,
    RunSet,
    setting_label,
)
from aees.reporting.select import AccStats, acc_stats, counterpart

# --------------------------------------------------------------------------------------------
# Paired ablations: docs/reporting.md §5.5 noise injection, docs/reporting.md §5.7 penalty and
# trend context
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
        runset.family_tasks("cifar"),
        lambda i: i.kind == "aees" and len(i.noise_candidates) > 1,
        {"noise_candidates": ["0"]},
        notes=notes,
        missing=missing,
    )


def where_label(cell: Cell) -> str:
    text = f"{cell.info.task_label}, {setting_label(cell.setting)}"
    return f"{text}, {cell.info.optimizer_label}, {cell.epochs} ep"


@dataclass(frozen=True)
class DeltaRow:
    """One reference/ablated pair of a paired-difference table."""

    where: str
    sa: AccStats
    sb: AccStats


@dataclass(frozen=True)
class SideRow:
    """One side (reference or ablated) of a pair, as the summary CSV writes it."""

    where: str
    variant: str
    st: AccStats
    cell: Cell


_ACC_ATTRS = ("best", "final", "drop")


def _mean_column(side: str, attr: str) -> Column:
    return Column(
        attr.capitalize(), lambda r: fmt_num(getattr(getattr(r, side), attr).mean, 2, 100)
    )


def _delta_column(attr: str) -> Column:
    return Column(
        attr.capitalize(),
        lambda r: fmt_signed((getattr(r.sb, attr).mean - getattr(r.sa, attr).mean) * 100, 1),
    )


DELTA_SPEC = TableSpec(
    (
        text_column("Setting", None, lambda r: r.where),
        *(_mean_column("sa", a) for a in _ACC_ATTRS),
        *(_mean_column("sb", a) for a in _ACC_ATTRS),
        *(_delta_column(a) for a in _ACC_ATTRS),
    )
)
"""Setting | A: Best, Final, Drop | B: Best, Final, Drop | Δ: Best, Final, Drop (group labels
set per table; no CSV: the summary CSV has one row per side, :data:`DELTA_SUMMARY_SPEC`)."""

DELTA_SUMMARY_SPEC = TableSpec(
    (
        text_column(None, "setting", lambda r: r.where),
        text_column(None, "variant", lambda r: r.variant),
        Column(None, csv=("n",), values=lambda r: (r.st.n,)),
        *(
            Column(
                None,
                csv=(f"{a}_mean", f"{a}_std"),
                values=lambda r, a=a: (getattr(r.st, a).mean, getattr(r.st, a).sd),
            )
            for a in _ACC_ATTRS
        ),
        text_column(None, "variant_id", lambda r: r.cell.variant),
    )
)
"""setting, variant, n, best/final/drop mean and sd (fractions), variant_id: one row per side
of each pair."""


def delta_table(
    b: Builder,
    name: str,
    caption: str,
    label: str,
    names: tuple[str, str],
    pairs: list[tuple[Cell, Cell]],
) -> None:
    """Setting | A: best, final, drop | B: best, final, drop | Δ (B − A, signed, 1 decimal)."""
    table = DELTA_SPEC.table(
        name, caption, label, groups=[("", 1), (names[0], 3), (names[1], 3), ("Δ", 3)]
    )
    sides: list[SideRow] = []
    for ref, abl in pairs:
        where = where_label(abl)
        sa, sb = acc_stats(ref), acc_stats(abl)
        b.count(sa.n, f"{where}: {names[0]}")
        b.count(sb.n, f"{where}: {names[1]}")
        DELTA_SPEC.add(table, DeltaRow(where, sa, sb))
        sides += [SideRow(where, names[0], sa, ref), SideRow(where, names[1], sb, abl)]
    if pairs:
        b.out.tables.append(table)
        b.out.csvs.append(DELTA_SUMMARY_SPEC.csv_table(name.replace("_table", "_summary"), sides))

"""Table family docs/reporting.md §5.12 (`other_tasks`): runs of every task the thesis
families do not cover (the generic ``image`` and ``text`` tasks, anything else), one table
per (task, dataset · model, label-noise setting, epochs) with every variant.

Runs of a generic task are kept apart by their ``dataset_name`` and ``model_name``
(:attr:`aees.reporting.runs.RunInfo.group`): two datasets, or two models on one dataset,
never share a row.
"""

from __future__ import annotations

from dataclasses import dataclass

from aees.reporting.families.common import (
    ACC_COLUMNS,
    Builder,
    FamilyOutput,
    label_column,
    text_column,
)
from aees.reporting.families.nlp import method_label
from aees.reporting.families.peers import is_peer, peer_label
from aees.reporting.render import TableSpec, slug_stems
from aees.reporting.runs import (
    Cell,
    RunSet,
    setting_label,
)
from aees.reporting.select import AccStats, acc_stats

__all__ = ["OTHER_SPEC", "OtherRow", "build_other_tasks", "group_rows", "other_task_groups"]


def _label(st: AccStats) -> str:
    assert st.cell is not None
    info = st.cell.info
    return peer_label(info) if is_peer(info) else method_label(info)


OTHER_SPEC = TableSpec(
    (
        label_column("Method", "method"),
        text_column("Optimizer", "optimizer", lambda r: r.cell.info.optimizer_label),
        *ACC_COLUMNS,
        text_column(None, "variant", lambda r: r.cell.variant),
        text_column(None, "seeds", lambda r: " ".join(map(str, r.st.seeds))),
    )
)
"""Method | Optimizer | n | Best | Final | Drop | Peak epoch; the CSV adds variant and seeds."""


@dataclass(frozen=True)
class OtherRow:
    """One variant of a group: its label, cell and statistics."""

    label: str
    cell: Cell
    st: AccStats


def other_task_groups(runset: RunSet) -> list[tuple[str, str, str, int]]:
    """(task, dataset · model, setting, epochs) of every task outside the CIFAR and NLP
    families (report family ``other``)."""
    return list(
        dict.fromkeys(
            (c.task, c.group, c.setting, c.epochs) for c in runset.cells if c.info.family == "other"
        )
    )


def group_rows(
    runset: RunSet, groups: list[tuple[str, str, str, int]]
) -> list[tuple[str, tuple[str, str, str, int], list[OtherRow]]]:
    """(file stem, group, rows) per group: every variant of the group, in cell order."""
    out = []
    stems = slug_stems([(t, g, s, f"{e}ep") for t, g, s, e in groups])
    for task, group, setting, epochs in groups:
        cells = [c for c in runset.select(task, setting, group) if c.epochs == epochs]
        rows = [OtherRow(_label(st), c, st) for c in cells for st in [acc_stats(c)]]
        stem = stems[(task, group, setting, f"{epochs}ep")]
        out.append((stem, (task, group, setting, epochs), rows))
    return out


def build_other_tasks(runset: RunSet) -> FamilyOutput:
    """docs/reporting.md §5.12: ``<task>_<dataset-model>_<setting>_<E>ep_main_table`` per
    group, every variant a row (ranked over the table), and its ``_summary.csv``."""
    b = Builder("other_tasks", "Other tasks, per dataset and model", runset)
    names = []
    for stem, (task, group, setting, epochs), rows in group_rows(runset, other_task_groups(runset)):
        for row in rows:
            b.count(row.st.n, row.cell.describe())
            b.note_duplicates(row.cell)
        where = f" ({group})" if group else ""
        table = OTHER_SPEC.table(
            f"{stem}_main_table",
            f"{runset.task_label(task)}{where}, {setting_label(setting)} labels, {epochs} epochs",
            f"tab:{stem}",
        )
        OTHER_SPEC.block(table, rows)
        b.out.tables.append(table)
        b.out.csvs.append(OTHER_SPEC.csv_table(f"{stem}_summary", rows))
        names.append(table.name)
    b.out.all_tex["all_other_tasks_tables"] = names
    return b.out

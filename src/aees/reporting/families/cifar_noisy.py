"""Table family: docs/reporting.md §5.2 noisy CIFAR."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from aees.reporting.families.common import (
    ACC_COLUMNS,
    Builder,
    FamilyOutput,
    datasets_title,
    label_column,
    pm_column,
    text_column,
)
from aees.reporting.render import Table, TableSpec
from aees.reporting.runs import (
    Cell,
    RunSet,
    setting_label,
)
from aees.reporting.select import AccStats, Sel, aees_sel, optimizers_in, prefix
from aees.reporting.stats import Summary, mean_sd

# --------------------------------------------------------------------------------------------
# docs/reporting.md §5.2 noisy CIFAR
# --------------------------------------------------------------------------------------------

NOISY_METHODS = (
    Sel("Baseline", "baseline"),
    aees_sel("AEES"),
    Sel("Cosine", "baseline", "cosine"),
    aees_sel("Cosine + AEES", "cosine"),
)
SUBSET_KEYS = (
    ("corr_noisy", "train_corrupted_accuracy_vs_noisy_labels"),
    ("corr_clean", "train_corrupted_accuracy_vs_clean_labels"),
    ("train_clean", "train_clean_accuracy"),
)


def as_float(value: Any, default: float | None = None) -> float | None:
    """A number from a free-form block (diagnostics, logs): ``default`` for anything that is
    not a real number (None, a string, a boolean)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return default
    return float(value)


def nan_if_none(value: float | None) -> float:
    return math.nan if value is None else value


def subset_summaries(cell: Cell | None, point: str) -> dict[str, Summary]:
    """Label-noise diagnostics of a cell: ``point`` is ``final`` (last epoch) or ``best``
    (the best-validation epoch); summaries of corr_noisy, corr_clean, train_clean."""
    key = "final_subset_accuracies" if point == "final" else "best_val_subset_accuracies"
    values: dict[str, list[float]] = {name: [] for name, _ in SUBSET_KEYS}
    for run in cell.seed_runs() if cell else []:
        block = run.result.diagnostics.get(key)
        if not isinstance(block, dict):
            continue
        for name, source in SUBSET_KEYS:
            value = as_float(block.get(source))
            if value is not None:
                values[name].append(value)
    return {name: mean_sd(v) for name, v in values.items()}


def noisy_blocks(runset: RunSet, task: str) -> list[tuple[str, str, list[Cell]]]:
    """(setting, optimizer, cells of that setting) for each noisy setting and optimizer."""
    out = []
    for setting in runset.settings(task):
        if setting == "clean":
            continue
        cells = runset.select(task, setting)
        out += [(setting, opt, cells) for opt in optimizers_in(cells)]
    return out


@dataclass(frozen=True)
class NoisyRow:
    """One (noise setting, optimizer, method) row: accuracy statistics and the final-epoch
    label-noise diagnostics (empty for tables that do not show them)."""

    setting: str
    opt: str
    label: str
    st: AccStats
    diag: dict[str, Summary]
    opt_label: str
    """The optimizer's label, from its runs (:meth:`RunSet.optimizer_label`)."""


NOISE_COLUMN = text_column(
    "Noise", "task", lambda r: setting_label(r.setting), csv_get=lambda r: r.setting
)
OPTIMIZER_COLUMN = text_column(
    "Optimizer", "optimizer", lambda r: r.opt_label, csv_get=lambda r: r.opt
)
NOISY_MAIN_SPEC = TableSpec((OPTIMIZER_COLUMN, label_column("Method", "method"), *ACC_COLUMNS[1:]))
"""Optimizer | Method | Best | Final | Drop | Peak epoch (one table per noise regime)."""

NOISY_DETAILED_SPEC = TableSpec(
    (
        NOISE_COLUMN,
        OPTIMIZER_COLUMN,
        label_column("Method", "method"),
        *ACC_COLUMNS,
        *(
            pm_column(header, key, lambda r, k=key: r.diag[k], 2, 100)
            for header, (key, _) in zip(
                ("Corr. noisy (%)", "Corr. clean (%)", "Train clean (%)"), SUBSET_KEYS, strict=True
            )
        ),
    )
)
"""Noise | Optimizer | Method | n | Best | Final | Drop | Peak epoch | Corr. noisy | Corr. clean
| Train clean (the appendix and the summary CSV, whose diagnostics are fractions)."""


def build_cifar_noisy(runset: RunSet) -> FamilyOutput:
    """docs/reporting.md §5.2: one main table per noise regime (Optimizer | Method | Best | Final |
    Drop | Peak
    epoch, ranked per optimizer block) and a detailed appendix with the final-epoch label-noise
    diagnostics (Corr. noisy = accuracy on corrupted examples vs their noisy labels, Corr.
    clean = vs their true labels, Train clean = accuracy on uncorrupted examples)."""
    b = Builder("cifar_noisy", datasets_title("Noisy labels", runset), runset)
    for task in runset.family_tasks("cifar"):
        blocks = noisy_blocks(runset, task)
        if not blocks:
            continue
        p = prefix(task)
        detailed = NOISY_DETAILED_SPEC.table(
            f"{p}_noisy_detailed_appendix_table",
            f"{runset.task_label(task)} with label noise: all runs with final-epoch diagnostics",
            f"tab:{p}_noisy_detailed_appendix",
            merge=2,
        )
        summary: list[NoisyRow] = []
        mains: dict[str, Table] = {}
        for setting, opt, cells in blocks:
            where = (
                f"{runset.task_label(task)} {setting_label(setting)} {runset.optimizer_label(opt)}"
            )
            main = mains.get(setting)
            if main is None:
                main = mains[setting] = NOISY_MAIN_SPEC.table(
                    f"{p}_{setting}_main_table",
                    f"{runset.task_label(task)}, {setting_label(setting)} label noise",
                    f"tab:{p}_{setting}_main",
                    merge=1,
                )
            items = []
            for sel in NOISY_METHODS:
                st = b.row(cells, sel, optimizer=opt, where=where)
                items.append(
                    NoisyRow(
                        setting,
                        opt,
                        sel.label,
                        st,
                        subset_summaries(st.cell, "final"),
                        runset.optimizer_label(opt),
                    )
                )
            NOISY_MAIN_SPEC.block(main, items)
            NOISY_DETAILED_SPEC.block(detailed, items)
            summary += [r for r in items if r.st.n]
        b.out.tables += [*mains.values(), detailed]
        b.out.all_tex[f"{p}_noisy_main_tables_all"] = [t.name for t in mains.values()]
        b.out.all_tex[f"{p}_noisy_tables_all"] = [t.name for t in (*mains.values(), detailed)]
        b.out.csvs.append(NOISY_DETAILED_SPEC.csv_table(f"{p}_noisy_main_tables_summary", summary))
    return b.out

"""Table family: §5.2 noisy CIFAR."""

from __future__ import annotations

import math
from typing import Any

from aees.reporting.families.common import (
    ACC_HEADER,
    SUMMARY_HEADER,
    Builder,
    FamilyOutput,
    acc_cells,
    rank_acc,
    summary_fields,
)
from aees.reporting.render import CsvTable, Table, TCell, fmt_pm
from aees.reporting.runs import (
    CIFAR_LIKE_TASKS,
    Cell,
    RunSet,
    optimizer_label,
    setting_label,
    task_label,
)
from aees.reporting.select import Sel, aees_sel, optimizers_in, prefix
from aees.reporting.stats import Summary, mean_sd

# --------------------------------------------------------------------------------------------
# §5.2 noisy CIFAR
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


def build_cifar_noisy(runset: RunSet) -> FamilyOutput:
    """§5.2: one main table per noise regime (Optimizer | Method | Best | Final | Drop | Peak
    epoch, ranked per optimizer block) and a detailed appendix with the final-epoch label-noise
    diagnostics (Corr. noisy = accuracy on corrupted examples vs their noisy labels, Corr.
    clean = vs their true labels, Train clean = accuracy on uncorrupted examples)."""
    b = Builder("cifar_noisy", "Noisy CIFAR", runset)
    for task in CIFAR_LIKE_TASKS:
        blocks = noisy_blocks(runset, task)
        if not blocks:
            continue
        p = prefix(task)
        detailed = Table(
            name=f"{p}_noisy_detailed_appendix_table",
            caption=f"{task_label(task)} with label noise: all runs with final-epoch diagnostics",
            label=f"tab:{p}_noisy_detailed_appendix",
            header=[
                "Noise",
                "Optimizer",
                "Method",
                "n",
                *ACC_HEADER,
                "Corr. noisy (%)",
                "Corr. clean (%)",
                "Train clean (%)",
            ],
            align="lllrrrrrrrr",
            merge=2,
        )
        csv = CsvTable(
            f"{p}_noisy_main_tables_summary",
            ["task", "optimizer", "method", *SUMMARY_HEADER]
            + [f"{k}_{s}" for k, _ in SUBSET_KEYS for s in ("mean", "std")],
        )
        mains: dict[str, Table] = {}
        for setting, opt, cells in blocks:
            where = f"{task_label(task)} {setting_label(setting)} {optimizer_label(opt)}"
            main = mains.get(setting)
            if main is None:
                main = mains[setting] = Table(
                    name=f"{p}_{setting}_main_table",
                    caption=f"{task_label(task)}, {setting_label(setting)} label noise",
                    label=f"tab:{p}_{setting}_main",
                    header=["Optimizer", "Method", *ACC_HEADER],
                    align="llrrrr",
                    merge=1,
                )
            stats, main_rows, det_rows = [], [], []
            for sel in NOISY_METHODS:
                st = b.row(cells, sel, optimizer=opt, where=where)
                diag = subset_summaries(st.cell, "final")
                stats.append(st)
                main_rows.append(
                    main.add(optimizer_label(opt), sel.label, *acc_cells(st, with_n=False))
                )
                det_rows.append(
                    detailed.add(
                        setting_label(setting),
                        optimizer_label(opt),
                        sel.label,
                        *acc_cells(st),
                        *(TCell(fmt_pm(diag[k], 2, 100)) for k, _ in SUBSET_KEYS),
                    )
                )
                if st.n:
                    csv.rows.append(
                        [setting, opt, sel.label, *summary_fields(st)]
                        + [v for k, _ in SUBSET_KEYS for v in (diag[k].mean, diag[k].sd)]
                    )
            rank_acc(main_rows, stats, 2)
            rank_acc(det_rows, stats, 4)
        b.out.tables += [*mains.values(), detailed]
        b.out.all_tex[f"{p}_noisy_main_tables_all"] = [t.name for t in mains.values()]
        b.out.all_tex[f"{p}_noisy_tables_all"] = [t.name for t in (*mains.values(), detailed)]
        b.out.csvs.append(csv)
    return b.out

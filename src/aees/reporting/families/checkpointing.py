"""Table family: §5.4 checkpoint diagnostics (in-run, at the best-validation epoch)."""

from __future__ import annotations

import math
from pathlib import Path

from aees.reporting.families.cifar_noisy import (
    NOISY_METHODS,
    SUBSET_KEYS,
    as_float,
    nan_if_none,
    noisy_blocks,
)
from aees.reporting.families.common import Builder, FamilyOutput
from aees.reporting.render import CsvTable, Table, fmt_num, fmt_pm, mark_ranks
from aees.reporting.runs import CIFAR_LIKE_TASKS, RunSet, optimizer_label, setting_label, task_label
from aees.reporting.select import pick, prefix
from aees.reporting.stats import mean_sd, run_metrics

# --------------------------------------------------------------------------------------------
# §5.4 checkpoint diagnostics (in-run, at the best-validation epoch)
# --------------------------------------------------------------------------------------------


def build_checkpointing(runset: RunSet) -> FamilyOutput:
    """§5.4, from the in-run best-epoch diagnostics (``diagnostics.best_val_subset_
    accuracies``) of the main noisy runs, not from truncated reruns: Epoch = best-validation
    epoch, Val acc. = best validation accuracy, Corr. noisy (lower is better), Corr. clean
    (higher is better), Train clean; 1 decimal. Ranking per (setting, optimizer) block on the
    two corrupted-subset columns, ties broken by the lower SD, then by variant order."""
    b = Builder("checkpointing", "Checkpoint (best-epoch) diagnostics", runset)
    for task in CIFAR_LIKE_TASKS:
        blocks = noisy_blocks(runset, task)
        if not blocks:
            continue
        p, tl = prefix(task), task_label(task)
        header = ["Setting", "Opt.", "Variant", "Epoch", "Val acc.", "Corr. noisy ↓"]
        header += ["Corr. clean ↑", "Train clean"]
        main = Table(
            name=f"{p}_checkpoint_diagnostics_main",
            caption=f"{tl}: label-noise diagnostics at the best-validation epoch (in-run)",
            label=f"tab:{p}-checkpoint-diagnostics-main",
            header=header,
            align="lllrrrrr",
            merge=2,
        )
        per_seed = Table(
            name=f"{p}_checkpoint_diagnostics_appendix",
            caption=f"{tl}: best-validation-epoch diagnostics per seed",
            label=f"tab:{p}-checkpoint-diagnostics-detailed",
            header=[*header[:3], "Seed", *header[3:]],
            align="lllrrrrrr",
            merge=3,
        )
        main_csv = CsvTable(
            f"{p}_checkpoint_diagnostics_main",
            [
                "setting_label",
                "optimizer_label",
                "variant_label",
                "n",
                "selected_epoch",
                "val_acc",
                "corr_noisy",
                "corr_clean",
                "train_clean",
            ],
        )
        det_csv = CsvTable(
            f"{p}_checkpoint_diagnostics_detailed",
            [
                "setting",
                "optimizer",
                "variant",
                "seed",
                "selected_epoch",
                "val_acc",
                "corr_noisy",
                "corr_clean",
                "train_clean",
                "path",
            ],
        )
        for setting, opt, cells in blocks:
            where = f"{tl} {setting_label(setting)} {optimizer_label(opt)}"
            rows, sums = [], []
            for sel in NOISY_METHODS:
                cell = pick(cells, sel, optimizer=opt, where=where, notes=b.out.notes)
                seeds: list[tuple[int, float, float, dict[str, float], Path]] = []
                for run in cell.seed_runs() if cell else []:
                    block = run.result.diagnostics.get("best_val_subset_accuracies")
                    if not isinstance(block, dict) or not block:
                        continue
                    metrics = run_metrics(run.result)
                    epoch = as_float(run.result.diagnostics.get("best_val_epoch"))
                    if epoch is None and metrics.peak_epoch is not None:
                        epoch = float(metrics.peak_epoch)  # no in-run best epoch recorded
                    sub = {k: as_float(block.get(src), math.nan) for k, src in SUBSET_KEYS}
                    seeds.append((run.info.seed, nan_if_none(epoch), metrics.best, sub, run.path))
                if cell is not None and len(seeds) < cell.n:
                    b.out.notes.append(
                        f"{cell.describe()}: {cell.n - len(seeds)} runs without best-epoch "
                        "diagnostics (thesis-era or clean-label runs) left out"
                    )
                b.count(len(seeds), f"{where}: {sel.label} (best-epoch diagnostics)")
                s = {
                    "epoch": mean_sd([x[1] for x in seeds]),
                    "val": mean_sd([x[2] for x in seeds]),
                    **{k: mean_sd([x[3][k] for x in seeds]) for k, _ in SUBSET_KEYS},
                }
                sums.append(s)
                texts = [
                    fmt_pm(s["epoch"], 1),
                    fmt_pm(s["val"], 1, 100),
                    *(fmt_pm(s[k], 1, 100) for k, _ in SUBSET_KEYS),
                ]
                rows.append(
                    main.add(setting_label(setting), optimizer_label(opt), sel.label, *texts)
                )
                main_csv.rows.append(
                    [setting_label(setting), optimizer_label(opt), sel.label, len(seeds), *texts]
                )
                for seed, epoch, val, sub, path in seeds:
                    per_seed.add(
                        setting_label(setting),
                        optimizer_label(opt),
                        sel.label,
                        str(seed),
                        fmt_num(epoch, 0),
                        fmt_num(val, 1, 100),
                        *(fmt_num(sub[k], 1, 100) for k, _ in SUBSET_KEYS),
                    )
                    det_csv.rows.append(
                        [setting, opt, sel.label, seed, epoch, val]
                        + [sub[k] for k, _ in SUBSET_KEYS]
                        + [str(path)]
                    )
            for col, key, higher in ((5, "corr_noisy", False), (6, "corr_clean", True)):
                mark_ranks(
                    [r[col] for r in rows],
                    [s[key].mean for s in sums],
                    higher_is_better=higher,
                    tie_break=[s[key].sd for s in sums],
                )
        b.out.tables += [main, per_seed]
        b.out.csvs += [main_csv, det_csv]
    return b.out

"""Table family: checkpoint diagnostics, in-run, at the best-validation epoch (docs/reporting.md
§5.4)."""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

from aees.reporting.families.cifar_noisy import (
    NOISY_METHODS,
    SUBSET_KEYS,
    as_float,
    nan_if_none,
    noisy_blocks,
)
from aees.reporting.families.common import Builder, FamilyOutput, datasets_title, text_column
from aees.reporting.render import Column, TableSpec, fmt_num, fmt_pm
from aees.reporting.runs import (
    Cell,
    RunSet,
    setting_label,
)
from aees.reporting.select import pick, prefix
from aees.reporting.stats import Summary, mean_sd, run_metrics

# --------------------------------------------------------------------------------------------
# docs/reporting.md §5.4 checkpoint diagnostics (in-run, at the best-validation epoch)
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class CheckpointRow:
    """One (setting, optimizer, variant): summaries over its seeds with best-epoch
    diagnostics (``epoch``, ``val`` and the subset keys)."""

    setting: str
    opt: str
    label: str
    n: int
    s: dict[str, Summary]
    opt_label: str
    """The optimizer's label, from its runs (:meth:`RunSet.optimizer_label`)."""


@dataclass(frozen=True)
class CheckpointSeedRow:
    """One seed of a :class:`CheckpointRow`."""

    setting: str
    opt: str
    label: str
    seed: int
    epoch: float
    val: float
    sub: dict[str, float]
    path: Path
    opt_label: str
    """The optimizer's label, from the run (:attr:`RunInfo.optimizer_label`)."""


def _summary_column(header: str, key: str, stat: str, scale: float, **kw: object) -> Column:
    """A "m ± s" column (1 decimal) whose CSV value is the displayed text."""

    def text(r: CheckpointRow) -> str:
        return fmt_pm(r.s[stat], 1, scale)

    return Column(header, text, (key,), lambda r: (text(r),), **kw)  # type: ignore[arg-type]


def _ranked(stat: str, best: str) -> dict[str, object]:
    return {
        "best": best,
        "score": lambda r: r.s[stat].mean,
        "tie_break": lambda r: r.s[stat].sd,
    }


_SUBSET_HEADERS = ("Corr. noisy ↓", "Corr. clean ↑", "Train clean")
_RANKS = {"corr_noisy": "min", "corr_clean": "max"}

CHECKPOINT_MAIN_SPEC = TableSpec(
    (
        text_column("Setting", "setting_label", lambda r: setting_label(r.setting)),
        text_column("Opt.", "optimizer_label", lambda r: r.opt_label),
        text_column("Variant", "variant_label", lambda r: r.label),
        Column(None, csv=("n",), values=lambda r: (r.n,)),
        _summary_column("Epoch", "selected_epoch", "epoch", 1.0),
        _summary_column("Val acc.", "val_acc", "val", 100),
        *(
            _summary_column(header, k, k, 100, **(_ranked(k, _RANKS[k]) if k in _RANKS else {}))
            for header, (k, _) in zip(_SUBSET_HEADERS, SUBSET_KEYS, strict=True)
        ),
    )
)
"""Setting | Opt. | Variant | Epoch | Val acc. | Corr. noisy ↓ | Corr. clean ↑ | Train clean
(1 decimal; the two corrupted-subset columns ranked, ties broken by the lower SD); the CSV
adds the seed count and writes the displayed texts."""

CHECKPOINT_SEED_SPEC = TableSpec(
    (
        text_column(
            "Setting", "setting", lambda r: setting_label(r.setting), csv_get=lambda r: r.setting
        ),
        text_column("Opt.", "optimizer", lambda r: r.opt_label, csv_get=lambda r: r.opt),
        text_column("Variant", "variant", lambda r: r.label),
        text_column("Seed", "seed", lambda r: r.seed, align="r"),
        Column("Epoch", lambda r: fmt_num(r.epoch, 0), ("selected_epoch",), lambda r: (r.epoch,)),
        Column("Val acc.", lambda r: fmt_num(r.val, 1, 100), ("val_acc",), lambda r: (r.val,)),
        *(
            Column(
                header, lambda r, k=k: fmt_num(r.sub[k], 1, 100), (k,), lambda r, k=k: (r.sub[k],)
            )
            for header, (k, _) in zip(_SUBSET_HEADERS, SUBSET_KEYS, strict=True)
        ),
        text_column(None, "path", lambda r: str(r.path)),
    )
)
"""Setting | Opt. | Variant | Seed | Epoch | Val acc. | subsets (per seed, 1 decimal); the
CSV writes the raw values and the result path."""


def checkpoint_seed_rows(
    cell: Cell | None, setting: str, opt: str, label: str
) -> list[CheckpointSeedRow]:
    """The in-run best-epoch diagnostics of each seed of ``cell`` (runs without them left
    out): the rows of the §5.4 tables and of the peak-checkpoint figure."""
    seeds: list[CheckpointSeedRow] = []
    for run in cell.seed_runs() if cell else []:
        block = run.result.diagnostics.get("best_val_subset_accuracies")
        if not isinstance(block, dict) or not block:
            continue
        metrics = run_metrics(run.result)
        epoch = as_float(run.result.diagnostics.get("best_val_epoch"))
        if epoch is None and metrics.peak_epoch is not None:
            epoch = float(metrics.peak_epoch)  # no in-run best epoch recorded
        sub = {k: as_float(block.get(src), math.nan) for k, src in SUBSET_KEYS}
        seeds.append(
            CheckpointSeedRow(
                setting,
                opt,
                label,
                run.info.seed,
                nan_if_none(epoch),
                metrics.best,
                sub,  # type: ignore[arg-type]
                run.path,
                run.info.optimizer_label,
            )
        )
    return seeds


def build_checkpointing(runset: RunSet) -> FamilyOutput:
    """docs/reporting.md §5.4, from the in-run best-epoch diagnostics
    (``diagnostics.best_val_subset_
    accuracies``) of the main noisy runs, not from truncated reruns: Epoch = best-validation
    epoch, Val acc. = best validation accuracy, Corr. noisy (lower is better), Corr. clean
    (higher is better), Train clean; 1 decimal. Ranking per (setting, optimizer) block on the
    two corrupted-subset columns, ties broken by the lower SD, then by variant order."""
    b = Builder(
        "checkpointing", datasets_title("Checkpoint (best-epoch) diagnostics", runset), runset
    )
    for task in runset.family_tasks("cifar"):
        blocks = noisy_blocks(runset, task)
        if not blocks:
            continue
        p, tl = prefix(task), runset.task_label(task)
        main = CHECKPOINT_MAIN_SPEC.table(
            f"{p}_checkpoint_diagnostics_main",
            f"{tl}: label-noise diagnostics at the best-validation epoch (in-run)",
            f"tab:{p}-checkpoint-diagnostics-main",
            merge=2,
        )
        per_seed = CHECKPOINT_SEED_SPEC.table(
            f"{p}_checkpoint_diagnostics_appendix",
            f"{tl}: best-validation-epoch diagnostics per seed",
            f"tab:{p}-checkpoint-diagnostics-detailed",
            merge=3,
        )
        main_items: list[CheckpointRow] = []
        seed_items: list[CheckpointSeedRow] = []
        for setting, opt, cells in blocks:
            where = f"{tl} {setting_label(setting)} {runset.optimizer_label(opt)}"
            items = []
            for sel in NOISY_METHODS:
                cell = pick(cells, sel, optimizer=opt, where=where, notes=b.out.notes)
                seeds = checkpoint_seed_rows(cell, setting, opt, sel.label)
                if cell is not None and len(seeds) < cell.n:
                    b.out.notes.append(
                        f"{cell.describe()}: {cell.n - len(seeds)} runs without best-epoch "
                        "diagnostics (thesis-era or clean-label runs) left out"
                    )
                b.count(len(seeds), f"{where}: {sel.label} (best-epoch diagnostics)")
                s = {
                    "epoch": mean_sd([x.epoch for x in seeds]),
                    "val": mean_sd([x.val for x in seeds]),
                    **{k: mean_sd([x.sub[k] for x in seeds]) for k, _ in SUBSET_KEYS},
                }
                items.append(
                    CheckpointRow(
                        setting, opt, sel.label, len(seeds), s, runset.optimizer_label(opt)
                    )
                )
                for seed_row in seeds:
                    CHECKPOINT_SEED_SPEC.add(per_seed, seed_row)
                seed_items += seeds
            CHECKPOINT_MAIN_SPEC.block(main, items)
            main_items += items
        b.out.tables += [main, per_seed]
        b.out.csvs += [
            CHECKPOINT_MAIN_SPEC.csv_table(f"{p}_checkpoint_diagnostics_main", main_items),
            CHECKPOINT_SEED_SPEC.csv_table(f"{p}_checkpoint_diagnostics_detailed", seed_items),
        ]
    return b.out

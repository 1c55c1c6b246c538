"""Table family: docs/reporting.md §5.3 noisy CIFAR: fixed-LR ablation and AEES vs best fixed."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from aees.reporting.families.cifar_noisy import (
    NOISE_COLUMN,
    NOISY_METHODS,
    OPTIMIZER_COLUMN,
    NoisyRow,
    noisy_blocks,
)
from aees.reporting.families.common import (
    ACC_COLUMNS,
    Builder,
    FamilyOutput,
    datasets_title,
    label_column,
    text_column,
)
from aees.reporting.render import MISSING, Column, TableSpec, fmt_num, fmt_pvalue
from aees.reporting.runs import (
    Cell,
    RunSet,
    setting_label,
)
from aees.reporting.select import AccStats, acc_stats, fixed_sel, prefix, same_values
from aees.reporting.stats import PairedComparison, compare_seed_maps

# --------------------------------------------------------------------------------------------
# docs/reporting.md §5.3 noisy CIFAR: fixed-LR ablation and AEES vs best fixed
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class FixedBlock:
    """One (noise setting, optimizer) block: the best fixed multiplier (None: no fixed runs),
    its statistics, the statistics per method label and AEES vs best fixed on shared seeds."""

    setting: str
    opt: str
    best_fixed: str | None
    fixed_st: AccStats
    stats: dict[str, AccStats]
    seeds: list[int]
    cmp: PairedComparison
    opt_label: str
    """The optimizer's label, from its runs (:meth:`RunSet.optimizer_label`)."""


def _bfd(st: AccStats) -> str:
    if not st.n:
        return MISSING
    return " / ".join(fmt_num(s.mean, 1, 100) for s in (st.best, st.final, st.drop))


def _bfd_column(header: str, key: str, get: Callable[[Any], AccStats]) -> Column:
    return Column(
        header,
        lambda r: _bfd(get(r)),
        tuple(f"{key}_{k}" for k in ("best", "final", "drop")),
        lambda r: [s.mean if get(r).n else None for s in (get(r).best, get(r).final, get(r).drop)],
        align="c",
    )


BEST_FIXED_COLUMN = Column(
    "Best fixed (×m)",
    lambda r: r.best_fixed.replace("Fixed ", "") if r.best_fixed else MISSING,
    ("best_fixed_method",),
    lambda r: (r.best_fixed or "",),
    align="l",
)

FIXED_SUMMARY_SPEC = TableSpec(
    (
        NOISE_COLUMN,
        OPTIMIZER_COLUMN,
        BEST_FIXED_COLUMN,
        _bfd_column("Best fixed", "best_fixed", lambda r: r.fixed_st),
        _bfd_column("AEES", "aees", lambda r: r.stats["AEES"]),
        _bfd_column("Cosine", "cosine", lambda r: r.stats["Cosine"]),
        _bfd_column("Cosine + AEES", "cosine_aees", lambda r: r.stats["Cosine + AEES"]),
    )
)
"""Noise | Optimizer | Best fixed (×m) | best / final / drop of the best fixed multiplier,
AEES, Cosine and Cosine + AEES (the summary CSV writes the means as fractions)."""

FIXED_DETAILED_SPEC = TableSpec(
    (NOISE_COLUMN, OPTIMIZER_COLUMN, label_column("Method", "method"), *ACC_COLUMNS)
)
"""Noise | Optimizer | Method | n | Best | Final | Drop | Peak epoch, and its summary CSV."""


def _pm_pct(mean: float, sd: float, seeds: list[int]) -> str:
    return f"{mean:.2f} ± {sd:.2f}" if seeds else MISSING


PAIRED_SPEC = TableSpec(
    (
        NOISE_COLUMN,
        OPTIMIZER_COLUMN,
        Column(
            "Best fixed",
            BEST_FIXED_COLUMN.text,
            BEST_FIXED_COLUMN.csv,
            BEST_FIXED_COLUMN.values,
            align="l",
        ),
        text_column(None, "seeds", lambda r: " ".join(map(str, r.seeds))),
        text_column(None, "n", lambda r: r.cmp.n),
        Column(
            "Fixed Best (%)",
            lambda r: _pm_pct(r.cmp.baseline_mean, r.cmp.baseline_std, r.seeds),
            ("fixed_best_mean_pct", "fixed_best_std_pct"),
            lambda r: (r.cmp.baseline_mean, r.cmp.baseline_std),
        ),
        Column(
            "AEES Best (%)",
            lambda r: _pm_pct(r.cmp.method_mean, r.cmp.method_std, r.seeds),
            ("aees_best_mean_pct", "aees_best_std_pct"),
            lambda r: (r.cmp.method_mean, r.cmp.method_std),
        ),
        Column(
            "ΔBest (pp) [95% CI]",
            lambda r: (
                f"{r.cmp.diff_mean:.2f} [{r.cmp.diff_ci_low:.2f}, {r.cmp.diff_ci_high:.2f}]"
                if r.seeds
                else MISSING
            ),
            ("diff_mean_pp", "diff_ci_low_pp", "diff_ci_high_pp"),
            lambda r: (r.cmp.diff_mean, r.cmp.diff_ci_low, r.cmp.diff_ci_high),
        ),
        Column("p", lambda r: fmt_pvalue(r.cmp.p_value), ("p",), lambda r: (r.cmp.p_value,)),
    )
)
"""Noise | Optimizer | Best fixed | Fixed Best | AEES Best | ΔBest [95% CI] | p (AEES vs the
best fixed multiplier on shared seeds); the CSV adds the seeds and their count."""


def _fixed_multipliers(cells: Iterable[Cell]) -> list[float]:
    found = {
        c.info.lr_candidates[0]
        for c in cells
        if c.info.kind == "fixed" and same_values(c.info.noise_candidates, (0.0,))
    }
    return sorted(found | {0.5, 1.0, 2.0})


def _fixed_block(
    b: Builder, setting: str, opt: str, cells: list[Cell], tl: str
) -> tuple[FixedBlock, list[NoisyRow]]:
    """One (noise setting, optimizer) block: its rows (baseline, every fixed multiplier, the
    AEES and schedule rows) and AEES vs the best fixed multiplier on shared seeds."""
    label = b.runset.optimizer_label(opt)
    where = f"{tl} {setting_label(setting)} {label}"
    sels = [
        NOISY_METHODS[0],
        *(fixed_sel(m) for m in _fixed_multipliers(cells)),
        *NOISY_METHODS[1:],
    ]
    stats = {s.label: b.row(cells, s, optimizer=opt, where=where) for s in sels}
    items = [NoisyRow(setting, opt, s.label, stats[s.label], {}, label) for s in sels]
    fixed = [s.label for s in sels if s.kind == "fixed" and stats[s.label].n]
    best_fixed = max(fixed, key=lambda k: stats[k].best.mean) if fixed else None
    fixed_st = stats[best_fixed] if best_fixed else acc_stats(None)
    aees = stats["AEES"]
    seeds, cmp = compare_seed_maps(
        {s: m.best for s, m in aees.per_seed.items()},
        {s: m.best for s, m in fixed_st.per_seed.items()},
        scale=100,
    )
    if best_fixed is None or not aees.n:
        b.out.missing.append(f"{where}: AEES vs best fixed: no runs to compare")
    elif not seeds:
        b.out.missing.append(f"{where}: AEES vs {best_fixed}: no shared seeds")
    block = FixedBlock(setting, opt, best_fixed, fixed_st, stats, seeds, cmp, label)
    return block, items


def build_cifar_noisy_fixed_lr_ablation(runset: RunSet) -> FamilyOutput:
    """docs/reporting.md §5.3: fixed LR multipliers vs AEES under label noise. The best fixed
    multiplier of a
    (noise, optimizer) cell is the one with the highest mean best accuracy; AEES is compared
    with it on shared seeds: ΔBest = AEES − best fixed, bootstrap 95% CI and paired-t p."""
    b = Builder(
        "cifar_noisy_fixed_lr_ablation",
        datasets_title("Noisy labels, fixed-LR ablation", runset),
        runset,
    )
    for task in runset.family_tasks("cifar"):
        blocks = [
            (setting, opt, cells)
            for setting, opt, cells in noisy_blocks(runset, task)
            if any(c.info.kind == "fixed" for c in cells)
        ]
        if not blocks:
            continue
        p = prefix(task)
        tl = runset.task_label(task)
        summary = FIXED_SUMMARY_SPEC.table(
            f"{p}_noisy_fixed_lr_ablation_summary_table",
            f"{tl} with label noise: best fixed LR multiplier vs AEES and schedules "
            "(best / final / drop)",
            f"tab:{p}_noisy_fixed_lr_ablation_summary",
            merge=1,
        )
        detailed = FIXED_DETAILED_SPEC.table(
            f"{p}_noisy_fixed_lr_ablation_detailed_table",
            f"{tl} with label noise: fixed LR multipliers, AEES and schedules",
            f"tab:{p}_noisy_fixed_lr_ablation_detailed",
            merge=2,
        )
        paired = PAIRED_SPEC.table(
            f"{p}_noisy_aees_vs_best_fixed_stats_table",
            f"{tl}: AEES vs the best fixed multiplier, paired on shared seeds "
            "(95% bootstrap CI, paired t-test)",
            f"tab:supp-{p}-aees-vs-best-fixed-stats",
            merge=1,
        )
        fixed_blocks: list[FixedBlock] = []
        det_rows: list[NoisyRow] = []
        for setting, opt, cells in blocks:
            block, items = _fixed_block(b, setting, opt, cells, tl)
            FIXED_DETAILED_SPEC.block(detailed, items)
            det_rows += [r for r in items if r.st.n]
            FIXED_SUMMARY_SPEC.add(summary, block)
            PAIRED_SPEC.add(paired, block)
            fixed_blocks.append(block)
        b.out.tables += [summary, detailed, paired]
        b.out.all_tex[f"{p}_noisy_fixed_lr_ablation_tables_all"] = [
            t.name for t in (summary, detailed, paired)
        ]
        b.out.csvs += [
            FIXED_SUMMARY_SPEC.csv_table(f"{p}_noisy_fixed_lr_ablation_summary", fixed_blocks),
            FIXED_DETAILED_SPEC.csv_table(f"{p}_noisy_fixed_lr_ablation_detailed", det_rows),
            PAIRED_SPEC.csv_table(f"{p}_noisy_aees_vs_best_fixed_stats", fixed_blocks),
        ]
    return b.out

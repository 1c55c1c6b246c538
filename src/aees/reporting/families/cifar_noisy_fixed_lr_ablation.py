"""Table family: §5.3 noisy CIFAR: fixed-LR ablation and AEES vs best fixed."""

from __future__ import annotations

from collections.abc import Iterable

from aees.reporting.families.cifar_noisy import NOISY_METHODS, noisy_blocks
from aees.reporting.families.common import (
    ACC_HEADER,
    SUMMARY_HEADER,
    Builder,
    FamilyOutput,
    acc_cells,
    rank_acc,
    summary_fields,
)
from aees.reporting.render import MISSING, CsvTable, Table, fmt_num, fmt_pvalue
from aees.reporting.runs import (
    CIFAR_LIKE_TASKS,
    Cell,
    RunSet,
    optimizer_label,
    setting_label,
    task_label,
)
from aees.reporting.select import AccStats, acc_stats, fixed_sel, prefix, same_values
from aees.reporting.stats import compare_seed_maps

# --------------------------------------------------------------------------------------------
# §5.3 noisy CIFAR: fixed-LR ablation and AEES vs best fixed
# --------------------------------------------------------------------------------------------


def _fixed_multipliers(cells: Iterable[Cell]) -> list[float]:
    found = {
        c.info.lr_candidates[0]
        for c in cells
        if c.info.kind == "fixed" and same_values(c.info.noise_candidates, (0.0,))
    }
    return sorted(found | {0.5, 1.0, 2.0})


def build_cifar_noisy_fixed_lr_ablation(runset: RunSet) -> FamilyOutput:
    """§5.3: fixed LR multipliers vs AEES under label noise. The best fixed multiplier of a
    (noise, optimizer) cell is the one with the highest mean best accuracy; AEES is compared
    with it on shared seeds: ΔBest = AEES − best fixed, bootstrap 95% CI and paired-t p."""
    b = Builder("cifar_noisy_fixed_lr_ablation", "Noisy CIFAR: fixed-LR ablation", runset)
    for task in CIFAR_LIKE_TASKS:
        blocks = [
            (setting, opt, cells)
            for setting, opt, cells in noisy_blocks(runset, task)
            if any(c.info.kind == "fixed" for c in cells)
        ]
        if not blocks:
            continue
        p = prefix(task)
        tl = task_label(task)
        summary = Table(
            name=f"{p}_noisy_fixed_lr_ablation_summary_table",
            caption=f"{tl} with label noise: best fixed LR multiplier vs AEES and schedules "
            "(best / final / drop)",
            label=f"tab:{p}_noisy_fixed_lr_ablation_summary",
            header=[
                "Noise",
                "Optimizer",
                "Best fixed (×m)",
                "Best fixed",
                "AEES",
                "Cosine",
                "Cosine + AEES",
            ],
            align="lllcccc",
            merge=1,
        )
        detailed = Table(
            name=f"{p}_noisy_fixed_lr_ablation_detailed_table",
            caption=f"{tl} with label noise: fixed LR multipliers, AEES and schedules",
            label=f"tab:{p}_noisy_fixed_lr_ablation_detailed",
            header=["Noise", "Optimizer", "Method", "n", *ACC_HEADER],
            align="lllrrrrr",
            merge=2,
        )
        paired = Table(
            name=f"{p}_noisy_aees_vs_best_fixed_stats_table",
            caption=f"{tl}: AEES vs the best fixed multiplier, paired on shared seeds "
            "(95% bootstrap CI, paired t-test)",
            label=f"tab:supp-{p}-aees-vs-best-fixed-stats",
            header=[
                "Noise",
                "Optimizer",
                "Best fixed",
                "Fixed Best (%)",
                "AEES Best (%)",
                "ΔBest (pp) [95% CI]",
                "p",
            ],
            align="lllrrrr",
            merge=1,
        )
        sum_csv = CsvTable(
            f"{p}_noisy_fixed_lr_ablation_summary",
            ["task", "optimizer", "best_fixed_method"]
            + [
                f"{m}_{k}"
                for m in ("best_fixed", "aees", "cosine", "cosine_aees")
                for k in ("best", "final", "drop")
            ],
        )
        det_csv = CsvTable(
            f"{p}_noisy_fixed_lr_ablation_detailed",
            ["task", "optimizer", "method", *SUMMARY_HEADER],
        )
        stat_csv = CsvTable(
            f"{p}_noisy_aees_vs_best_fixed_stats",
            [
                "task",
                "optimizer",
                "best_fixed_method",
                "seeds",
                "n",
                "fixed_best_mean_pct",
                "fixed_best_std_pct",
                "aees_best_mean_pct",
                "aees_best_std_pct",
                "diff_mean_pp",
                "diff_ci_low_pp",
                "diff_ci_high_pp",
                "p",
            ],
        )
        for setting, opt, cells in blocks:
            where = f"{tl} {setting_label(setting)} {optimizer_label(opt)}"
            sels = [
                NOISY_METHODS[0],
                *(fixed_sel(m) for m in _fixed_multipliers(cells)),
                *NOISY_METHODS[1:],
            ]
            stats = {s.label: b.row(cells, s, optimizer=opt, where=where) for s in sels}
            rows = []
            for s in sels:
                st = stats[s.label]
                rows.append(
                    detailed.add(
                        setting_label(setting), optimizer_label(opt), s.label, *acc_cells(st)
                    )
                )
                if st.n:
                    det_csv.rows.append([setting, opt, s.label, *summary_fields(st)])
            rank_acc(rows, list(stats.values()), 4)
            fixed = [s.label for s in sels if s.kind == "fixed" and stats[s.label].n]
            best_fixed = max(fixed, key=lambda k: stats[k].best.mean) if fixed else None

            def bfd(st: AccStats) -> str:
                if not st.n:
                    return MISSING
                return " / ".join(fmt_num(s.mean, 1, 100) for s in (st.best, st.final, st.drop))

            fixed_st = stats[best_fixed] if best_fixed else acc_stats(None)
            summary.add(
                setting_label(setting),
                optimizer_label(opt),
                best_fixed.replace("Fixed ", "") if best_fixed else MISSING,
                bfd(fixed_st),
                *(bfd(stats[k]) for k in ("AEES", "Cosine", "Cosine + AEES")),
            )
            sum_csv.rows.append(
                [setting, opt, best_fixed or ""]
                + [
                    s.mean if st.n else None
                    for st in (fixed_st, stats["AEES"], stats["Cosine"], stats["Cosine + AEES"])
                    for s in (st.best, st.final, st.drop)
                ]
            )
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
            ci = (
                f"{cmp.diff_mean:.2f} [{cmp.diff_ci_low:.2f}, {cmp.diff_ci_high:.2f}]"
                if seeds
                else MISSING
            )
            paired.add(
                setting_label(setting),
                optimizer_label(opt),
                best_fixed.replace("Fixed ", "") if best_fixed else MISSING,
                f"{cmp.baseline_mean:.2f} ± {cmp.baseline_std:.2f}" if seeds else MISSING,
                f"{cmp.method_mean:.2f} ± {cmp.method_std:.2f}" if seeds else MISSING,
                ci,
                fmt_pvalue(cmp.p_value),
            )
            stat_csv.rows.append(
                [
                    setting,
                    opt,
                    best_fixed or "",
                    " ".join(map(str, seeds)),
                    cmp.n,
                    cmp.baseline_mean,
                    cmp.baseline_std,
                    cmp.method_mean,
                    cmp.method_std,
                    cmp.diff_mean,
                    cmp.diff_ci_low,
                    cmp.diff_ci_high,
                    cmp.p_value,
                ]
            )
        b.out.tables += [summary, detailed, paired]
        b.out.all_tex[f"{p}_noisy_fixed_lr_ablation_tables_all"] = [
            t.name for t in (summary, detailed, paired)
        ]
        b.out.csvs += [sum_csv, det_csv, stat_csv]
    return b.out

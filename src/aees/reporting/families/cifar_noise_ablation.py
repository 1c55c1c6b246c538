"""Table family §5.5 (`cifar_noise_ablation`): AEES with gradient noise vs its counterpart."""

from __future__ import annotations

from aees.reporting.families.ablation import noise_ablation_pairs, where_label
from aees.reporting.families.common import Builder, FamilyOutput
from aees.reporting.render import CsvTable, Table, fmt_num, fmt_pm, mark_ranks
from aees.reporting.runs import RunSet
from aees.reporting.select import acc_stats, num_token


def build_cifar_noise_ablation(runset: RunSet) -> FamilyOutput:
    """§5.5: AEES with gradient-noise injection (more than one noise candidate) vs the same
    AEES with noise candidates [0]. Gap = mean(best)·100 − mean(final)·100 (pp); 2 decimals;
    bold marks the higher peak and the higher final of each pair."""
    b = Builder("cifar_noise_ablation", "CIFAR gradient-noise ablation", runset)
    pairs = noise_ablation_pairs(runset, b.out.notes, b.out.missing)
    table = Table(
        name="cifar_noise_ablation_table",
        caption="Gradient-noise injection in AEES: same configuration with noise candidates "
        "{0} (no gradient noise) and with more than one noise candidate",
        label="tab:cifar_noise_ablation",
        header=["Setting", "Condition", "n", "Peak (%)", "Final (%)", "Gap (pp)"],
        align="llrrrr",
        merge=1,
    )
    csv = CsvTable(
        "cifar_noise_ablation_summary",
        [
            "setting",
            "condition",
            "tag",
            "n",
            "seeds",
            "noise_candidates",
            "lr_candidates",
            "peak_mean_pct",
            "peak_std_pct",
            "final_mean_pct",
            "final_std_pct",
            "gap_pp",
        ],
    )
    for ref, abl in pairs:
        where = where_label(abl)
        stats = []
        rows = []
        for cell, condition, tag in (
            (ref, "No gradient noise", "lronly"),
            (abl, "Gradient-noise injection", "noise"),
        ):
            st = acc_stats(cell)
            b.count(st.n, f"{where}: {condition}")
            stats.append(st)
            gap = st.best.mean * 100 - st.final.mean * 100 if st.n else None
            rows.append(
                table.add(
                    where,
                    condition,
                    str(st.n),
                    fmt_pm(st.best, 2, 100),
                    fmt_pm(st.final, 2, 100),
                    fmt_num(gap, 2),
                )
            )
            csv.rows.append(
                [
                    cell.setting,
                    condition,
                    tag,
                    st.n,
                    " ".join(map(str, st.seeds)),
                    " ".join(map(num_token, cell.info.noise_candidates)),
                    " ".join(map(num_token, cell.info.lr_candidates)),
                    st.best.mean * 100,
                    st.best.sd * 100,
                    st.final.mean * 100,
                    st.final.sd * 100,
                    gap,
                ]
            )
        for col, attr in ((3, "best"), (4, "final")):
            values = [getattr(s, attr).mean for s in stats]
            mark_ranks([r[col] for r in rows], values, higher_is_better=True)
            for r in rows:
                if r[col].rank == 2:
                    r[col].rank = 0  # bold only, as in the thesis
    if pairs:
        b.out.tables.append(table)
        b.out.csvs.append(csv)
    return b.out

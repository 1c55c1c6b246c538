"""Table family `cifar_noise_ablation` (docs/reporting.md §5.5): AEES with gradient noise vs its
counterpart."""

from __future__ import annotations

from dataclasses import dataclass

from aees.reporting.families.ablation import noise_ablation_pairs, where_label
from aees.reporting.families.common import (
    ACC_COLUMNS,
    Builder,
    FamilyOutput,
    datasets_title,
    label_column,
    text_column,
)
from aees.reporting.render import Column, TableSpec, fmt_num, fmt_pm
from aees.reporting.runs import Cell, RunSet
from aees.reporting.select import AccStats, acc_stats, num_token


@dataclass(frozen=True)
class ConditionRow:
    """One side of a noise-ablation pair."""

    where: str
    cell: Cell
    label: str
    tag: str
    st: AccStats

    @property
    def gap(self) -> float | None:
        """mean(best)·100 − mean(final)·100 (pp); None without runs."""
        return self.st.best.mean * 100 - self.st.final.mean * 100 if self.st.n else None


def _pct_column(header: str, key: str, attr: str) -> Column:
    """ "m ± s" (%, 2 decimals) of ``AccStats.<attr>``, ranked higher-is-better; CSV
    ``<key>_mean_pct``, ``<key>_std_pct``."""
    return Column(
        header,
        lambda r: fmt_pm(getattr(r.st, attr), 2, 100),
        (f"{key}_mean_pct", f"{key}_std_pct"),
        lambda r: (getattr(r.st, attr).mean * 100, getattr(r.st, attr).sd * 100),
        best="max",
        score=lambda r: getattr(r.st, attr).mean,
    )


NOISE_ABLATION_SPEC = TableSpec(
    (
        text_column("Setting", "setting", lambda r: r.where, csv_get=lambda r: r.cell.setting),
        label_column("Condition", "condition"),
        text_column(None, "tag", lambda r: r.tag),
        ACC_COLUMNS[0],
        text_column(None, "seeds", lambda r: " ".join(map(str, r.st.seeds))),
        text_column(
            None,
            "noise_candidates",
            lambda r: " ".join(map(num_token, r.cell.info.noise_candidates)),
        ),
        text_column(
            None, "lr_candidates", lambda r: " ".join(map(num_token, r.cell.info.lr_candidates))
        ),
        _pct_column("Peak (%)", "peak", "best"),
        _pct_column("Final (%)", "final", "final"),
        Column("Gap (pp)", lambda r: fmt_num(r.gap, 2), ("gap_pp",), lambda r: (r.gap,)),
    )
)
"""Setting | Condition | n | Peak (%) | Final (%) | Gap (pp); the summary CSV adds the tag,
seeds and candidate sets and writes percentages."""


def build_cifar_noise_ablation(runset: RunSet) -> FamilyOutput:
    """docs/reporting.md §5.5: AEES with gradient-noise injection (more than one noise candidate)
    vs the same
    AEES with noise candidates [0]. Gap = mean(best)·100 − mean(final)·100 (pp); 2 decimals;
    bold marks the higher peak and the higher final of each pair."""
    b = Builder("cifar_noise_ablation", datasets_title("Gradient-noise ablation", runset), runset)
    pairs = noise_ablation_pairs(runset, b.out.notes, b.out.missing)
    table = NOISE_ABLATION_SPEC.table(
        "cifar_noise_ablation_table",
        "Gradient-noise injection in AEES: same configuration with noise candidates "
        "{0} (no gradient noise) and with more than one noise candidate",
        "tab:cifar_noise_ablation",
        merge=1,
    )
    items: list[ConditionRow] = []
    for ref, abl in pairs:
        where = where_label(abl)
        pair = []
        for cell, condition, tag in (
            (ref, "No gradient noise", "lronly"),
            (abl, "Gradient-noise injection", "noise"),
        ):
            st = acc_stats(cell)
            b.count(st.n, f"{where}: {condition}")
            pair.append(ConditionRow(where, cell, condition, tag, st))
        for row in NOISE_ABLATION_SPEC.block(table, pair):
            for c in row:
                if c.rank == 2:
                    c.rank = 0  # bold only, as in the thesis
        items += pair
    if pairs:
        b.out.tables.append(table)
        b.out.csvs.append(NOISE_ABLATION_SPEC.csv_table("cifar_noise_ablation_summary", items))
    return b.out

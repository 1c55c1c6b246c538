"""One builder per table family (docs/reporting.md §5.1-§5.12; docs/reporting.md §5.10 is
:mod:`aees.reporting.families.attribution`).

Every builder takes a :class:`~aees.reporting.runs.RunSet` and returns a
:class:`FamilyOutput`: tables (each written as LaTeX, Markdown and CSV), numeric summary CSVs,
the cells that had no runs (``missing``) and notes (ambiguous or skipped inputs).

Rows are chosen by *what a run was* (:class:`Sel` on :class:`~aees.reporting.runs.RunInfo`),
never by file name. When several variants fit a row (say two AEES grids), the preferred one
(by the selector's preference, then most seeds, then most epochs) is used and the others are
named in a note. Ablations pair a variant with its *counterpart*: the cell whose method spec is
equal except for the ablated keys, on the same task, setting and epochs.

Conventions (docs/reporting.md §4): accuracies ×100 in %, drop in pp, "m ± s" with the sample SD;
best
in bold and second best in italics within a comparison block (higher is better for accuracies,
lower for drop). Digits runs are reported with the CIFAR families (prefix ``digits_``).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from aees.reporting.families.ablation import noise_ablation_pairs
from aees.reporting.families.checkpointing import build_checkpointing
from aees.reporting.families.cifar_clean import CLEAN_METHODS, build_cifar_clean
from aees.reporting.families.cifar_noise_ablation import build_cifar_noise_ablation
from aees.reporting.families.cifar_noisy import NOISY_METHODS, build_cifar_noisy
from aees.reporting.families.cifar_noisy_fixed_lr_ablation import (
    build_cifar_noisy_fixed_lr_ablation,
)
from aees.reporting.families.common import FamilyOutput
from aees.reporting.families.compute_overhead import (
    DECOMPOSITION_COLUMNS,
    build_compute_overhead,
    decomposition_config,
    overhead_cells,
)
from aees.reporting.families.instability_penalty_ablation import build_instability_penalty_ablation
from aees.reporting.families.nlp import (
    NLP_AXIS,
    NLP_MAIN,
    build_nlp,
    method_label,
    nlp_groups,
    nlp_key,
)
from aees.reporting.families.nlp_noise_ablation import build_nlp_noise_ablation, sigma_ablation_rows
from aees.reporting.families.other_tasks import build_other_tasks
from aees.reporting.families.peers import build_peers
from aees.reporting.families.trend_context_ablation import build_trend_context_ablation
from aees.reporting.runs import RunSet
from aees.reporting.select import AccStats, Sel, acc_stats, choose_cell, pick, prefix

__all__ = [
    "CLEAN_METHODS",
    "DECOMPOSITION_COLUMNS",
    "FAMILIES",
    "NLP_AXIS",
    "NLP_MAIN",
    "NOISY_METHODS",
    "AccStats",
    "Family",
    "FamilyOutput",
    "Sel",
    "acc_stats",
    "choose_cell",
    "decomposition_config",
    "method_label",
    "nlp_groups",
    "nlp_key",
    "noise_ablation_pairs",
    "overhead_cells",
    "pick",
    "prefix",
    "sigma_ablation_rows",
]

# --------------------------------------------------------------------------------------------
# Registry
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Family:
    """A table family: its builder and the thesis default input and output paths."""

    name: str
    title: str
    builder: Callable[[RunSet], FamilyOutput]
    runs_root: str
    out_dir: str


_T = "reports/tables"
FAMILIES: dict[str, Family] = {
    f.name: f
    for f in (
        Family(
            "cifar_clean",
            "Clean labels, CIFAR-100 / Digits (§5.1)",
            build_cifar_clean,
            "results/cifar_clean",
            f"{_T}/cifar_clean",
        ),
        Family(
            "cifar_noisy",
            "Noisy labels, CIFAR-100 / Digits (§5.2)",
            build_cifar_noisy,
            "results/cifar_noisy",
            f"{_T}/cifar_noisy",
        ),
        Family(
            "cifar_noisy_fixed_lr_ablation",
            "Noisy labels, fixed-LR ablation, CIFAR-100 / Digits (§5.3)",
            build_cifar_noisy_fixed_lr_ablation,
            "results/cifar_noisy",
            f"{_T}/cifar_noisy",
        ),
        Family(
            "checkpointing",
            "Best-epoch diagnostics (§5.4)",
            build_checkpointing,
            "results/cifar_noisy",
            f"{_T}/checkpointing",
        ),
        Family(
            "cifar_noise_ablation",
            "Gradient-noise ablation, CIFAR-100 / Digits (§5.5)",
            build_cifar_noise_ablation,
            "results/cifar_noise_ablation",
            f"{_T}/cifar_ablation",
        ),
        Family(
            "compute_overhead",
            "Compute overhead (§5.6)",
            build_compute_overhead,
            "results/compute_overhead",
            f"{_T}/compute_overhead",
        ),
        Family(
            "instability_penalty_ablation",
            "Instability-penalty ablation (§5.7)",
            build_instability_penalty_ablation,
            "results",
            f"{_T}/ablations",
        ),
        Family(
            "trend_context_ablation",
            "Trend-context ablation (§5.7)",
            build_trend_context_ablation,
            "results",
            f"{_T}/ablations",
        ),
        Family(
            "nlp",
            "NLP main, axis and detailed (§5.8)",
            build_nlp,
            "results",
            f"{_T}/nlp_tables",
        ),
        Family(
            "nlp_noise_ablation",
            "NLP gradient-noise ablation (§5.9)",
            build_nlp_noise_ablation,
            "results",
            f"{_T}/nlp_noise_ablation",
        ),
        Family(
            "peers",
            "Peers: schedule-free and LR-free optimizers (§5.11)",
            build_peers,
            "results",
            f"{_T}/peers",
        ),
        Family(
            "other_tasks",
            "Other tasks, per dataset and model (§5.12)",
            build_other_tasks,
            "results",
            f"{_T}/other_tasks",
        ),
    )
}

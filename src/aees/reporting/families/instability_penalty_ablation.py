"""Table family `instability_penalty_ablation` (docs/reporting.md §5.7): λ_inst > 0 vs 0."""

from __future__ import annotations

from aees.reporting.families.ablation import ablation_pairs, delta_table
from aees.reporting.families.common import Builder, FamilyOutput
from aees.reporting.runs import RunSet


def build_instability_penalty_ablation(runset: RunSet) -> FamilyOutput:
    """docs/reporting.md §5.7: AEES with an instability penalty λ_inst > 0 vs the same AEES with
    λ_inst = 0."""
    b = Builder("instability_penalty_ablation", "Instability-penalty ablation", runset)
    pairs = ablation_pairs(
        runset,
        runset.family_tasks("cifar", "nlp"),
        lambda i: i.kind == "aees" and i.instability_lambda > 0,
        {"reward_instability_lambda": "0"},
        notes=b.out.notes,
        missing=b.out.missing,
    )
    delta_table(
        b,
        "instability_penalty_ablation_table",
        "Instability penalty in the AEES reward: λ_inst = 0 vs λ_inst > 0 (Δ = penalty − none)",
        "tab:instability-penalty-ablation",
        ("No penalty", "Penalty"),
        pairs,
    )
    return b.out

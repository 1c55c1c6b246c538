"""Table family docs/reporting.md §5.7 (`trend_context_ablation`): trend context vs no context."""

from __future__ import annotations

from aees.reporting.families.ablation import ablation_pairs, delta_table
from aees.reporting.families.common import Builder, FamilyOutput
from aees.reporting.runs import RunSet

_CONTEXT_KEYS = ("context_mode", "context_trend_window", "context_trend_epsilon")


def build_trend_context_ablation(runset: RunSet) -> FamilyOutput:
    """docs/reporting.md §5.7: AEES with the bucketed trend context vs the same AEES without
    context."""
    b = Builder("trend_context_ablation", "Trend-context ablation", runset)
    pairs = ablation_pairs(
        runset,
        runset.family_tasks("cifar", "nlp"),
        lambda i: i.kind == "aees" and i.context_mode == "trend",
        {"context_mode": "none"},
        _CONTEXT_KEYS[1:],
        notes=b.out.notes,
        missing=b.out.missing,
    )
    delta_table(
        b,
        "trend_context_ablation_table",
        "Trend context in AEES: context-free vs trend context (Δ = trend − none)",
        "tab:trend-context-ablation",
        ("Context-free", "Trend context"),
        pairs,
    )
    return b.out

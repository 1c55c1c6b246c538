"""Table family docs/reporting.md §5.11 (`peers`): AEES against the LR-free and schedule-free
optimizers users would pick instead (schedule-free AdamW/SGD, Prodigy, D-Adaptation Adam).

A *peer run* is a run whose optimizer has peer settings
(:data:`aees.results.identity.PEER_SETTINGS`): alone (kind
baseline) or with AEES on top (kind aees, more than one LR candidate). Per (task, dataset ·
model, label-noise setting, epochs) group with peer runs: the main table (reference rows
AdamW, AdamW + cosine, AEES-LR on AdamW, then every peer cell and every AEES-on-peer cell;
best bold over the whole table, whoever it is), and every AEES row against every non-AEES
row on shared seeds (docs/reporting.md §4.3, :func:`aees.reporting.stats.compare_seed_maps`)
with the wins per seed.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from aees.reporting.families.common import (
    ACC_COLUMNS,
    AccRow,
    Builder,
    FamilyOutput,
    label_column,
    text_column,
)
from aees.reporting.render import MISSING, Column, TableSpec, fmt_pvalue, slug_stems
from aees.reporting.runs import (
    Cell,
    RunInfo,
    RunSet,
    setting_label,
)
from aees.reporting.select import AccStats, Sel, acc_stats, aees_sel, num_token, pick
from aees.reporting.stats import PairedComparison, compare_seed_maps
from aees.results.identity import PEER_SETTINGS

__all__ = [
    "PeerGroup",
    "PeerRow",
    "build_peers",
    "is_peer",
    "peer_groups",
    "peer_hyperparameters",
    "peer_label",
]


_SCHED = {"none": "", "cosine": " + cosine", "linear": " + linear", "warmup_linear": " + WL"}


def is_peer(info: RunInfo) -> bool:
    """True for a run of a schedule-free / LR-free peer optimizer (one with its own settings in
    :data:`aees.results.identity.PEER_SETTINGS`)."""
    return info.optimizer in PEER_SETTINGS


def _flatten(prefix: str, value: Any, out: dict[str, Any]) -> None:
    if isinstance(value, dict):
        for k in sorted(value):
            _flatten(f"{prefix}.{k}" if prefix else str(k), value[k], out)
    elif value is not None:
        out[prefix] = value


def peer_hyperparameters(info: RunInfo) -> dict[str, Any]:
    """The peer's own hyperparameters from the method spec (the keys
    :data:`aees.results.identity.PEER_SETTINGS` lists for its optimizer, and ``protocol`` for a
    run off the thesis training protocol; nested objects flattened as ``a.b``), sorted by key."""
    own = {*PEER_SETTINGS.get(str(info.spec.get("optimizer")), {}), "protocol"}
    out: dict[str, Any] = {}
    for key, value in sorted(info.spec.items()):
        if key in own:
            _flatten(key, value, out)
    return out


def _value_text(value: Any) -> str:
    if isinstance(value, bool):
        return str(value).lower()
    try:
        return num_token(float(value))
    except (TypeError, ValueError):
        return str(value)


_HP_PREFIXES = ("sf_", "prodigy_", "dadapt_")


def _short(key: str) -> str:
    """``prodigy_d_coef`` -> ``d_coef`` (the optimizer is already in the label)."""
    return next((key[len(p) :] for p in _HP_PREFIXES if key.startswith(p)), key)


def peer_label(info: RunInfo) -> str:
    """``Prodigy (d_coef=0.5)``, ``AEES-LR on Prodigy + cosine``, ``AdamW``, ``AEES-LR on
    AdamW``: the optimizer, its hyperparameters when the spec names any, the schedule."""
    opt = info.optimizer_label
    hp = peer_hyperparameters(info) if is_peer(info) else {}
    if hp:
        opt += " (" + ", ".join(f"{_short(k)}={_value_text(v)}" for k, v in hp.items()) + ")"
    sched = _SCHED.get(info.scheduler, f" + {info.scheduler}")
    if info.kind == "aees":
        axes = {"lr": "LR", "noise": "Noise", "dual": "Dual"}.get(info.axes or "", "")
        return f"AEES-{axes} on {opt}{sched}" if axes else f"AEES on {opt}{sched}"
    return opt + sched


# --------------------------------------------------------------------------------------------
# Groups and rows
# --------------------------------------------------------------------------------------------


@dataclass
class PeerGroup:
    """The cells of one (task, dataset · model, setting, epochs) with peer runs."""

    task: str
    group: str
    setting: str
    epochs: int
    cells: list[Cell]
    key: str = ""
    """``digits_sym40_10ep``, ``image_my-data-resnet18_clean_5ep``: the file-name stem
    (:func:`~aees.reporting.render.slug_stems`, unique within the report)."""

    @property
    def title(self) -> str:
        group = f" ({self.group})" if self.group else ""
        task = self.cells[0].info.task_label if self.cells else self.task
        return f"{task}{group}, {setting_label(self.setting)}, {self.epochs} ep"


def peer_groups(runset: RunSet) -> list[PeerGroup]:
    """Every (task, dataset · model, setting, epochs) that has a peer run, in report order."""
    keys = dict.fromkeys(
        (c.task, c.group, c.setting, c.epochs) for c in runset.cells if is_peer(c.info)
    )
    stems = slug_stems([(t, g, s, f"{e}ep") for t, g, s, e in keys])
    return [
        PeerGroup(
            t,
            g,
            s,
            e,
            [c for c in runset.select(t, s, g) if c.epochs == e],
            stems[(t, g, s, f"{e}ep")],
        )
        for t, g, s, e in keys
    ]


_MULTI_LR = ("lr", "dual")


def _aees_on(info: RunInfo) -> bool:
    """AEES with more than one LR candidate, no context and no penalty (the main AEES)."""
    return (
        info.kind == "aees"
        and info.axes in _MULTI_LR
        and info.context_mode == "none"
        and not info.instability_lambda
    )


REFERENCES = (
    Sel("AdamW", "baseline"),
    Sel("AdamW + cosine", "baseline", "cosine"),
    aees_sel("AEES-LR on AdamW", prefer_axes=_MULTI_LR),
)


@dataclass(frozen=True)
class PeerRow:
    """One method row: its label, whether it is AEES, and its statistics."""

    label: str
    aees: bool
    st: AccStats


def peer_rows(group: PeerGroup, b: Builder | None = None) -> list[PeerRow]:
    """Reference rows (AdamW, AdamW + cosine, AEES-LR on AdamW; a missing one counted when
    ``b`` is given), then every peer cell alone, then every AEES-on-peer cell."""
    notes: list[str] = [] if b is None else b.out.notes
    where = group.title
    rows = []
    for sel in REFERENCES:
        cells = [c for c in group.cells if sel.kind != "aees" or _aees_on(c.info)]
        cell = pick(cells, sel, optimizer="adamw", where=where, notes=notes)
        st = acc_stats(cell)
        if b is not None:
            b.count(st.n, f"{where}: {sel.label}")
        rows.append(PeerRow(sel.label, sel.kind == "aees", st))
    peers = [c for c in group.cells if is_peer(c.info)]
    for cell in [c for c in peers if c.info.kind == "baseline"] + [
        c for c in peers if _aees_on(c.info)
    ]:
        st = acc_stats(cell)
        if b is not None:
            b.count(st.n, f"{where}: {peer_label(cell.info)}")
            b.note_duplicates(cell)
        rows.append(PeerRow(peer_label(cell.info), cell.info.kind == "aees", st))
    labels = [r.label for r in rows]
    # two cells with one label (hyperparameters the spec does not name): add the variant id
    return [
        PeerRow(f"{r.label} [{r.st.cell.variant[-8:]}]", r.aees, r.st)
        if labels.count(r.label) > 1 and r.st.cell is not None
        else r
        for r in rows
    ]


# --------------------------------------------------------------------------------------------
# Paired comparisons
# --------------------------------------------------------------------------------------------

_METRICS = (("best", "max"), ("final", "max"), ("drop", "min"))


@dataclass(frozen=True)
class PeerComparison:
    """AEES row ``method`` minus non-AEES row ``reference`` on their shared seeds."""

    method: str
    reference: str
    seeds: list[int]
    cmp: dict[str, PairedComparison]
    wins: dict[str, int]
    per_seed: dict[str, dict[int, tuple[float, float]]]


def _per_seed(st: AccStats, metric: str) -> dict[int, float]:
    return {s: getattr(m, metric) for s, m in st.per_seed.items()}


WIN_TOLERANCE = 1e-9
"""A seed is a win only when AEES is better by more than this (a fraction): equal
accuracies computed two ways (drop = best − final) differ in the last bits."""


def compare_rows(aees: PeerRow, ref: PeerRow) -> PeerComparison:
    """docs/reporting.md §4.3 on shared seeds for best, final and drop (×100); a win is a seed
    where AEES is higher (best, final) or lower (drop) by more than :data:`WIN_TOLERANCE`."""
    cmp, wins, per_seed = {}, {}, {}
    seeds: list[int] = []
    for metric, better in _METRICS:
        a, r = _per_seed(aees.st, metric), _per_seed(ref.st, metric)
        seeds, cmp[metric] = compare_seed_maps(a, r, scale=100.0)
        sign = 1.0 if better == "max" else -1.0
        wins[metric] = sum(sign * (a[s] - r[s]) > WIN_TOLERANCE for s in seeds)
        per_seed[metric] = {s: (a[s], r[s]) for s in seeds}
    return PeerComparison(aees.label, ref.label, seeds, cmp, wins, per_seed)


def _delta(c: PairedComparison) -> str:
    if not c.n:
        return MISSING
    return f"{_signed(c.diff_mean)} [{_signed(c.diff_ci_low)}, {_signed(c.diff_ci_high)}]"


def _signed(value: float) -> str:
    """``+1.25`` / ``-0.37``; a value that rounds to zero is ``+0.00`` (never ``-0.00``)."""
    rounded = round(value, 2)
    return f"{rounded + 0.0 if rounded else 0.0:+.2f}"


def _delta_column(metric: str, header: str) -> Column:
    return Column(
        header,
        lambda r: _delta(r.cmp[metric]),
        (f"d_{metric}_mean_pp", f"d_{metric}_ci_low_pp", f"d_{metric}_ci_high_pp"),
        lambda r: (r.cmp[metric].diff_mean, r.cmp[metric].diff_ci_low, r.cmp[metric].diff_ci_high),
    )


def _p_column(metric: str) -> Column:
    return Column(
        "p",
        lambda r: fmt_pvalue(r.cmp[metric].p_value),
        (f"p_{metric}",),
        lambda r: (r.cmp[metric].p_value,),
    )


def _wins_column(metric: str, header: str) -> Column:
    return Column(
        header,
        lambda r: f"{r.wins[metric]}/{len(r.seeds)}" if r.seeds else MISSING,
        (f"wins_{metric}",),
        lambda r: (r.wins[metric],),
    )


VS_SPEC = TableSpec(
    (
        text_column("AEES", "method", lambda r: r.method),
        text_column("Reference", "reference", lambda r: r.reference),
        Column("n", lambda r: str(len(r.seeds)), ("n",), lambda r: (len(r.seeds),)),
        text_column(None, "seeds", lambda r: " ".join(map(str, r.seeds))),
        _delta_column("best", "ΔBest (pp) [95% CI]"),
        _p_column("best"),
        _wins_column("best", "Wins best"),
        _delta_column("final", "ΔFinal (pp) [95% CI]"),
        _p_column("final"),
        _wins_column("final", "Wins final"),
        _delta_column("drop", "ΔDrop (pp) [95% CI]"),
        _p_column("drop"),
        _wins_column("drop", "Wins drop"),
    )
)
"""AEES | Reference | n | ΔBest [CI] | p | Wins | ΔFinal ... | ΔDrop ... (AEES minus the
reference on shared seeds; a win on drop is a lower drop); the CSV adds the seeds."""

MAIN_SPEC = TableSpec(
    (
        label_column("Method", "method"),
        *ACC_COLUMNS,
        text_column(None, "variant", lambda r: r.st.cell.variant if r.st.cell else ""),
    )
)
"""Method | n | Best | Final | Drop | Peak epoch; the summary CSV adds the variant id."""


def _or_none(value: float) -> float | None:
    return None if math.isnan(value) else value


def _comparison_json(group: PeerGroup, comparisons: list[PeerComparison]) -> dict[str, Any]:
    return {
        "group": {
            "task": group.task,
            "dataset_model": group.group,
            "setting": group.setting,
            "epochs": group.epochs,
        },
        "bootstrap": {"resamples": 10_000, "seed": 0, "ci": [2.5, 97.5], "scale": 100},
        "comparisons": [
            {
                "method": c.method,
                "reference": c.reference,
                "seeds": c.seeds,
                "wins": c.wins,
                **{
                    m: {
                        "diff_mean_pp": c.cmp[m].diff_mean if c.seeds else None,
                        "ci_pp": [c.cmp[m].diff_ci_low, c.cmp[m].diff_ci_high] if c.seeds else None,
                        "p": _or_none(c.cmp[m].p_value),
                        "per_seed": {
                            str(s): {"aees": v[0], "reference": v[1]}
                            for s, v in c.per_seed[m].items()
                        },
                    }
                    for m, _ in _METRICS
                },
            }
            for c in comparisons
        ],
    }


def build_peers(runset: RunSet) -> FamilyOutput:
    """docs/reporting.md §5.11: per group with peer runs, ``<key>_peers_main_table`` (every
    method, best bold over the table), ``<key>_peers_vs_table`` (every AEES row minus every
    non-AEES row on shared seeds: Δ with the bootstrap CI, paired-t p, wins per seed), the
    summary CSVs and ``<key>_peers_comparisons.json`` with the per-seed values."""
    b = Builder("peers", "Peers: schedule-free and LR-free optimizers", runset)
    names = []
    for group in peer_groups(runset):
        rows = peer_rows(group, b)
        table = MAIN_SPEC.table(
            f"{group.key}_peers_main_table",
            f"{group.title}: AEES vs schedule-free and LR-free optimizers",
            f"tab:{group.key}-peers",
        )
        MAIN_SPEC.block(table, [AccRow(r.label, r.st) for r in rows])
        b.out.tables.append(table)
        b.out.csvs.append(
            MAIN_SPEC.csv_table(f"{group.key}_peers_summary", [r for r in rows if r.st.n])
        )
        comparisons = [
            compare_rows(a, r)
            for a in rows
            if a.aees and a.st.n
            for r in rows
            if not r.aees and r.st.n
        ]
        vs = VS_SPEC.table(
            f"{group.key}_peers_vs_table",
            f"{group.title}: AEES minus each method on shared seeds",
            f"tab:{group.key}-peers-vs",
        )
        for c in comparisons:
            VS_SPEC.add(vs, c)
            if not c.seeds:
                b.out.missing.append(f"{group.title}: {c.method} vs {c.reference}: no shared seeds")
        if comparisons:
            b.out.tables.append(vs)
            b.out.csvs.append(VS_SPEC.csv_table(f"{group.key}_peers_vs", comparisons))
            b.out.jsons[f"{group.key}_peers_comparisons"] = _comparison_json(group, comparisons)
        names += [t.name for t in (table, vs) if t in b.out.tables]
    b.out.all_tex["all_peers_tables"] = names
    return b.out

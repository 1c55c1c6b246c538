"""The open-loop attribution-control family (docs/reporting.md §5.10).

For every (task, label-noise regime, optimizer, epochs) with open-loop control runs
(``uniform-random`` / ``frequency-matched``, :mod:`aees.runner.open_loop`) and the matching
AEES-LR runs (no schedule, LR candidates 0.5/1/2, noise 0, λ = 0, same episode length):

* per method: n, mean and sample SD of peak (``best_val_accuracy``), final and drop
  (peak − final), in % / pp; the pooled action distribution over the seeds' ``selected_lr_values``
  and the per-seed distributions;
* AEES − control on the seeds both have: per-seed effects; when the cell is complete,
  :func:`~aees.reporting.stats.compare_paired` (bootstrap CI, 10 000 resamples, seed 0; paired
  t-test) and the AEES win count (effect > 0; < 0 for drop);
* a cell is complete when every expected seed (CIFAR-100: 0-4; digits: every seed any method
  has) has a valid run of all three methods; otherwise it is marked with the missing run ids
  (``<task>-<regime>_<optimizer>_<method>_seed<s>``) and invalid runs, and its comparisons are
  null. A control run is invalid unless its ``config.open_loop_policy`` names the policy and its
  planned, executed and logged LR sequences agree; an AEES run unless its trace is complete.

Outputs (prefix ``cifar`` or ``digits``): ``<prefix>_attribution_controls_summary.json`` and
``.csv`` (the thesis columns) and the ``<prefix>_attribution_controls`` table (LaTeX, Markdown,
CSV). :func:`aees.reporting.commands.attribution_command` is
``scripts/tables/aggregate_cifar_attribution_controls.py``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from aees.reporting.families.common import FamilyOutput
from aees.reporting.render import (
    MISSING,
    Column,
    Table,
    TableSpec,
    fmt_num,
    fmt_pm,
    fmt_pvalue,
    fmt_signed,
)
from aees.reporting.runs import (
    Cell,
    Run,
    RunSet,
    setting_label,
)
from aees.reporting.select import Sel, choose_cell, pick, prefix
from aees.reporting.stats import (
    BOOTSTRAP_RESAMPLES,
    BOOTSTRAP_SEED,
    Summary,
    compare_paired,
    mean_sd,
    run_metrics,
)
from aees.results.traces import LR_MULTIPLIERS, trace_problem

__all__ = [
    "CSV_HEADER",
    "FAMILY",
    "METHODS",
    "build_attribution_controls",
]

FAMILY = "cifar_attribution_controls"
OUT_DIR = "reports/tables/cifar_attribution_controls"
#: method key -> (run kind, label)
METHODS = {
    "aees": ("aees", "AEES"),
    "uniform-random": ("uniform-open-loop", "Uniform random"),
    "frequency-matched": ("frequency-open-loop", "Frequency matched"),
}
CONTROLS = ("uniform-random", "frequency-matched")
CIFAR_SEEDS = (0, 1, 2, 3, 4)
_ARMS = tuple(str(float(v)) for v in LR_MULTIPLIERS)
_CSV_OPTIMIZER = {"adamw": "AdamW", "sgd": "SGD"}
_AEES_SEL = Sel("AEES", "aees", lr=LR_MULTIPLIERS, noise=(0.0,))


def _num(value: float | None) -> float | None:
    """JSON-safe number (the summary is written with ``allow_nan=False``): None for None,
    NaN and ±inf."""
    if value is None or not math.isfinite(value):
        return None
    return float(value)


def _summary(s: Summary, scale: float = 100.0) -> dict[str, Any]:
    return {"mean": _num(s.mean * scale), "sd": _num(s.sd * scale)}


def _lr_values(run: Run) -> list[float]:
    logs = run.result.episode_logs or {}
    return [float(v) for v in logs.get("selected_lr_values") or []]


def _distribution(values: Sequence[float]) -> dict[str, Any]:
    counts = dict.fromkeys(_ARMS, 0)
    for v in values:
        key = str(float(v))
        counts[key] = counts.get(key, 0) + 1
    total = sum(counts.values())
    probs = {k: (c / total if total else None) for k, c in counts.items()}
    return {"total": total, "counts": counts, "probabilities": probs}


def control_problem(run: Run, policy: str) -> str | None:
    """Why a control run is not a valid ``policy`` run (None if it is): its
    ``open_loop_policy`` metadata, planned == executed == logged LR sequence, the episode
    count ⌈total_steps / episode_length⌉, one validation accuracy per epoch. Metadata that
    cannot be read (strings where numbers belong) makes the run invalid, never the report fail.
    """
    try:
        return _control_problem(run, policy)
    except (TypeError, ValueError, OverflowError, ZeroDivisionError) as err:
        return f"unreadable open_loop_policy ({type(err).__name__}: {err})"


def _control_problem(run: Run, policy: str) -> str | None:
    result = run.result
    meta = result.config.get("open_loop_policy")
    if not isinstance(meta, dict):
        return "no config.open_loop_policy"
    if meta.get("policy") != policy:
        return f"open_loop_policy.policy is {meta.get('policy')!r}"
    planned = [float(v) for v in meta.get("planned_lr_multipliers") or []]
    executed = [float(v) for v in meta.get("executed_lr_multipliers") or []]
    if not planned or planned != executed or planned != _lr_values(run):
        return "planned, executed and logged LR sequences differ"
    length = result.config.get("episode_length")
    if isinstance(length, int) and length > 0 and result.total_steps > 0:
        expected = -(-result.total_steps // length)
        if len(planned) != expected:
            return f"{len(planned)} planned episodes, expected {expected}"
    if len(result.val_accuracies) != result.total_epochs:
        return f"{len(result.val_accuracies)} of {result.total_epochs} epochs"
    return None


def aees_problem(run: Run) -> str | None:
    """Why an AEES run is not a complete trace (``open_loop.trace_problem``)."""
    result = run.result
    spe = result.config.get("steps_per_epoch")
    if not isinstance(spe, int) or spe <= 0:
        if result.total_epochs <= 0 or result.total_steps % result.total_epochs:
            return "steps per epoch unknown"
        spe = result.total_steps // result.total_epochs
    try:
        return trace_problem(result, spe)
    except (KeyError, TypeError, ValueError, IndexError, OverflowError, ZeroDivisionError) as err:
        return f"unreadable trace ({type(err).__name__}: {err})"


@dataclass
class _Group:
    task: str
    setting: str
    epochs: int
    optimizer: str
    cells: dict[str, Cell | None]


def _groups(runset: RunSet, notes: list[str]) -> list[_Group]:
    """One group per (task, setting, epochs, optimizer) that has open-loop control runs."""
    kinds = {METHODS[c][0]: c for c in CONTROLS}
    keys: dict[tuple[str, str, int, str], None] = {}
    for cell in runset.cells:
        if cell.info.is_cifar_like and cell.info.kind in kinds:
            keys.setdefault((cell.task, cell.setting, cell.epochs, cell.info.optimizer), None)
    out = []
    for task, setting, epochs, opt in keys:
        where = f"{task}/{setting}/{epochs}ep/{opt}"
        pool = [c for c in runset.select(task, setting) if c.epochs == epochs]
        cells: dict[str, Cell | None] = {}
        for method in CONTROLS:
            kind = METHODS[method][0]
            fitting = [c for c in pool if c.info.kind == kind and c.info.optimizer == opt]
            cells[method] = choose_cell(fitting, None, f"{where}: {method}", notes)
        lengths = {c.info.episode_length for c in cells.values() if c is not None}
        aees_pool = [c for c in pool if c.info.episode_length in lengths]
        cells["aees"] = pick(aees_pool, _AEES_SEL, optimizer=opt, where=where, notes=notes)
        out.append(_Group(task, setting, epochs, opt, {m: cells[m] for m in METHODS}))
    return out


def _run_id(group: _Group, method: str, seed: int) -> str:
    return f"{group.task}-{group.setting}_{group.optimizer}_{method}_seed{seed}"


def _cell_summary(group: _Group) -> dict[str, Any]:
    """The JSON cell: methods, comparisons, completeness."""
    valid: dict[str, dict[int, Run]] = {}
    invalid: list[dict[str, Any]] = []
    for method, cell in group.cells.items():
        valid[method] = {}
        for run in cell.seed_runs() if cell is not None else []:
            problem = aees_problem(run) if method == "aees" else control_problem(run, method)
            if problem is None:
                valid[method][run.info.seed] = run
            else:
                rid = _run_id(group, method, run.info.seed)
                invalid.append({"run_id": rid, "path": str(run.path), "problem": problem})
    if group.task == "cifar100":
        expected = list(CIFAR_SEEDS)
    else:
        expected = sorted({s for m in valid.values() for s in m} | {_seed(i) for i in invalid})
    missing = [
        _run_id(group, method, s) for method in METHODS for s in expected if s not in valid[method]
    ]
    complete = not missing and not invalid and bool(expected)
    methods: dict[str, Any] = {}
    metrics: dict[str, dict[int, Any]] = {}
    for method, runs in valid.items():
        per = {s: run_metrics(r.result) for s, r in sorted(runs.items())}
        metrics[method] = per
        pooled = [v for r in runs.values() for v in _lr_values(r)]
        cell = group.cells[method]
        methods[method] = {
            "label": METHODS[method][1],
            "variant": cell.variant if cell is not None else None,
            "n": len(per),
            "seeds": sorted(per),
            "peak_pct": _summary(mean_sd([m.best for m in per.values()])),
            "final_pct": _summary(mean_sd([m.final for m in per.values()])),
            "drop_pp": _summary(mean_sd([m.drop for m in per.values()])),
            "action_distribution": _distribution(pooled),
            "per_seed": {
                str(s): {
                    "peak_pct": m.best * 100,
                    "final_pct": m.final * 100,
                    "drop_pp": m.drop * 100,
                    "action_distribution": _distribution(_lr_values(runs[s])),
                    "path": str(runs[s].path),
                }
                for s, m in per.items()
            },
        }
    comparisons = {
        f"aees_minus_{c.replace('-', '_')}": _comparison(metrics["aees"], metrics[c], complete)
        for c in CONTROLS
    }
    return {
        "task": group.task,
        "noise_regime": group.setting,
        "optimizer": group.optimizer,
        "epochs": group.epochs,
        "expected_seeds": expected,
        "complete": complete,
        "missing_run_ids": missing,
        "invalid_runs": invalid,
        "methods": methods,
        "comparisons": comparisons,
    }


def _seed(item: dict[str, Any]) -> int:
    return int(str(item["run_id"]).rsplit("_seed", 1)[1])


def _comparison(aees: dict[int, Any], control: dict[int, Any], complete: bool) -> dict[str, Any]:
    shared = sorted(set(aees) & set(control))
    per_seed = {
        str(s): {
            "peak_pp": (aees[s].best - control[s].best) * 100,
            "final_pp": (aees[s].final - control[s].final) * 100,
            "drop_pp": (aees[s].drop - control[s].drop) * 100,
        }
        for s in shared
    }
    out: dict[str, Any] = {"seeds": shared, "per_seed_effects": per_seed}
    for metric, attr, higher in (
        ("peak", "best", True),
        ("final", "final", True),
        ("drop", "drop", False),
    ):
        if not complete or not shared:
            out[metric] = None
            continue
        a = [getattr(aees[s], attr) for s in shared]
        b = [getattr(control[s], attr) for s in shared]
        cmp = compare_paired(a, b, scale=100.0)
        diffs = [x - y for x, y in zip(a, b, strict=True)]
        out[metric] = {
            "n": cmp.n,
            "mean_diff_pp": _num(cmp.diff_mean),
            "ci_low_pp": _num(cmp.diff_ci_low),
            "ci_high_pp": _num(cmp.diff_ci_high),
            "p_value": _num(cmp.p_value),
            "aees_wins": sum(1 for d in diffs if (d > 0 if higher else d < 0)),
        }
    return out


def _pp(stats: dict[str, Any], n: int) -> str:
    if stats["mean"] is None:
        return MISSING
    return fmt_pm(Summary(n, stats["mean"], stats["sd"] if stats["sd"] is not None else 0.0))


def _diff_text(c: dict[str, Any] | None) -> str:
    if not c:
        return MISSING
    return (
        f"{fmt_signed(c['mean_diff_pp'], 2)} "
        f"[{fmt_num(c['ci_low_pp'])}, {fmt_num(c['ci_high_pp'])}]"
    )


@dataclass(frozen=True)
class _MethodRow:
    """One method of one attribution cell (a table row and a summary-CSV row)."""

    cell: dict[str, Any]
    method: str
    optimizer_label: str

    @property
    def m(self) -> dict[str, Any]:
        return self.cell["methods"][self.method]

    @property
    def comp(self) -> dict[str, Any]:
        return self.cell["comparisons"].get(f"aees_minus_{self.method.replace('-', '_')}") or {}

    def metric(self, metric: str) -> dict[str, Any] | None:
        return self.comp.get(metric)


def _regime(r: _MethodRow) -> str:
    return setting_label(r.cell["noise_regime"]) + ("" if r.cell["complete"] else " †")


def _arms(r: _MethodRow) -> str:
    if not r.m["action_distribution"]["total"]:
        return MISSING
    probs = r.m["action_distribution"]["probabilities"]
    return " / ".join(fmt_num(probs.get(a), 1, 100) for a in _ARMS)


def _wins(r: _MethodRow) -> str:
    peak, final = r.metric("peak"), r.metric("final")
    if peak and final:
        return f"{peak['aees_wins']}/{peak['n']} · {final['aees_wins']}/{final['n']}"
    return MISSING


def _stat_column(header: str, stat: str, key: str, unit: str) -> Column:
    return Column(
        header,
        lambda r: _pp(r.m[stat], r.m["n"]),
        (f"{key}_mean_{unit}", f"{key}_sd_{unit}"),
        lambda r: (r.m[stat]["mean"], r.m[stat]["sd"]),
    )


def _diff_column(header: str, metric: str) -> Column:
    return Column(
        header,
        lambda r: _diff_text(r.metric(metric)),
        tuple(f"aees_minus_method_{metric}_{part}" for part in ("pp", "ci_low_pp", "ci_high_pp")),
        lambda r: tuple(
            (r.metric(metric) or {}).get(k) for k in ("mean_diff_pp", "ci_low_pp", "ci_high_pp")
        ),
    )


def _p_column(metric: str) -> Column:
    return Column(
        "p",
        lambda r: fmt_pvalue(r.metric(metric)["p_value"]) if r.metric(metric) else MISSING,  # type: ignore[index]
    )


ATTRIBUTION_SPEC = TableSpec(
    (
        Column("Regime", _regime, ("noise_regime",), lambda r: (r.cell["noise_regime"],), "l"),
        Column(
            "Optimizer",
            lambda r: r.optimizer_label,
            ("optimizer",),
            lambda r: (_CSV_OPTIMIZER.get(r.cell["optimizer"], r.cell["optimizer"]),),
            "l",
        ),
        Column("Method", lambda r: METHODS[r.method][1], ("method",), lambda r: (r.method,), "l"),
        Column(None, csv=("complete",), values=lambda r: (r.cell["complete"],)),
        Column("n", lambda r: str(r.m["n"]), ("n",), lambda r: (r.m["n"],)),
        _stat_column("Peak (%)", "peak_pct", "peak", "pct"),
        _stat_column("Final (%)", "final_pct", "final", "pct"),
        _stat_column("Drop (pp)", "drop_pp", "drop", "pp"),
        Column(
            "×0.5 / ×1 / ×2 (%)",
            _arms,
            tuple(f"action_p_{a}" for a in _ARMS),
            lambda r: tuple(r.m["action_distribution"]["probabilities"].get(a) for a in _ARMS),
            "c",
        ),
        _diff_column("Δ Peak (pp)", "peak"),
        _p_column("peak"),
        _diff_column("Δ Final (pp)", "final"),
        _p_column("final"),
        Column(
            "AEES wins (peak/final)",
            _wins,
            ("aees_peak_wins_out_of_5", "aees_final_wins_out_of_5"),
            lambda r: tuple((r.metric(k) or {}).get("aees_wins") for k in ("peak", "final")),
            "c",
        ),
        Column(
            None, csv=("missing_run_ids",), values=lambda r: (";".join(r.cell["missing_run_ids"]),)
        ),
    )
)
"""Regime | Optimizer | Method | n | Peak | Final | Drop | arm shares | Δ Peak [CI] | p |
Δ Final [CI] | p | AEES wins, one row per method of each cell; the summary CSV writes the
raw regime, the completeness flag, the numbers and the missing run ids."""

CSV_HEADER = ATTRIBUTION_SPEC.csv_header()
"""The summary CSV's columns (from :data:`ATTRIBUTION_SPEC`)."""


def _rows(cells: list[dict[str, Any]], runset: RunSet) -> list[_MethodRow]:
    return [
        _MethodRow(cell, method, runset.optimizer_label(cell["optimizer"]))
        for cell in cells
        for method in METHODS
    ]


def _table(task: str, cells: list[dict[str, Any]], runset: RunSet) -> Table:
    name = f"{prefix(task)}_attribution_controls"
    table = ATTRIBUTION_SPEC.table(
        name,
        f"{runset.task_label(task)}: AEES-LR vs reward-free "
        "open-loop controls (uniform random, frequency matched); mean ± SD over seeds, "
        "AEES − control in pp with 95% bootstrap CI and paired t-test p; † incomplete cell.",
        f"tab:{name}",
        merge=2,
    )
    for row in _rows(cells, runset):
        ATTRIBUTION_SPEC.add(table, row)
    return table


def build_attribution_controls(runset: RunSet) -> FamilyOutput:
    """The docs/reporting.md §5.10 family: JSON + CSV summaries and a table per CIFAR-style task."""
    out = FamilyOutput(FAMILY, "Open-loop attribution controls (§5.10)")
    cells_by_task: dict[str, list[dict[str, Any]]] = {}
    for group in _groups(runset, out.notes):
        cell = _cell_summary(group)
        cells_by_task.setdefault(group.task, []).append(cell)
        out.populated += 1
        where = f"{group.task}/{group.setting}/{group.epochs}ep/{group.optimizer}"
        if cell["missing_run_ids"]:
            out.missing.append(f"{where}: missing {', '.join(cell['missing_run_ids'])}")
        for bad in cell["invalid_runs"]:
            out.missing.append(
                f"{where}: invalid {bad['run_id']} ({bad['path']}): {bad['problem']}"
            )
    for task, cells in cells_by_task.items():
        stem = f"{prefix(task)}_attribution_controls_summary"
        out.jsons[stem] = {
            "schema_version": 1,
            "task": task,
            "bootstrap": {
                "type": "paired percentile bootstrap of the mean difference",
                "resamples": BOOTSTRAP_RESAMPLES,
                "seed": BOOTSTRAP_SEED,
                "interval_percentiles": [2.5, 97.5],
            },
            "complete": all(c["complete"] for c in cells),
            "cells": cells,
        }
        out.csvs.append(ATTRIBUTION_SPEC.csv_table(stem, _rows(cells, runset)))
        out.tables.append(_table(task, cells, runset))
    return out

"""Row selection shared by the table families and the figures: :class:`Sel` (which cells
qualify for a row), :func:`pick` / :func:`choose_cell` (the preferred cell, a note naming the
others), :func:`counterpart` (the ablation partner) and :func:`acc_stats` (per-cell accuracy
statistics).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from aees.reporting.runs import Cell, RunInfo, RunSet
from aees.reporting.stats import RunMetrics, Summary, mean_sd, run_metrics

# --------------------------------------------------------------------------------------------
# Selection
# --------------------------------------------------------------------------------------------

WL = "warmup_linear"


@dataclass(frozen=True)
class Sel:
    """A table row: which cells qualify, and which is preferred when several do.

    ``kind``: baseline / aees / fixed / random. ``scheduler``: the LR schedule. ``axes``
    (aees/random): required multi-candidate axes, or None for any (ranked by
    ``prefer_axes``). ``lr`` / ``noise``: exact candidate lists. ``context``: the required
    context mode, or None for any (``none`` preferred). ``penalty_zero``: AEES with
    λ_inst = 0 only (the main runs; the penalty ablation has its own family).
    """

    label: str
    kind: str
    scheduler: str = "none"
    axes: str | None = None
    prefer_axes: tuple[str, ...] = ("lr", "dual", "noise")
    lr: tuple[float, ...] | None = None
    noise: tuple[float, ...] | None = None
    context: str | None = "none"
    penalty_zero: bool = True

    def matches(self, info: RunInfo) -> bool:
        if info.kind != self.kind or info.scheduler != self.scheduler:
            return False
        if self.lr is not None and not same_values(info.lr_candidates, self.lr):
            return False
        if self.noise is not None and not same_values(info.noise_candidates, self.noise):
            return False
        if self.kind in ("aees", "random"):
            if self.axes is not None and info.axes != self.axes:
                return False
            if self.context is not None and info.context_mode != self.context:
                return False
        return not (self.kind == "aees" and self.penalty_zero and info.instability_lambda != 0)

    def preference(self, info: RunInfo) -> tuple[int, ...]:
        axes = info.axes or ""
        axis_rank = self.prefer_axes.index(axes) if axes in self.prefer_axes else 9
        return (axis_rank, 0 if info.context_mode == "none" else 1)


def same_values(a: Sequence[float], b: Sequence[float]) -> bool:
    return len(a) == len(b) and all(abs(x - y) <= 1e-9 for x, y in zip(a, b, strict=True))


def _cell_order(sel: Sel | None) -> Callable[[Cell], tuple[Any, ...]]:
    def key(cell: Cell) -> tuple[Any, ...]:
        pref = sel.preference(cell.info) if sel is not None else ()
        return (*pref, -cell.n, -cell.epochs, cell.variant)

    return key


def choose_cell(cells: list[Cell], sel: Sel | None, where: str, notes: list[str]) -> Cell | None:
    """The preferred cell; a note names the ones not used."""
    if not cells:
        return None
    ordered = sorted(cells, key=_cell_order(sel))
    if len(ordered) > 1:
        others = ", ".join(f"{c.variant} (n={c.n}, {c.epochs} ep)" for c in ordered[1:])
        notes.append(
            f"{where}: {len(ordered)} variants fit; used {ordered[0].variant} "
            f"(n={ordered[0].n}, {ordered[0].epochs} ep); not used: {others}"
        )
    return ordered[0]


def pick(
    cells: Iterable[Cell], sel: Sel, *, optimizer: str | None, where: str, notes: list[str]
) -> Cell | None:
    """The cell for row ``sel`` among ``cells`` (of one task and setting)."""
    fitting = [
        c
        for c in cells
        if sel.matches(c.info) and (optimizer is None or c.info.optimizer == optimizer)
    ]
    return choose_cell(fitting, sel, f"{where}: {sel.label}", notes)


def counterpart(
    runset: RunSet,
    cell: Cell,
    changes: dict[str, Any],
    *,
    ignore: Sequence[str] = (),
    where: str,
    notes: list[str],
) -> Cell | None:
    """The cell on the same task/setting/epochs whose method spec equals ``cell``'s with
    ``changes`` applied (keys in ``ignore`` are not compared)."""
    target = {k: v for k, v in cell.info.spec.items() if k not in ignore}
    target.update({k: v for k, v in changes.items() if k not in ignore})
    fitting = []
    for other in runset.select(cell.task, cell.setting, cell.group):
        if other is cell or other.epochs != cell.epochs:
            continue
        spec = {k: v for k, v in other.info.spec.items() if k not in ignore}
        if spec == target:
            fitting.append(other)
    return choose_cell(fitting, None, where, notes)


def prefix(task: str) -> str:
    """File-name prefix of a CIFAR-style task: ``cifar`` for CIFAR-100, else the task."""
    return "cifar" if task == "cifar100" else task


def num_token(value: float) -> str:
    return format(value, "g")


# --------------------------------------------------------------------------------------------
# Per-cell statistics and row cells
# --------------------------------------------------------------------------------------------


@dataclass
class AccStats:
    """Accuracy statistics of one cell (fractions): per-seed metrics and their summaries."""

    cell: Cell | None
    per_seed: dict[int, RunMetrics]
    best: Summary
    final: Summary
    drop: Summary
    peak: Summary

    @property
    def n(self) -> int:
        return len(self.per_seed)

    @property
    def seeds(self) -> list[int]:
        return sorted(self.per_seed)


def acc_stats(cell: Cell | None) -> AccStats:
    """best/final/drop/peak-epoch summaries over the cell's seeds (one run per seed)."""
    per_seed = {r.info.seed: run_metrics(r.result) for r in cell.seed_runs()} if cell else {}
    values = list(per_seed.values())
    return AccStats(
        cell=cell,
        per_seed=per_seed,
        best=mean_sd([m.best for m in values]),
        final=mean_sd([m.final for m in values]),
        drop=mean_sd([m.drop for m in values]),
        peak=mean_sd([m.peak_epoch for m in values]),
    )


def optimizers_in(cells: Iterable[Cell]) -> list[str]:
    found = {c.info.optimizer for c in cells}
    return [o for o in ("adamw", "sgd") if o in found] + sorted(found - {"adamw", "sgd"})


def aees_sel(label: str, scheduler: str = "none", **kw: Any) -> Sel:
    return Sel(label, "aees", scheduler, **kw)


def fixed_sel(multiplier: float, label: str | None = None) -> Sel:
    return Sel(
        label or f"Fixed ×{multiplier:.1f}", "fixed", lr=(multiplier,), noise=(0.0,), context=None
    )

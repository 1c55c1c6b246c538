"""One builder per thesis table family (``thesis-experiments.md`` §5.1-§5.9;
§5.10 is :mod:`aees.reporting.attribution`).

Every builder takes a :class:`~aees.reporting.runs.RunSet` and returns a
:class:`FamilyOutput`: tables (each written as LaTeX, Markdown and CSV), numeric summary CSVs,
the cells that had no runs (``missing``) and notes (ambiguous or skipped inputs).

Rows are chosen by *what a run was* (:class:`Sel` on :class:`~aees.reporting.runs.RunInfo`),
never by file name. When several variants fit a row (say two AEES grids), the preferred one
(by the selector's preference, then most seeds, then most epochs) is used and the others are
named in a note. Ablations pair a variant with its *counterpart*: the cell whose method spec is
equal except for the ablated keys, on the same task, setting and epochs.

Conventions (thesis §5.0): accuracies ×100 in %, drop in pp, "m ± s" with the sample SD; best
in bold and second best in italics within a comparison block (higher is better for accuracies,
lower for drop). Digits runs are reported with the CIFAR families (prefix ``digits_``).
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aees.reporting.runs import (
    CIFAR_LIKE_TASKS,
    NLP_TASKS,
    Cell,
    RunInfo,
    RunSet,
    optimizer_label,
    setting_label,
    task_label,
)
from aees.reporting.stats import (
    RunMetrics,
    Summary,
    compare_seed_maps,
    mean_sd,
    run_metrics,
    steady_state,
)
from aees.reporting.tables import (
    MISSING,
    CsvTable,
    Table,
    TCell,
    fmt_num,
    fmt_pm,
    fmt_pvalue,
    fmt_signed,
    mark_ranks,
    render_latex,
    render_markdown,
    render_table_csv,
    write_csv,
)
from aees.results import atomic_write_text

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
# Output container
# --------------------------------------------------------------------------------------------


@dataclass
class FamilyOutput:
    """What one family builder produced."""

    family: str
    title: str
    tables: list[Table] = field(default_factory=list)
    csvs: list[CsvTable] = field(default_factory=list)
    all_tex: dict[str, list[str]] = field(default_factory=dict)
    missing: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    populated: int = 0
    jsons: dict[str, Any] = field(default_factory=dict)
    """Machine-readable summaries: file stem -> JSON-ready object (``<stem>.json``)."""

    @property
    def supported(self) -> bool:
        """True when at least one row of one table has runs."""
        return self.populated > 0 and bool(self.tables)

    def write(self, out_dir: str | os.PathLike[str]) -> list[Path]:
        """Write ``<table>.tex/.md/.csv`` per table, the summary CSVs and the ``*_all.tex``
        concatenations into ``out_dir`` (atomically); returns the paths written."""
        out = Path(out_dir)
        paths: list[Path] = []
        by_name = {t.name: t for t in self.tables}
        for table in self.tables:
            paths.append(atomic_write_text(out / f"{table.name}.tex", render_latex(table)))
            paths.append(atomic_write_text(out / f"{table.name}.md", render_markdown(table)))
            paths.append(atomic_write_text(out / f"{table.name}.csv", render_table_csv(table)))
        for csv_table in self.csvs:
            paths.append(write_csv(csv_table, out))
        for stem, data in self.jsons.items():
            text = json.dumps(data, indent=2, sort_keys=False, allow_nan=False) + "\n"
            paths.append(atomic_write_text(out / f"{stem}.json", text))
        for all_name, members in self.all_tex.items():
            text = "\n".join(
                f"% ---- {name} ----\n{render_latex(by_name[name])}"
                for name in members
                if name in by_name
            )
            if text:
                paths.append(atomic_write_text(out / f"{all_name}.tex", text))
        return paths


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
        if self.lr is not None and not _same(info.lr_candidates, self.lr):
            return False
        if self.noise is not None and not _same(info.noise_candidates, self.noise):
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


def _same(a: Sequence[float], b: Sequence[float]) -> bool:
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
    for other in runset.select(cell.task, cell.setting):
        if other is cell or other.epochs != cell.epochs:
            continue
        spec = {k: v for k, v in other.info.spec.items() if k not in ignore}
        if spec == target:
            fitting.append(other)
    return choose_cell(fitting, None, where, notes)


def prefix(task: str) -> str:
    """File-name prefix of a CIFAR-style task: ``cifar`` for CIFAR-100, else the task."""
    return "cifar" if task == "cifar100" else task


def _num_token(value: float) -> str:
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


def _acc_cells(st: AccStats, *, digits: int = 2, with_n: bool = True) -> list[TCell]:
    """[n,] Best (%), Final (%), Drop (pp), Peak epoch (1 decimal)."""
    cells = [
        TCell(fmt_pm(st.best, digits, 100)),
        TCell(fmt_pm(st.final, digits, 100)),
        TCell(fmt_pm(st.drop, digits, 100)),
        TCell(fmt_pm(st.peak, 1)),
    ]
    return [TCell(str(st.n)), *cells] if with_n else cells


def _rank_acc(rows: Sequence[list[TCell]], stats: Sequence[AccStats], best_col: int) -> None:
    """Rank Best and Final (higher is better) and Drop (lower is better) within ``rows``."""
    for offset, attr, higher in ((0, "best", True), (1, "final", True), (2, "drop", False)):
        mark_ranks(
            [row[best_col + offset] for row in rows],
            [getattr(st, attr).mean for st in stats],
            higher_is_better=higher,
        )


def _summary_fields(st: AccStats) -> list[Any]:
    """n, best/final/drop/peak mean and sd (fractions; the thesis summary CSV columns)."""
    out: list[Any] = [st.n]
    for s in (st.best, st.final, st.drop, st.peak):
        out += [s.mean, s.sd]
    return out


SUMMARY_HEADER = [
    "n",
    "best_val_mean",
    "best_val_std",
    "final_val_mean",
    "final_val_std",
    "drop_val_mean",
    "drop_val_std",
    "peak_epoch_mean",
    "peak_epoch_std",
]
ACC_HEADER = ["Best (%)", "Final (%)", "Drop (pp)", "Peak epoch"]


class _Builder:
    """Shared state of one family build: output, notes, missing cells, populated count."""

    def __init__(self, family: str, title: str, runset: RunSet) -> None:
        self.runset = runset
        self.out = FamilyOutput(family, title)

    def row(
        self,
        cells: Iterable[Cell],
        sel: Sel,
        *,
        optimizer: str | None,
        where: str,
    ) -> AccStats:
        cell = pick(cells, sel, optimizer=optimizer, where=where, notes=self.out.notes)
        st = acc_stats(cell)
        self.count(st.n, f"{where}: {sel.label}")
        if cell is not None:
            self.note_duplicates(cell)
        return st

    def count(self, n: int, what: str) -> None:
        if n:
            self.out.populated += 1
        else:
            self.out.missing.append(f"{what}: no runs")

    def note_duplicates(self, cell: Cell) -> None:
        dups = cell.duplicate_seed_paths()
        if dups:
            note = f"{cell.describe()}: repeated seeds, used the first file per seed; ignored " + (
                ", ".join(str(p) for p in dups)
            )
            if note not in self.out.notes:
                self.out.notes.append(note)


def _optimizers(cells: Iterable[Cell]) -> list[str]:
    found = {c.info.optimizer for c in cells}
    return [o for o in ("adamw", "sgd") if o in found] + sorted(found - {"adamw", "sgd"})


def _aees(label: str, scheduler: str = "none", **kw: Any) -> Sel:
    return Sel(label, "aees", scheduler, **kw)


def _fixed(multiplier: float, label: str | None = None) -> Sel:
    return Sel(
        label or f"Fixed ×{multiplier:.1f}", "fixed", lr=(multiplier,), noise=(0.0,), context=None
    )


# --------------------------------------------------------------------------------------------
# §5.1 clean CIFAR
# --------------------------------------------------------------------------------------------

CLEAN_METHODS = {
    "AdamW": Sel("AdamW", "baseline"),
    "AdamW + Cosine": Sel("AdamW + Cosine", "baseline", "cosine"),
    "AdamW + Linear": Sel("AdamW + Linear", "baseline", "linear"),
    "AEES": _aees("AEES"),
    "AEES + Cosine": _aees("AEES + Cosine", "cosine"),
    "AEES + Linear": _aees("AEES + Linear", "linear"),
    "Fixed ×1.0": _fixed(1.0),
    "Fixed ×0.5": _fixed(0.5),
    "Fixed ×2.0": _fixed(2.0),
}
CLEAN_TABLES: tuple[tuple[str, str, list[list[str]]], ...] = (
    (
        "main",
        "{T}, clean labels: AdamW and AEES with and without LR schedules",
        [["AdamW", "AdamW + Cosine", "AdamW + Linear", "AEES", "AEES + Cosine", "AEES + Linear"]],
    ),
    (
        "fixed_lr_ablation",
        "{T}, clean labels: fixed LR multipliers vs AEES",
        [["Fixed ×1.0", "Fixed ×0.5", "Fixed ×2.0", "AEES"]],
    ),
    (
        "compact_appendix",
        "{T}, clean labels: all configurations",
        [
            ["AdamW", "Fixed ×0.5", "Fixed ×2.0", "AEES"],
            ["AdamW + Cosine", "AEES + Cosine"],
            ["AdamW + Linear", "AEES + Linear"],
        ],
    ),
)


def build_cifar_clean(runset: RunSet) -> FamilyOutput:
    """§5.1: per CIFAR-style task, the clean AdamW runs: main, fixed-LR ablation and compact
    appendix tables (Method | n | Best | Final | Drop | Peak epoch) and the summary CSV.
    "Fixed ×1.0" comes only from real fixed-multiplier runs (no baseline duplication)."""
    b = _Builder("cifar_clean", "Clean CIFAR", runset)
    for task in CIFAR_LIKE_TASKS:
        cells = runset.select(task, "clean")
        if not cells:
            continue
        p, where = prefix(task), f"{task_label(task)} clean"
        stats = {
            label: b.row(cells, sel, optimizer="adamw", where=where)
            for label, sel in CLEAN_METHODS.items()
        }
        names = []
        for key, caption, blocks in CLEAN_TABLES:
            table = Table(
                name=f"{p}_clean_{key}_table",
                caption=caption.format(T=task_label(task)),
                label=f"tab:{p}_clean_{key}",
                header=["Method", "n", *ACC_HEADER],
                align="lrrrrr",
            )
            for block in blocks:
                if table.rows:
                    table.midrule_before.add(len(table.rows))
                rows = [table.add(TCell(m), *_acc_cells(stats[m])) for m in block]
                _rank_acc(rows, [stats[m] for m in block], 2)
            b.out.tables.append(table)
            names.append(table.name)
        b.out.all_tex[f"{p}_clean_tables_all"] = names
        csv = CsvTable(f"{p}_clean_summary", ["method", *SUMMARY_HEADER])
        for label in sorted(stats):
            if stats[label].n:
                csv.rows.append([label, *_summary_fields(stats[label])])
        b.out.csvs.append(csv)
    return b.out


# --------------------------------------------------------------------------------------------
# §5.2 noisy CIFAR
# --------------------------------------------------------------------------------------------

NOISY_METHODS = (
    Sel("Baseline", "baseline"),
    _aees("AEES"),
    Sel("Cosine", "baseline", "cosine"),
    _aees("Cosine + AEES", "cosine"),
)
SUBSET_KEYS = (
    ("corr_noisy", "train_corrupted_accuracy_vs_noisy_labels"),
    ("corr_clean", "train_corrupted_accuracy_vs_clean_labels"),
    ("train_clean", "train_clean_accuracy"),
)


def _as_float(value: Any, default: float | None = None) -> float | None:
    """A number from a free-form block (diagnostics, logs): ``default`` for anything that is
    not a real number (None, a string, a boolean)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return default
    return float(value)


def _nan_if_none(value: float | None) -> float:
    return math.nan if value is None else value


def subset_summaries(cell: Cell | None, point: str) -> dict[str, Summary]:
    """Label-noise diagnostics of a cell: ``point`` is ``final`` (last epoch) or ``best``
    (the best-validation epoch); summaries of corr_noisy, corr_clean, train_clean."""
    key = "final_subset_accuracies" if point == "final" else "best_val_subset_accuracies"
    values: dict[str, list[float]] = {name: [] for name, _ in SUBSET_KEYS}
    for run in cell.seed_runs() if cell else []:
        block = run.result.diagnostics.get(key)
        if not isinstance(block, dict):
            continue
        for name, source in SUBSET_KEYS:
            value = _as_float(block.get(source))
            if value is not None:
                values[name].append(value)
    return {name: mean_sd(v) for name, v in values.items()}


def _noisy_blocks(runset: RunSet, task: str) -> list[tuple[str, str, list[Cell]]]:
    """(setting, optimizer, cells of that setting) for each noisy setting and optimizer."""
    out = []
    for setting in runset.settings(task):
        if setting == "clean":
            continue
        cells = runset.select(task, setting)
        out += [(setting, opt, cells) for opt in _optimizers(cells)]
    return out


def build_cifar_noisy(runset: RunSet) -> FamilyOutput:
    """§5.2: one main table per noise regime (Optimizer | Method | Best | Final | Drop | Peak
    epoch, ranked per optimizer block) and a detailed appendix with the final-epoch label-noise
    diagnostics (Corr. noisy = accuracy on corrupted examples vs their noisy labels, Corr.
    clean = vs their true labels, Train clean = accuracy on uncorrupted examples)."""
    b = _Builder("cifar_noisy", "Noisy CIFAR", runset)
    for task in CIFAR_LIKE_TASKS:
        blocks = _noisy_blocks(runset, task)
        if not blocks:
            continue
        p = prefix(task)
        detailed = Table(
            name=f"{p}_noisy_detailed_appendix_table",
            caption=f"{task_label(task)} with label noise: all runs with final-epoch diagnostics",
            label=f"tab:{p}_noisy_detailed_appendix",
            header=[
                "Noise",
                "Optimizer",
                "Method",
                "n",
                *ACC_HEADER,
                "Corr. noisy (%)",
                "Corr. clean (%)",
                "Train clean (%)",
            ],
            align="lllrrrrrrrr",
            merge=2,
        )
        csv = CsvTable(
            f"{p}_noisy_main_tables_summary",
            ["task", "optimizer", "method", *SUMMARY_HEADER]
            + [f"{k}_{s}" for k, _ in SUBSET_KEYS for s in ("mean", "std")],
        )
        mains: dict[str, Table] = {}
        for setting, opt, cells in blocks:
            where = f"{task_label(task)} {setting_label(setting)} {optimizer_label(opt)}"
            main = mains.get(setting)
            if main is None:
                main = mains[setting] = Table(
                    name=f"{p}_{setting}_main_table",
                    caption=f"{task_label(task)}, {setting_label(setting)} label noise",
                    label=f"tab:{p}_{setting}_main",
                    header=["Optimizer", "Method", *ACC_HEADER],
                    align="llrrrr",
                    merge=1,
                )
            stats, main_rows, det_rows = [], [], []
            for sel in NOISY_METHODS:
                st = b.row(cells, sel, optimizer=opt, where=where)
                diag = subset_summaries(st.cell, "final")
                stats.append(st)
                main_rows.append(
                    main.add(optimizer_label(opt), sel.label, *_acc_cells(st, with_n=False))
                )
                det_rows.append(
                    detailed.add(
                        setting_label(setting),
                        optimizer_label(opt),
                        sel.label,
                        *_acc_cells(st),
                        *(TCell(fmt_pm(diag[k], 2, 100)) for k, _ in SUBSET_KEYS),
                    )
                )
                if st.n:
                    csv.rows.append(
                        [setting, opt, sel.label, *_summary_fields(st)]
                        + [v for k, _ in SUBSET_KEYS for v in (diag[k].mean, diag[k].sd)]
                    )
            _rank_acc(main_rows, stats, 2)
            _rank_acc(det_rows, stats, 4)
        b.out.tables += [*mains.values(), detailed]
        b.out.all_tex[f"{p}_noisy_main_tables_all"] = [t.name for t in mains.values()]
        b.out.all_tex[f"{p}_noisy_tables_all"] = [t.name for t in (*mains.values(), detailed)]
        b.out.csvs.append(csv)
    return b.out


# --------------------------------------------------------------------------------------------
# §5.3 noisy CIFAR: fixed-LR ablation and AEES vs best fixed
# --------------------------------------------------------------------------------------------


def _fixed_multipliers(cells: Iterable[Cell]) -> list[float]:
    found = {
        c.info.lr_candidates[0]
        for c in cells
        if c.info.kind == "fixed" and _same(c.info.noise_candidates, (0.0,))
    }
    return sorted(found | {0.5, 1.0, 2.0})


def build_cifar_noisy_fixed_lr_ablation(runset: RunSet) -> FamilyOutput:
    """§5.3: fixed LR multipliers vs AEES under label noise. The best fixed multiplier of a
    (noise, optimizer) cell is the one with the highest mean best accuracy; AEES is compared
    with it on shared seeds: ΔBest = AEES − best fixed, bootstrap 95% CI and paired-t p."""
    b = _Builder("cifar_noisy_fixed_lr_ablation", "Noisy CIFAR: fixed-LR ablation", runset)
    for task in CIFAR_LIKE_TASKS:
        blocks = [
            (setting, opt, cells)
            for setting, opt, cells in _noisy_blocks(runset, task)
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
                *(_fixed(m) for m in _fixed_multipliers(cells)),
                *NOISY_METHODS[1:],
            ]
            stats = {s.label: b.row(cells, s, optimizer=opt, where=where) for s in sels}
            rows = []
            for s in sels:
                st = stats[s.label]
                rows.append(
                    detailed.add(
                        setting_label(setting), optimizer_label(opt), s.label, *_acc_cells(st)
                    )
                )
                if st.n:
                    det_csv.rows.append([setting, opt, s.label, *_summary_fields(st)])
            _rank_acc(rows, list(stats.values()), 4)
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


# --------------------------------------------------------------------------------------------
# §5.4 checkpoint diagnostics (in-run, at the best-validation epoch)
# --------------------------------------------------------------------------------------------


def build_checkpointing(runset: RunSet) -> FamilyOutput:
    """§5.4, from the in-run best-epoch diagnostics (``diagnostics.best_val_subset_
    accuracies``) of the main noisy runs, not from truncated reruns: Epoch = best-validation
    epoch, Val acc. = best validation accuracy, Corr. noisy (lower is better), Corr. clean
    (higher is better), Train clean; 1 decimal. Ranking per (setting, optimizer) block on the
    two corrupted-subset columns, ties broken by the lower SD, then by variant order."""
    b = _Builder("checkpointing", "Checkpoint (best-epoch) diagnostics", runset)
    for task in CIFAR_LIKE_TASKS:
        blocks = _noisy_blocks(runset, task)
        if not blocks:
            continue
        p, tl = prefix(task), task_label(task)
        header = ["Setting", "Opt.", "Variant", "Epoch", "Val acc.", "Corr. noisy ↓"]
        header += ["Corr. clean ↑", "Train clean"]
        main = Table(
            name=f"{p}_checkpoint_diagnostics_main",
            caption=f"{tl}: label-noise diagnostics at the best-validation epoch (in-run)",
            label=f"tab:{p}-checkpoint-diagnostics-main",
            header=header,
            align="lllrrrrr",
            merge=2,
        )
        per_seed = Table(
            name=f"{p}_checkpoint_diagnostics_appendix",
            caption=f"{tl}: best-validation-epoch diagnostics per seed",
            label=f"tab:{p}-checkpoint-diagnostics-detailed",
            header=[*header[:3], "Seed", *header[3:]],
            align="lllrrrrrr",
            merge=3,
        )
        main_csv = CsvTable(
            f"{p}_checkpoint_diagnostics_main",
            [
                "setting_label",
                "optimizer_label",
                "variant_label",
                "n",
                "selected_epoch",
                "val_acc",
                "corr_noisy",
                "corr_clean",
                "train_clean",
            ],
        )
        det_csv = CsvTable(
            f"{p}_checkpoint_diagnostics_detailed",
            [
                "setting",
                "optimizer",
                "variant",
                "seed",
                "selected_epoch",
                "val_acc",
                "corr_noisy",
                "corr_clean",
                "train_clean",
                "path",
            ],
        )
        for setting, opt, cells in blocks:
            where = f"{tl} {setting_label(setting)} {optimizer_label(opt)}"
            rows, sums = [], []
            for sel in NOISY_METHODS:
                cell = pick(cells, sel, optimizer=opt, where=where, notes=b.out.notes)
                seeds: list[tuple[int, float, float, dict[str, float], Path]] = []
                for run in cell.seed_runs() if cell else []:
                    block = run.result.diagnostics.get("best_val_subset_accuracies")
                    if not isinstance(block, dict) or not block:
                        continue
                    metrics = run_metrics(run.result)
                    epoch = _as_float(run.result.diagnostics.get("best_val_epoch"))
                    if epoch is None and metrics.peak_epoch is not None:
                        epoch = float(metrics.peak_epoch)  # no in-run best epoch recorded
                    sub = {k: _as_float(block.get(src), math.nan) for k, src in SUBSET_KEYS}
                    seeds.append((run.info.seed, _nan_if_none(epoch), metrics.best, sub, run.path))
                if cell is not None and len(seeds) < cell.n:
                    b.out.notes.append(
                        f"{cell.describe()}: {cell.n - len(seeds)} runs without best-epoch "
                        "diagnostics (thesis-era or clean-label runs) left out"
                    )
                b.count(len(seeds), f"{where}: {sel.label} (best-epoch diagnostics)")
                s = {
                    "epoch": mean_sd([x[1] for x in seeds]),
                    "val": mean_sd([x[2] for x in seeds]),
                    **{k: mean_sd([x[3][k] for x in seeds]) for k, _ in SUBSET_KEYS},
                }
                sums.append(s)
                texts = [
                    fmt_pm(s["epoch"], 1),
                    fmt_pm(s["val"], 1, 100),
                    *(fmt_pm(s[k], 1, 100) for k, _ in SUBSET_KEYS),
                ]
                rows.append(
                    main.add(setting_label(setting), optimizer_label(opt), sel.label, *texts)
                )
                main_csv.rows.append(
                    [setting_label(setting), optimizer_label(opt), sel.label, len(seeds), *texts]
                )
                for seed, epoch, val, sub, path in seeds:
                    per_seed.add(
                        setting_label(setting),
                        optimizer_label(opt),
                        sel.label,
                        str(seed),
                        fmt_num(epoch, 0),
                        fmt_num(val, 1, 100),
                        *(fmt_num(sub[k], 1, 100) for k, _ in SUBSET_KEYS),
                    )
                    det_csv.rows.append(
                        [setting, opt, sel.label, seed, epoch, val]
                        + [sub[k] for k, _ in SUBSET_KEYS]
                        + [str(path)]
                    )
            for col, key, higher in ((5, "corr_noisy", False), (6, "corr_clean", True)):
                mark_ranks(
                    [r[col] for r in rows],
                    [s[key].mean for s in sums],
                    higher_is_better=higher,
                    tie_break=[s[key].sd for s in sums],
                )
        b.out.tables += [main, per_seed]
        b.out.csvs += [main_csv, det_csv]
    return b.out


# --------------------------------------------------------------------------------------------
# Paired ablations: §5.5 noise injection, §5.7 penalty and trend context
# --------------------------------------------------------------------------------------------


def ablation_pairs(
    runset: RunSet,
    tasks: Sequence[str],
    is_variant: Callable[[RunInfo], bool],
    changes: dict[str, Any],
    ignore: Sequence[str] = (),
    *,
    notes: list[str] | None = None,
    missing: list[str] | None = None,
) -> list[tuple[Cell, Cell]]:
    """(reference cell A, ablated cell B) pairs: every cell B of ``tasks`` with ``is_variant``
    and its counterpart A = B's method spec with ``changes`` (``ignore`` keys not compared)."""
    notes = notes if notes is not None else []
    pairs = []
    for cell in runset.cells:
        if cell.task not in tasks or not is_variant(cell.info):
            continue
        where = f"{cell.describe()}: counterpart"
        ref = counterpart(runset, cell, changes, ignore=ignore, where=where, notes=notes)
        if ref is None:
            if missing is not None:
                missing.append(f"{cell.describe()}: no reference runs (counterpart) found")
            continue
        pairs.append((ref, cell))
    return pairs


def noise_ablation_pairs(
    runset: RunSet, notes: list[str] | None = None, missing: list[str] | None = None
) -> list[tuple[Cell, Cell]]:
    """CIFAR-style AEES cells with more than one noise candidate, each with the same AEES at
    noise candidates [0]."""
    return ablation_pairs(
        runset,
        CIFAR_LIKE_TASKS,
        lambda i: i.kind == "aees" and len(i.noise_candidates) > 1,
        {"noise_candidates": ["0"]},
        notes=notes,
        missing=missing,
    )


def _where_label(cell: Cell) -> str:
    text = f"{task_label(cell.task)}, {setting_label(cell.setting)}"
    return f"{text}, {optimizer_label(cell.info.optimizer)}, {cell.epochs} ep"


def build_cifar_noise_ablation(runset: RunSet) -> FamilyOutput:
    """§5.5: AEES with gradient-noise injection (more than one noise candidate) vs the same
    AEES with noise candidates [0]. Gap = mean(best)·100 − mean(final)·100 (pp); 2 decimals;
    bold marks the higher peak and the higher final of each pair."""
    b = _Builder("cifar_noise_ablation", "CIFAR gradient-noise ablation", runset)
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
        where = _where_label(abl)
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
                    " ".join(map(_num_token, cell.info.noise_candidates)),
                    " ".join(map(_num_token, cell.info.lr_candidates)),
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


def _delta_table(
    b: _Builder,
    name: str,
    caption: str,
    label: str,
    names: tuple[str, str],
    pairs: list[tuple[Cell, Cell]],
) -> None:
    """Setting | A: best, final, drop | B: best, final, drop | Δ (B − A, signed, 1 decimal)."""
    groups = [("", 1), (names[0], 3), (names[1], 3), ("Δ", 3)]
    table = Table(
        name=name,
        caption=caption,
        label=label,
        header=["Setting", *(["Best", "Final", "Drop"] * 3)],
        align="l" + "r" * 9,
    )
    table.groups = groups
    csv = CsvTable(
        name.replace("_table", "_summary"),
        [
            "setting",
            "variant",
            "n",
            "best_mean",
            "best_std",
            "final_mean",
            "final_std",
            "drop_mean",
            "drop_std",
            "variant_id",
        ],
    )
    for ref, abl in pairs:
        where = _where_label(abl)
        sa, sb = acc_stats(ref), acc_stats(abl)
        b.count(sa.n, f"{where}: {names[0]}")
        b.count(sb.n, f"{where}: {names[1]}")
        means = [fmt_num(s.mean, 2, 100) for st in (sa, sb) for s in (st.best, st.final, st.drop)]
        deltas = [
            fmt_signed((y.mean - x.mean) * 100, 1)
            for x, y in ((sa.best, sb.best), (sa.final, sb.final), (sa.drop, sb.drop))
        ]
        table.add(where, *means, *deltas)
        for variant, st, cell in ((names[0], sa, ref), (names[1], sb, abl)):
            csv.rows.append(
                [where, variant, st.n]
                + [v for s in (st.best, st.final, st.drop) for v in (s.mean, s.sd)]
                + [cell.variant]
            )
    if pairs:
        b.out.tables.append(table)
        b.out.csvs.append(csv)


def build_instability_penalty_ablation(runset: RunSet) -> FamilyOutput:
    """§5.7: AEES with an instability penalty λ_inst > 0 vs the same AEES with λ_inst = 0."""
    b = _Builder("instability_penalty_ablation", "Instability-penalty ablation", runset)
    pairs = ablation_pairs(
        runset,
        (*CIFAR_LIKE_TASKS, *NLP_TASKS),
        lambda i: i.kind == "aees" and i.instability_lambda > 0,
        {"reward_instability_lambda": "0"},
        notes=b.out.notes,
        missing=b.out.missing,
    )
    _delta_table(
        b,
        "instability_penalty_ablation_table",
        "Instability penalty in the AEES reward: λ_inst = 0 vs λ_inst > 0 (Δ = penalty − none)",
        "tab:instability-penalty-ablation",
        ("No penalty", "Penalty"),
        pairs,
    )
    return b.out


_CONTEXT_KEYS = ("context_mode", "context_trend_window", "context_trend_epsilon")


def build_trend_context_ablation(runset: RunSet) -> FamilyOutput:
    """§5.7: AEES with the bucketed trend context vs the same AEES without context."""
    b = _Builder("trend_context_ablation", "Trend-context ablation", runset)
    pairs = ablation_pairs(
        runset,
        (*CIFAR_LIKE_TASKS, *NLP_TASKS),
        lambda i: i.kind == "aees" and i.context_mode == "trend",
        {"context_mode": "none"},
        _CONTEXT_KEYS[1:],
        notes=b.out.notes,
        missing=b.out.missing,
    )
    _delta_table(
        b,
        "trend_context_ablation_table",
        "Trend context in AEES: context-free vs trend context (Δ = trend − none)",
        "tab:trend-context-ablation",
        ("Context-free", "Trend context"),
        pairs,
    )
    return b.out


# --------------------------------------------------------------------------------------------
# §5.6 compute overhead
# --------------------------------------------------------------------------------------------

_AXIS_CONFIG = {"lr": "aees_lr_only", "noise": "aees_noise_only", "dual": "aees_both"}
_AXIS_LABEL = {"lr": "AEES-LR", "noise": "AEES-Noise", "dual": "AEES-Dual"}
_SCHED_LABEL = {
    "none": "",
    "cosine": " + Cosine",
    "linear": " + Linear",
    WL: " + Warmup-linear",
}


def overhead_config(info: RunInfo) -> tuple[str, str] | None:
    """``(config id, label)`` of a timing run: ``baseline_<sched>`` or
    ``aees_{lr_only,noise_only,both}_<sched>`` (AEES without context or penalty); None for
    other runs."""
    sched = info.scheduler
    suffix = _SCHED_LABEL.get(sched, f" + {sched}")
    if info.kind == "baseline":
        return f"baseline_{sched}", ("Baseline" + suffix)
    if info.kind == "aees" and (info.context_mode != "none" or info.instability_lambda):
        return None  # ablation variants are not timing configurations
    if info.kind == "aees" and info.axes in _AXIS_CONFIG:
        return f"{_AXIS_CONFIG[info.axes]}_{sched}", _AXIS_LABEL[info.axes] + suffix
    return None


def _config_order(config: str) -> tuple[int, int, str]:
    scheds = ["none", "cosine", "linear", WL]
    for i, head in enumerate(("baseline", "aees_lr_only", "aees_noise_only", "aees_both")):
        if config.startswith(head + "_"):
            sched = config[len(head) + 1 :]
            return (scheds.index(sched) if sched in scheds else 9, i, config)
    return (99, 99, config)


def device_name(run_result: Any) -> str | None:
    """The accelerator or CPU a run was timed on (provenance, then runtime metrics)."""
    for block in (
        (run_result.provenance or {}).get("hardware"),
        (run_result.runtime_metrics or {}).get("hardware"),
    ):
        if isinstance(block, dict):
            for key in ("current_device_name", "device_name"):
                if isinstance(block.get(key), str) and block[key]:
                    return block[key]
            names = block.get("gpu_names")
            if isinstance(names, list) and names:
                return str(names[0])
    return None


@dataclass
class OverheadCell:
    """Timing of one (task, optimizer, config) over its repeats (all runs, seeds may repeat)."""

    task: str
    optimizer: str
    config: str
    label: str
    sec_per_epoch: Summary
    steps_per_second: Summary
    sec_per_step: Summary
    tflops_per_second: Summary
    wall_minutes: Summary
    total_epochs: list[int]
    total_steps: list[int]
    devices: list[str]
    paths: list[str]
    overhead_pct: float | None = None


def lr_schedule_for(task: str) -> str:
    """The scheduler baseline of the overhead decomposition: cosine (CIFAR-style), WL (NLP)."""
    return WL if task in NLP_TASKS else "cosine"


def overhead_cells(runset: RunSet, notes: list[str] | None = None) -> list[OverheadCell]:
    """Steady-state timing per (task, optimizer, config); overhead % = 100·(s/ep(config) /
    s/ep(baseline_none of the same task and optimizer) − 1). Runs with fewer than two epochs
    (no steady state) are left out with a note."""
    groups: dict[tuple[str, str, str], list[Any]] = {}
    labels: dict[str, str] = {}
    for run in runset.runs:
        found = overhead_config(run.info)
        if found is None:
            continue
        ss = steady_state(run.result)
        if ss is None:
            if notes is not None:
                notes.append(f"{run.path}: fewer than 2 epochs, no steady-state timing; left out")
            continue
        labels[found[0]] = found[1]
        groups.setdefault((run.info.task, run.info.optimizer, found[0]), []).append((run, ss))
    out: list[OverheadCell] = []
    task_order = {t: i for i, t in enumerate((*CIFAR_LIKE_TASKS, *NLP_TASKS))}
    for (task, opt, config), members in sorted(
        groups.items(),
        key=lambda kv: (
            task_order.get(kv[0][0], 9),
            {"sgd": 0, "adamw": 1}.get(kv[0][1], 2),
            _config_order(kv[0][2]),
        ),
    ):
        members.sort(key=lambda m: str(m[0].path))
        out.append(
            OverheadCell(
                task=task,
                optimizer=opt,
                config=config,
                label=labels[config],
                sec_per_epoch=mean_sd([ss.seconds_per_epoch for _, ss in members]),
                steps_per_second=mean_sd([ss.steps_per_second for _, ss in members]),
                sec_per_step=mean_sd(
                    [1 / ss.steps_per_second for _, ss in members if ss.steps_per_second]
                ),
                tflops_per_second=mean_sd([ss.tflops_per_second for _, ss in members]),
                wall_minutes=mean_sd([r.result.wall_clock_seconds / 60 for r, _ in members]),
                total_epochs=sorted({r.result.total_epochs for r, _ in members}),
                total_steps=sorted({r.result.total_steps for r, _ in members}),
                devices=sorted({device_name(r.result) or "unknown" for r, _ in members}),
                paths=[str(r.path) for r, _ in members],
            )
        )
    base = {(c.task, c.optimizer): c for c in out if c.config == "baseline_none"}
    for c in out:
        ref = base.get((c.task, c.optimizer))
        if ref is not None and ref.sec_per_epoch.mean > 0:
            c.overhead_pct = 100 * (c.sec_per_epoch.mean / ref.sec_per_epoch.mean - 1)
        if notes is not None and len(c.devices) > 1:
            notes.append(
                f"{task_label(c.task)} {optimizer_label(c.optimizer)} {c.label}: timings from "
                f"different devices ({', '.join(c.devices)})"
            )
        if notes is not None and len(set(c.total_epochs)) > 1:
            notes.append(
                f"{task_label(c.task)} {optimizer_label(c.optimizer)} {c.label}: runs with "
                f"different epoch counts {c.total_epochs}"
            )
    return out


DECOMPOSITION_COLUMNS = (
    ("LR sched.", None),
    ("AEES-LR", "aees_lr_only_none"),
    ("AEES-Noise", "aees_noise_only_none"),
    ("AEES-Dual", "aees_both_none"),
)
"""Columns of the overhead decomposition (and the wall-clock figure): the LR-schedule
baseline (cosine or warmup-linear, :func:`lr_schedule_for`) and AEES without a scheduler."""


def decomposition_config(task: str, column: str | None) -> str:
    return column if column is not None else f"baseline_{lr_schedule_for(task)}"


def build_compute_overhead(runset: RunSet) -> FamilyOutput:
    """§5.6 with the first epoch excluded everywhere: time/epoch = mean(epoch times[1:]) per
    run, mean ± sample SD over repeats (SD 0 for one repeat), steps/s and TFLOP/s over the same
    epochs; overhead % vs the no-scheduler baseline of the same task and optimizer."""
    b = _Builder("compute_overhead", "Compute overhead", runset)
    cells = overhead_cells(runset, b.out.notes)
    if not cells:
        return b.out
    devices = sorted({d for c in cells for d in c.devices})
    where = f"measured on {', '.join(devices)}"
    decomposition = Table(
        name="compute_overhead_decomposition_table",
        caption="Steady-state time per epoch (first epoch excluded) of the baseline and "
        f"overhead (%) of an LR schedule and of AEES without a schedule; {where}",
        label="tab:compute-overhead",
        header=["Task", "Optimizer", "Baseline (s/epoch)"] + [c for c, _ in DECOMPOSITION_COLUMNS],
        align="llrrrrr",
    )
    by_key = {(c.task, c.optimizer, c.config): c for c in cells}
    for task, opt in dict.fromkeys((c.task, c.optimizer) for c in cells):
        base = by_key.get((task, opt, "baseline_none"))
        b.count(base.sec_per_epoch.n if base else 0, f"{task_label(task)} {opt}: baseline")
        texts = []
        for name, col in DECOMPOSITION_COLUMNS:
            cell = by_key.get((task, opt, decomposition_config(task, col)))
            if cell is None:
                b.out.missing.append(f"{task_label(task)} {opt}: {name}: no timing runs")
            texts.append(fmt_signed(cell.overhead_pct if cell else None, 1))
        decomposition.add(
            task_label(task),
            optimizer_label(opt),
            fmt_num(base.sec_per_epoch.mean if base else None, 2),
            *texts,
        )
    detailed = Table(
        name="compute_overhead_detailed_table",
        caption=f"Steady-state timing of every configuration (first epoch excluded); {where}",
        label="tab:compute_overhead_detailed",
        header=[
            "Task",
            "Optimizer",
            "Configuration",
            "n",
            "Time/epoch (s)",
            "Overhead (%)",
            "Steps/s",
            "TFLOP/s",
        ],
        align="lllrrrrr",
        merge=2,
    )
    csv = CsvTable(
        "compute_overhead_summary",
        ["task", "optimizer", "config", "label", "n"]
        + [
            f"{m}_{s}"
            for m in (
                "wall_minutes",
                "sec_per_epoch",
                "sec_per_step",
                "steps_per_second",
                "tflops_per_second",
            )
            for s in ("mean", "std")
        ]
        + ["overhead_vs_baseline_none_pct", "total_epochs", "total_steps", "devices", "paths"],
    )
    for c in cells:
        detailed.add(
            task_label(c.task),
            optimizer_label(c.optimizer),
            c.label,
            str(c.sec_per_epoch.n),
            fmt_pm(c.sec_per_epoch, 2),
            fmt_signed(c.overhead_pct, 1),
            fmt_pm(c.steps_per_second, 1),
            fmt_pm(c.tflops_per_second, 3),
        )
        csv.rows.append(
            [task_label(c.task), optimizer_label(c.optimizer), c.config, c.label]
            + [c.sec_per_epoch.n]
            + [
                v
                for s in (
                    c.wall_minutes,
                    c.sec_per_epoch,
                    c.sec_per_step,
                    c.steps_per_second,
                    c.tflops_per_second,
                )
                for v in (s.mean, s.sd)
            ]
            + [c.overhead_pct, " ".join(map(str, c.total_epochs))]
            + [" ".join(map(str, c.total_steps)), ";".join(c.devices), ";".join(c.paths)]
        )
    b.out.tables += [decomposition, detailed]
    b.out.all_tex["compute_overhead_tables_all"] = [decomposition.name, detailed.name]
    b.out.csvs.append(csv)
    return b.out


# --------------------------------------------------------------------------------------------
# §5.8 NLP main / axis / detailed, §5.9 NLP noise ablation
# --------------------------------------------------------------------------------------------


def nlp_key(task: str, setting: str) -> str:
    """``sst2``, ``agnews`` (clean) or ``agnews_noise20`` (sym20), ``agnews_asym20``, ..."""
    if setting == "clean":
        return task
    return f"{task}_{setting.replace('sym', 'noise', 1) if setting.startswith('sym') else setting}"


def nlp_sched_suffix(scheduler: str, short: bool = False) -> str:
    if scheduler == "none":
        return ""
    if scheduler == WL:
        return " + WL" if short else " + warmup-linear"
    return f" + {scheduler}"


NLP_MAIN = (
    Sel("AdamW", "baseline"),
    Sel("AdamW + warmup-linear", "baseline", WL),
    _aees("AEES", prefer_axes=("dual", "noise", "lr"), context=None),
    _aees("AEES + warmup-linear", WL, prefer_axes=("dual", "noise", "lr"), context=None),
)
NLP_AXIS = (
    Sel("AdamW + warmup-linear", "baseline", WL),
    _aees("AEES-LR + warmup-linear", WL, axes="lr", context=None),
    _aees("AEES-Noise + warmup-linear", WL, axes="noise", context=None),
    _aees("AEES-Dual + warmup-linear", WL, axes="dual", context=None),
)
_NLP_CAPTIONS = {"sst2": "SST-2", "agnews": "AG News (clean)"}


def method_label(info: RunInfo, *, short: bool = True) -> str:
    """A readable method label from the identity: ``AdamW + WL``, ``AEES-Dual (trend ctx)``,
    ``Fixed ×0.5``, ``Fixed σ=0.005 + WL``, ``Random σ + WL`` ..."""
    sched = (
        nlp_sched_suffix(info.scheduler, short)
        if info.is_nlp
        else _SCHED_LABEL.get(info.scheduler, f" + {info.scheduler}")
    )
    opt = optimizer_label(info.optimizer)
    if info.kind == "baseline":
        return opt + sched
    if info.kind == "fixed":
        lr, noise = info.lr_candidates[0], info.noise_candidates[0]
        parts = []
        if lr != 1.0 or noise == 0:
            parts.append(f"×{_num_token(lr)}")
        if noise:
            parts.append(f"σ={_num_token(noise)}")
        return f"Fixed {' '.join(parts)}{sched}"
    axes = {"lr": "LR", "noise": "Noise", "dual": "Dual"}.get(info.axes or "", "")
    if info.kind == "random":
        base = "Random σ" if info.axes == "noise" else f"Random-{axes}" if axes else "Random"
    elif info.kind == "aees":
        base = f"AEES-{axes}" if axes else "AEES"
    else:
        base = info.kind
    extras = []
    if info.context_mode != "none":
        extras.append(f"{info.context_mode} ctx")
    if info.instability_lambda:
        extras.append(f"λ={_num_token(info.instability_lambda)}")
    return base + sched + (f" ({', '.join(extras)})" if extras else "")


def axes_text(info: RunInfo) -> str:
    """``LR: 0.5, 1, 2; noise: 0, 0.005``."""
    lr = ", ".join(map(_num_token, info.lr_candidates))
    noise = ", ".join(map(_num_token, info.noise_candidates))
    return f"LR: {lr}; noise: {noise}"


def _nlp_run_costs(cell: Cell) -> dict[str, Summary]:
    """Per seed: best epoch b = peak epoch; TFLOPs to best = Σ epoch_tflops[:b]; total TFLOPs =
    estimated_flops/1e12 (else Σ epoch_tflops); time to best = Σ epoch times[:b]; total time =
    wall clock."""
    values: dict[str, list[float]] = {
        k: [] for k in ("tflops_to_best", "total_tflops", "time_to_best", "total_time")
    }
    for run in cell.seed_runs():
        r = run.result
        peak = run_metrics(r).peak_epoch or 0
        tflops = r.epoch_tflops or []
        if tflops:
            values["tflops_to_best"].append(sum(tflops[:peak]))
        if r.estimated_flops is not None:
            values["total_tflops"].append(r.estimated_flops / 1e12)
        elif tflops:
            values["total_tflops"].append(sum(tflops))
        if r.epoch_wall_clock_seconds:
            values["time_to_best"].append(sum(r.epoch_wall_clock_seconds[:peak]))
        values["total_time"].append(r.wall_clock_seconds)
    return {k: mean_sd(v) for k, v in values.items()}


def nlp_groups(runset: RunSet) -> list[tuple[str, str, list[Cell]]]:
    return [
        (task, setting, runset.select(task, setting))
        for task in NLP_TASKS
        for setting in runset.settings(task)
    ]


def build_nlp(runset: RunSet) -> FamilyOutput:
    """§5.8: per NLP task and setting, the main table (AdamW, AdamW + warmup-linear, AEES,
    AEES + warmup-linear; AEES prefers the dual-axis variant), the axis table (AEES-LR/-Noise/
    -Dual + warmup-linear; only when single-axis runs exist), one detailed appendix with every
    variant (Task | Method | n | Best | Final | Drop | Peak epoch | Episode length | Axes) and
    per-task summary CSVs with compute-to-best. 2 decimals, ranked over the whole table."""
    b = _Builder("nlp", "NLP (SST-2, AG News)", runset)
    detailed = Table(
        name="nlp_detailed_appendix_table",
        caption="SST-2 and AG News: every configuration",
        label="tab:nlp_detailed_appendix",
        header=["Task", "Method", "n", *ACC_HEADER, "Episode length", "Axes"],
        align="llrrrrrrl",
        merge=1,
    )
    names = []
    for task, setting, cells in nlp_groups(runset):
        key = nlp_key(task, setting)
        caption = _NLP_CAPTIONS.get(key, f"{task_label(task)}, {setting_label(setting)} labels")
        label = {"agnews": "tab:agnews-clean"}.get(key, f"tab:{key.replace('_', '-')}")
        tables = [(f"{key}_main", NLP_MAIN, label, caption)]
        if any(c.info.kind == "aees" and c.info.axes in ("lr", "noise") for c in cells):
            tables.append((f"{key}_axis", NLP_AXIS, f"{label}-axis", f"{caption}: AEES axes"))
        for name, sels, tab_label, cap in tables:
            table = Table(name, cap, tab_label, ["Method", *ACC_HEADER], "lrrrr")
            where = f"{task_label(task)} {setting_label(setting)}"
            stats = [b.row(cells, s, optimizer=None, where=where) for s in sels]
            rows = [
                table.add(s.label, *_acc_cells(st, with_n=False))
                for s, st in zip(sels, stats, strict=True)
            ]
            _rank_acc(rows, stats, 1)
            b.out.tables.append(table)
            names.append(name)
        csv = CsvTable(
            f"{key}_summary",
            ["label", "variant", "n"]
            + [
                f"{m}_{s}"
                for m in (
                    "best_val_accuracy",
                    "final_val_accuracy",
                    "drop_best_to_final",
                    "best_epoch",
                    "tflops_to_best",
                    "total_tflops",
                    "time_to_best",
                    "total_time",
                )
                for s in ("mean", "std")
            ],
        )
        det_rows, det_stats = [], []
        for cell in cells:
            st = acc_stats(cell)
            costs = _nlp_run_costs(cell)
            det_stats.append(st)
            det_rows.append(
                detailed.add(
                    caption,
                    method_label(cell.info),
                    *_acc_cells(st),
                    str(cell.info.episode_length or MISSING)
                    if cell.info.kind != "baseline"
                    else MISSING,
                    axes_text(cell.info) if cell.info.kind != "baseline" else MISSING,
                )
            )
            csv.rows.append(
                [method_label(cell.info, short=False), cell.variant, st.n]
                + [v for s in (st.best, st.final, st.drop, st.peak) for v in (s.mean, s.sd)]
                + [v for s in costs.values() for v in (s.mean, s.sd)]
            )
        _rank_acc(det_rows, det_stats, 3)
        b.out.csvs.append(csv)
    if detailed.rows:
        b.out.tables.append(detailed)
        names.append(detailed.name)
    b.out.all_tex["all_nlp_tables"] = names
    return b.out


def sigma_ablation_rows(cells: Sequence[Cell]) -> list[Sel] | None:
    """The σ-ablation rows for the cells of one NLP task and setting, or None when there is
    no fixed-σ or random-σ run (the ablation was not run there)."""
    sigmas = sorted(
        {
            c.info.noise_candidates[0]
            for c in cells
            if c.info.kind == "fixed"
            and c.info.scheduler == WL
            and _same(c.info.lr_candidates, (1.0,))
            and c.info.noise_candidates[0] > 0
        }
    )
    has_random = any(c.info.kind == "random" and c.info.axes == "noise" for c in cells)
    if not sigmas and not has_random:
        return None
    return [
        Sel("AdamW (Flat, σ=0)", "baseline"),
        Sel("AdamW + WL (σ=0)", "baseline", WL),
        *(Sel(f"Fixed σ={_num_token(s)} + WL", "fixed", WL, lr=(1.0,), noise=(s,)) for s in sigmas),
        Sel("Random σ + WL", "random", WL, axes="noise", lr=(1.0,), context=None),
        _aees("AEES-Noise + WL", WL, axes="noise", context=None),
        _aees("AEES-Dual + WL", WL, axes="dual", context=None),
    ]


def build_nlp_noise_ablation(runset: RunSet) -> FamilyOutput:
    """§5.9 (σ-axis falsification): per NLP task and setting that has fixed-σ or random-σ runs:
    AdamW (σ = 0), AdamW + WL, every Fixed σ + WL, Random σ + WL, AEES-Noise + WL and
    AEES-Dual + WL; 2 decimals; midrule after the baselines; ranked per column."""
    b = _Builder("nlp_noise_ablation", "NLP gradient-noise (σ) ablation", runset)
    for task, setting, cells in nlp_groups(runset):
        sels = sigma_ablation_rows(cells)
        if sels is None:
            continue
        key = nlp_key(task, setting)
        table = Table(
            name=f"{key}_noise_ablation_table",
            caption=f"{task_label(task)}, {setting_label(setting)} labels: gradient noise "
            "with and without the bandit",
            label=f"tab:{key.replace('_', '-')}-noise-ablation",
            header=["Condition", "n", *ACC_HEADER],
            align="lrrrrr",
            midrule_before={2},
        )
        where = f"{task_label(task)} {setting_label(setting)}"
        stats = [b.row(cells, s, optimizer=None, where=where) for s in sels]
        rows = [table.add(s.label, *_acc_cells(st)) for s, st in zip(sels, stats, strict=True)]
        _rank_acc(rows, stats, 2)
        b.out.tables.append(table)
        b.out.csvs.append(
            CsvTable(
                f"{key}_noise_ablation_summary",
                ["condition", "variant", *SUMMARY_HEADER],
                [
                    [s.label, st.cell.variant if st.cell else "", *_summary_fields(st)]
                    for s, st in zip(sels, stats, strict=True)
                    if st.n
                ],
            )
        )
    return b.out


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


_T = "reproduced_artifacts/tables"
FAMILIES: dict[str, Family] = {
    f.name: f
    for f in (
        Family(
            "cifar_clean",
            "Clean CIFAR (§5.1)",
            build_cifar_clean,
            "archived_results/cifar_clean",
            f"{_T}/cifar_clean",
        ),
        Family(
            "cifar_noisy",
            "Noisy CIFAR (§5.2)",
            build_cifar_noisy,
            "archived_results/cifar_noisy",
            f"{_T}/cifar_noisy",
        ),
        Family(
            "cifar_noisy_fixed_lr_ablation",
            "Noisy CIFAR fixed-LR ablation (§5.3)",
            build_cifar_noisy_fixed_lr_ablation,
            "archived_results/cifar_noisy",
            f"{_T}/cifar_noisy",
        ),
        Family(
            "checkpointing",
            "Best-epoch diagnostics (§5.4)",
            build_checkpointing,
            "archived_results/cifar_noisy",
            f"{_T}/checkpointing",
        ),
        Family(
            "cifar_noise_ablation",
            "CIFAR gradient-noise ablation (§5.5)",
            build_cifar_noise_ablation,
            "archived_results/cifar_noise_ablation",
            f"{_T}/cifar_ablation",
        ),
        Family(
            "compute_overhead",
            "Compute overhead (§5.6)",
            build_compute_overhead,
            "archived_results/compute_overhead",
            f"{_T}/compute_overhead",
        ),
        Family(
            "instability_penalty_ablation",
            "Instability-penalty ablation (§5.7)",
            build_instability_penalty_ablation,
            "archived_results",
            f"{_T}/ablations",
        ),
        Family(
            "trend_context_ablation",
            "Trend-context ablation (§5.7)",
            build_trend_context_ablation,
            "archived_results",
            f"{_T}/ablations",
        ),
        Family(
            "nlp",
            "NLP main, axis and detailed (§5.8)",
            build_nlp,
            "archived_results",
            f"{_T}/nlp_tables",
        ),
        Family(
            "nlp_noise_ablation",
            "NLP gradient-noise ablation (§5.9)",
            build_nlp_noise_ablation,
            "archived_results",
            f"{_T}/nlp_noise_ablation",
        ),
    )
}


def spec_text(cell: Cell) -> str:
    """The method spec of a cell as compact JSON (for the report's run list)."""
    return json.dumps(cell.info.spec, sort_keys=True, separators=(",", ":"))

"""The remaining thesis figure families (docs/reporting.md §6), every number from the runs:

* ``sigma_vs_val_acc`` -- noisy AG News AEES runs with a σ axis: per (run, epoch) the mean σ
  selected by the episodes ending in that epoch against the epoch's validation accuracy
  (hexbin, 6 equal-width σ-bin means overlaid; a scatter when σ does not vary);
* ``late_stage`` -- clean CIFAR-style AdamW: the last 20 epochs of every AEES seed, and Fixed
  ×1.0 / ×0.5 / ×2.0 vs AEES as mean ± SD on a relative x axis (−19..0);
* ``peak_checkpoint`` -- noisy CIFAR-style AdamW: corrupted-example accuracy vs their noisy
  labels (x) and vs their clean labels (y) at the best epoch, from the in-run diagnostics (the
  rows of docs/reporting.md §5.4), ± SD, a panel per noise setting;
* ``drop_summary`` -- best − final (pp, mean ± SD) of Flat, the standard scheduler, AEES and
  scheduler + AEES per CIFAR-style (AdamW) and NLP setting: computed from the runs.
"""

from __future__ import annotations

import itertools
import math
import os
import statistics
from collections import Counter
from pathlib import Path

from aees.reporting.families.checkpointing import checkpoint_seed_rows
from aees.reporting.families.cifar_clean import CLEAN_METHODS
from aees.reporting.families.cifar_noisy import NOISY_METHODS, noisy_blocks
from aees.reporting.families.nlp import NLP_MAIN, nlp_groups, nlp_key
from aees.reporting.figures.common import (
    EXTRA_COLORS,
    FigureResult,
    cell_color,
    legend_entries,
    mean_band,
    missing_figure,
    new_figure,
    nothing_to_plot,
    save_figure,
    series_for,
)
from aees.reporting.runs import (
    Cell,
    Run,
    RunSet,
    setting_label,
)
from aees.reporting.select import WL, Sel, pick, prefix
from aees.reporting.stats import mean_sd

LATE_EPOCHS = 20
SIGMA_BINS = 6

# --------------------------------------------------------------------------------------------
# σ vs validation accuracy
# --------------------------------------------------------------------------------------------


def sigma_cells(runset: RunSet) -> list[Cell]:
    """Noisy AG News AEES cells with more than one σ candidate (no context, λ = 0)."""
    return [
        c
        for c in runset.cells
        if c.task == "agnews"
        and c.setting != "clean"
        and c.info.kind == "aees"
        and len(c.info.noise_candidates) > 1
        and c.info.context_mode == "none"
        and not c.info.instability_lambda
    ]


def epoch_sigmas(run: Run) -> list[tuple[int, float, float, float]]:
    """(epoch, mean σ, modal σ, val acc) per epoch with at least one episode ending in it;
    epoch e (1-based) spans steps [(e − 1)·S, e·S), S = total_steps / total_epochs."""
    r = run.result
    logs = r.episode_logs or {}
    sigmas, ends = logs.get("selected_noise_values"), logs.get("episode_end_steps")
    if not isinstance(sigmas, list) or not isinstance(ends, list) or r.total_steps <= 0:
        return []
    per_epoch = r.total_steps / r.total_epochs
    by_epoch: dict[int, list[float]] = {}
    for sigma, end in zip(sigmas, ends, strict=False):
        if sigma is None or end is None:
            continue
        epoch = min(int(end // per_epoch), r.total_epochs - 1)
        by_epoch.setdefault(epoch, []).append(float(sigma))
    out = []
    for epoch in sorted(by_epoch):
        if epoch < len(r.val_accuracies) and not math.isnan(r.val_accuracies[epoch]):
            values = by_epoch[epoch]
            modal = Counter(values).most_common(1)[0][0]
            out.append((epoch + 1, statistics.fmean(values), modal, r.val_accuracies[epoch]))
    return out


def _shape(means: list[float]) -> str:
    """flat (spread < 0.3 pp), monotone increasing/decreasing, single peak/trough, or mixed."""
    if len(means) < 2 or max(means) - min(means) < 0.3:
        return "flat"
    steps = [b - a for a, b in itertools.pairwise(means)]
    if all(d >= 0 for d in steps):
        return "monotone increasing"
    if all(d <= 0 for d in steps):
        return "monotone decreasing"
    top, low = means.index(max(means)), means.index(min(means))
    if all(d >= 0 for d in steps[:top]) and all(d <= 0 for d in steps[top:]):
        return "single peak"
    if all(d <= 0 for d in steps[:low]) and all(d >= 0 for d in steps[low:]):
        return "single trough"
    return "mixed"


def _sigma_figure(out: Path, cell: Cell) -> FigureResult:
    name = f"sigma_vs_val_acc_{nlp_key(cell.task, cell.setting)}"
    points = [(run, p) for run in cell.seed_runs() for p in epoch_sigmas(run)]
    if not points:
        return missing_figure(out, name, [f"{cell.describe()}: no episode ending in any epoch"])
    xs = [p[1] for _, p in points]
    ys = [p[3] * 100 for _, p in points]
    fig, (ax,) = new_figure(1, bottom=0.14)
    lo, hi = min(xs), max(xs)
    summary = [
        f"cell: {cell.describe()}",
        f"runs: {', '.join(f'seed {r.info.seed} ({r.path})' for r in cell.seed_runs())}",
        f"points (run, epoch): {len(points)}",
    ]
    if hi > lo:
        ax.hexbin(xs, ys, gridsize=20, cmap="viridis", mincnt=1)
        width = (hi - lo) / SIGMA_BINS
        centres, bin_means = [], []
        for k in range(SIGMA_BINS):
            inside = [
                y
                for x, y in zip(xs, ys, strict=True)
                if lo + k * width <= x < lo + (k + 1) * width or (k == SIGMA_BINS - 1 and x == hi)
            ]
            if inside:
                centres.append(lo + (k + 0.5) * width)
                bin_means.append(statistics.fmean(inside))
                summary.append(
                    f"bin {k}: sigma [{lo + k * width:.5g}, {lo + (k + 1) * width:.5g}] "
                    f"n={len(inside)} mean_val={bin_means[-1]:.2f}"
                )
        ax.plot(centres, bin_means, "o-", color="#d62728", label="bin mean")
        ax.legend(loc="lower right")
        summary.append("rendering: hexbin (gridsize 20, viridis, mincnt 1) + 6 bin means")
    else:
        ax.scatter(xs, ys, s=10, color=EXTRA_COLORS[0])
        summary.append("rendering: strip (σ does not vary)")
    modal: dict[float, list[float]] = {}
    for _, p in points:
        modal.setdefault(p[2], []).append(p[3] * 100)
    cand_means = {s: statistics.fmean(v) for s, v in sorted(modal.items())}
    for s, m in cand_means.items():
        summary.append(f"modal sigma {s:g}: epochs={len(modal[s])} mean_val={m:.2f}")
    shape = _shape(list(cand_means.values()))
    summary.append(f"shape over modal candidates: {shape}")
    best = max(cand_means, key=lambda s: cand_means[s])
    summary.append(f"best modal sigma: {best:g}" + (" (sigma = 0 is best)" if best == 0 else ""))
    ax.set_xlabel("Mean selected σ in the epoch")
    ax.set_ylabel("Validation accuracy (%)")
    ax.set_title(f"{cell.info.task_label}, {setting_label(cell.setting)}: σ vs accuracy")
    return save_figure(fig, out, name, summary)


def sigma_figures(runset: RunSet, out_dir: str | os.PathLike[str]) -> list[FigureResult]:
    """``sigma_vs_val_acc_<key>`` per noisy AG News setting (the preferred AEES cell with a σ
    axis: warmup-linear first, then dual, then most seeds)."""
    out = Path(out_dir)
    results = []
    cells = sigma_cells(runset)
    for setting in dict.fromkeys(c.setting for c in cells):
        group = [c for c in cells if c.setting == setting]
        group.sort(key=lambda c: (c.info.scheduler != WL, c.info.axes != "dual", -c.n))
        results.append(_sigma_figure(out, group[0]))
    if not results:
        return nothing_to_plot(
            out, "sigma_vs_val_acc", "no noisy AG News AEES runs with more than one σ candidate"
        )
    return results


# --------------------------------------------------------------------------------------------
# Late-stage clean CIFAR trajectories
# --------------------------------------------------------------------------------------------

_LATE_FIXED = (
    ("Fixed ×1.0", CLEAN_METHODS["Fixed ×1.0"], CLEAN_METHODS["AdamW"]),
    ("Fixed ×0.5", CLEAN_METHODS["Fixed ×0.5"], None),
    ("Fixed ×2.0", CLEAN_METHODS["Fixed ×2.0"], None),
    ("AEES", CLEAN_METHODS["AEES"], None),
)
"""Fixed ×1.0 is the fixed-multiplier run, else the AdamW baseline (the same update)."""


def _tail(values: list[float], k: int) -> list[float]:
    return [v * 100 for v in values[-k:]]


def late_stage_figures(runset: RunSet, out_dir: str | os.PathLike[str]) -> list[FigureResult]:
    """Per CIFAR-style task with clean AdamW runs: ``<p>_clean_aees_late_stage_individual_seeds``
    and ``<p>_clean_fixed_vs_aees_late_stage_mean_std``."""
    out = Path(out_dir)
    results: list[FigureResult] = []
    for task in runset.family_tasks("cifar"):
        cells = runset.select(task, "clean")
        if not cells:
            continue
        p, tl = prefix(task), runset.task_label(task)
        notes: list[str] = []
        aees = pick(cells, CLEAN_METHODS["AEES"], optimizer="adamw", where="", notes=notes)
        name = f"{p}_clean_aees_late_stage_individual_seeds"
        if aees is None:
            results.append(missing_figure(out, name, [f"{tl} clean: AEES (AdamW): no runs"]))
        else:
            k = min(LATE_EPOCHS, aees.epochs)
            fig, (ax,) = new_figure(1)
            summary = [f"cell: {aees.describe()}", f"window: last {k} epochs (x = epoch)"]
            for i, run in enumerate(aees.seed_runs()):
                ys = _tail(run.result.val_accuracies, k)
                xs = list(range(len(run.result.val_accuracies) - len(ys) + 1,
                                len(run.result.val_accuracies) + 1))  # fmt: skip
                ax.plot(xs, ys, color=EXTRA_COLORS[i % len(EXTRA_COLORS)],
                        label=f"seed {run.info.seed}")  # fmt: skip
                summary.append(
                    f"seed {run.info.seed}: first={ys[0]:.2f} last={ys[-1]:.2f} "
                    f"min={min(ys):.2f} max={max(ys):.2f} path={run.path}"
                )
            ax.set_xlabel("Epoch")
            ax.set_ylabel("Validation accuracy (%)")
            ax.set_title(f"{tl}, clean labels: AEES seeds, last {k} epochs")
            ax.legend(loc="lower right", ncol=2)
            results.append(save_figure(fig, out, name, summary))
        name = f"{p}_clean_fixed_vs_aees_late_stage_mean_std"
        lines = []
        partial = []
        for label, sel, fallback in _LATE_FIXED:
            cell = pick(cells, sel, optimizer="adamw", where="", notes=notes)
            if cell is None and fallback is not None:
                cell = pick(cells, fallback, optimizer="adamw", where="", notes=notes)
            if cell is None:
                partial.append(f"{tl} clean: {label}: no runs")
            else:
                lines.append((label, cell))
        if not any(lab == "AEES" for lab, _ in lines) or len(lines) < 2:
            results.append(missing_figure(out, name, [f"{tl} clean: need AEES and a fixed "
                                                      "multiplier", *partial]))  # fmt: skip
            continue
        k = min(LATE_EPOCHS, *(c.epochs for _, c in lines))
        fig, (ax,) = new_figure(1)
        summary = [f"window: last {k} epochs, x relative (−{k - 1}..0); mean ± sample SD"]
        for i, (label, cell) in enumerate(lines):
            mean, sd = mean_band([_tail(r.result.val_accuracies, k) for r in cell.seed_runs()])
            xs = list(range(-len(mean) + 1, 1))
            color = cell_color(cell, i) if label == "AEES" else EXTRA_COLORS[i]
            ax.plot(xs, mean, color=color, label=f"{label} (n={cell.n})")
            ax.fill_between(xs, [m - s for m, s in zip(mean, sd, strict=True)],
                            [m + s for m, s in zip(mean, sd, strict=True)],
                            color=color, alpha=0.18, linewidth=0)  # fmt: skip
            window = mean_sd(mean)
            summary.append(
                f"{label}: n={cell.n} seeds={cell.seeds} start={mean[0]:.2f}±{sd[0]:.2f} "
                f"end={mean[-1]:.2f}±{sd[-1]:.2f} window_mean={window.mean:.2f} "
                f"variant={cell.variant}"
            )
        summary += [f"missing: {m}" for m in partial]
        ax.set_xlabel("Epoch relative to the last")
        ax.set_ylabel("Validation accuracy (%)")
        ax.set_title(f"{tl}, clean labels: fixed multipliers vs AEES, last {k} epochs")
        ax.legend(loc="lower right")
        result = save_figure(fig, out, name, summary)
        result.partial = partial
        results.append(result)
    if not results:
        return nothing_to_plot(out, "late_stage", "no clean CIFAR-100 or digits runs")
    return results


# --------------------------------------------------------------------------------------------
# Peak-checkpoint scatter
# --------------------------------------------------------------------------------------------


def peak_checkpoint_figures(runset: RunSet, out_dir: str | os.PathLike[str]) -> list[FigureResult]:
    """``<p>_peak_checkpoint_diagnostics``: a panel per noise setting (AdamW), a point per
    method of the noisy tables at mean (corr. vs noisy, corr. vs clean) × 100 ± SD."""
    out = Path(out_dir)
    results: list[FigureResult] = []
    for task in runset.family_tasks("cifar"):
        blocks = [(s, cells) for s, opt, cells in noisy_blocks(runset, task) if opt == "adamw"]
        if not blocks:
            continue
        p, tl = prefix(task), runset.task_label(task)
        name = f"{p}_peak_checkpoint_diagnostics"
        panels, partial = [], []
        for setting, cells in blocks:
            points = []
            for sel in NOISY_METHODS:
                cell = pick(cells, sel, optimizer="adamw", where="", notes=[])
                rows = checkpoint_seed_rows(cell, setting, "adamw", sel.label)
                if rows:
                    points.append((sel.label, cell, rows))
                else:
                    partial.append(f"{tl} {setting_label(setting)}: {sel.label}: no best-epoch "
                                   "diagnostics")  # fmt: skip
            if points:
                panels.append((setting, points))
        if not panels:
            why = f"{tl}: no noisy AdamW run with in-run best-epoch diagnostics"
            results.append(missing_figure(out, name, [why, *partial]))
            continue
        fig, axes = new_figure(len(panels), sharey=False, bottom=0.2)
        summary = ["x: corrupted examples vs noisy labels (%), y: vs clean labels (%), "
                   "at the best-validation epoch (in-run), mean ± sample SD"]  # fmt: skip
        for ax, (setting, points) in zip(axes, panels, strict=True):
            for i, (label, cell, rows) in enumerate(points):
                x = mean_sd([r.sub["corr_noisy"] * 100 for r in rows])
                y = mean_sd([r.sub["corr_clean"] * 100 for r in rows])
                color = cell_color(cell, i)
                ax.errorbar(x.mean, y.mean, xerr=x.sd, yerr=y.sd, fmt="o", color=color,
                            capsize=2, label=label)  # fmt: skip
                summary.append(
                    f"{setting_label(setting)}: {label}: n={len(rows)} "
                    f"seeds={[r.seed for r in rows]} corr_noisy={x.mean:.2f}±{x.sd:.2f} "
                    f"corr_clean={y.mean:.2f}±{y.sd:.2f} variant={cell.variant}"
                )
            ax.set_title(setting_label(setting))
            ax.set_xlabel("Corr. vs noisy labels (%)")
        axes[0].set_ylabel("Corr. vs clean labels (%)")
        axes[0].legend(loc="best")
        fig.suptitle(f"{tl} (AdamW): the best-epoch checkpoint")
        summary += [f"missing: {m}" for m in partial]
        result = save_figure(fig, out, name, summary)
        result.partial = partial
        results.append(result)
    if not results:
        return nothing_to_plot(out, "peak_checkpoint", "no noisy CIFAR-100 or digits runs")
    return results


# --------------------------------------------------------------------------------------------
# Drop summary
# --------------------------------------------------------------------------------------------

DROP_SLOTS = ("Flat", "Standard scheduler", "AEES", "Standard + AEES")


def _drop_groups(runset: RunSet) -> tuple[list, list]:
    """(CIFAR-style groups, NLP groups): (label, [(slot, AccStats)])."""
    cifar = []
    for task in runset.family_tasks("cifar"):
        for setting in runset.settings(task):
            cells = runset.select(task, setting)
            sels: tuple[Sel, ...]
            if setting == "clean":
                names = ("AdamW", "AdamW + Cosine", "AEES", "AEES + Cosine")
                sels = tuple(CLEAN_METHODS[k] for k in names)
            else:
                by_label = {sel.label: sel for sel in NOISY_METHODS}
                sels = tuple(by_label[k] for k in ("Baseline", "Cosine", "AEES", "Cosine + AEES"))
            series = series_for(cells, sels, "adamw")
            label = f"{runset.task_label(task)} {setting_label(setting)}"
            cifar.append((label, list(zip(DROP_SLOTS, (st for _, st in series), strict=True))))
    nlp = []
    for task, setting, cells in nlp_groups(runset):
        series = series_for(cells, NLP_MAIN, None)  # AdamW, + WL, AEES, AEES + WL
        label = f"{runset.task_label(task)} {setting_label(setting)}"
        nlp.append((label, list(zip(DROP_SLOTS, (st for _, st in series), strict=True))))
    return cifar, nlp


def drop_summary_figures(runset: RunSet, out_dir: str | os.PathLike[str]) -> list[FigureResult]:
    """``drop_summary``: grouped bars of best − final (pp) per slot, a panel for CIFAR-style
    AdamW settings (scheduler = cosine) and one for NLP (scheduler = warmup-linear)."""
    out = Path(out_dir)
    cifar, nlp = _drop_groups(runset)
    panels = [(t, g) for t, g in (("CIFAR-style (AdamW)", cifar), ("NLP", nlp)) if g]
    partial = [f"{g}: {slot}: no runs" for _, gs in panels for g, row in gs
               for slot, st in row if not st.n]  # fmt: skip
    if not any(st.n for _, gs in panels for _, row in gs for _, st in row):
        return [missing_figure(out, "drop_summary", ["no runs for any slot", *partial])]
    fig, axes = new_figure(len(panels), sharey=False, bottom=0.28)
    summary = ["bars: drop = best − final (pp), mean ± sample SD over seeds; "
               "standard scheduler = cosine (CIFAR-style), warmup-linear (NLP)"]  # fmt: skip
    width = 0.2
    for ax, (title, groups) in zip(axes, panels, strict=True):
        for gi, (group, row) in enumerate(groups):
            for si, (slot, st) in enumerate(row):
                if not st.n:
                    continue
                mean, sd = st.drop.mean * 100, st.drop.sd * 100
                ax.bar(gi + (si - 1.5) * width, mean, width, yerr=sd, capsize=2,
                       color=EXTRA_COLORS[si], label=slot if gi == 0 else None)  # fmt: skip
                assert st.cell is not None
                summary.append(f"{group}: {slot}: n={st.n} drop={mean:.2f}±{sd:.2f} "
                               f"variant={st.cell.variant}")  # fmt: skip
        ax.set_xticks(range(len(groups)))
        ax.set_xticklabels([g for g, _ in groups], rotation=25, ha="right", fontsize=7)
        ax.set_title(title)
        ax.axhline(0, color="#444444", lw=0.6)
    axes[0].set_ylabel("Drop, best − final (pp)")
    handles, labels = legend_entries(axes)
    fig.legend(handles, labels, loc="upper right", ncol=4)
    summary += [f"missing: {m}" for m in partial]
    result = save_figure(fig, out, "drop_summary", summary)
    result.partial = partial
    return [result]


def thesis_families_for(runset: RunSet) -> list[str]:
    """The families of this module whose inputs exist (so that a report draws them)."""
    out = []
    if sigma_cells(runset):
        out.append("sigma_vs_val_acc")
    clean = [c for c in runset.cells if c.info.is_cifar_like and c.setting == "clean"]
    adamw = [c for c in clean if c.info.optimizer == "adamw"]
    if any(CLEAN_METHODS["AEES"].matches(c.info) for c in adamw) and any(
        sel.matches(c.info)
        for c in adamw
        for _, sel, fb in _LATE_FIXED[:3]
        for sel in (sel, fb)
        if sel is not None
    ):
        out.append("late_stage")
    if any(
        r.info.is_cifar_like
        and r.info.setting != "clean"
        and r.info.optimizer == "adamw"
        and r.result.diagnostics.get("best_val_subset_accuracies")
        for r in runset.runs
    ):
        out.append("peak_checkpoint")
    if runset.family_tasks("cifar", "nlp"):
        out.append("drop_summary")
    return out

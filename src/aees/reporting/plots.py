"""Figures from result JSON (matplotlib, Agg): PNG + PDF + ``<name>.summary.txt`` with every
plotted number, or ``<name>.MISSING.md`` naming what is missing. No data is hard-coded.

Families (``thesis-experiments.md`` §5.12-§5.13):

* ``cifar`` -- validation curves (clean; one per noise regime, a panel per optimizer), the clean
  peak/final bar plot, the gradient-noise ablation bars and curves (CIFAR-100 and digits);
* ``nlp`` -- SST-2 / AG News validation curves, the σ-ablation bar plot;
* ``controllers`` -- arm selection over training, reward per arm, update-norm trajectory;
* ``compute`` -- wall-clock overhead (the same configurations as the overhead table).

Curves: per seed the validation accuracy (×100; noisy CIFAR smoothed by a centred 5-epoch
rolling mean for display), then mean ± sample SD across seeds (SD 0 for one seed). The peak
marker sits at (round(mean of per-seed peak epochs), mean of per-seed best accuracies), the
final marker at (last epoch, mean final accuracy) -- the numbers of the tables.

Every figure is ``FIGSIZE`` inches at ``DPI`` (PNG size ``FIGSIZE × DPI`` pixels).
"""

from __future__ import annotations

import contextlib
import math
import os
import statistics
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aees.reporting.families import (
    CLEAN_METHODS,
    DECOMPOSITION_COLUMNS,
    NLP_AXIS,
    NLP_MAIN,
    NOISY_METHODS,
    AccStats,
    Sel,
    acc_stats,
    decomposition_config,
    method_label,
    nlp_groups,
    nlp_key,
    noise_ablation_pairs,
    overhead_cells,
    pick,
    prefix,
    sigma_ablation_rows,
)
from aees.reporting.runs import (
    CIFAR_LIKE_TASKS,
    Cell,
    RunSet,
    optimizer_label,
    setting_label,
    task_label,
)
from aees.results.io import atomic_write, atomic_write_text

__all__ = [
    "DPI",
    "FIGSIZE",
    "FIGURE_FAMILIES",
    "FigureResult",
    "cifar_figures",
    "compute_figures",
    "controller_figures",
    "nlp_figures",
    "rolling",
]

FIGSIZE = (6.5, 4.0)
DPI = 150

_PALETTE = {
    "flat": "#666666",
    "cosine": "#1f77b4",
    "linear": "#17becf",
    "warmup_linear": "#1f77b4",
    "aees_lr": "#d62728",
    "aees_noise": "#9467bd",
    "aees_dual": "#8c564b",
    "sched_aees": "#ff7f0e",
}
_EXTRA_COLORS = ("#2ca02c", "#bcbd22", "#e377c2", "#7f7f7f", "#17becf", "#1f77b4")


@dataclass
class FigureResult:
    """One figure: the files written, or what was missing (then a MISSING note was written).

    ``partial`` lists series that had no runs while the figure itself could be drawn.
    """

    name: str
    paths: list[Path] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)
    partial: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.missing

    @property
    def png(self) -> Path | None:
        return next((p for p in self.paths if p.suffix == ".png"), None)


# --------------------------------------------------------------------------------------------
# Matplotlib plumbing
# --------------------------------------------------------------------------------------------


def _pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    plt.rcParams.update(
        {
            "figure.dpi": DPI,
            "savefig.dpi": DPI,
            "font.family": "serif",
            "font.size": 9,
            "axes.labelsize": 9,
            "axes.titlesize": 10,
            "xtick.labelsize": 8,
            "ytick.labelsize": 8,
            "legend.fontsize": 7,
            "legend.frameon": False,
            "axes.spines.top": False,
            "axes.spines.right": False,
            "axes.grid": True,
            "grid.color": "#cccccc",
            "grid.linestyle": "--",
            "grid.linewidth": 0.5,
            "grid.alpha": 0.6,
            "axes.axisbelow": True,
            "lines.linewidth": 1.6,
            "lines.markersize": 4.5,
            "pdf.fonttype": 42,
        }
    )
    return plt


def _figure(
    ncols: int = 1, *, sharey: bool = True, left: float = 0.1, bottom: float = 0.13
) -> tuple[Any, list[Any]]:
    """A FIGSIZE figure with ``ncols`` panels and fixed margins (a layout engine would
    re-run on every save and double the cost of a figure)."""
    plt = _pyplot()
    fig, axes = plt.subplots(1, ncols, figsize=FIGSIZE, sharey=sharey, squeeze=False)
    fig.subplots_adjust(left=left, right=0.98, top=0.88, bottom=bottom, wspace=0.12)
    return fig, list(axes[0])


def _save(fig: Any, out_dir: Path, name: str, summary: list[str]) -> FigureResult:
    """Write PNG, PDF and summary atomically; remove a stale MISSING note; close the figure."""
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = []
    try:
        for ext in ("png", "pdf"):
            paths.append(
                atomic_write(
                    out_dir / f"{name}.{ext}",
                    lambda handle, ext=ext: fig.savefig(handle, format=ext, dpi=DPI),
                )
            )
    finally:
        _pyplot().close(fig)
    text = f"# {name}\n" + "\n".join(summary) + "\n"
    paths.append(atomic_write_text(out_dir / f"{name}.summary.txt", text))
    with contextlib.suppress(FileNotFoundError):
        (out_dir / f"{name}.MISSING.md").unlink()
    return FigureResult(name, paths)


def _missing(out_dir: Path, name: str, missing: list[str]) -> FigureResult:
    """Write ``<name>.MISSING.md`` listing ``missing``; remove stale outputs of ``name``."""
    text = f"# {name} — missing\n\n" + "".join(f"- {m}\n" for m in missing)
    path = atomic_write_text(out_dir / f"{name}.MISSING.md", text)
    for ext in ("png", "pdf", "summary.txt"):
        with contextlib.suppress(FileNotFoundError):
            (out_dir / f"{name}.{ext}").unlink()
    return FigureResult(name, [path], missing=list(missing))


def rolling(values: Sequence[float], window: int, how: str = "mean") -> list[float]:
    """Centred rolling mean or median with a window of ``window`` points (shrunk at the ends,
    NaN ignored): y_i = agg(x_j for |j − i| ≤ window // 2)."""
    import numpy as np

    x = np.asarray(values, dtype=float)
    half = max(window, 1) // 2
    agg = np.nanmean if how == "mean" else np.nanmedian
    out = []
    for i in range(len(x)):
        chunk = x[max(0, i - half) : i + half + 1]
        out.append(float(agg(chunk)) if np.isfinite(chunk).any() else math.nan)
    return out


def _color(cell: Cell | None, index: int) -> str:
    if cell is None:
        return _EXTRA_COLORS[index % len(_EXTRA_COLORS)]
    info = cell.info
    if info.kind == "baseline":
        return _PALETTE.get("flat" if info.scheduler == "none" else info.scheduler, "#1f77b4")
    if info.kind == "aees":
        if info.scheduler != "none":
            return _PALETTE["sched_aees"]
        return _PALETTE.get(f"aees_{info.axes}", _PALETTE["aees_lr"])
    return _EXTRA_COLORS[index % len(_EXTRA_COLORS)]


def _seed_curves(cell: Cell) -> list[list[float]]:
    return [[v * 100 for v in r.result.val_accuracies] for r in cell.seed_runs()]


def _mean_band(curves: list[list[float]]) -> tuple[list[float], list[float]]:
    """Mean and sample SD per epoch over seeds (truncated to the shortest curve; empty when
    there is no curve or one is empty)."""
    length = min((len(c) for c in curves), default=0)
    means, sds = [], []
    for t in range(length):
        column = [c[t] for c in curves]
        means.append(statistics.fmean(column))
        sds.append(statistics.stdev(column) if len(column) > 1 else 0.0)
    return means, sds


Series = tuple[str, AccStats]


def _join(group: str, label: str) -> str:
    return f"{group}: {label}" if group else label


def _curves(
    out_dir: Path,
    name: str,
    title: str,
    panels: list[tuple[str, list[Series]]],
    *,
    smooth: int = 1,
    what: str,
) -> FigureResult:
    """Validation curves (mean ± SD band, peak and final markers), one panel per entry."""
    panels = [(t, s) for t, s in panels if s]
    present = [(t, [x for x in s if x[1].n]) for t, s in panels]
    partial = [f"{_join(t, label)}: no runs" for t, s in panels for label, st in s if not st.n]
    if not any(s for _, s in present):
        return _missing(out_dir, name, [f"no runs for any line of {what}", *partial])
    rows = math.ceil((len({lab for _, x in present for lab, _ in x}) + 2) / 4)
    fig, axes = _figure(len(present), bottom=0.15 + 0.04 * rows)
    summary = [f"title: {title}", f"smoothing: centred rolling mean, window {smooth} epochs"]
    summary += ["y: validation accuracy (%), mean ± sample SD across seeds"]
    for ax, (panel_title, series) in zip(axes, present, strict=True):
        ax.set_title(panel_title)
        for i, (label, st) in enumerate(series):
            assert st.cell is not None
            curves = [rolling(c, smooth) if smooth > 1 else c for c in _seed_curves(st.cell)]
            mean, sd = _mean_band(curves)
            if not mean:  # discovery rejects empty curves; never index into one
                partial.append(f"{_join(panel_title, label)}: no validation curve")
                continue
            epochs = list(range(1, len(mean) + 1))
            color = _color(st.cell, i)
            ax.plot(epochs, mean, color=color, label=f"{label} (n={st.n})")
            ax.fill_between(
                epochs,
                [m - s for m, s in zip(mean, sd, strict=True)],
                [m + s for m, s in zip(mean, sd, strict=True)],
                color=color,
                alpha=0.18,
                linewidth=0,
            )
            peak_x = round(st.peak.mean) if not math.isnan(st.peak.mean) else 1
            ax.plot(peak_x, st.best.mean * 100, "o", mfc="none", mec=color, ms=9, mew=1.6, zorder=5)
            ax.plot(len(mean), st.final.mean * 100, "s", color=color, mec="black", ms=6, zorder=5)
            summary.append(
                f"{_join(panel_title, label)}: n={st.n} seeds={st.seeds} "
                f"peak_epoch={st.peak.mean:.1f}±{st.peak.sd:.1f} "
                f"best={st.best.mean * 100:.2f}±{st.best.sd * 100:.2f} "
                f"final={st.final.mean * 100:.2f}±{st.final.sd * 100:.2f} "
                f"curve_last={mean[-1]:.2f} variant={st.cell.variant}"
            )
        ax.set_xlabel("Epoch")
    axes[0].set_ylabel("Validation accuracy (%)")
    handles, labels = [], []
    for ax in axes:
        for h, lab in zip(*ax.get_legend_handles_labels(), strict=True):
            if lab not in labels:
                handles.append(h)
                labels.append(lab)
    line2d = _pyplot().Line2D
    handles += [
        line2d([], [], marker="o", mfc="none", mec="black", ls="none", ms=7),
        line2d([], [], marker="s", color="grey", mec="black", ls="none", ms=5),
    ]
    labels += ["Mean peak", "Mean final"]
    fig.legend(handles, labels, loc="lower center", ncol=min(4, len(labels)))
    fig.suptitle(title)
    summary += [f"missing: {p}" for p in partial]
    result = _save(fig, out_dir, name, summary)
    result.partial = partial
    return result


def _bars(
    out_dir: Path,
    name: str,
    title: str,
    groups: list[tuple[str, list[Series]]],
    *,
    what: str,
) -> FigureResult:
    """Grouped bars: peak (solid) and final (hatched) accuracy per method, ± sample SD."""
    flat = [(g, label, st) for g, series in groups for label, st in series]
    partial = [f"{_join(g, label)}: no runs" for g, label, st in flat if not st.n]
    present = [(g, label, st) for g, label, st in flat if st.n]
    if not present:
        return _missing(out_dir, name, [f"no runs for any bar of {what}", *partial])
    fig, (ax,) = _figure(1, bottom=0.22)
    width = 0.38
    lows, highs = [], []
    summary = [f"title: {title}", "bars: peak (solid) and final (hatched) accuracy, % ± SD"]
    for i, (group, label, st) in enumerate(present):
        color = _color(st.cell, i)
        for offset, summ, hatch in ((-width / 2, st.best, None), (width / 2, st.final, "////")):
            mean, sd = summ.mean * 100, summ.sd * 100
            ax.bar(
                i + offset,
                mean,
                width,
                yerr=sd,
                color=color if hatch is None else "white",
                edgecolor=color,
                hatch=hatch,
                capsize=2,
            )
            ax.annotate(
                f"{mean:.1f}",
                (i + offset, mean + sd),
                ha="center",
                va="bottom",
                fontsize=6,
                xytext=(0, 2),
                textcoords="offset points",
            )
            lows.append(mean - sd)
            highs.append(mean + sd)
        summary.append(
            f"{_join(group, label)}: n={st.n} "
            f"peak={st.best.mean * 100:.2f}±{st.best.sd * 100:.2f} "
            f"final={st.final.mean * 100:.2f}±{st.final.sd * 100:.2f}"
        )
    ax.set_xticks(range(len(present)))
    ax.set_xticklabels(
        [f"{label}\n{group}" if len(groups) > 1 else label for group, label, _ in present],
        rotation=20,
        ha="right",
        fontsize=7,
    )
    span = max(highs) - min(lows)
    ax.set_ylim(min(lows) - max(1.0, 0.3 * span), max(highs) + max(0.8, 0.15 * span))
    ax.set_ylabel("Accuracy (%)")
    ax.set_title(title)
    summary += [f"missing: {p}" for p in partial]
    result = _save(fig, out_dir, name, summary)
    result.partial = partial
    return result


def _series(cells: list[Cell], sels: Sequence[Sel], optimizer: str | None) -> list[Series]:
    notes: list[str] = []
    return [
        (s.label, acc_stats(pick(cells, s, optimizer=optimizer, where="", notes=notes)))
        for s in sels
    ]


# --------------------------------------------------------------------------------------------
# Families
# --------------------------------------------------------------------------------------------


def _nothing(out_dir: Path, family: str, what: str) -> list[FigureResult]:
    return [_missing(out_dir, f"{family}_figures", [what])]


def cifar_figures(runset: RunSet, out_dir: str | os.PathLike[str]) -> list[FigureResult]:
    """Clean and noisy validation curves, clean bar plot, gradient-noise ablation bars and
    curves, for CIFAR-100 and digits."""
    out = Path(out_dir)
    results: list[FigureResult] = []
    for task in CIFAR_LIKE_TASKS:
        if not runset.select(task):
            continue
        p, tl = prefix(task), task_label(task)
        clean = runset.select(task, "clean")
        if clean:
            main = [CLEAN_METHODS[k] for k in CLEAN_METHODS if not k.startswith("Fixed")]
            series = _series(clean, main, "adamw")
            results.append(
                _curves(
                    out,
                    f"{p}_clean_curves",
                    f"{tl}, clean labels (AdamW)",
                    [("", series)],
                    what=f"{tl} clean",
                )
            )
            results.append(
                _bars(
                    out,
                    f"{p}_clean_barplot",
                    f"{tl}, clean labels: peak and final",
                    [("", series)],
                    what=f"{tl} clean",
                )
            )
        for setting in runset.settings(task):
            if setting == "clean":
                continue
            cells = runset.select(task, setting)
            optimizers = [o for o in ("adamw", "sgd") if any(c.info.optimizer == o for c in cells)]
            panels = [(optimizer_label(o), _series(cells, NOISY_METHODS, o)) for o in optimizers]
            epochs = max((c.epochs for c in cells), default=0)
            results.append(
                _curves(
                    out,
                    f"{p}_{setting}_curves",
                    f"{tl}, {setting_label(setting)} label noise",
                    panels,
                    smooth=5 if epochs >= 20 else 1,
                    what=f"{tl} {setting}",
                )
            )
        pairs = [(a, b) for a, b in noise_ablation_pairs(runset) if a.task == task]
        if pairs:
            groups = [
                (
                    f"{setting_label(b.setting)}, {b.epochs} ep",
                    [("No gradient noise", acc_stats(a)), ("Gradient noise", acc_stats(b))],
                )
                for a, b in pairs
            ]
            results.append(
                _bars(
                    out,
                    f"{p}_noise_ablation_barplot",
                    f"{tl}: gradient-noise injection in AEES",
                    groups,
                    what=f"{tl} noise ablation",
                )
            )
            results.append(
                _curves(
                    out,
                    f"{p}_noise_ablation_curves",
                    f"{tl}: gradient-noise injection",
                    groups[:3],
                    what=f"{tl} noise ablation",
                )
            )
    if not results:
        return _nothing(out, "cifar", "no CIFAR-100 or digits runs")
    return results


def nlp_figures(runset: RunSet, out_dir: str | os.PathLike[str]) -> list[FigureResult]:
    """Validation curves per NLP task and setting; σ-ablation bar plots."""
    out = Path(out_dir)
    results: list[FigureResult] = []
    for task, setting, cells in nlp_groups(runset):
        key = nlp_key(task, setting)
        title = f"{task_label(task)}, {setting_label(setting)} labels"
        series = _series(cells, NLP_MAIN, None)
        series += [s for s in _series(cells, NLP_AXIS[1:3], None) if s[1].n]
        results.append(_curves(out, f"{key}_curves", title, [("", series)], what=title))
        sels = sigma_ablation_rows(cells)
        if sels is not None:
            results.append(
                _bars(
                    out,
                    f"{key}_noise_ablation_barplot",
                    f"{title}: gradient-noise ablation",
                    [("", _series(cells, sels, None))],
                    what=f"{title} σ ablation",
                )
            )
    if not results:
        return _nothing(out, "nlp", "no SST-2 or AG News runs")
    return results


# --------------------------------------------------------------------------------------------
# Controller figures
# --------------------------------------------------------------------------------------------


def headline_aees_cells(runset: RunSet) -> list[Cell]:
    """The AEES cells the controller figures describe: every AEES variant without context and
    without instability penalty (the main-table configurations), per task and setting."""
    return [
        c
        for c in runset.cells
        if c.info.kind == "aees" and c.info.context_mode == "none" and not c.info.instability_lambda
    ]


def _cell_names(cells: list[Cell]) -> dict[int, str]:
    """``<task>_<setting>_<optimizer>_<scheduler>_<axes>``, plus the variant digest when two
    cells would share a name."""
    base = {
        id(c): f"{c.task}_{c.setting}_{c.info.optimizer}_{c.info.scheduler}_{c.info.axes}"
        for c in cells
    }
    counts: dict[str, int] = {}
    for name in base.values():
        counts[name] = counts.get(name, 0) + 1
    return {
        key: name if counts[name] == 1 else f"{name}_{cell.variant[-8:]}"
        for cell in cells
        for key, name in [(id(cell), base[id(cell)])]
    }


def _cell_title(cell: Cell) -> str:
    return (
        f"{task_label(cell.task)}, {setting_label(cell.setting)}, "
        f"{optimizer_label(cell.info.optimizer)}: {method_label(cell.info)}"
    )


_AXES = (("lr", "selected_lr_values", "LR multiplier"), ("noise", "selected_noise_values", "σ"))


def _arm_index(value: float, arms: Sequence[float]) -> int:
    return min(range(len(arms)), key=lambda k: abs(arms[k] - value))


def _episode_epochs(cell: Cell, count: int) -> list[float]:
    """x position (epochs) of each episode end: (end step + 1) / (total steps / epochs)."""
    r = cell.seed_runs()[0].result
    logs = r.episode_logs or {}
    ends = logs.get("episode_end_steps") or []
    spe = r.total_steps / r.total_epochs if r.total_epochs and r.total_steps else 0
    if spe and len(ends) >= count:
        return [(float(e) + 1) / spe for e in ends[:count]]
    return [float(i + 1) for i in range(count)]


def _arm_fractions(cell: Cell, key: str, arms: Sequence[float]) -> list[list[float]] | None:
    """fractions[k][e] = share of seeds that chose arm k in episode e (shortest seed)."""
    chosen = []
    for run in cell.seed_runs():
        values = (run.result.episode_logs or {}).get(key)
        if isinstance(values, list) and values:
            chosen.append([_arm_index(float(v), arms) for v in values])
    if not chosen:
        return None
    length = min(len(c) for c in chosen)
    return [
        [sum(1 for c in chosen if c[e] == k) / len(chosen) for e in range(length)]
        for k in range(len(arms))
    ]


def _phase_means(values: Sequence[float]) -> str:
    n = len(values)
    parts = {
        "overall": values,
        "first25": values[: max(1, n // 4)],
        "mid50": values[n // 4 : max(n // 4 + 1, 3 * n // 4)],
        "last25": values[3 * n // 4 :] or values[-1:],
    }
    return " ".join(f"{k}={statistics.fmean(v):.3f}" for k, v in parts.items() if v)


def _arm_selection(cell: Cell, out: Path, tag: str) -> FigureResult:
    name = f"arm_selection_{tag}"
    axes_info = [
        (axis, key, label, cell.info.lr_candidates if axis == "lr" else cell.info.noise_candidates)
        for axis, key, label in _AXES
    ]
    axes_info = [a for a in axes_info if len(a[3]) > 1]
    data = [(a, _arm_fractions(cell, a[1], a[3])) for a in axes_info]
    data = [(a, f) for a, f in data if f]
    if not data:
        return _missing(out, name, [f"{cell.describe()}: no episode logs with arm selections"])
    fig, axes = _figure(len(data), sharey=True)
    summary = [f"title: {_cell_title(cell)}", f"seeds: {cell.seeds}", "fraction of seeds per arm"]
    for ax, ((axis, _, label, arms), fractions) in zip(axes, data, strict=True):
        episodes = len(fractions[0])
        window = max(5, round(0.05 * episodes))
        window += 1 - window % 2
        x = _episode_epochs(cell, episodes)
        smoothed = [rolling(f, window) for f in fractions]
        colors = _pyplot().get_cmap("viridis")(
            [0.15 + 0.7 * k / max(1, len(arms) - 1) for k in range(len(arms))]
        )
        ax.stackplot(x, smoothed, labels=[f"{label} {a:g}" for a in arms], colors=colors, alpha=0.9)
        ax.set_xlabel("Epoch")
        ax.set_title(f"{label} arm (smoothing {window} episodes)")
        ax.set_ylim(0, 1)
        ax.legend(loc="upper right")
        total = [sum(f[e] for f in fractions) for e in range(episodes)]
        summary.append(
            f"[{axis}] episodes={episodes} column sums in [{min(total):.3f}, {max(total):.3f}]"
        )
        for a, f in zip(arms, fractions, strict=True):
            summary.append(f"[{axis}] arm {a:g}: {_phase_means(f)}")
    axes[0].set_ylabel("Fraction of seeds")
    fig.suptitle(_cell_title(cell), fontsize=9)
    return _save(fig, out, name, summary)


def _reward_per_arm(cell: Cell, out: Path, tag: str) -> FigureResult:
    name = f"reward_per_arm_{tag}"
    panels = []
    for axis, key, label in _AXES:
        arms = cell.info.lr_candidates if axis == "lr" else cell.info.noise_candidates
        if len(arms) < 2:
            continue
        buckets: list[list[float]] = [[] for _ in arms]
        for run in cell.seed_runs():
            logs = run.result.episode_logs or {}
            for v, reward in zip(
                logs.get(key) or [], logs.get("episode_rewards") or [], strict=False
            ):
                if reward is not None and math.isfinite(float(reward)):
                    buckets[_arm_index(float(v), arms)].append(float(reward))
        if any(buckets):
            panels.append((axis, label, arms, buckets))
    if not panels:
        return _missing(out, name, [f"{cell.describe()}: no episode rewards"])
    fig, axes = _figure(len(panels), sharey=True)
    summary = [f"title: {_cell_title(cell)}", "pooled episode rewards per selected arm"]
    for ax, (axis, label, arms, buckets) in zip(axes, panels, strict=True):
        positions = [k for k, b in enumerate(buckets) if len(b) >= 2]
        if positions:
            parts = ax.violinplot([buckets[k] for k in positions], positions, showmedians=True)
            for body in parts["bodies"]:
                body.set_alpha(0.5)
        for k, b in enumerate(buckets):
            if 0 < len(b) < 2:
                ax.plot([k], b, "o", color="black")
            if b:
                summary.append(
                    f"[{axis}] arm {arms[k]:g}: n={len(b)} mean={statistics.fmean(b):.5f} "
                    f"median={statistics.median(b):.5f} "
                    f"sd={statistics.stdev(b) if len(b) > 1 else 0.0:.5f} "
                    f"frac_positive={sum(1 for r in b if r > 0) / len(b):.3f}"
                )
            else:
                summary.append(f"[{axis}] arm {arms[k]:g}: n=0")
        ax.axhline(0, color="#444444", linestyle="--", linewidth=0.8)
        ax.set_xticks(range(len(arms)))
        ax.set_xticklabels([f"{a:g}" for a in arms])
        ax.set_xlabel(label)
    axes[0].set_ylabel("Episode reward")
    fig.suptitle(_cell_title(cell), fontsize=9)
    return _save(fig, out, name, summary)


def _positive_or_nan(value: Any) -> float:
    """An update norm for the log-scale plot: NaN unless a finite positive number."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return math.nan
    return float(value) if math.isfinite(value) and value > 0 else math.nan


def _update_norms(cells: list[Cell], out: Path) -> FigureResult:
    import numpy as np

    name = "update_norm_trajectory"
    lines = []
    for cell in cells:
        series = []
        for run in cell.seed_runs():
            norms = (run.result.episode_logs or {}).get("mean_update_norms") or []
            values = [_positive_or_nan(v) for v in norms]
            if any(math.isfinite(v) for v in values):
                series.append(values)
        if series:
            lines.append((cell, series))
    if not lines:
        return _missing(
            out,
            name,
            [
                "no AEES run logged update norms (episode_logs.mean_update_norms); "
                "train with --track-update-norm"
            ],
        )
    fig, (ax,) = _figure(1)
    summary = ["cross-seed nanmedian with 25-75% band, centred rolling median; x = progress"]
    for i, (cell, series) in enumerate(lines):
        length = min(len(s) for s in series)
        stack = np.asarray([s[:length] for s in series])
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN columns stay NaN
            median = np.nanmedian(stack, axis=0)
            q25, q75 = np.nanpercentile(stack, [25, 75], axis=0)
        window = max(3, round(length / 20)) | 1
        smooth = rolling(median, window, "median")
        x = [(e + 1) / length for e in range(length)]
        color = _EXTRA_COLORS[i % len(_EXTRA_COLORS)] if i else _PALETTE["aees_lr"]
        label = f"{task_label(cell.task)} {setting_label(cell.setting)}: {method_label(cell.info)}"
        ax.plot(x, smooth, color=color, label=label)
        ax.fill_between(
            x,
            rolling(q25, window, "median"),
            rolling(q75, window, "median"),
            color=color,
            alpha=0.15,
            linewidth=0,
        )
        late = [v for v in smooth[int(0.8 * length) :] if math.isfinite(v)]
        summary.append(
            f"{label}: seeds={len(series)} episodes={length} window={window} "
            f"late_median={statistics.median(late) if late else math.nan:.6g}"
        )
    sigma = max(max(c.info.noise_candidates) for c, _ in lines)
    if sigma > 0:
        ax.axhline(
            sigma, color="#888888", linestyle="--", linewidth=0.8, label=f"largest σ = {sigma:g}"
        )
        summary.append(f"dashed line: largest noise candidate σ = {sigma:g}")
    ax.set_yscale("log")
    ax.set_xlabel("Training progress")
    ax.set_ylabel("Mean update norm per episode")
    ax.legend(loc="best")
    return _save(fig, out, name, summary)


def controller_figures(runset: RunSet, out_dir: str | os.PathLike[str]) -> list[FigureResult]:
    """Arm selection and reward per arm for every headline AEES cell; update-norm trajectory."""
    out = Path(out_dir)
    cells = headline_aees_cells(runset)
    if not cells:
        return _nothing(out, "controllers", "no AEES runs with episode logs")
    results = []
    names = _cell_names(cells)
    for cell in cells:
        results.append(_arm_selection(cell, out, names[id(cell)]))
        results.append(_reward_per_arm(cell, out, names[id(cell)]))
    results.append(_update_norms(cells, out))
    return results


# --------------------------------------------------------------------------------------------
# Compute
# --------------------------------------------------------------------------------------------


def compute_figures(runset: RunSet, out_dir: str | os.PathLike[str]) -> list[FigureResult]:
    """Wall-clock overhead bars: the configurations of the overhead decomposition table (LR
    schedule, AEES-LR/-Noise/-Dual without a schedule) vs the no-scheduler baseline."""
    out = Path(out_dir)
    name = "wallclock_overhead"
    cells = overhead_cells(runset)
    by_key = {(c.task, c.optimizer, c.config): c for c in cells}
    bars, missing = [], []
    for task, opt in dict.fromkeys((c.task, c.optimizer) for c in cells):
        group = f"{task_label(task)} ({optimizer_label(opt)})"
        if (task, opt, "baseline_none") not in by_key:
            missing.append(f"{group}: no baseline (no scheduler) timing runs")
            continue
        for label, column in DECOMPOSITION_COLUMNS:
            c = by_key.get((task, opt, decomposition_config(task, column)))
            if c is None or c.overhead_pct is None:
                missing.append(f"{group}: {label}: no timing runs")
            else:
                bars.append((group, label, c))
    if not bars:
        return [_missing(out, name, missing or ["no runs with at least 2 timed epochs"])]
    fig, (ax,) = _figure(1, left=0.4)
    y = list(range(len(bars)))[::-1]
    summary = [
        "overhead % = 100·(s/epoch(config) / s/epoch(baseline, no scheduler) − 1)",
        "s/epoch = mean(epoch_wall_clock_seconds[1:]) per run, mean over repeats",
    ]
    for yi, (group, label, c) in zip(y, bars, strict=True):
        color = _PALETTE["cosine"] if label == "LR sched." else _PALETTE["aees_lr"]
        ax.barh(yi, c.overhead_pct, color=color, alpha=0.85)
        ax.annotate(
            f"{c.overhead_pct:+.1f}%",
            (c.overhead_pct, yi),
            va="center",
            fontsize=7,
            xytext=(3 if c.overhead_pct >= 0 else -3, 0),
            textcoords="offset points",
            ha="left" if c.overhead_pct >= 0 else "right",
        )
        summary.append(
            f"{group} | {label} ({c.config}): n={c.sec_per_epoch.n} "
            f"s/epoch={c.sec_per_epoch.mean:.4f}±{c.sec_per_epoch.sd:.4f} "
            f"overhead={c.overhead_pct:+.2f}% devices={','.join(c.devices)}"
        )
    ax.set_yticks(y)
    ax.set_yticklabels([f"{g}: {lab}" for g, lab, _ in bars], fontsize=7)
    ax.axvline(0, color="#444444", linewidth=0.8)
    ax.set_xlabel("Overhead vs baseline without scheduler (%)")
    ax.margins(x=0.18)
    ax.set_title("Steady-state time per epoch vs the no-scheduler baseline")
    summary += [f"missing: {m}" for m in missing]
    result = _save(fig, out, name, summary)
    result.partial = missing
    return [result]


FIGURE_FAMILIES: dict[str, Callable[[RunSet, str | os.PathLike[str]], list[FigureResult]]] = {
    "cifar": cifar_figures,
    "nlp": nlp_figures,
    "controllers": controller_figures,
    "compute": compute_figures,
}
"""Figure family -> builder(runset, out_dir)."""

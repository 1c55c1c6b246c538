"""Matplotlib plumbing shared by the figure families: sizes, palette, saving (PNG + PDF +
summary), MISSING notes, curve and bar panels.
"""

from __future__ import annotations

import contextlib
import math
import statistics
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aees.reporting.render import md_text, safe_name
from aees.reporting.runs import Cell
from aees.reporting.select import AccStats, Sel, acc_stats, pick
from aees.results.io import atomic_write, atomic_write_text

FIGSIZE = (6.5, 4.0)
DPI = 150

PALETTE = {
    "flat": "#666666",
    "cosine": "#1f77b4",
    "linear": "#17becf",
    "warmup_linear": "#1f77b4",
    "aees_lr": "#d62728",
    "aees_noise": "#9467bd",
    "aees_dual": "#8c564b",
    "sched_aees": "#ff7f0e",
}
EXTRA_COLORS = ("#2ca02c", "#bcbd22", "#e377c2", "#7f7f7f", "#17becf", "#1f77b4")


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


def load_pyplot() -> Any:
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


def new_figure(
    ncols: int = 1, *, sharey: bool = True, left: float = 0.1, bottom: float = 0.13
) -> tuple[Any, list[Any]]:
    """A FIGSIZE figure with ``ncols`` panels and fixed margins (a layout engine would
    re-run on every save and double the cost of a figure)."""
    plt = load_pyplot()
    fig, axes = plt.subplots(1, ncols, figsize=FIGSIZE, sharey=sharey, squeeze=False)
    fig.subplots_adjust(left=left, right=0.98, top=0.88, bottom=bottom, wspace=0.12)
    return fig, list(axes[0])


def save_figure(fig: Any, out_dir: Path, name: str, summary: list[str]) -> FigureResult:
    """Write PNG, PDF and summary atomically; remove a stale MISSING note; close the figure.
    ``name`` passes through :func:`~aees.reporting.render.safe_name` (it may hold a task or
    setting read from a result)."""
    name = safe_name(name)
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
        load_pyplot().close(fig)
    text = f"# {name}\n" + "\n".join(summary) + "\n"
    paths.append(atomic_write_text(out_dir / f"{name}.summary.txt", text))
    with contextlib.suppress(FileNotFoundError):
        (out_dir / f"{name}.MISSING.md").unlink()
    return FigureResult(name, paths)


def missing_figure(out_dir: Path, name: str, missing: list[str]) -> FigureResult:
    """Write ``<name>.MISSING.md`` listing ``missing``; remove stale outputs of ``name``."""
    name = safe_name(name)
    text = f"# {name} — missing\n\n" + "".join(f"- {md_text(m)}\n" for m in missing)
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


def plain(text: str) -> str:
    """``text`` shown as written by matplotlib: a ``$`` (say in a user's dataset name) would
    otherwise start mathtext and can fail the figure."""
    return text.replace("$", r"\$")


PEER_COLORS = {
    "adamwschedulefree": ("#2ca02c", "#0b5d1e"),
    "sgdschedulefree": ("#bcbd22", "#6b6b00"),
    "prodigy": ("#e377c2", "#8c1d6e"),
    "dadaptadam": ("#9467bd", "#4b2a7a"),
}
"""A schedule-free / LR-free peer optimizer: (alone, AEES on it)."""


def cell_color(cell: Cell | None, index: int) -> str:
    if cell is None:
        return EXTRA_COLORS[index % len(EXTRA_COLORS)]
    info = cell.info
    if info.optimizer in PEER_COLORS:
        return PEER_COLORS[info.optimizer][info.kind == "aees"]
    if info.kind == "baseline":
        return PALETTE.get("flat" if info.scheduler == "none" else info.scheduler, "#1f77b4")
    if info.kind == "aees":
        if info.scheduler != "none":
            return PALETTE["sched_aees"]
        return PALETTE.get(f"aees_{info.axes}", PALETTE["aees_lr"])
    return EXTRA_COLORS[index % len(EXTRA_COLORS)]


def seed_curves(cell: Cell) -> list[list[float]]:
    return [[v * 100 for v in r.result.val_accuracies] for r in cell.seed_runs()]


def mean_band(curves: list[list[float]]) -> tuple[list[float], list[float]]:
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


def join_label(group: str, label: str) -> str:
    return f"{group}: {label}" if group else label


def curves_figure(
    out_dir: Path,
    name: str,
    title: str,
    panels: list[tuple[str, list[Series]]],
    *,
    smooth: int = 1,
    what: str,
    ncol: int = 4,
) -> FigureResult:
    """Validation curves (mean ± SD band, peak and final markers), one panel per entry;
    ``ncol`` legend columns (fewer for long labels)."""
    panels = [(t, s) for t, s in panels if s]
    present = [(t, [x for x in s if x[1].n]) for t, s in panels]
    partial = [f"{join_label(t, label)}: no runs" for t, s in panels for label, st in s if not st.n]
    if not any(s for _, s in present):
        return missing_figure(out_dir, name, [f"no runs for any line of {what}", *partial])
    rows = math.ceil((len({lab for _, x in present for lab, _ in x}) + 2) / ncol)
    fig, axes = new_figure(len(present), bottom=0.15 + 0.04 * rows)
    summary = [f"title: {title}", f"smoothing: centred rolling mean, window {smooth} epochs"]
    summary += ["y: validation accuracy (%), mean ± sample SD across seeds"]
    for ax, (panel_title, series) in zip(axes, present, strict=True):
        ax.set_title(plain(panel_title))
        for i, (label, st) in enumerate(series):
            assert st.cell is not None
            curves = [rolling(c, smooth) if smooth > 1 else c for c in seed_curves(st.cell)]
            mean, sd = mean_band(curves)
            if not mean:  # discovery rejects empty curves; never index into one
                partial.append(f"{join_label(panel_title, label)}: no validation curve")
                continue
            epochs = list(range(1, len(mean) + 1))
            color = cell_color(st.cell, i)
            ax.plot(epochs, mean, color=color, label=plain(f"{label} (n={st.n})"))
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
                f"{join_label(panel_title, label)}: n={st.n} seeds={st.seeds} "
                f"peak_epoch={st.peak.mean:.1f}±{st.peak.sd:.1f} "
                f"best={st.best.mean * 100:.2f}±{st.best.sd * 100:.2f} "
                f"final={st.final.mean * 100:.2f}±{st.final.sd * 100:.2f} "
                f"curve_last={mean[-1]:.2f} variant={st.cell.variant}"
            )
        ax.set_xlabel("Epoch")
    axes[0].set_ylabel("Validation accuracy (%)")
    handles, labels = legend_entries(axes)
    line2d = load_pyplot().Line2D
    handles += [
        line2d([], [], marker="o", mfc="none", mec="black", ls="none", ms=7),
        line2d([], [], marker="s", color="grey", mec="black", ls="none", ms=5),
    ]
    labels += ["Mean peak", "Mean final"]
    fig.legend(handles, labels, loc="lower center", ncol=min(ncol, len(labels)))
    fig.suptitle(plain(title))
    summary += [f"missing: {p}" for p in partial]
    result = save_figure(fig, out_dir, name, summary)
    result.partial = partial
    return result


def bars_figure(
    out_dir: Path,
    name: str,
    title: str,
    groups: list[tuple[str, list[Series]]],
    *,
    what: str,
) -> FigureResult:
    """Grouped bars: peak (solid) and final (hatched) accuracy per method, ± sample SD."""
    flat = [(g, label, st) for g, series in groups for label, st in series]
    partial = [f"{join_label(g, label)}: no runs" for g, label, st in flat if not st.n]
    present = [(g, label, st) for g, label, st in flat if st.n]
    if not present:
        return missing_figure(out_dir, name, [f"no runs for any bar of {what}", *partial])
    fig, (ax,) = new_figure(1, bottom=0.22)
    width = 0.38
    lows, highs = [], []
    summary = [f"title: {title}", "bars: peak (solid) and final (hatched) accuracy, % ± SD"]
    for i, (group, label, st) in enumerate(present):
        color = cell_color(st.cell, i)
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
            f"{join_label(group, label)}: n={st.n} "
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
    result = save_figure(fig, out_dir, name, summary)
    result.partial = partial
    return result


def series_for(cells: list[Cell], sels: Sequence[Sel], optimizer: str | None) -> list[Series]:
    notes: list[str] = []
    return [
        (s.label, acc_stats(pick(cells, s, optimizer=optimizer, where="", notes=notes)))
        for s in sels
    ]


# --------------------------------------------------------------------------------------------
# Families
# --------------------------------------------------------------------------------------------


def nothing_to_plot(out_dir: Path, family: str, what: str) -> list[FigureResult]:
    return [missing_figure(out_dir, f"{family}_figures", [what])]


def legend_entries(axes: Any) -> tuple[list[Any], list[str]]:
    """The legend handles and labels of every axis in ``axes``, each label once (first seen)."""
    handles: list[Any] = []
    labels: list[str] = []
    for ax in axes:
        for handle, label in zip(*ax.get_legend_handles_labels(), strict=True):
            if label not in labels:
                handles.append(handle)
                labels.append(label)
    return handles, labels

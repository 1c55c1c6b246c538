"""Figure family `controllers`: arm selection, reward per arm, update norms."""

from __future__ import annotations

import math
import os
import statistics
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from aees.reporting.families.nlp import method_label
from aees.reporting.figures.common import (
    EXTRA_COLORS,
    PALETTE,
    FigureResult,
    load_pyplot,
    missing_figure,
    new_figure,
    nothing_to_plot,
    rolling,
    save_figure,
)
from aees.reporting.runs import Cell, Run, RunSet, setting_label
from aees.results.traces import arm_index

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
        f"{cell.info.task_label}, {setting_label(cell.setting)}, "
        f"{cell.info.optimizer_label}: {method_label(cell.info)}"
    )


_AXES = (("lr", "selected_lr_values", "LR multiplier"), ("noise", "selected_noise_values", "σ"))


def _arm_indices(
    run: Run, key: str, values: Sequence[Any], arms: Sequence[float], problems: list[str]
) -> list[int] | None:
    """The arm index of each logged value (:func:`aees.results.traces.arm_index`: equal to a
    configured arm, never the nearest one); None, with the problem listed, when a value is
    not one of the run's arms (a bad trace: the run is left out of the figure)."""
    try:
        return [arm_index(float(v), arms) for v in values]
    except (TypeError, ValueError) as exc:
        problems.append(f"{run.path}: episode_logs.{key}: {exc}; run left out")
        return None


def _episode_epochs(cell: Cell, count: int) -> list[float]:
    """x position (epochs) of each episode end: (end step + 1) / (total steps / epochs)."""
    r = cell.seed_runs()[0].result
    logs = r.episode_logs or {}
    ends = logs.get("episode_end_steps") or []
    spe = r.total_steps / r.total_epochs if r.total_epochs and r.total_steps else 0
    if spe and len(ends) >= count:
        return [(float(e) + 1) / spe for e in ends[:count]]
    return [float(i + 1) for i in range(count)]


def _arm_fractions(
    cell: Cell, key: str, arms: Sequence[float], problems: list[str]
) -> list[list[float]] | None:
    """fractions[k][e] = share of seeds that chose arm k in episode e (shortest seed); a seed
    whose log holds a value that is none of the arms is left out and listed in ``problems``."""
    chosen = []
    for run in cell.seed_runs():
        values = (run.result.episode_logs or {}).get(key)
        if isinstance(values, list) and values:
            indices = _arm_indices(run, key, values, arms, problems)
            if indices is not None:
                chosen.append(indices)
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
    problems: list[str] = []
    data = [(a, _arm_fractions(cell, a[1], a[3], problems)) for a in axes_info]
    data = [(a, f) for a, f in data if f]
    if not data:
        return missing_figure(
            out, name, [f"{cell.describe()}: no episode logs with arm selections", *problems]
        )
    fig, axes = new_figure(len(data), sharey=True)
    summary = [f"title: {_cell_title(cell)}", f"seeds: {cell.seeds}", "fraction of seeds per arm"]
    for ax, ((axis, _, label, arms), fractions) in zip(axes, data, strict=True):
        episodes = len(fractions[0])
        window = max(5, round(0.05 * episodes))
        window += 1 - window % 2
        x = _episode_epochs(cell, episodes)
        smoothed = [rolling(f, window) for f in fractions]
        colors = load_pyplot().get_cmap("viridis")(
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
    result = save_figure(fig, out, name, summary)
    result.partial += problems
    return result


def _reward_per_arm(cell: Cell, out: Path, tag: str) -> FigureResult:
    name = f"reward_per_arm_{tag}"
    panels = []
    problems: list[str] = []
    for axis, key, label in _AXES:
        arms = cell.info.lr_candidates if axis == "lr" else cell.info.noise_candidates
        if len(arms) < 2:
            continue
        buckets: list[list[float]] = [[] for _ in arms]
        for run in cell.seed_runs():
            logs = run.result.episode_logs or {}
            pairs = [
                (v, float(reward))
                for v, reward in zip(
                    logs.get(key) or [], logs.get("episode_rewards") or [], strict=False
                )
                if reward is not None and math.isfinite(float(reward))
            ]
            indices = _arm_indices(run, key, [v for v, _ in pairs], arms, problems)
            for k, (_, reward) in zip(indices or [], pairs, strict=False):
                buckets[k].append(reward)
        if any(buckets):
            panels.append((axis, label, arms, buckets))
    if not panels:
        return missing_figure(out, name, [f"{cell.describe()}: no episode rewards", *problems])
    fig, axes = new_figure(len(panels), sharey=True)
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
    result = save_figure(fig, out, name, summary)
    result.partial += problems
    return result


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
        return missing_figure(
            out,
            name,
            [
                "no AEES run logged update norms (episode_logs.mean_update_norms); "
                "train with --track-update-norm"
            ],
        )
    fig, (ax,) = new_figure(1)
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
        color = EXTRA_COLORS[i % len(EXTRA_COLORS)] if i else PALETTE["aees_lr"]
        label = f"{cell.info.task_label} {setting_label(cell.setting)}: {method_label(cell.info)}"
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
    return save_figure(fig, out, name, summary)


def controller_figures(runset: RunSet, out_dir: str | os.PathLike[str]) -> list[FigureResult]:
    """Arm selection and reward per arm for every headline AEES cell; update-norm trajectory."""
    out = Path(out_dir)
    cells = headline_aees_cells(runset)
    if not cells:
        return nothing_to_plot(out, "controllers", "no AEES runs with episode logs")
    results = []
    names = _cell_names(cells)
    for cell in cells:
        results.append(_arm_selection(cell, out, names[id(cell)]))
        results.append(_reward_per_arm(cell, out, names[id(cell)]))
    results.append(_update_norms(cells, out))
    return results


# --------------------------------------------------------------------------------------------

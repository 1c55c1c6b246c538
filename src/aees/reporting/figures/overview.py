"""Figure family `overview` (docs/reporting.md §6): the AEES method schematic, drawn by this
module (the figure's source; no TeX toolchain needed, no hand-made image).

The training loop (data → model → loss → optimizer step), the two bandit controllers (LR
multiplier and gradient-noise σ), the "selected arm values" bridge into the optimizer step
and the dashed reward path from the EMA loss back to the controllers. The arm values shown
are those of the report's headline AEES run when there is one (so the schematic names the
candidates that were run), else the defaults of docs/algorithm.md.
"""

from __future__ import annotations

import os
from pathlib import Path

from aees.reporting.figures.common import FigureResult, load_pyplot, save_figure
from aees.reporting.runs import RunSet
from aees.reporting.select import num_token

TRAIN_FILL, TRAIN_EDGE = "#DDE6EF", "#3B5266"
BANDIT_FILL, BANDIT_EDGE = "#F3E2C4", "#8A6A2B"
DEFAULT_ARMS = ((0.5, 1.0, 2.0), (0.0, 0.005, 0.01))

# (name, text, x, y, width, height, kind) in axes units (0..10 × 0..5.4)
_BOXES = (
    ("data", "Mini-batch\n(x, y)", 0.3, 3.9, 1.6, 1.0, "train"),
    ("model", "Model f_θ", 2.5, 3.9, 1.6, 1.0, "train"),
    ("loss", "Loss $\\ell_t$\nEMA loss", 4.7, 3.9, 1.7, 1.0, "train"),
    ("step", "Optimizer step\nlr·m_e, +σ_e·ξ", 7.0, 3.9, 2.6, 1.0, "train"),
    ("bridge", "Selected arm values\n(m_e, σ_e)", 7.0, 2.1, 2.6, 0.9, "bandit"),
    ("lr", "LR bandit\narms {lr}", 0.6, 0.3, 2.6, 1.1, "bandit"),
    ("noise", "σ bandit\narms {noise}", 3.8, 0.3, 2.6, 1.1, "bandit"),
)
# (from, to, line style, label, label position or None)
_ARROWS = (
    ("data", "model", "solid", "", None),
    ("model", "loss", "solid", "", None),
    ("loss", "step", "solid", "$\\nabla\\ell$", (6.7, 4.55)),
    ("lr", "bridge", "solid", "", None),
    ("noise", "bridge", "solid", "", None),
    ("bridge", "step", "solid", "", None),
    ("loss", "lr", "dashed", "Reward r_e from EMA loss", (2.3, 2.75)),
    ("loss", "noise", "dashed", "", None),
)


def _arms(runset: RunSet | None) -> tuple[tuple[float, ...], tuple[float, ...], str]:
    """The LR and σ arms of the first AEES cell with more than one candidate on each axis
    (else any AEES cell, else the defaults) and where they came from."""
    cells = [c for c in (runset.cells if runset else []) if c.info.kind == "aees"]
    cells.sort(key=lambda c: (c.info.axes != "dual", c.task, c.setting))
    if cells:
        info = cells[0].info
        return info.lr_candidates, info.noise_candidates, f"run cell {cells[0].describe()}"
    return (*DEFAULT_ARMS, "defaults (docs/algorithm.md)")


def overview_figures(runset: RunSet | None, out_dir: str | os.PathLike[str]) -> list[FigureResult]:
    """``aees_overview``: the schematic (PNG + PDF + summary of every box and arrow)."""
    plt = load_pyplot()
    from matplotlib import patches

    lr_arms, noise_arms, source = _arms(runset)
    text = {
        "lr": ", ".join(map(num_token, lr_arms)),
        "noise": ", ".join(map(num_token, noise_arms)),
    }
    fig = plt.figure(figsize=(6.93, 3.70))  # the thesis page: 17.6 × 9.4 cm
    ax = fig.add_axes((0.01, 0.01, 0.98, 0.98))
    ax.set_xlim(0, 10)
    ax.set_ylim(0, 5.4)
    ax.axis("off")
    centres = {}
    summary = [f"arms from: {source}", f"lr arms: {text['lr']}", f"noise arms: {text['noise']}"]
    for name, label, x, y, w, h, kind in _BOXES:
        fill, edge = (TRAIN_FILL, TRAIN_EDGE) if kind == "train" else (BANDIT_FILL, BANDIT_EDGE)
        shown = label.replace("{lr}", "{" + text["lr"] + "}").replace(
            "{noise}", "{" + text["noise"] + "}"
        )
        ax.add_patch(
            patches.FancyBboxPatch(
                (x, y), w, h, boxstyle="round,pad=0.05", fc=fill, ec=edge, lw=1.2
            )
        )
        ax.text(x + w / 2, y + h / 2, shown, ha="center", va="center", fontsize=8, color=edge)
        centres[name] = (x + w / 2, y + h / 2, w, h)
        summary.append(f"box {name} ({kind}, fill {fill}, edge {edge}): {' '.join(shown.split())}")
    for src, dst, style, label, where in _ARROWS:
        (x0, y0, w0, h0), (x1, y1, w1, h1) = centres[src], centres[dst]
        if abs(y0 - y1) < 1e-9:  # same row: side to side
            start, end = (x0 + w0 / 2, y0), (x1 - w1 / 2, y1)
        else:  # between rows: top/bottom edges
            sign = 1 if y1 > y0 else -1
            start, end = (x0, y0 + sign * h0 / 2), (x1, y1 - sign * h1 / 2)
        color = TRAIN_EDGE if style == "solid" else BANDIT_EDGE
        ax.annotate(
            "",
            xy=end,
            xytext=start,
            arrowprops={"arrowstyle": "->", "color": color, "lw": 1.2, "linestyle": style},
        )
        if label and where is not None:
            ax.text(*where, label, ha="center", fontsize=7, color=color, style="italic")
        summary.append(f"arrow {src} -> {dst} ({style}){': ' + label if label else ''}")
    return [save_figure(fig, Path(out_dir), "aees_overview", summary)]

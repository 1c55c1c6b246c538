"""Figures from result JSON (matplotlib, Agg): PNG + PDF + ``<name>.summary.txt`` with every
plotted number, or ``<name>.MISSING.md`` naming what is missing. No data is hard-coded.

Families (docs/reporting.md §6):

* ``cifar`` -- validation curves (clean; one per noise regime, a panel per optimizer), the clean
  peak/final bar plot, the gradient-noise ablation bars and curves (CIFAR-100 and digits);
* ``nlp`` -- SST-2 / AG News validation curves, the σ-ablation bar plot;
* ``controllers`` -- arm selection over training, reward per arm, update-norm trajectory;
* ``compute`` -- wall-clock overhead (the same configurations as the overhead table);
* ``peers`` -- validation curves of AEES and the schedule-free / LR-free peers;
* ``sigma_vs_val_acc``, ``late_stage``, ``peak_checkpoint``, ``drop_summary`` -- see
  :mod:`aees.reporting.figures.thesis`; ``overview`` -- the method schematic
  (:mod:`aees.reporting.figures.overview`); ``other_tasks`` -- validation curves per generic
  task, dataset and model.

Curves: per seed the validation accuracy (×100; noisy CIFAR smoothed by a centred 5-epoch
rolling mean for display), then mean ± sample SD across seeds (SD 0 for one seed). The peak
marker sits at (round(mean of per-seed peak epochs), mean of per-seed best accuracies), the
final marker at (last epoch, mean final accuracy) -- the numbers of the tables.

Every figure is ``FIGSIZE`` inches at ``DPI`` (PNG size ``FIGSIZE × DPI`` pixels).
"""

from __future__ import annotations

import os
from collections.abc import Callable

from aees.reporting.figures.cifar import cifar_figures
from aees.reporting.figures.common import DPI, FIGSIZE, FigureResult, rolling
from aees.reporting.figures.compute import compute_figures
from aees.reporting.figures.controllers import controller_figures
from aees.reporting.figures.nlp import nlp_figures
from aees.reporting.figures.other_tasks import other_task_figures
from aees.reporting.figures.overview import overview_figures
from aees.reporting.figures.peers import peers_figures
from aees.reporting.figures.thesis import (
    drop_summary_figures,
    late_stage_figures,
    peak_checkpoint_figures,
    sigma_figures,
    thesis_families_for,
)
from aees.reporting.runs import RunSet

__all__ = [
    "DPI",
    "FIGSIZE",
    "FIGURE_FAMILIES",
    "FigureResult",
    "cifar_figures",
    "compute_figures",
    "controller_figures",
    "drop_summary_figures",
    "late_stage_figures",
    "nlp_figures",
    "other_task_figures",
    "overview_figures",
    "peak_checkpoint_figures",
    "peers_figures",
    "rolling",
    "sigma_figures",
    "thesis_families_for",
]


FIGURE_FAMILIES: dict[str, Callable[[RunSet, str | os.PathLike[str]], list[FigureResult]]] = {
    "cifar": cifar_figures,
    "nlp": nlp_figures,
    "controllers": controller_figures,
    "compute": compute_figures,
    "peers": peers_figures,
    "sigma_vs_val_acc": sigma_figures,
    "late_stage": late_stage_figures,
    "peak_checkpoint": peak_checkpoint_figures,
    "drop_summary": drop_summary_figures,
    "overview": overview_figures,
    "other_tasks": other_task_figures,
}
"""Figure family -> builder(runset, out_dir)."""

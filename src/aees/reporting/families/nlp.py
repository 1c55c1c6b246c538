"""Table family docs/reporting.md §5.8 (`nlp`): NLP main, axis and detailed tables."""

from __future__ import annotations

from dataclasses import dataclass

from aees.reporting.families.common import (
    ACC_COLUMNS,
    AccRow,
    Builder,
    FamilyOutput,
    acc_column,
    label_column,
    pm_column,
    text_column,
)
from aees.reporting.families.compute_overhead import SCHED_LABEL
from aees.reporting.render import MISSING, Column, TableSpec
from aees.reporting.runs import (
    Cell,
    RunInfo,
    RunSet,
    setting_label,
)
from aees.reporting.select import WL, AccStats, Sel, acc_stats, aees_sel, num_token
from aees.reporting.stats import Summary, mean_sd, run_metrics
from aees.results import legacy

# --------------------------------------------------------------------------------------------
# docs/reporting.md §5.8 NLP main / axis / detailed, docs/reporting.md §5.9 NLP noise ablation
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
    aees_sel("AEES", prefer_axes=("dual", "noise", "lr"), context=None),
    aees_sel("AEES + warmup-linear", WL, prefer_axes=("dual", "noise", "lr"), context=None),
)
NLP_AXIS = (
    Sel("AdamW + warmup-linear", "baseline", WL),
    aees_sel("AEES-LR + warmup-linear", WL, axes="lr", context=None),
    aees_sel("AEES-Noise + warmup-linear", WL, axes="noise", context=None),
    aees_sel("AEES-Dual + warmup-linear", WL, axes="dual", context=None),
)


def method_label(info: RunInfo, *, short: bool = True) -> str:
    """A readable method label from the identity: ``AdamW + WL``, ``AEES-Dual (trend ctx)``,
    ``Fixed ×0.5``, ``Fixed σ=0.005 + WL``, ``Random σ + WL`` ..."""
    sched = (
        nlp_sched_suffix(info.scheduler, short)
        if info.is_nlp
        else SCHED_LABEL.get(info.scheduler, f" + {info.scheduler}")
    )
    opt = info.optimizer_label
    if info.kind == "baseline":
        return opt + sched
    if info.kind == "fixed":
        lr, noise = info.lr_candidates[0], info.noise_candidates[0]
        parts = []
        if lr != 1.0 or noise == 0:
            parts.append(f"×{num_token(lr)}")
        if noise:
            parts.append(f"σ={num_token(noise)}")
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
        extras.append(f"λ={num_token(info.instability_lambda)}")
    return base + sched + (f" ({', '.join(extras)})" if extras else "")


def axes_text(info: RunInfo) -> str:
    """``LR: 0.5, 1, 2; noise: 0, 0.005``."""
    lr = ", ".join(map(num_token, info.lr_candidates))
    noise = ", ".join(map(num_token, info.noise_candidates))
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
        for task in runset.family_tasks("nlp")
        for setting in runset.settings(task)
    ]


NLP_SPEC = TableSpec((label_column("Method", "method"), *ACC_COLUMNS[1:]))
"""Method | Best | Final | Drop | Peak epoch (the main and axis tables; no CSV)."""


@dataclass(frozen=True)
class NlpCellRow:
    """One variant of the NLP appendix: its cell, statistics and compute costs."""

    caption: str
    cell: Cell
    st: AccStats
    costs: dict[str, Summary]


def _variant_only(info: RunInfo, text: str) -> str:
    return text if info.kind != "baseline" else MISSING


NLP_DETAILED_SPEC = TableSpec(
    (
        text_column("Task", None, lambda r: r.caption),
        text_column(
            "Method",
            "label",
            lambda r: method_label(r.cell.info),
            csv_get=lambda r: method_label(r.cell.info, short=False),
        ),
        text_column(None, "variant", lambda r: r.cell.variant),
        ACC_COLUMNS[0],
        acc_column("Best (%)", "best_val_accuracy", "best", 2, 100, "max"),
        acc_column("Final (%)", "final_val_accuracy", "final", 2, 100, "max"),
        acc_column("Drop (pp)", "drop_best_to_final", "drop", 2, 100, "min"),
        acc_column("Peak epoch", "best_epoch", "peak", 1, 1.0, None),
        Column(
            "Episode length",
            lambda r: _variant_only(r.cell.info, str(r.cell.info.episode_length or MISSING)),
        ),
        text_column("Axes", None, lambda r: _variant_only(r.cell.info, axes_text(r.cell.info))),
        *(
            pm_column(None, k, lambda r, k=k: r.costs[k], 2, 1.0)
            for k in ("tflops_to_best", "total_tflops", "time_to_best", "total_time")
        ),
    )
)
"""Task | Method | n | Best | Final | Drop | Peak epoch | Episode length | Axes (the appendix);
the per-task summary CSV writes the long method label, the variant id, the accuracy
statistics (fractions) and the compute to best and in total."""


def build_nlp(runset: RunSet) -> FamilyOutput:
    """docs/reporting.md §5.8: per NLP task and setting, the main table (AdamW, AdamW +
    warmup-linear, AEES,
    AEES + warmup-linear; AEES prefers the dual-axis variant), the axis table (AEES-LR/-Noise/
    -Dual + warmup-linear; only when single-axis runs exist), one detailed appendix with every
    variant (Task | Method | n | Best | Final | Drop | Peak epoch | Episode length | Axes) and
    per-task summary CSVs with compute-to-best. 2 decimals, ranked over the whole table."""
    b = Builder("nlp", "NLP (SST-2, AG News)", runset)
    detailed = NLP_DETAILED_SPEC.table(
        "nlp_detailed_appendix_table",
        "SST-2 and AG News: every configuration",
        "tab:nlp_detailed_appendix",
        merge=1,
    )
    names = []
    for task, setting, cells in nlp_groups(runset):
        key = nlp_key(task, setting)
        caption = f"{runset.task_label(task)}, {setting_label(setting)} labels"
        if setting == "clean":
            caption = legacy.THESIS_CLEAN_CAPTIONS.get(task, caption)
        label = {"agnews": "tab:agnews-clean"}.get(key, f"tab:{key.replace('_', '-')}")
        tables = [(f"{key}_main", NLP_MAIN, label, caption)]
        if any(c.info.kind == "aees" and c.info.axes in ("lr", "noise") for c in cells):
            tables.append((f"{key}_axis", NLP_AXIS, f"{label}-axis", f"{caption}: AEES axes"))
        for name, sels, tab_label, cap in tables:
            table = NLP_SPEC.table(name, cap, tab_label)
            where = f"{runset.task_label(task)} {setting_label(setting)}"
            stats = [b.row(cells, s, optimizer=None, where=where) for s in sels]
            NLP_SPEC.block(table, [AccRow(s.label, st) for s, st in zip(sels, stats, strict=True)])
            b.out.tables.append(table)
            names.append(name)
        items = [NlpCellRow(caption, c, acc_stats(c), _nlp_run_costs(c)) for c in cells]
        NLP_DETAILED_SPEC.block(detailed, items)
        b.out.csvs.append(NLP_DETAILED_SPEC.csv_table(f"{key}_summary", items))
    if detailed.rows:
        b.out.tables.append(detailed)
        names.append(detailed.name)
    b.out.all_tex["all_nlp_tables"] = names
    return b.out

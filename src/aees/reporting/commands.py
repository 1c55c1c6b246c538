"""What the report commands do once :mod:`aees.cli` has parsed their flags.

* :func:`report_command` -- ``aees report RESULTS_DIR --out DIR [--strict] [--quiet]``;
* :func:`table_command` -- ``scripts/tables/make_<family>.py --runs-root --out-dir``;
* :func:`figure_command` -- ``scripts/plots/<family>_plots.py --runs-root --out-dir``;
* :func:`console_command` -- ``scripts/report_{cifar_runs,sst2_results,agnews_results}.py``;
* :func:`attribution_command` -- ``scripts/tables/aggregate_cifar_attribution_controls.py``.

Exit status of ``aees report`` (docs/reporting.md §1): 0 done; 1 nothing to report, a planned
study missing a run, cell or figure its plan asked for (docs/reporting.md §8), or
(``--strict``) an unreadable result file; 2 command-line misuse (bad flag, missing results
directory). The family scripts exit 1 when their family has no runs (tables) or a figure is
MISSING (figures). Every error is one line on stderr naming the input, never a traceback.
"""

from __future__ import annotations

import sys
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any, TextIO

from aees.reporting.discovery import Discovery, discover_runs
from aees.reporting.families import FAMILIES, method_label
from aees.reporting.render import CsvTable, write_csv
from aees.reporting.runs import ReportError, Run, RunSet, setting_label
from aees.reporting.stats import mean_sd, run_metrics

__all__ = [
    "attribution_command",
    "console_command",
    "console_summary",
    "discover_or_status",
    "figure_command",
    "report_command",
    "table_command",
    "write_family",
]


def _err(prog: str, message: str, stream: TextIO | None = None) -> None:
    print(f"{prog}: {message}", file=stream or sys.stderr)


def discover_or_status(prog: str, root: str, strict: bool) -> Discovery | int:
    """Runs under ``root``; an int exit status (after a one-line message) on failure."""
    path = Path(root)
    if not path.is_dir():
        _err(prog, f"error: {root}: {'not a directory' if path.exists() else 'no such directory'}")
        return 2
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # the skipped-files summary is printed below
            found = discover_runs(path, strict=strict)
    except ReportError as err:
        _err(prog, f"error: {err}")
        return 1
    for problem in found.problems:
        _err(prog, f"warning: {problem}")
    for line in found.diverged_lines():
        _err(prog, f"warning: {line}")
    skipped = found.skipped_summary()
    if skipped:
        _err(prog, f"warning: {skipped}")
    return found


def report_command(prog: str, results_dir: str, out: str, *, strict: bool, quiet: bool) -> int:
    """``aees report``: every table and figure family the runs support, plus ``index.md`` and a
    self-contained ``index.html``."""
    root = Path(results_dir)
    if not root.is_dir():
        _err(prog, f"error: {root}: {'not a directory' if root.exists() else 'no such directory'}")
        return 2
    from aees.reporting.report import build_report

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            summary = build_report(root, out, strict=strict)
    except ReportError as err:
        _err(prog, f"error: {err}")
        return 1
    except OSError as err:
        _err(prog, f"error: {err.filename or out}: {err.strerror or err}")
        return 1
    for problem in summary.problems:
        _err(prog, f"warning: {problem}")
    for line in summary.diverged:
        _err(prog, f"warning: {line}")
    if not quiet:
        for line in summary.missing:
            _err(prog, f"missing: {line}")
        if summary.plan is not None and summary.not_planned:
            _err(
                prog,
                f"note: {len(summary.not_planned)} empty cells and figure inputs were not "
                f"planned by {summary.plan.describe()}; listed in {summary.index_md}",
            )
        elif summary.plan is None and summary.missing:
            _err(
                prog,
                f"note: no run plan (manifest.json) in {root}: the missing lines are what "
                "the families could show with more runs, not what a plan asked for",
            )
        figures = sum(1 for rs in summary.figures.values() for r in rs if r.ok)
        print(
            f"{prog}: {summary.runs} runs, {len(summary.families)} table families "
            f"({', '.join(summary.families) or 'none'}), {figures} figures -> "
            f"{summary.index_html}"
        )
    if summary.runs == 0:
        _err(prog, f"error: {root}: no readable result files")
        return 1
    if not summary.complete:
        _err(
            prog,
            f"error: {root}: the planned study is incomplete: {len(summary.missing)} runs, "
            "cells or figures its plan asked for are missing (listed above)",
        )
        return 1
    return 0


def table_command(prog: str, family: str, runs_root: str, out_dir: str, *, strict: bool) -> int:
    """``make_<family>.py``: build one table family from ``runs_root`` into ``out_dir``."""
    spec = FAMILIES[family]
    found = discover_or_status(prog, runs_root, strict)
    if isinstance(found, int):
        return found
    output = spec.builder(RunSet(found.runs))
    return write_family(prog, output, out_dir, empty=f"{runs_root}: no runs for {spec.title}")


def write_family(prog: str, output: Any, out_dir: str, *, empty: str) -> int:
    """Write a built family (``FamilyOutput``) and report it: 0, or 1 with one line on stderr
    when there is nothing to write (``empty`` says why) or the directory cannot be written."""
    if not output.supported:
        _err(prog, f"error: {empty}")
        return 1
    try:
        paths = output.write(out_dir)
    except OSError as err:
        _err(prog, f"error: {err.filename or out_dir}: {err.strerror or err}")
        return 1
    for line in output.missing:
        _err(prog, f"missing: {line}")
    for line in output.notes:
        _err(prog, f"note: {line}")
    print(f"{prog}: wrote {len(paths)} files to {out_dir}")
    return 0


def figure_command(prog: str, family: str, runs_root: str, out_dir: str, *, strict: bool) -> int:
    """``<family>_plots.py``: every figure of one figure family; exit 1 if any is MISSING."""
    from aees.reporting.figures import FIGURE_FAMILIES

    found = discover_or_status(prog, runs_root, strict)
    if isinstance(found, int):
        return found
    try:
        results = FIGURE_FAMILIES[family](RunSet(found.runs), out_dir)
    except OSError as err:
        _err(prog, f"error: {err.filename or out_dir}: {err.strerror or err}")
        return 1
    status = 0
    for r in results:
        if r.ok:
            print(f"{prog}: wrote {r.name} ({', '.join(p.suffix for p in r.paths)})")
            for m in r.partial:
                _err(prog, f"missing: {r.name}: {m}")
        else:
            status = 1
            _err(prog, f"MISSING {r.name}: {'; '.join(r.missing)}")
    return status


# --------------------------------------------------------------------------------------------
# Console reports (scripts/report_*.py)
# --------------------------------------------------------------------------------------------

_DIAG = (
    ("train_all", "train_all_accuracy"),
    ("train_clean", "train_clean_accuracy"),
    ("corr_noisy", "train_corrupted_accuracy_vs_noisy_labels"),
    ("corr_clean", "train_corrupted_accuracy_vs_clean_labels"),
)


def console_summary(runset: RunSet, tasks: Sequence[str]) -> tuple[list[str], CsvTable]:
    """Per cell of ``tasks``: n, final and best validation accuracy (mean, sample SD), the
    final-epoch label-noise diagnostics (CIFAR-style tasks) and compute to the best epoch
    (TFLOPs and seconds summed over epochs 1..peak); lines for the console and a CSV."""
    header = ["task", "setting", "epochs", "method", "variant", "n"]
    metrics = ["final_val", "best_val", "peak_epoch", *(k for k, _ in _DIAG), "clean_minus_noisy"]
    metrics += ["tflops_to_best", "total_tflops", "time_to_best_s", "total_time_s"]
    csv = CsvTable("summary", header + [f"{m}_{s}" for m in metrics for s in ("mean", "std")])
    lines: list[str] = []
    for cell in runset.cells:
        if cell.task not in tasks:
            continue
        values: dict[str, list[float]] = {m: [] for m in metrics}
        per_seed = []
        for run in cell.seed_runs():
            r, m = run.result, run_metrics(run.result)
            peak = m.peak_epoch or 0
            values["final_val"].append(m.final)
            values["best_val"].append(m.best)
            values["peak_epoch"].append(float(peak))
            diag = r.diagnostics.get("final_subset_accuracies") or {}
            for name, key in _DIAG:
                if isinstance(diag.get(key), (int, float)):
                    values[name].append(float(diag[key]))
            if isinstance(diag.get(_DIAG[2][1]), (int, float)) and isinstance(
                diag.get(_DIAG[3][1]), (int, float)
            ):
                values["clean_minus_noisy"].append(diag[_DIAG[3][1]] - diag[_DIAG[2][1]])
            if r.epoch_tflops:
                values["tflops_to_best"].append(sum(r.epoch_tflops[:peak]))
            if r.estimated_flops is not None:
                values["total_tflops"].append(r.estimated_flops / 1e12)
            if r.epoch_wall_clock_seconds:
                values["time_to_best_s"].append(sum(r.epoch_wall_clock_seconds[:peak]))
            values["total_time_s"].append(r.wall_clock_seconds)
            per_seed.append(
                f"    seed {run.info.seed}: best={m.best:.4f} final={m.final:.4f} "
                f"peak_epoch={peak} path={run.path}"
            )
        summaries = {k: mean_sd(v) for k, v in values.items()}
        label = method_label(cell.info)
        csv.rows.append(
            [cell.task, cell.setting, cell.epochs, label, cell.variant, cell.n]
            + [x for s in summaries.values() for x in (s.mean, s.sd)]
        )
        shown = [
            f"{k}={s.mean:.4f}±{s.sd:.4f}"
            for k, s in summaries.items()
            if s.n and k not in ("peak_epoch",)
        ]
        lines.append(
            f"{cell.info.task_label} | {setting_label(cell.setting)} | {cell.epochs} ep | "
            f"{label} | n={cell.n} seeds={cell.seeds}"
        )
        lines.append("    " + " ".join(shown))
        lines += per_seed
    return lines, csv


def console_command(
    prog: str, tasks: Sequence[str], runs_root: str, csv: str, *, no_runs: bool, strict: bool
) -> int:
    """``report_*.py``: print the console summary of ``tasks`` and write its CSV."""
    found = discover_or_status(prog, runs_root, strict)
    if isinstance(found, int):
        return found
    lines, table = console_summary(RunSet(found.runs), tasks)
    if not table.rows:
        _err(prog, f"error: {runs_root}: no {'/'.join(tasks)} runs")
        return 1
    for line in lines:
        if not (no_runs and line.startswith("    seed ")):
            print(line)
    target = Path(csv)
    table.name = target.name[: -len(".csv")] if target.name.endswith(".csv") else target.name
    try:
        write_csv(table, target.parent)
    except OSError as err:
        _err(prog, f"error: {err.filename or target}: {err.strerror or err}")
        return 1
    print(f"{prog}: wrote {target.parent / (table.name + '.csv')}")
    return 0


def attribution_command(
    prog: str, aees_trace_root: str, controls_root: str, out_dir: str, *, strict: bool
) -> int:
    """``aggregate_cifar_attribution_controls.py``: AEES vs the open-loop controls.

    Exit status: 0 written (incomplete cells are reported as ``missing:`` lines), 1 no control
    runs or an output error, 2 a missing directory.
    """
    from aees.reporting.families.attribution import build_attribution_controls

    runs: dict[str, Run] = {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for root in (aees_trace_root, controls_root):
            found = discover_or_status(prog, root, strict)
            if isinstance(found, int):
                return found
            for run in found.runs:
                runs.setdefault(str(run.path.resolve()), run)  # the roots may overlap
    output = build_attribution_controls(RunSet(list(runs.values())))
    return write_family(prog, output, out_dir, empty=f"{controls_root}: no open-loop control runs")

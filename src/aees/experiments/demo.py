"""``aees demo``: the thesis's noisy-label comparison in miniature, end to end, on 2 CPU cores.

1. **Plan** the ``demo`` preset (``configs/demo.toml``): scikit-learn digits with 40 % symmetric
   label noise; AdamW, AdamW + cosine, fixed LR x0.5, fixed LR x2, AEES-LR, AEES-LR + cosine and
   the random-arm control; 3 seeds -- 21 runs.
2. **Sweep** them locally, 2 at a time (:func:`aees.experiments.executors.run_local`), with a
   live progress line. Runs whose result is already complete are reused, so the demo is
   re-runnable and resumes after Ctrl-C.
3. **Report** (:func:`aees.reporting.report.build_report`) into ``reports/demo``: tables
   (CSV, LaTeX, Markdown), figures (PNG, PDF) and ``index.html``; the main table is printed.
"""

from __future__ import annotations

import sys
from pathlib import Path

__all__ = ["DEMO_PRESET", "run_demo"]

DEMO_PRESET = "demo"


def run_demo(
    *,
    results_dir: str | Path = "runs/demo",
    report_dir: str | Path = "reports/demo",
    workers: int = 2,
    epochs: int | None = None,
    seeds: str | None = None,
) -> int:
    """Plan, sweep and report the demo study; returns the process exit status."""
    from aees.experiments.executors import SweepError, run_local
    from aees.experiments.plan import PlanError, build_plan, write_manifest

    results = Path(results_dir).absolute()
    overrides = {"epochs": epochs} if epochs is not None else None
    try:
        manifest = build_plan(DEMO_PRESET, seeds=seeds, output_root=results, overrides=overrides)
    except PlanError as err:
        print(f"aees demo: error: {err}", file=sys.stderr)
        return 2
    manifest_path = write_manifest(manifest, results / "manifest.json")
    print(f"aees demo: {len(manifest.runs)} runs ({manifest.description})")
    print(f"aees demo: results in {results}, {workers} at a time (finished runs are reused)")
    try:
        summary = run_local(manifest_path, workers=workers)
    except SweepError as err:
        print(f"aees demo: error: {err}", file=sys.stderr)
        return 2
    if summary.exit_code != 0:
        print("aees demo: not every run finished; the report covers the ones that did.")
    try:
        from aees.reporting.report import build_report
    except ImportError as err:
        print(
            f"aees demo: error: {err}; install the report extra: pip install 'aees[report]'",
            file=sys.stderr,
        )
        return 2
    report = build_report(results, report_dir)
    for problem in report.problems:
        print(f"aees demo: skipped {problem}", file=sys.stderr)
    tables_dir = Path(report_dir) / "tables"
    main_tables = sorted(tables_dir.glob("cifar_noisy/*main_table.md")) or sorted(
        tables_dir.glob("*/*main*.md")
    )
    for table in main_tables[:1]:
        print(f"\n{table}:\n")
        print(table.read_text(encoding="utf-8").rstrip())
    tables = sorted({p.parent for p in report.paths if p.parent.parent.name == "tables"})
    figures = sorted(p for p in report.paths if p.suffix == ".png")
    print(f"\naees demo: report: {report.index_html} (and {report.index_md})")
    print(f"aees demo: {len(tables)} table families under {Path(report_dir) / 'tables'}")
    print(f"aees demo: {len(figures)} figures under {Path(report_dir) / 'figures'}")
    return summary.exit_code

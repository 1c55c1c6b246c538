"""``aees demo``: plan, sweep and report the digits study (the demo preset)."""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Iterator
from pathlib import Path

DEMO_PRESET = "demo"

#: The CPU kernel settings of the demo's runs (docs/protocols.md §15.1). Each library picks its
#: kernels by the CPU it finds, and kernels of different levels round differently, so without
#: these an AVX-512 machine and an AVX2 one print different tables. Environment variables,
#: read when torch loads: the runs are subprocesses of the sweep, started with them set.
DEMO_KERNELS = {
    "ATEN_CPU_CAPABILITY": "avx2",  # torch's own vectorised kernels: the AVX2 build
    "ONEDNN_MAX_CPU_ISA": "AVX2",  # oneDNN (the convolutions): AVX2 code at most
    "MKL_CBWR": "COMPATIBLE",  # MKL (matrix products): the branch every x86-64 CPU runs alike
    "OMP_NUM_THREADS": "1",  # one thread per run: reductions split the same way everywhere
    "MKL_NUM_THREADS": "1",
}
DEMO_KERNEL_LEVEL = "AVX2"  # what provenance.hardware.cpu_capability reads under DEMO_KERNELS


@contextlib.contextmanager
def _environment(values: dict[str, str]) -> Iterator[None]:
    """``os.environ`` updated with ``values`` inside the block, restored after it."""
    saved = {name: os.environ.get(name) for name in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def _demo_kernel_notes(results: Path) -> list[str]:
    """Why this machine's table may differ from the README's, one line per reason (none: the
    runs used the pinned kernels at the AVX2 level, so the README's table applies)."""
    import platform

    from aees.results import load_run_result

    notes = []
    machine = platform.machine().lower()
    if machine not in ("x86_64", "amd64"):
        notes.append(
            f"this CPU is {machine}, not x86-64: its kernels round differently, so the numbers "
            "differ from the README's table (made on x86-64)"
        )
    unpinned, levels = 0, set()
    for path in sorted(results.rglob("*.json")):
        if path.name == "manifest.json":
            continue
        try:
            provenance = load_run_result(path).provenance or {}
        except (OSError, ValueError):  # not a result: the report names it
            continue
        env = provenance.get("environment") or {}
        if any(env.get(name) != value for name, value in DEMO_KERNELS.items()):
            unpinned += 1
        levels.add(str((provenance.get("hardware") or {}).get("cpu_capability")))
    if unpinned:
        notes.append(
            f"{unpinned} reused run(s) ran without the demo's kernel settings (an older aees "
            f"demo): delete {results} and run it again to compare with the README's table"
        )
    if machine in ("x86_64", "amd64") and levels - {DEMO_KERNEL_LEVEL}:
        notes.append(
            f"torch ran its kernels at level {', '.join(sorted(levels))}, not "
            f"{DEMO_KERNEL_LEVEL} (this CPU lacks AVX2): the numbers differ from the README's table"
        )
    return notes


def run_demo(
    *,
    results_dir: str | Path = "runs/demo",
    report_dir: str | Path = "reports/demo",
    workers: int = 2,
    epochs: int | None = None,
    seeds: str | None = None,
) -> int:
    """``aees demo``: the thesis's noisy-label comparison in miniature, end to end, on 2 CPU cores.

    1. **Plan** the ``demo`` preset (``aees/presets/demo.toml``): scikit-learn digits with 40 %
       symmetric label noise; AdamW, AdamW + cosine, fixed LR x0.5, fixed LR x2, AEES-LR,
       AEES-LR + cosine and the random-arm control; 3 seeds -- 21 runs.
    2. **Sweep** them locally, 2 at a time (:func:`aees.sweep.local.run_local`), with a live
       progress line. Runs whose result is already complete are reused, so the demo is
       re-runnable and resumes after Ctrl-C.
    3. **Report** (:func:`aees.reporting.report.build_report`) into ``reports/demo``: tables
       (CSV, LaTeX, Markdown), figures (PNG, PDF) and ``index.html``; the main table is printed.

    Returns the process exit status.
    """
    from aees.sweep.errors import PlanError, SweepError
    from aees.sweep.local import run_local
    from aees.sweep.manifest import write_manifest
    from aees.sweep.plan import build_plan

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
    settings = " ".join(f"{name}={value}" for name, value in DEMO_KERNELS.items())
    print(f"aees demo: CPU kernels pinned, for the same numbers on every x86-64 CPU: {settings}")
    try:
        with _environment(DEMO_KERNELS):
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
    notes = _demo_kernel_notes(results)
    for note in notes:
        print(f"aees demo: note: {note}")
    if main_tables and not notes:
        print("\naees demo: the kernels were the pinned AVX2 ones: this table is the README's.")
    tables = sorted({p.parent for p in report.paths if p.parent.parent.name == "tables"})
    figures = sorted(p for p in report.paths if p.suffix == ".png")
    print(f"\naees demo: report: {report.index_html} (and {report.index_md})")
    print(f"aees demo: {len(tables)} table families under {Path(report_dir) / 'tables'}")
    print(f"aees demo: {len(figures)} figures under {Path(report_dir) / 'figures'}")
    return summary.exit_code

"""``aees report`` and the parsers of the seed's report scripts (``scripts/tables/make_*.py``,
``scripts/plots/*_plots.py``, ``scripts/report_*.py``): :func:`table_script`,
:func:`figure_script`, :func:`console_script`, :func:`attribution_script`."""

from __future__ import annotations

from collections.abc import Sequence

from aees.console import OneLineArgumentParser


def report_main(argv: Sequence[str] | None = None) -> int:
    """``aees report RESULTS_DIR --out DIR [--strict] [--quiet]`` (argv without "report").

    Exit status: 0 done; 1 nothing to report, a figure MISSING, or (``--strict``) an unreadable
    result file; 2 command-line misuse (bad flag, missing results directory).
    """
    from aees.reporting.commands import report_command

    parser = OneLineArgumentParser(
        prog="aees report",
        description="Tables (CSV, LaTeX, Markdown), figures (PNG, PDF) and an index page "
        "from a directory of result JSON files.",
    )
    parser.add_argument("results_dir", metavar="RESULTS_DIR", help="directory of result files")
    parser.add_argument("--out", required=True, metavar="DIR", help="output directory")
    parser.add_argument(
        "--strict", action="store_true", help="fail on the first unreadable result file"
    )
    parser.add_argument("--quiet", action="store_true", help="print only problems")
    args = parser.parse_args(argv)
    return report_command(
        parser.prog, args.results_dir, args.out, strict=args.strict, quiet=args.quiet
    )


def _script_parser(
    prog: str, description: str, runs_root: str, out_dir: str
) -> OneLineArgumentParser:
    parser = OneLineArgumentParser(prog=prog, description=description)
    parser.add_argument(
        "--runs-root", default=runs_root, help=f"directory of result files (default {runs_root})"
    )
    parser.add_argument("--out-dir", default=out_dir, help=f"output directory (default {out_dir})")
    parser.add_argument("--strict", action="store_true", help="fail on an unreadable result file")
    return parser


def table_script(family: str, argv: Sequence[str] | None = None, *, prog: str | None = None) -> int:
    """``make_<family>.py``: build one table family from ``--runs-root`` into ``--out-dir``."""
    from aees.reporting.commands import table_command
    from aees.reporting.families import FAMILIES

    spec = FAMILIES[family]
    prog = prog or f"make_{family}_tables.py"
    parser = _script_parser(
        prog, f"{spec.title}: tables from result JSON.", spec.runs_root, spec.out_dir
    )
    args = parser.parse_args(argv)
    return table_command(prog, family, args.runs_root, args.out_dir, strict=args.strict)


def figure_script(
    family: str, argv: Sequence[str] | None = None, *, prog: str | None = None
) -> int:
    """``<family>_plots.py``: every figure of one figure family; exit 1 if any is MISSING."""
    from aees.reporting.commands import figure_command

    prog = prog or f"{family}_plots.py"
    parser = _script_parser(
        prog,
        f"{family} figures (PNG + PDF + summary) from result JSON.",
        "results",
        f"reports/figures/{family}",
    )
    args = parser.parse_args(argv)
    return figure_command(prog, family, args.runs_root, args.out_dir, strict=args.strict)


def console_script(
    tasks: Sequence[str],
    default_root: str,
    default_csv: str,
    argv: Sequence[str] | None = None,
    *,
    prog: str,
) -> int:
    """``report_*.py``: print the console summary of ``tasks`` and write its CSV."""
    from aees.reporting.commands import console_command

    parser = OneLineArgumentParser(prog=prog, description="Console summary + CSV of result files.")
    parser.add_argument("--runs-root", default=default_root, help=f"(default {default_root})")
    parser.add_argument("--csv", default=default_csv, help=f"CSV of means (default {default_csv})")
    parser.add_argument("--no-runs", action="store_true", help="omit the per-seed lines")
    parser.add_argument("--strict", action="store_true", help="fail on an unreadable result file")
    args = parser.parse_args(argv)
    return console_command(
        prog, tasks, args.runs_root, args.csv, no_runs=args.no_runs, strict=args.strict
    )


def attribution_script(argv: Sequence[str] | None = None) -> int:
    """``aggregate_cifar_attribution_controls.py --aees-trace-root --controls-root --out-dir``.

    Exit status: 0 written (incomplete cells are reported as ``missing:`` lines), 1 no control
    runs or an output error, 2 a bad flag or a missing directory.
    """
    from aees.reporting.commands import attribution_command
    from aees.reporting.families.attribution import OUT_DIR

    prog = "aggregate_cifar_attribution_controls.py"
    parser = OneLineArgumentParser(
        prog=prog, description="AEES vs open-loop attribution controls (docs/reporting.md §5.10)."
    )
    parser.add_argument("--aees-trace-root", default="results/cifar_noisy")
    parser.add_argument("--controls-root", default="results/cifar_attribution_controls")
    parser.add_argument("--out-dir", default=OUT_DIR)
    parser.add_argument("--strict", action="store_true", help="fail on an unreadable result file")
    args = parser.parse_args(argv)
    return attribution_command(
        prog, args.aees_trace_root, args.controls_root, args.out_dir, strict=args.strict
    )

#!/usr/bin/env python3
"""Console summary of AG News runs (per method: n, best/final accuracy, label-noise diagnostics,
compute to the best epoch, per-seed lines) plus a CSV of the means.

Usage: python scripts/report_agnews_results.py [--runs-root DIR] [--csv FILE] [--no-runs]
(a thin wrapper over aees.cli.report.console_script).
"""

from aees.cli.report import console_script

if __name__ == "__main__":
    raise SystemExit(
        console_script(
            ("agnews",), "results", "results/agnews_summary.csv", prog="report_agnews_results.py"
        )
    )

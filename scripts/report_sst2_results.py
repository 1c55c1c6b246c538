#!/usr/bin/env python3
"""Console summary of SST-2 runs (per method: n, best/final accuracy, label-noise diagnostics,
compute to the best epoch, per-seed lines) plus a CSV of the means.

Usage: python scripts/report_sst2_results.py [--runs-root DIR] [--csv FILE] [--no-runs]
(a thin wrapper over aees.cli.report.console_script).
"""

from aees.cli.report import console_script

if __name__ == "__main__":
    raise SystemExit(
        console_script(
            ("sst2",), "results", "results/sst2_summary.csv", prog="report_sst2_results.py"
        )
    )

#!/usr/bin/env python3
"""Console summary of CIFAR-100 and digits runs (per method: n, best/final accuracy, label-noise
diagnostics, compute to the best epoch, per-seed lines) plus a CSV of the means.

Usage: python scripts/report_cifar_runs.py [--runs-root DIR] [--csv FILE] [--no-runs]
(a thin wrapper over aees.cli.report.console_script).
"""

from aees.cli.report import console_script

if __name__ == "__main__":
    raise SystemExit(
        console_script(
            ("cifar100", "digits"),
            "results",
            "results/cifar_summary.csv",
            prog="report_cifar_runs.py",
        )
    )

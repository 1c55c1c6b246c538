#!/usr/bin/env python3
"""Open-loop attribution controls vs AEES (docs/reporting.md §5.10): JSON + CSV summaries and a
table.

Usage: python scripts/tables/aggregate_cifar_attribution_controls.py
       [--aees-trace-root results/cifar_noisy] [--controls-root results/cifar_attribution_controls]
       [--out-dir reports/tables/cifar_attribution_controls] [--strict]
(a thin wrapper over aees.cli.report.attribution_script).
"""

from aees.cli.report import attribution_script as script_main

if __name__ == "__main__":
    raise SystemExit(script_main())

#!/usr/bin/env python3
"""Clean CIFAR tables (docs/reporting.md §5.1): main, fixed-LR ablation, compact appendix, summary
CSV.

Usage: python scripts/tables/make_cifar_clean_tables.py [--runs-root DIR]
       [--out-dir DIR] [--strict]
(a thin wrapper over aees.cli.report.table_script).
"""

from aees.cli.report import table_script

if __name__ == "__main__":
    raise SystemExit(table_script("cifar_clean", prog="make_cifar_clean_tables.py"))

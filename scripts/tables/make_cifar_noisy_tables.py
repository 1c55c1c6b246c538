#!/usr/bin/env python3
"""Noisy CIFAR tables (docs/reporting.md §5.2): one main table per regime, detailed appendix with
diagnostics.

Usage: python scripts/tables/make_cifar_noisy_tables.py [--runs-root DIR]
       [--out-dir DIR] [--strict]
(a thin wrapper over aees.cli.report.table_script).
"""

from aees.cli.report import table_script

if __name__ == "__main__":
    raise SystemExit(table_script("cifar_noisy", prog="make_cifar_noisy_tables.py"))

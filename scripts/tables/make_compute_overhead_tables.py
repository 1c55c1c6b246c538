#!/usr/bin/env python3
"""Compute overhead (docs/reporting.md §5.6): decomposition and detailed tables, first epoch
excluded.

Usage: python scripts/tables/make_compute_overhead_tables.py [--runs-root DIR]
       [--out-dir DIR] [--strict]
(a thin wrapper over aees.cli.report.table_script).
"""

from aees.cli.report import table_script

if __name__ == "__main__":
    raise SystemExit(table_script("compute_overhead", prog="make_compute_overhead_tables.py"))

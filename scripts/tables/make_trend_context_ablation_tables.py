#!/usr/bin/env python3
"""Trend-context ablation (docs/reporting.md §5.7).

Usage: python scripts/tables/make_trend_context_ablation_tables.py [--runs-root DIR]
       [--out-dir DIR] [--strict]
(a thin wrapper over aees.cli.report.table_script).
"""

from aees.cli.report import table_script

if __name__ == "__main__":
    raise SystemExit(
        table_script("trend_context_ablation", prog="make_trend_context_ablation_tables.py")
    )

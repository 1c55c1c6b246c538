#!/usr/bin/env python3
"""Best-epoch label-noise diagnostics (docs/reporting.md §5.4), from the in-run diagnostics.

Usage: python scripts/tables/make_checkpointing_tables.py [--runs-root DIR]
       [--out-dir DIR] [--strict]
(a thin wrapper over aees.cli.report.table_script).
"""

from aees.cli.report import table_script

if __name__ == "__main__":
    raise SystemExit(table_script("checkpointing", prog="make_checkpointing_tables.py"))

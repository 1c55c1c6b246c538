#!/usr/bin/env python3
"""Other tasks, per dataset and model (docs/reporting.md §5.12).

Usage: python scripts/tables/make_other_tasks_tables.py [--runs-root DIR]
       [--out-dir DIR] [--strict]
(a thin wrapper over aees.cli.report.table_script).
"""

from aees.cli.report import table_script

if __name__ == "__main__":
    raise SystemExit(table_script("other_tasks", prog="make_other_tasks_tables.py"))

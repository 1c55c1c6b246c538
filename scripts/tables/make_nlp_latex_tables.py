#!/usr/bin/env python3
"""NLP tables (docs/reporting.md §5.8): SST-2 / AG News main, axis and detailed appendix.

Usage: python scripts/tables/make_nlp_latex_tables.py [--runs-root DIR]
       [--out-dir DIR] [--strict]
(a thin wrapper over aees.cli.report.table_script).
"""

from aees.cli.report import table_script

if __name__ == "__main__":
    raise SystemExit(table_script("nlp", prog="make_nlp_latex_tables.py"))

#!/usr/bin/env python3
"""Peers: AEES vs schedule-free and LR-free optimizers (docs/reporting.md §5.11).

Usage: python scripts/tables/make_peers_tables.py [--runs-root DIR]
       [--out-dir DIR] [--strict]
(a thin wrapper over aees.cli.report.table_script).
"""

from aees.cli.report import table_script

if __name__ == "__main__":
    raise SystemExit(table_script("peers", prog="make_peers_tables.py"))

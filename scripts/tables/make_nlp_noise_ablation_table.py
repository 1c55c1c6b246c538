#!/usr/bin/env python3
"""NLP gradient-noise (sigma) ablation (docs/reporting.md §5.9).

Usage: python scripts/tables/make_nlp_noise_ablation_table.py [--runs-root DIR]
       [--out-dir DIR] [--strict]
(a thin wrapper over aees.cli.report.table_script).
"""

from aees.cli.report import table_script

if __name__ == "__main__":
    raise SystemExit(table_script("nlp_noise_ablation", prog="make_nlp_noise_ablation_table.py"))

#!/usr/bin/env python3
"""CIFAR gradient-noise ablation (docs/reporting.md §5.5).

Usage: python scripts/tables/make_cifar_noise_ablation_table.py [--runs-root DIR]
       [--out-dir DIR] [--strict]
(a thin wrapper over aees.cli.report.table_script).
"""

from aees.cli.report import table_script

if __name__ == "__main__":
    raise SystemExit(
        table_script("cifar_noise_ablation", prog="make_cifar_noise_ablation_table.py")
    )

#!/usr/bin/env python3
"""Noisy CIFAR fixed-LR ablation (docs/reporting.md §5.3): summary, detailed, AEES vs best fixed
(paired).

Usage: python scripts/tables/make_cifar_noisy_fixed_lr_ablation_tables.py [--runs-root DIR]
       [--out-dir DIR] [--strict]
(a thin wrapper over aees.cli.report.table_script).
"""

from aees.cli.report import table_script

if __name__ == "__main__":
    raise SystemExit(
        table_script(
            "cifar_noisy_fixed_lr_ablation", prog="make_cifar_noisy_fixed_lr_ablation_tables.py"
        )
    )

#!/usr/bin/env python3
"""All CIFAR figures (CIFAR-100 and digits): validation curves (clean, each noise regime), clean bar
plot, gradient-noise ablation bars and curves.

Usage: python scripts/plots/cifar_plots.py [--runs-root DIR]
       [--out-dir DIR] [--strict]
(a thin wrapper over aees.cli.report.figure_script); exits 1 and writes
<figure>.MISSING.md when a figure's inputs are missing.
"""

from aees.cli.report import figure_script

if __name__ == "__main__":
    raise SystemExit(figure_script("cifar", prog="cifar_plots.py"))

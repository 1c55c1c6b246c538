#!/usr/bin/env python3
"""Controller figures: arm selection over training, reward per arm, update-norm trajectory.

Usage: python scripts/plots/controller_plots.py [--runs-root DIR]
       [--out-dir DIR] [--strict]
(a thin wrapper over aees.cli.report.figure_script); exits 1 and writes
<figure>.MISSING.md when a figure's inputs are missing.
"""

from aees.cli.report import figure_script

if __name__ == "__main__":
    raise SystemExit(figure_script("controllers", prog="controller_plots.py"))

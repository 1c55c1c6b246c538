#!/usr/bin/env python3
"""Wall-clock overhead figure (the configurations of the overhead decomposition table).

Usage: python scripts/plots/compute_plots.py [--runs-root DIR]
       [--out-dir DIR] [--strict]
(a thin wrapper over aees.cli.report.figure_script); exits 1 and writes
<figure>.MISSING.md when a figure's inputs are missing.
"""

from aees.cli.report import figure_script

if __name__ == "__main__":
    raise SystemExit(figure_script("compute", prog="compute_plots.py"))

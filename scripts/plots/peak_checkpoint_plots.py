#!/usr/bin/env python3
"""peak_checkpoint figures (docs/reporting.md §6).

Usage: python scripts/plots/peak_checkpoint_plots.py [--runs-root DIR]
       [--out-dir DIR] [--strict]
(a thin wrapper over aees.cli.report.figure_script); exits 1 and writes
<figure>.MISSING.md when a figure's inputs are missing.
"""

from aees.cli.report import figure_script

if __name__ == "__main__":
    raise SystemExit(figure_script("peak_checkpoint", prog="peak_checkpoint_plots.py"))

#!/usr/bin/env python3
"""Other-task figures: validation curves per generic task, dataset and model.

Usage: python scripts/plots/other_tasks_plots.py [--runs-root DIR]
       [--out-dir DIR] [--strict]
(a thin wrapper over aees.cli.report.figure_script); exits 1 and writes
<figure>.MISSING.md when a figure's inputs are missing.
"""

from aees.cli.report import figure_script

if __name__ == "__main__":
    raise SystemExit(figure_script("other_tasks", prog="other_tasks_plots.py"))

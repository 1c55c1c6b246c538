#!/usr/bin/env python3
"""Peers figures: validation curves of AEES and the schedule-free / LR-free optimizers.

Usage: python scripts/plots/peers_plots.py [--runs-root DIR]
       [--out-dir DIR] [--strict]
(a thin wrapper over aees.cli.report.figure_script); exits 1 and writes
<figure>.MISSING.md when a figure's inputs are missing.
"""

from aees.cli.report import figure_script

if __name__ == "__main__":
    raise SystemExit(figure_script("peers", prog="peers_plots.py"))

#!/usr/bin/env python3
"""NLP figures: SST-2 / AG News validation curves, sigma-ablation bar plots.

Usage: python scripts/plots/nlp_plots.py [--runs-root DIR]
       [--out-dir DIR] [--strict]
(a thin wrapper over aees.cli.report.figure_script); exits 1 and writes
<figure>.MISSING.md when a figure's inputs are missing.
"""

from aees.cli.report import figure_script

if __name__ == "__main__":
    raise SystemExit(figure_script("nlp", prog="nlp_plots.py"))

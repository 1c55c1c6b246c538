"""Tables and figures from result JSON (never trains).

``build_report(results_dir, out_dir)`` writes every table family (CSV, LaTeX, Markdown) and
figure family (PNG, PDF, summary) the runs support, with ``index.md`` and ``index.html``;
``aees report`` is :func:`aees.cli.report.report_main`. matplotlib, numpy and scipy are imported
only when a figure or a paired statistic is computed.
"""

from aees.reporting.discovery import Discovery, discover_runs
from aees.reporting.report import ReportSummary, build_report
from aees.reporting.runs import ReportError, RunSet

__all__ = ["Discovery", "ReportError", "ReportSummary", "RunSet", "build_report", "discover_runs"]

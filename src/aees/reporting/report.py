"""``build_report``: every table and figure family the runs support, plus ``index.md`` and a
self-contained ``index.html`` (figures embedded as base64 PNG, tables rendered, n per method,
missing cells, unreadable files and diverged runs listed).

Layout of ``out_dir``::

    index.md  index.html
    tables/<family>/<table>.{tex,md,csv}, <summary>.csv, <family>_all.tex
    figures/<family>/<figure>.{png,pdf,summary.txt} or <figure>.MISSING.md
"""

from __future__ import annotations

import base64
import html
import os
from dataclasses import dataclass, field
from pathlib import Path

from aees.reporting.attribution import FAMILY as ATTRIBUTION_FAMILY
from aees.reporting.attribution import build_attribution_controls
from aees.reporting.families import FAMILIES, FamilyOutput, method_label
from aees.reporting.families.peers import is_peer
from aees.reporting.figures import FIGURE_FAMILIES, FigureResult, thesis_families_for
from aees.reporting.render import render_html, render_markdown
from aees.reporting.runs import (
    CIFAR_LIKE_TASKS,
    NLP_TASKS,
    Discovery,
    RunSet,
    discover_runs,
    display_path,
    setting_label,
    task_label,
)
from aees.results import atomic_write_text

__all__ = ["ReportSummary", "build_report", "figure_families_for"]


@dataclass
class ReportSummary:
    """What :func:`build_report` wrote and found."""

    results_dir: Path
    out_dir: Path
    runs: int = 0
    paths: list[Path] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    diverged: list[str] = field(default_factory=list)
    """One line per run marked as diverged: listed, kept out of every table and figure."""
    families: dict[str, FamilyOutput] = field(default_factory=dict)
    skipped_families: list[str] = field(default_factory=list)
    figures: dict[str, list[FigureResult]] = field(default_factory=dict)

    @property
    def index_html(self) -> Path:
        return self.out_dir / "index.html"

    @property
    def index_md(self) -> Path:
        return self.out_dir / "index.md"

    @property
    def missing(self) -> list[str]:
        """Missing table cells and figure inputs, one line each."""
        out = [f"{name}: {m}" for name, fam in self.families.items() for m in fam.missing]
        for family, results in self.figures.items():
            for r in results:
                out += [f"figure {family}/{r.name}: {m}" for m in (*r.missing, *r.partial)]
        return out


def figure_families_for(runset: RunSet) -> list[str]:
    """Figure families with inputs: cifar (CIFAR-100/digits runs), nlp (SST-2/AG News runs),
    controllers (AEES runs), compute (runs with at least two timed epochs), peers (runs of a
    schedule-free or LR-free optimizer), the thesis figures whose inputs exist
    (:func:`~aees.reporting.figures.thesis_families_for`), the method overview (AEES runs)
    and other_tasks (runs of a generic task)."""
    tasks = set(runset.tasks())
    out = []
    if tasks & set(CIFAR_LIKE_TASKS):
        out.append("cifar")
    if tasks & set(NLP_TASKS):
        out.append("nlp")
    if any(r.info.kind == "aees" and r.result.episode_logs for r in runset.runs):
        out.append("controllers")
    if any(len(r.result.epoch_wall_clock_seconds) >= 2 for r in runset.runs):
        out.append("compute")
    if any(is_peer(r.info) for r in runset.runs):
        out.append("peers")
    out += thesis_families_for(runset)
    if any(t not in (*CIFAR_LIKE_TASKS, *NLP_TASKS) for t in tasks):
        out.append("other_tasks")
    if any(r.info.kind == "aees" for r in runset.runs):
        out.append("overview")
    return out


def build_report(
    results_dir: str | os.PathLike[str], out_dir: str | os.PathLike[str], *, strict: bool = False
) -> ReportSummary:
    """Discover the runs under ``results_dir`` and write every supported family to ``out_dir``.

    Unreadable or untrustworthy files are listed in ``problems`` and skipped (``strict``: the
    first one raises :class:`~aees.reporting.runs.ReportError`, as does a missing
    ``results_dir``); runs marked as diverged are listed in ``diverged`` and left out.
    """
    found: Discovery = discover_runs(results_dir, strict=strict)
    out = Path(out_dir)
    summary = ReportSummary(Path(results_dir), out, runs=len(found.runs))
    summary.problems = list(found.problems)
    summary.diverged = found.diverged_lines()
    skipped = found.skipped_summary()
    if skipped:
        summary.problems.append(skipped)
    runset = RunSet(found.runs)
    for name, family in FAMILIES.items():
        output = family.builder(runset)
        if output.supported:
            summary.families[name] = output
            summary.paths += output.write(out / "tables" / name)
        else:
            summary.skipped_families.append(name)
    # docs/reporting.md §5.10 reads two kinds of runs (AEES traces and open-loop controls) and has
    # its own script
    # (scripts/tables/aggregate_cifar_attribution_controls.py), so it is not in FAMILIES
    attribution = build_attribution_controls(runset)
    if attribution.supported:
        summary.families[ATTRIBUTION_FAMILY] = attribution
        summary.paths += attribution.write(out / "tables" / ATTRIBUTION_FAMILY)
    # (unlisted when there are no open-loop control runs: it is an optional study)
    for name in figure_families_for(runset):
        results = FIGURE_FAMILIES[name](runset, out / "figures" / name)
        summary.figures[name] = results
        summary.paths += [p for r in results for p in r.paths]
    summary.paths.append(atomic_write_text(summary.index_md, _index_md(summary, runset)))
    summary.paths.append(atomic_write_text(summary.index_html, _index_html(summary, runset)))
    return summary


# --------------------------------------------------------------------------------------------
# Index pages
# --------------------------------------------------------------------------------------------


def _run_rows(runset: RunSet) -> list[list[str]]:
    return [
        [
            task_label(c.task),
            setting_label(c.setting),
            str(c.epochs),
            method_label(c.info),
            str(c.n),
            " ".join(map(str, c.seeds)),
            c.variant,
        ]
        for c in runset.cells
    ]


_RUN_HEADER = ["Task", "Setting", "Epochs", "Method", "n", "Seeds", "Variant"]


def _rel(summary: ReportSummary, path: Path) -> str:
    return path.relative_to(summary.out_dir).as_posix()


def _index_md(summary: ReportSummary, runset: RunSet) -> str:
    lines = [
        "# AEES report",
        "",
        f"Generated by `aees report` from `{display_path(summary.results_dir)}`: "
        f"{summary.runs} runs in "
        f"{len(runset.cells)} cells, {len(summary.families)} table families, "
        f"{sum(len(v) for v in summary.figures.values())} figures.",
        "",
    ]
    if summary.problems:
        lines += ["## Files not used", ""] + [f"- {p}" for p in summary.problems] + [""]
    if summary.diverged:
        lines += ["## Diverged runs (not in any table or figure)", ""]
        lines += [f"- {d}" for d in summary.diverged] + [""]
    lines += ["## Runs (n per method)", ""]
    lines.append("| " + " | ".join(_RUN_HEADER) + " |")
    lines.append("|" + "---|" * len(_RUN_HEADER))
    lines += ["| " + " | ".join(row) + " |" for row in _run_rows(runset)]
    lines.append("")
    for name, fam in summary.families.items():
        lines += [f"## {summary.families[name].title}", ""]
        for table in fam.tables:
            lines += [f"`tables/{name}/{table.name}.tex`", "", render_markdown(table), ""]
        if fam.missing:
            lines += ["Missing cells:", ""] + [f"- {m}" for m in fam.missing] + [""]
        if fam.notes:
            lines += ["Notes:", ""] + [f"- {m}" for m in fam.notes] + [""]
    for name, results in summary.figures.items():
        lines += [f"## Figures: {name}", ""]
        for r in results:
            if r.ok and r.png is not None:
                lines += [f"![{r.name}]({_rel(summary, r.png)})", ""]
                lines += [f"- {m}" for m in r.partial]
            else:
                lines += [f"**{r.name}: MISSING**", ""] + [f"- {m}" for m in r.missing] + [""]
    if summary.skipped_families:
        lines += ["## Table families without runs", ""]
        lines += [f"- {FAMILIES[n].title}" for n in summary.skipped_families] + [""]
    missing = summary.missing
    lines += ["## All missing cells", ""] + ([f"- {m}" for m in missing] or ["None."]) + [""]
    return "\n".join(lines)


_CSS = """
body{font-family:system-ui,sans-serif;max-width:1100px;margin:2em auto;padding:0 1em;color:#222}
table{border-collapse:collapse;margin:1em 0;font-size:0.9em}
caption{caption-side:top;text-align:left;font-weight:600;padding:0.3em 0}
th,td{padding:0.25em 0.6em;border-bottom:1px solid #ddd}
thead th{border-bottom:2px solid #444}
tr.block td{border-top:2px solid #888}
img{max-width:100%;border:1px solid #eee}
.missing{color:#a00}
"""


def _list_html(items: list[str], css: str = "") -> str:
    if not items:
        return ""
    cls = f' class="{css}"' if css else ""
    return f"<ul{cls}>" + "".join(f"<li>{html.escape(i)}</li>" for i in items) + "</ul>"


def _index_html(summary: ReportSummary, runset: RunSet) -> str:
    e = html.escape
    parts = [
        "<!DOCTYPE html><html><head><meta charset='utf-8'><title>AEES report</title>",
        f"<style>{_CSS}</style></head><body><h1>AEES report</h1>",
        "<p>Generated by <code>aees report</code> from "
        f"<code>{e(display_path(summary.results_dir))}"
        f"</code>: {summary.runs} runs in {len(runset.cells)} cells, "
        f"{len(summary.families)} table families.</p>",
    ]
    if summary.problems:
        parts += ["<h2>Files not used</h2>", _list_html(summary.problems, "missing")]
    if summary.diverged:
        parts += ["<h2>Diverged runs (not in any table or figure)</h2>"]
        parts.append(_list_html(summary.diverged, "missing"))
    parts.append("<h2>Runs (n per method)</h2><table><thead><tr>")
    parts += [f"<th>{e(h)}</th>" for h in _RUN_HEADER]
    parts.append("</tr></thead><tbody>")
    for row in _run_rows(runset):
        parts.append("<tr>" + "".join(f"<td>{e(v)}</td>" for v in row) + "</tr>")
    parts.append("</tbody></table>")
    for name, fam in summary.families.items():
        parts.append(f"<h2>{e(summary.families[name].title)}</h2>")
        for table in fam.tables:
            parts.append(render_html(table))
            parts.append(f"<p><small>tables/{e(name)}/{e(table.name)}.tex / .md / .csv</small></p>")
        if fam.missing:
            parts += ["<p>Missing cells:</p>", _list_html(fam.missing, "missing")]
        if fam.notes:
            parts += ["<p>Notes:</p>", _list_html(fam.notes)]
    for name, results in summary.figures.items():
        parts.append(f"<h2>Figures: {e(name)}</h2>")
        for r in results:
            if r.ok and r.png is not None:
                data = base64.b64encode(r.png.read_bytes()).decode("ascii")
                parts.append(
                    f"<figure><img alt='{e(r.name)}' src='data:image/png;base64,{data}'>"
                    f"<figcaption>{e(r.name)}</figcaption></figure>"
                )
                parts.append(_list_html(r.partial, "missing"))
            else:
                parts.append(f"<p class='missing'><b>{e(r.name)}: MISSING</b></p>")
                parts.append(_list_html(r.missing, "missing"))
    if summary.skipped_families:
        parts.append("<h2>Table families without runs</h2>")
        parts.append(_list_html([FAMILIES[n].title for n in summary.skipped_families]))
    parts.append("<h2>All missing cells</h2>")
    parts.append(_list_html(summary.missing, "missing") or "<p>None.</p>")
    parts.append("</body></html>\n")
    return "\n".join(parts)

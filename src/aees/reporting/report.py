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
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from aees.reporting.discovery import Discovery, discover_runs
from aees.reporting.families import FAMILIES, FamilyOutput, method_label
from aees.reporting.families.attribution import FAMILY as ATTRIBUTION_FAMILY
from aees.reporting.families.attribution import build_attribution_controls
from aees.reporting.families.peers import is_peer
from aees.reporting.figures import FIGURE_FAMILIES, FigureResult, thesis_families_for
from aees.reporting.plan import PlannedRun, StudyPlan, find_plans, planned_runset
from aees.reporting.render import md_code, md_text, render_html, render_markdown
from aees.reporting.runs import RunSet, display_path, setting_label
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
    plan: StudyPlan | None = None
    """The study's run plan (docs/reporting.md §8), None when the directory holds none."""
    unfinished: list[PlannedRun] = field(default_factory=list)
    """Planned runs without a valid result."""
    unplanned: set[str] = field(default_factory=set)
    """Lines of :attr:`all_missing` that the plan itself leaves empty (not missing)."""

    @property
    def index_html(self) -> Path:
        return self.out_dir / "index.html"

    @property
    def index_md(self) -> Path:
        return self.out_dir / "index.md"

    @property
    def all_missing(self) -> list[str]:
        """Empty table cells and figure inputs the families name, one line each."""
        out = [f"{name}: {m}" for name, fam in self.families.items() for m in fam.missing]
        for family, results in self.figures.items():
            for r in results:
                out += [f"figure {family}/{r.name}: {m}" for m in (*r.missing, *r.partial)]
        return out

    @property
    def missing(self) -> list[str]:
        """What is missing: without a plan every empty cell and figure input; for a planned
        study the planned runs without a result and the cells and figures they would fill."""
        runs = [
            f"planned run {r.run_id}: no valid result at {display_path(r.output)}"
            + (f" (sweep status: {r.status})" if r.status else "")
            for r in self.unfinished
        ]
        return runs + [m for m in self.all_missing if m not in self.unplanned]

    @property
    def not_planned(self) -> list[str]:
        """Empty cells and figure inputs of a planned study that its plan did not ask for."""
        return [m for m in self.all_missing if m in self.unplanned]

    @property
    def complete(self) -> bool:
        """False when a planned study misses something its plan asked for (exit status 1)."""
        return not (self.plan and self.missing)

    def shown_missing(self, prefix: str, lines: list[str]) -> tuple[list[str], list[str]]:
        """(missing, not planned) of one family's or figure's lines (``prefix``: how
        :attr:`all_missing` names them)."""
        missing = [m for m in lines if f"{prefix}{m}" not in self.unplanned]
        return missing, [m for m in lines if f"{prefix}{m}" in self.unplanned]


def figure_families_for(runset: RunSet) -> list[str]:
    """Figure families with inputs: cifar (CIFAR-100/digits runs), nlp (SST-2/AG News runs),
    controllers (AEES runs), compute (runs with at least two timed epochs), peers (runs of a
    schedule-free or LR-free optimizer), the thesis figures whose inputs exist
    (:func:`~aees.reporting.figures.thesis_families_for`), the method overview (AEES runs)
    and other_tasks (runs of a generic task)."""
    out = []
    if runset.family_tasks("cifar"):
        out.append("cifar")
    if runset.family_tasks("nlp"):
        out.append("nlp")
    if any(r.info.kind == "aees" and r.result.episode_logs for r in runset.runs):
        out.append("controllers")
    if any(len(r.result.epoch_wall_clock_seconds) >= 2 for r in runset.runs):
        out.append("compute")
    if any(is_peer(r.info) for r in runset.runs):
        out.append("peers")
    out += thesis_families_for(runset)
    if runset.family_tasks("other"):
        out.append("other_tasks")
    if any(r.info.kind == "aees" for r in runset.runs):
        out.append("overview")
    return out


def figure_heading(name: str, runset: RunSet) -> str:
    """``cifar (Digits)``: a figure family's heading names the datasets of its runs."""
    if name not in ("cifar", "nlp"):
        return name
    return f"{name} ({', '.join(runset.task_label(t) for t in runset.family_tasks(name))})"


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
    plan = find_plans(results_dir)
    summary.problems = list(found.problems) + plan.problems
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
    if plan:
        summary.plan = plan
        _mark_unplanned(summary, plan, found, runset)
    summary.paths.append(atomic_write_text(summary.index_md, _index_md(summary, runset)))
    summary.paths.append(atomic_write_text(summary.index_html, _index_html(summary, runset)))
    return summary


def _mark_unplanned(
    summary: ReportSummary, plan: StudyPlan, found: Discovery, actual: RunSet
) -> None:
    """docs/reporting.md §8: build the families on the study as planned; what stays empty
    there was never asked for. Figures are redrawn (in a temporary directory inside the
    output directory, removed after) only when the planned runs differ from those reported."""
    planned, summary.unfinished = planned_runset(plan, found.runs)
    empty: set[str] = set()
    for name, family in FAMILIES.items():
        if name in summary.families:
            empty.update(f"{name}: {m}" for m in family.builder(planned).missing)
    if ATTRIBUTION_FAMILY in summary.families:
        output = build_attribution_controls(planned)
        empty.update(f"{ATTRIBUTION_FAMILY}: {m}" for m in output.missing)
    figure_lines = {m for m in summary.all_missing if m.startswith("figure ")}
    if {str(r.path) for r in planned.runs} == {str(r.path) for r in actual.runs}:
        empty |= figure_lines
    else:
        redraw = [n for n, rs in summary.figures.items() if any(r.missing or r.partial for r in rs)]
        scratch = Path(tempfile.mkdtemp(prefix=".aees-plan-check-", dir=summary.out_dir))
        try:
            for name in redraw:
                for r in FIGURE_FAMILIES[name](planned, scratch / name):
                    empty.update(f"figure {name}/{r.name}: {m}" for m in (*r.missing, *r.partial))
        finally:
            shutil.rmtree(scratch, ignore_errors=True)
    summary.unplanned = {m for m in summary.all_missing if m in empty}


# --------------------------------------------------------------------------------------------
# Index pages
# --------------------------------------------------------------------------------------------


def _run_rows(runset: RunSet) -> list[list[str]]:
    return [
        [
            c.info.task_label,
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


def _plan_lines(summary: ReportSummary) -> list[str]:
    """What the missing lists mean: a planned study, or none (docs/reporting.md §8)."""
    if summary.plan is None:
        return [
            f"No run plan (manifest.json from aees plan / aees sweep) in "
            f"{display_path(summary.results_dir)}: the missing cells and figures listed are "
            "what the table and figure families could show with more runs, not runs anyone "
            "planned."
        ]
    plan = summary.plan
    done = len(plan.runs) - len(summary.unfinished)
    return [
        f"Planned study: {plan.describe()}; {done} of {len(plan.runs)} planned runs have a "
        f"valid result. Missing lists only what the plan asked for; "
        f"{len(summary.not_planned)} empty cells and figure inputs the plan did not ask for "
        "are listed as not planned."
    ]


def _md_list(items: list[str]) -> list[str]:
    return [f"- {md_text(i)}" for i in items]


def _index_md(summary: ReportSummary, runset: RunSet) -> str:
    """``index.md``; every text that came from a file (names, paths, reasons) passes through
    :func:`~aees.reporting.render.md_text` or :func:`~aees.reporting.render.md_code`."""
    lines = [
        "# AEES report",
        "",
        f"Generated by `aees report` from {md_code(display_path(summary.results_dir))}: "
        f"{summary.runs} runs in "
        f"{len(runset.cells)} cells, {len(summary.families)} table families, "
        f"{sum(len(v) for v in summary.figures.values())} figures.",
        "",
        *(md_text(line) for line in _plan_lines(summary)),
        "",
    ]
    if summary.problems:
        lines += ["## Files not used", "", *_md_list(summary.problems), ""]
    if summary.diverged:
        lines += ["## Diverged runs (not in any table or figure)", ""]
        lines += [*_md_list(summary.diverged), ""]
    if summary.unfinished:
        lines += ["## Planned runs without a result", ""]
        lines += [*_md_list(summary.missing[: len(summary.unfinished)]), ""]
    lines += ["## Runs (n per method)", ""]
    lines.append("| " + " | ".join(_RUN_HEADER) + " |")
    lines.append("|" + "---|" * len(_RUN_HEADER))
    lines += ["| " + " | ".join(md_text(v) for v in row) + " |" for row in _run_rows(runset)]
    lines.append("")
    for name, fam in summary.families.items():
        lines += [f"## {md_text(fam.title)}", ""]
        for table in fam.tables:
            lines += [f"`tables/{name}/{table.name}.tex`", "", render_markdown(table), ""]
        missing, unplanned = summary.shown_missing(f"{name}: ", fam.missing)
        if missing:
            lines += ["Missing cells:", "", *_md_list(missing), ""]
        if unplanned:
            lines += ["Not planned (empty, not missing):", "", *_md_list(unplanned), ""]
        if fam.notes:
            lines += ["Notes:", "", *_md_list(fam.notes), ""]
    for name, results in summary.figures.items():
        lines += [f"## Figures: {md_text(figure_heading(name, runset))}", ""]
        for r in results:
            missing, unplanned = summary.shown_missing(
                f"figure {name}/{r.name}: ", [*r.missing, *r.partial]
            )
            if r.ok and r.png is not None:
                lines += [f"![{r.name}]({_rel(summary, r.png)})", ""]
                lines += _md_list(missing)
            elif missing:
                lines += [f"**{r.name}: MISSING**", "", *_md_list(missing), ""]
            else:
                lines += [f"{r.name}: not drawn (not planned)", ""]
            if unplanned:
                lines += [*_md_list([f"not planned: {m}" for m in unplanned]), ""]
    if summary.skipped_families:
        lines += ["## Table families without runs", ""]
        lines += [*_md_list([FAMILIES[n].title for n in summary.skipped_families]), ""]
    missing = summary.missing
    lines += ["## All missing cells", "", *(_md_list(missing) or ["None."]), ""]
    if summary.plan is not None:
        lines += ["## Not planned (empty, not missing)", ""]
        lines += [*(_md_list(summary.not_planned) or ["None."]), ""]
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
        *(f"<p>{e(line)}</p>" for line in _plan_lines(summary)),
    ]
    if summary.problems:
        parts += ["<h2>Files not used</h2>", _list_html(summary.problems, "missing")]
    if summary.diverged:
        parts += ["<h2>Diverged runs (not in any table or figure)</h2>"]
        parts.append(_list_html(summary.diverged, "missing"))
    if summary.unfinished:
        parts += ["<h2>Planned runs without a result</h2>"]
        parts.append(_list_html(summary.missing[: len(summary.unfinished)], "missing"))
    parts.append("<h2>Runs (n per method)</h2><table><thead><tr>")
    parts += [f"<th>{e(h)}</th>" for h in _RUN_HEADER]
    parts.append("</tr></thead><tbody>")
    for row in _run_rows(runset):
        parts.append("<tr>" + "".join(f"<td>{e(v)}</td>" for v in row) + "</tr>")
    parts.append("</tbody></table>")
    for name, fam in summary.families.items():
        parts.append(f"<h2>{e(fam.title)}</h2>")
        for table in fam.tables:
            parts.append(render_html(table))
            parts.append(f"<p><small>tables/{e(name)}/{e(table.name)}.tex / .md / .csv</small></p>")
        missing, unplanned = summary.shown_missing(f"{name}: ", fam.missing)
        if missing:
            parts += ["<p>Missing cells:</p>", _list_html(missing, "missing")]
        if unplanned:
            parts += ["<p>Not planned (empty, not missing):</p>", _list_html(unplanned)]
        if fam.notes:
            parts += ["<p>Notes:</p>", _list_html(fam.notes)]
    for name, results in summary.figures.items():
        parts.append(f"<h2>Figures: {e(figure_heading(name, runset))}</h2>")
        for r in results:
            missing, unplanned = summary.shown_missing(
                f"figure {name}/{r.name}: ", [*r.missing, *r.partial]
            )
            if r.ok and r.png is not None:
                data = base64.b64encode(r.png.read_bytes()).decode("ascii")
                parts.append(
                    f"<figure><img alt='{e(r.name)}' src='data:image/png;base64,{data}'>"
                    f"<figcaption>{e(r.name)}</figcaption></figure>"
                )
                parts.append(_list_html(missing, "missing"))
            elif missing:
                parts.append(f"<p class='missing'><b>{e(r.name)}: MISSING</b></p>")
                parts.append(_list_html(missing, "missing"))
            else:
                parts.append(f"<p>{e(r.name)}: not drawn (not planned)</p>")
            parts.append(_list_html([f"not planned: {m}" for m in unplanned]))
    if summary.skipped_families:
        parts.append("<h2>Table families without runs</h2>")
        parts.append(_list_html([FAMILIES[n].title for n in summary.skipped_families]))
    parts.append("<h2>All missing cells</h2>")
    parts.append(_list_html(summary.missing, "missing") or "<p>None.</p>")
    if summary.plan is not None:
        parts.append("<h2>Not planned (empty, not missing)</h2>")
        parts.append(_list_html(summary.not_planned) or "<p>None.</p>")
    parts.append("</body></html>\n")
    return "\n".join(parts)
